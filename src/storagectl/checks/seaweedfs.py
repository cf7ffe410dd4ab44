"""SeaweedFS checks: Raft leader, volume registration, filer health and I/O, cross-filer reads,
replica placement, S3 I/O and auth.

Every endpoint comes from the topology alone: the component groups (``seaweedfs_master`` ...,
or their ``*_group`` overrides), each host's ``storage_address`` and the port variables
(``seaweedfs_master_port`` ...), whose defaults come from the roles' defaults.

Behaviour of SeaweedFS 4.48 these checks rely on (verified against the binary):

* ``GET /cluster/status`` on a master returns ``{"IsLeader": true, "Leader": "ip:port.grpc",
  "Peers": [...]}``; ``IsLeader`` is omitted on followers, ``Peers`` excludes the master itself
  and is omitted entirely for a single master started with ``-peers=none``.
* ``GET /dir/status`` is proxied to the leader and lists data nodes by data center and rack.
* The filer stores a raw ``PUT`` body at the path (201); a ``POST`` must be multipart.
* ``GET <path>?metadata=true`` on a filer returns the entry as JSON; its ``chunks`` carry
  ``file_id`` (``"3,01637037d6"``: volume id, needle key and cookie), ``size`` and ``offset``
  (omitted when 0). Below ``-maxMB`` (4 MiB) a file is one chunk.
* ``GET /dir/lookup?volumeId=N`` on a master returns ``{"locations": [{"url": "ip:port",
  "publicUrl", "dataCenter", "grpcPort"}]}`` (404 with ``error`` for an unknown volume), and
  ``GET /<file_id>`` on a volume server holding the volume reads that server's own copy.
* A volume of placement ``XYZ`` has ``X+Y+Z+1`` copies (``ReplicaPlacement.GetCopyCount``): one
  in each of X other data centers, one in each of Y other racks of the main data center, and
  Z+1 on distinct servers of the main rack. The filer replicates synchronously: once its PUT
  answers, every copy holds the bytes.
* Filers with their own stores see each other's writes through metadata aggregation, within
  milliseconds but asynchronously; filers sharing one PostgreSQL see them at once.
* The S3 gateway answers unsigned requests with 403 ``AccessDenied`` once identities are
  configured, and serves them (200) when it has none.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests

from storagectl import placement as placements
from storagectl.checks.base import (
    CheckContext,
    CheckResult,
    Findings,
    cluster_check,
    host_check,
    parallel_map,
    unit_fix,
)
from storagectl.checks.transfer import (
    VERIFY_BUCKET,
    VERIFY_DIR,
    delete,
    filer_transfer,
    http_error,
    http_session,
    payload,
    s3_transfer,
    size,
    visible_within,
)
from storagectl.endpoints import (
    master_addresses,
    s3_region,
    weed_address,
    weed_url,
)
from storagectl.inventory import Host, Topology
from storagectl.inventory.groups import FILER, MASTER, S3, VOLUME

COMPONENT = "seaweedfs"

UNITS = {
    MASTER: "seaweedfs-master",
    VOLUME: "seaweedfs-volume",
    FILER: "seaweedfs-filer",
    S3: "seaweedfs-s3",
}


# --- endpoints -------------------------------------------------------------------------------


def _journal_fix(host: Host, component: str, reason: str = "") -> str:
    """A fix sentence pointing at the unit's status and journal on ``host``."""
    return unit_fix(host, UNITS[component], reason)


def weed_shell(topology: Topology) -> str:
    """``weed shell -master=<every master>``, for fix sentences."""
    return f"weed shell -master={','.join(master_addresses(topology)) or '<master>'}"


def _strip_grpc(server: str) -> str:
    """``ip:port.grpcport`` (how masters name each other) -> ``ip:port``."""
    head, sep, tail = server.rpartition(".")
    if sep and tail.isdigit() and ":" in head:
        return head
    return server


# --- 1. masters agree on one leader --------------------------------------------------------


@dataclass
class _MasterView:
    host: Host
    url: str
    status: dict[str, Any] | None = None
    error: str = ""
    duration: float = 0.0


def _cluster_status(host: Host, ctx: CheckContext) -> _MasterView:
    url = f"{weed_url(host, MASTER)}/cluster/status"
    view = _MasterView(host=host, url=url)
    start = time.monotonic()
    try:
        with http_session() as session:
            response = session.get(url, timeout=ctx.http_timeout)
        if response.status_code != 200:
            view.error = f"HTTP {response.status_code}"
        else:
            body = response.json()
            if isinstance(body, dict):
                view.status = body
            else:
                view.error = "answer is not a JSON object"
    except requests.RequestException as exc:
        view.error = http_error(exc)
    except ValueError:
        view.error = "answer is not JSON"
    view.duration = time.monotonic() - start
    return view


def _master_result(view: _MasterView, expected_peers: int) -> CheckResult:
    """One master's own view: it answers, knows a leader, has every other master as a peer."""
    name = view.host.name
    if view.status is None:
        return CheckResult(
            "master status",
            COMPONENT,
            False,
            f"no valid answer: {view.error}",
            fix=_journal_fix(view.host, MASTER),
            endpoint=view.url,
            duration=view.duration,
            host=name,
        )
    leader = _strip_grpc(str(view.status.get("Leader") or ""))
    # Peers is omitted for a single legacy-raft master; hashicorp raft lists the master itself.
    own = weed_url(view.host, MASTER).removeprefix("http://")
    peers = [p for p in view.status.get("Peers") or [] if _strip_grpc(str(p)) != own]
    problems: list[str] = []
    if not leader:
        problems.append("knows no leader")
    if len(peers) != expected_peers:
        problems.append(f"has {len(peers)} peer(s), the inventory has {expected_peers} other(s)")
    if view.status.get("IsLeader") is True:  # omitted (omitempty) on followers
        detail = f"leads ({leader}), {len(peers)} peer(s)"
    else:
        detail = f"follows {leader or 'no leader'}, {len(peers)} peer(s)"
    fix = ""
    if problems:
        detail = f"{detail}: {'; '.join(problems)}"
        fix = (
            "Make -peers of every master list all masters of the inventory (odd count) and "
            f"check Raft on {name}: journalctl -u {UNITS[MASTER]}; "
            "echo cluster.raft.ps | weed shell -master=<master>."
        )
    return CheckResult(
        "master status",
        COMPONENT,
        not problems,
        detail,
        fix=fix,
        endpoint=view.url,
        duration=view.duration,
        host=name,
    )


def _leader_result(views: list[_MasterView], inventory_masters: dict[str, str]) -> CheckResult:
    """The cluster's view: all masters answer, agree on one leader, exactly one claims it."""
    answered = [v.status for v in views if v.status is not None]
    leaders = {_strip_grpc(str(status.get("Leader") or "")) for status in answered}
    claiming = [
        v.host.name for v in views if v.status is not None and v.status.get("IsLeader") is True
    ]
    problems: list[str] = []
    if len(answered) < len(views):
        problems.append(f"{len(views) - len(answered)} of {len(views)} master(s) did not answer")
    if answered and leaders == {""}:
        problems.append("no master knows a leader")
    elif len(leaders) > 1:
        problems.append(f"masters disagree on the leader ({', '.join(sorted(leaders))})")
    if answered and len(claiming) != 1 and len(answered) == len(views):
        problems.append(f"{len(claiming)} master(s) claim to lead ({', '.join(claiming) or '-'})")
    leader = next(iter(leaders)) if len(leaders) == 1 else ""
    if leader and leader not in inventory_masters:
        problems.append(f"leader {leader} is not a master of the inventory")
    duration = max((v.duration for v in views), default=0.0)
    if problems:
        return CheckResult(
            "master leader",
            COMPONENT,
            False,
            "; ".join(problems),
            fix=(
                "Restore Raft quorum: start the masters that are down (systemctl status "
                f"{UNITS[MASTER]}), keep an odd master count and identical -peers on all of them."
            ),
            endpoint="cluster",
            duration=duration,
        )
    return CheckResult(
        "master leader",
        COMPONENT,
        True,
        f"leader {leader} ({inventory_masters[leader]}), agreed by {len(views)} master(s)",
        endpoint="cluster",
        duration=duration,
    )


@cluster_check("master leader", COMPONENT, requires=(MASTER,))
def master_leader(topology: Topology, ctx: CheckContext) -> list[CheckResult]:
    """Every master answers /cluster/status, all name the same leader, exactly one leads."""
    masters = topology.group(MASTER)
    inventory_masters = {weed_address(h, MASTER): h.name for h in masters}
    views = parallel_map(lambda h: _cluster_status(h, ctx), masters)
    results = [_master_result(view, len(masters) - 1) for view in views]
    results.append(_leader_result(views, inventory_masters))
    return results


# --- 2. every volume server is registered where the inventory says -------------------------


def _dir_status(topology: Topology, ctx: CheckContext) -> tuple[dict[str, Any] | None, str, str]:
    """``/dir/status`` from the first master that answers: (body, url, error summary)."""
    errors: list[str] = []
    url = ""
    with http_session() as session:
        for master in topology.group(MASTER):
            url = f"{weed_url(master, MASTER)}/dir/status"
            try:
                response = session.get(url, timeout=ctx.http_timeout)
                if response.status_code == 200:
                    body = response.json()
                    if isinstance(body, dict) and isinstance(body.get("Topology"), dict):
                        return body, url, ""
                    errors.append(f"{url}: unexpected answer")
                else:
                    errors.append(f"{url}: HTTP {response.status_code}")
            except requests.RequestException as exc:
                errors.append(f"{url}: {http_error(exc)}")
            except ValueError:
                errors.append(f"{url}: answer is not JSON")
    return None, url, "; ".join(errors) or "no master in the inventory"


def _data_nodes(body: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """``Url`` -> (data center, rack, node) for every data node of a /dir/status answer."""
    nodes: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for dc in body["Topology"].get("DataCenters") or []:
        for rack in dc.get("Racks") or []:
            for node in rack.get("DataNodes") or []:
                nodes[str(node.get("Url"))] = (str(dc.get("Id")), str(rack.get("Id")), node)
    return nodes


@cluster_check("volume registered", COMPONENT, requires=(VOLUME,))
def volume_registered(topology: Topology, ctx: CheckContext) -> list[CheckResult]:
    """Every volume host is a data node of the leader, in its inventory data center and rack."""
    volumes = topology.targets(VOLUME)
    start = time.monotonic()
    body, url, error = _dir_status(topology, ctx)
    duration = time.monotonic() - start

    def result(volume: Host, ok: bool, detail: str, fix: str = "") -> CheckResult:
        return CheckResult(
            "volume registered",
            COMPONENT,
            ok,
            detail,
            fix=fix,
            endpoint=url,
            duration=duration,
            host=volume.name,
        )

    if body is None:
        fix = "Fix the masters first (see the master checks), then rerun."
        return [result(v, False, f"no master answered /dir/status: {error}", fix) for v in volumes]
    nodes = _data_nodes(body)
    results = []
    for volume in volumes:
        node_url = weed_address(volume, VOLUME)
        found = nodes.get(node_url)
        if found is None:
            known = ", ".join(sorted(nodes)) or "none"
            reason = (
                f"start the volume server on {volume.name} and let it reach the masters on "
                "their HTTP and gRPC (+10000) ports"
            )
            results.append(
                result(
                    volume,
                    False,
                    f"{node_url} is not a data node of the cluster (registered: {known})",
                    _journal_fix(volume, VOLUME, reason),
                )
            )
            continue
        dc, rack, node = found
        want_dc, want_rack = placements.location(volume)
        if (want_dc, want_rack) != (dc, rack):
            fix = (
                f"Render -dataCenter/-rack of {UNITS[VOLUME]} on {volume.name} from "
                "seaweedfs_data_center/seaweedfs_rack (rerun deploy) and restart it."
            )
            detail = f"{node_url} registered in {dc}/{rack}, inventory says {want_dc}/{want_rack}"
            results.append(result(volume, False, detail, fix))
            continue
        slots = f"{node.get('Volumes', 0)} volume(s) of max {node.get('Max', '?')}"
        results.append(result(volume, True, f"{node_url} in {dc}/{rack}, {slots}"))
    return results


# --- 3. filer health -------------------------------------------------------------------------


def _filer_healthz(topology: Topology, host: Host) -> str:
    return f"{weed_url(host, FILER)}/healthz"


@host_check("filer health", COMPONENT, group=FILER, endpoint=_filer_healthz)
def filer_health(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
    """The filer's /healthz answers 200 (it queries the filer store)."""
    url = _filer_healthz(topology, host)
    try:
        with http_session() as session:
            response = session.get(url, timeout=ctx.http_timeout)
    except requests.RequestException as exc:
        return CheckResult(
            "filer health", COMPONENT, False, http_error(exc), fix=_journal_fix(host, FILER)
        )
    if response.status_code == 200:
        return CheckResult("filer health", COMPONENT, True, "HTTP 200")
    reason = (
        "the filer cannot query its store (PostgreSQL down or unreachable?)"
        if response.status_code == 503
        else ""
    )
    return CheckResult(
        "filer health",
        COMPONENT,
        False,
        f"HTTP {response.status_code}",
        fix=_journal_fix(host, FILER, reason),
    )


# --- 4. filer write / read / delete ----------------------------------------------------------

_CORRUPTION_FIX = (
    "Data corruption or a stale replica: run `volume.check.disk` in weed shell "
    "and check the volume servers' disks."
)


def _filer_base(topology: Topology, host: Host) -> str:
    return f"{weed_url(host, FILER)}{VERIFY_DIR}/"


@host_check("filer round trip", COMPONENT, group=FILER, endpoint=_filer_base)
def filer_round_trip(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
    """PUT random bytes through the filer, GET them back identical, DELETE them."""
    url = f"{_filer_base(topology, host)}{uuid.uuid4().hex}.bin"
    outcome = filer_transfer(url, url, ctx)
    if outcome.ok:
        return CheckResult(
            "filer round trip",
            COMPONENT,
            True,
            f"{size(outcome.size)} written, read back identical (sha256), deleted; "
            f"{outcome.spent()}",
        )
    fix = (
        _CORRUPTION_FIX
        if outcome.failed == "compare"
        else _journal_fix(host, FILER, "check the filer can write to its volume servers")
    )
    return CheckResult("filer round trip", COMPONENT, False, outcome.detail, fix=fix)


# --- 5. a file written through one filer reads back through another ---------------------------


def _next_filer(topology: Topology, host: Host) -> Host | None:
    """The filer after ``host`` in inventory order (wrapping); None with a single filer."""
    filers = topology.group(FILER)
    names = [f.name for f in filers]
    if len(filers) < 2 or host.name not in names:
        return None
    return filers[(names.index(host.name) + 1) % len(filers)]


def _cross_read_endpoint(topology: Topology, host: Host) -> str:
    reader = _next_filer(topology, host)
    writer = _filer_base(topology, host)
    return writer if reader is None else f"{writer} -> {_filer_base(topology, reader)}"


@host_check("filer cross read", COMPONENT, group=FILER, endpoint=_cross_read_endpoint)
def filer_cross_read(topology: Topology, host: Host, ctx: CheckContext) -> list[CheckResult]:
    """A file PUT through this filer is read back identical through the next one, then deleted."""
    reader = _next_filer(topology, host)
    if reader is None:
        return []  # a single filer has no peer to read through: not applicable
    name = f"{uuid.uuid4().hex}.bin"
    write_url = f"{_filer_base(topology, host)}{name}"
    read_url = f"{_filer_base(topology, reader)}{name}"
    outcome = filer_transfer(write_url, read_url, ctx, within=visible_within(ctx))
    if outcome.ok:
        return [
            CheckResult(
                "filer cross read",
                COMPONENT,
                True,
                f"{size(outcome.size)} written through {host.name}, read back identical "
                f"(sha256) through {reader.name} after {outcome.waited * 1000:.0f} ms, deleted; "
                f"{outcome.spent()}",
            )
        ]
    if outcome.failed == "GET" and outcome.status == 404:
        detail = (
            f"{reader.name} does not see the file written through {host.name}: "
            f"{outcome.detail} ({read_url})"
        )
        fix = (
            f"Filers with their own stores copy each other's metadata over gRPC: let {reader.name} "
            f"reach the filer gRPC port of {host.name} (HTTP port + 10000 unless set) and check "
            f"that `echo cluster.ps | {weed_shell(topology)}` lists every filer; filers meant "
            f"to share PostgreSQL must use the same database and table. Look on {reader.name}: "
            f"journalctl -u {UNITS[FILER]} -n 100 (meta_aggregator lines)."
        )
    elif outcome.failed == "GET":
        detail = f"read through {reader.name} failed: {outcome.detail} ({read_url})"
        fix = _journal_fix(reader, FILER)
    elif outcome.failed == "compare":
        detail = f"{reader.name} {outcome.detail} through {host.name}"
        fix = _CORRUPTION_FIX
    else:
        detail = f"through {host.name}: {outcome.detail} ({write_url})"
        fix = _journal_fix(host, FILER, "check the filer can write to its volume servers")
    return [CheckResult("filer cross read", COMPONENT, False, detail, fix=fix)]


# --- 6. a written file has the copies the replica placement promises --------------------------


def volume_placement(vol_status: dict[str, Any], volume: str) -> str:
    """The placement ``XYZ`` of ``volume`` in a master's /vol/status answer ("" if absent).

    4.48 lists ``Volumes.DataCenters.<dc>.<rack>.<server>`` -> volumes, each with
    ``ReplicaPlacement`` ``{"dc": X, "rack": Y, "node": Z}`` (zero counts omitted).
    """
    centers = (vol_status.get("Volumes") or {}).get("DataCenters") or {}
    for racks in centers.values():
        for servers in (racks or {}).values():
            for volumes in (servers or {}).values():
                for info in volumes or []:
                    if str(info.get("Id")) == volume:
                        rp = info.get("ReplicaPlacement") or {}
                        return f"{rp.get('dc', 0)}{rp.get('rack', 0)}{rp.get('node', 0)}"
    return ""


@dataclass(frozen=True)
class _Chunk:
    fid: str
    volume: str
    offset: int
    size: int


def _chunks(entry: dict[str, Any]) -> list[_Chunk]:
    """The chunks of a ``?metadata=true`` answer (ValueError on one without a ``file_id``)."""
    chunks = []
    for chunk in entry.get("chunks") or []:
        fid = str(chunk.get("file_id") or "")
        volume, sep, _ = fid.partition(",")
        if not sep or not volume.isdigit():
            raise ValueError(f"filer metadata has a chunk without a file_id: {chunk!r}"[:200])
        offset = int(chunk.get("offset") or 0)
        chunks.append(_Chunk(fid, volume, offset, int(chunk.get("size") or 0)))
    return chunks


def _lookup_volume(
    topology: Topology, session: requests.Session, volume: str, ctx: CheckContext
) -> tuple[list[dict[str, Any]] | None, str]:
    """The locations of ``volume`` from the first master that knows them: (locations, error)."""
    errors: list[str] = []
    for master in topology.group(MASTER):
        url = f"{weed_url(master, MASTER)}/dir/lookup?volumeId={volume}"
        try:
            response = session.get(url, timeout=ctx.http_timeout)
            body = response.json()
        except requests.RequestException as exc:
            errors.append(f"{url}: {http_error(exc)}")
            continue
        except ValueError:
            errors.append(f"{url}: HTTP {response.status_code}, answer is not JSON")
            continue
        locations = body.get("locations") if isinstance(body, dict) else None
        if response.status_code == 200 and isinstance(locations, list) and locations:
            return locations, ""
        error = body.get("error") if isinstance(body, dict) else ""
        errors.append(f"{url}: HTTP {response.status_code} {error or 'no locations'}".rstrip())
    return None, "; ".join(errors) or "no master in the inventory"


def _expected_placement(topology: Topology) -> str:
    """The masters' default placement (what the masters are deployed with, not the filers')."""
    masters = topology.group(MASTER)
    if masters:
        return str(masters[0].var(placements.VARIABLE))
    return str(topology.var(placements.VARIABLE))


def _placement_writer(filers: list[Host], placement: str) -> tuple[Host, dict[str, str]]:
    """The filer to write through, and its query: a filer deployed with a placement of its own
    (``seaweedfs_filer_default_replica_placement``) is asked for the masters' one explicitly."""
    for filer in filers:
        own = str(filer.var("seaweedfs_filer_default_replica_placement", default="") or "")
        if own in ("", placement):
            return filer, {}
    return filers[0], {"replication": placement}


def _copies_of(topology: Topology, locations: list[dict[str, Any]]) -> list[placements.VolumeCopy]:
    """Map /dir/lookup locations to inventory volume hosts (by storage_address:volume port)."""
    inventory = {weed_address(v, VOLUME): v for v in topology.group(VOLUME)}
    copies = []
    for location in locations:
        url = str(location.get("url") or "")
        host = inventory.get(url)
        if host is None:
            dc = str(location.get("dataCenter") or "?")
            copies.append(placements.VolumeCopy(url, url, dc, "?"))
            continue
        copies.append(placements.VolumeCopy(url, host.name, *placements.location(host)))
    return copies


@dataclass
class _PlacementProbe:
    """One run of the replica placement check: write, inspect every copy, collect findings."""

    topology: Topology
    session: requests.Session
    ctx: CheckContext
    placement: str
    writer: Host
    url: str
    data: bytes
    findings: Findings = field(default_factory=Findings)
    found: list[str] = field(default_factory=list)

    @property
    def shell(self) -> str:
        return weed_shell(self.topology)

    def run(self, params: dict[str, str]) -> None:
        """PUT the file, read its chunks from the filer, check every volume holding them."""
        writer_fix = _journal_fix(
            self.writer, FILER, "check the filer can write to its volume servers"
        )
        entry = self._write_and_describe(params, writer_fix)
        if entry is None:
            return
        try:
            chunks = _chunks(entry)
        except ValueError as exc:
            self.findings.add(str(exc), writer_fix)
            return
        if not chunks:
            self.findings.add(
                f"{self.writer.name} kept the {size(len(self.data))} file inline in its store "
                "(no chunk on a volume server)",
                f"Lower -saveToFilerLimit of {UNITS[FILER]} on {self.writer.name} below 64 KiB.",
            )
            return
        by_volume: dict[str, list[_Chunk]] = {}
        for chunk in chunks:
            by_volume.setdefault(chunk.volume, []).append(chunk)
        for volume, volume_chunks in by_volume.items():
            self._check_volume(volume, volume_chunks)

    def _write_and_describe(self, params: dict[str, str], writer_fix: str) -> dict[str, Any] | None:
        """PUT the file and return its filer entry (``?metadata=true``); None on failure."""
        timeout = self.ctx.http_timeout
        name = self.writer.name
        try:
            response = self.session.put(self.url, params=params, data=self.data, timeout=timeout)
            if response.status_code not in (200, 201):
                want = placements.copy_count(self.placement)
                self.findings.add(
                    f"PUT through {name}: HTTP {response.status_code} "
                    f"{response.text[:160].strip()}".rstrip(),
                    f"The cluster must hold {want} copies of placement {self.placement} "
                    f"({placements.needs(self.placement)}, with free volume slots): look for "
                    "'Not enough data nodes' or 'No free volumes' in the leader master's journal. "
                    f"{writer_fix}",
                )
                return None
            response = self.session.get(self.url, params={"metadata": "true"}, timeout=timeout)
            entry = response.json() if response.status_code == 200 else None
        except requests.RequestException as exc:
            self.findings.add(f"through {name}: {http_error(exc)}", writer_fix)
            return None
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            self.findings.add(
                f"GET {self.url}?metadata=true: HTTP {response.status_code}, no entry as JSON",
                writer_fix,
            )
            return None
        return entry

    def _check_volume(self, volume: str, chunks: list[_Chunk]) -> None:
        """Placement and content of every copy of ``volume``, which holds ``chunks``."""
        locations, error = _lookup_volume(self.topology, self.session, volume, self.ctx)
        if locations is None:
            self.findings.add(
                f"no master answered the lookup of volume {volume}: {error}",
                "Fix the masters first (see the master checks), then rerun.",
            )
            return
        copies = _copies_of(self.topology, locations)
        strangers = [c.url for c in copies if c.name == c.url]
        if strangers:
            self.findings.add(
                f"volume {volume} has copies on {', '.join(strangers)}, not volume servers of "
                "the inventory",
                "Add those volume servers to the inventory with their data center and rack, or "
                "drain them: echo 'lock; volumeServer.evacuate -node=<ip:port> -apply; unlock' "
                f"| {self.shell}.",
            )
        where = ", ".join(map(str, copies))
        wrong = placements.spread_problem(self.placement, copies)
        if wrong is not None:
            kind, text = wrong
            actual = self._actual_placement(volume)
            label = f"volume {volume} (placement {actual})" if actual else f"volume {volume}"
            if actual and actual != self.placement:
                kind = "count"  # the volume was created with another placement: masters' fault
            fix = self._placement_fix(kind, volume, actual)
            self.findings.add(f"{label}: {text}: {where}", fix)
        for chunk in chunks:
            self._read_copies(chunk, copies)
        self.found.append(f"volume {volume} has {placements.copies(len(copies))} on {where}")

    def _actual_placement(self, volume: str) -> str:
        """The placement ``volume`` was created with, from the masters' /vol/status ("" when
        unknown). Asked only when something is wrong: the answer lists every volume."""
        for master in self.topology.group(MASTER):
            url = f"{weed_url(master, MASTER)}/vol/status"
            try:
                body = self.session.get(url, timeout=self.ctx.http_timeout).json()
            except (requests.RequestException, ValueError):
                continue
            if isinstance(body, dict):
                return volume_placement(body, volume)
        return ""

    def _placement_fix(self, kind: str, volume: str, actual: str) -> str:
        placement = self.placement
        if kind == "count":
            written = f"with placement {actual}" if actual else "with another placement"
            return (
                f"The masters write {written}, the inventory's seaweedfs_default_replica_placement "
                f"is {placement}: set the variable to the placement you mean, rerun deploy (it "
                f"renders -defaultReplication of {UNITS[MASTER]} and the filers' "
                "-defaultReplicaPlacement) and restart the masters one at a time. Existing "
                "volumes keep their placement until you run echo 'lock; "
                f"volume.configure.replication -replication=<XYZ> -volumeId={volume}; "
                f"volume.fix.replication -apply; unlock' | {self.shell}."
            )
        return (
            f"Placement {placement} needs {placements.needs(placement)}: make every volume "
            "server's seaweedfs_data_center/seaweedfs_rack its real place (see volume "
            "registered), with free slots in each, then echo 'lock; volume.fix.replication "
            f"-apply; unlock' | {self.shell}."
        )

    def _read_copies(self, chunk: _Chunk, copies: list[placements.VolumeCopy]) -> None:
        """GET the chunk from every copy and compare it with the bytes written."""
        expected = self.data[chunk.offset : chunk.offset + chunk.size]
        digest = hashlib.sha256(expected).digest()
        repair = (
            f"A copy is missing or stale: echo 'lock; volume.check.disk -volumeId={chunk.volume} "
            f"-apply; unlock' | {self.shell}, and check that volume server's disk."
        )
        for copy in copies:
            url = f"http://{copy.url}/{chunk.fid}"
            try:
                response = self.session.get(url, timeout=self.ctx.http_timeout)
            except requests.RequestException as exc:
                self.findings.add(
                    f"copy on {copy.name} ({url}): {http_error(exc)}",
                    f"Look on {copy.name}: systemctl status {UNITS[VOLUME]}; "
                    f"journalctl -u {UNITS[VOLUME]} -n 100.",
                )
                continue
            if response.status_code in (401, 403):
                self.findings.add(
                    f"copy on {copy.name} ({url}): HTTP {response.status_code}",
                    "The volume servers want a JWT for reads ([jwt.signing.read] in "
                    "security.toml): read the copies by hand with a signed request.",
                )
            elif response.status_code != 200:
                problem = f"copy on {copy.name} ({url}): HTTP {response.status_code}"
                self.findings.add(problem, repair)
            elif hashlib.sha256(response.content).digest() != digest:
                self.findings.add(
                    f"copy on {copy.name} ({url}) holds {size(len(response.content))} "
                    f"differing from the {size(len(expected))} written",
                    repair,
                )


@cluster_check("replica placement", COMPONENT, requires=(VOLUME,))
def replica_placement(topology: Topology, ctx: CheckContext) -> list[CheckResult]:
    """A file written through a filer has the copies its replica placement promises.

    The expected placement is the masters' ``seaweedfs_default_replica_placement`` "XYZ": X+Y+Z+1
    copies on distinct volume servers, spread over data centers and racks as XYZ requires, each
    holding the bytes written (read from every copy directly).
    """
    filers = topology.group(FILER)
    if not filers:
        return []  # nothing to write a file through: not applicable
    placement = _expected_placement(topology)
    if placements.digits(placement) is None:
        return [
            CheckResult(
                "replica placement",
                COMPONENT,
                False,
                f"seaweedfs_default_replica_placement is {placement!r}, not XYZ with digits 0-2",
                fix="Set seaweedfs_default_replica_placement in the inventory (e.g. 001).",
                endpoint="inventory",
            )
        ]
    writer, params = _placement_writer(filers, placement)
    url = f"{_filer_base(topology, writer)}{uuid.uuid4().hex}.bin"
    with http_session() as session:
        probe = _PlacementProbe(topology, session, ctx, placement, writer, url, payload())
        try:
            probe.run(params)
        finally:
            deleted = delete(session, url, ctx, {})
    if not probe.findings.problems and deleted:
        probe.findings.add(
            f"checked every copy but DELETE {probe.url} failed: {deleted}",
            _journal_fix(writer, FILER),
        )
    if probe.findings.problems:
        return [
            CheckResult(
                "replica placement",
                COMPONENT,
                False,
                f"placement {placement}: {probe.findings.detail} (file {probe.url})",
                fix=probe.findings.fix,
                endpoint=_filer_base(topology, writer),
            )
        ]
    asked = f", asked explicitly of {writer.name}" if params else ""
    return [
        CheckResult(
            "replica placement",
            COMPONENT,
            True,
            f"placement {placement}{asked}: {'; '.join(probe.found)}; every copy read back "
            "identical (sha256); file deleted",
            # The filer written through, not the (random) file: reports name it in one line.
            endpoint=_filer_base(topology, writer),
        )
    ]


# --- 7. S3 write / read / delete -------------------------------------------------------------


def _s3_url(topology: Topology, host: Host) -> str:
    return weed_url(host, S3)


@host_check("s3 round trip", COMPONENT, group=S3, endpoint=_s3_url)
def s3_round_trip(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
    """Create the verify bucket if missing, PUT/GET (byte-identical)/DELETE an object."""
    return s3_transfer(
        _s3_url(topology, host),
        str(host.var("seaweedfs_s3_access_key", default="") or ""),
        str(host.var("seaweedfs_s3_secret_key", default="") or ""),
        ctx,
        service_fix=_journal_fix(host, S3),
        region=s3_region(topology),
    )


# --- 8. anonymous S3 access is refused -------------------------------------------------------


@host_check("s3 anonymous refused", COMPONENT, group=S3, endpoint=_s3_url)
def s3_anonymous_refused(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
    """Unsigned list and PUT requests to the gateway get 401/403."""
    endpoint = _s3_url(topology, host)
    bucket_url = f"{endpoint}/{VERIFY_BUCKET}/"
    object_url = f"{bucket_url}anonymous-{uuid.uuid4().hex}.bin"
    answers: dict[str, int] = {}
    with http_session() as session:
        try:
            answers["GET"] = session.get(bucket_url, timeout=ctx.http_timeout).status_code
            answers["PUT"] = session.put(
                object_url, data=b"x", timeout=ctx.http_timeout
            ).status_code
        except requests.RequestException as exc:
            return CheckResult(
                "s3 anonymous refused",
                COMPONENT,
                False,
                http_error(exc),
                fix=_journal_fix(host, S3),
                endpoint=bucket_url,
            )
        if 200 <= answers["PUT"] < 300:
            # Do not leave the anonymous object behind.
            with contextlib.suppress(requests.RequestException):
                session.delete(object_url, timeout=ctx.http_timeout)
    summary = f"unsigned GET bucket -> {answers['GET']}, unsigned PUT object -> {answers['PUT']}"
    if all(code in (401, 403) for code in answers.values()):
        return CheckResult("s3 anonymous refused", COMPONENT, True, summary, endpoint=bucket_url)
    if any(200 <= code < 300 for code in answers.values()):
        return CheckResult(
            "s3 anonymous refused",
            COMPONENT,
            False,
            f"anonymous access is open: {summary}",
            fix=(
                "Configure S3 identities (weed s3 -config with at least one identity, or "
                f"identities in the filer) so {UNITS[S3]} on {host.name} refuses unsigned requests."
            ),
            endpoint=bucket_url,
        )
    return CheckResult(
        "s3 anonymous refused",
        COMPONENT,
        False,
        f"unexpected answers, not the 403 of a SeaweedFS S3 gateway: {summary}",
        fix=_journal_fix(host, S3, f"check that {endpoint} is the S3 gateway"),
        endpoint=bucket_url,
    )


CHECKS = [
    master_leader,
    volume_registered,
    filer_health,
    filer_round_trip,
    filer_cross_read,
    replica_placement,
    s3_round_trip,
    s3_anonymous_refused,
]
