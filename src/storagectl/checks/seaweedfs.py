"""SeaweedFS checks: Raft leader, volume registration, filer health and I/O, S3 I/O and auth.

Every endpoint comes from the topology alone: the component groups (``seaweedfs_master`` ...,
or their ``*_group`` overrides), each host's ``storage_address`` and the port variables
(``seaweedfs_master_port`` ...), whose defaults come from the roles' defaults.

Behaviour of SeaweedFS 4.48 these checks rely on (verified against the binary):

* ``GET /cluster/status`` on a master returns ``{"IsLeader": true, "Leader": "ip:port.grpc",
  "Peers": [...]}``; ``IsLeader`` is omitted on followers, ``Peers`` excludes the master itself
  and is omitted entirely for a single master started with ``-peers=none``.
* ``GET /dir/status`` is proxied to the leader and lists data nodes by data center and rack.
* The filer stores a raw ``PUT`` body at the path (201); a ``POST`` must be multipart.
* The S3 gateway answers unsigned requests with 403 ``AccessDenied`` once identities are
  configured, and serves them (200) when it has none.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import requests
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from storagectl.checks.base import (
    CheckContext,
    CheckResult,
    cluster_check,
    host_check,
    parallel_map,
)
from storagectl.inventory import Host, Topology

COMPONENT = "seaweedfs"

MASTER = "seaweedfs_master"
VOLUME = "seaweedfs_volume"
FILER = "seaweedfs_filer"
S3 = "seaweedfs_s3"

# Used only when neither the inventory nor the role defaults define the port.
DEFAULT_PORTS = {MASTER: 9333, VOLUME: 8080, FILER: 8888, S3: 8333}
UNITS = {
    MASTER: "seaweedfs-master",
    VOLUME: "seaweedfs-volume",
    FILER: "seaweedfs-filer",
    S3: "seaweedfs-s3",
}

VERIFY_BUCKET = "storagectl-verify"
VERIFY_DIR = "/storagectl-verify"
S3_REGION = "us-east-1"
USER_AGENT = "storagectl-verify"


# --- endpoints -------------------------------------------------------------------------------


def host_port(address: str, port: int) -> str:
    """``address:port``, with IPv6 literals bracketed."""
    if ":" in address and not address.startswith("["):
        return f"[{address}]:{port}"
    return f"{address}:{port}"


def port_of(host: Host, component: str) -> int:
    """The HTTP port of ``component`` on ``host`` (``seaweedfs_<component>_port``)."""
    return int(host.var(f"{component}_port", default=DEFAULT_PORTS[component]))


def base_url(host: Host, component: str) -> str:
    """``http://<storage_address>:<port>`` of ``component`` on ``host``."""
    return f"http://{host_port(host.address, port_of(host, component))}"


def _journal_fix(host: Host, component: str, reason: str = "") -> str:
    """A fix sentence pointing at the unit's status and journal on ``host``."""
    unit = UNITS[component]
    look = f"on {host.name}: systemctl status {unit}; journalctl -u {unit} -n 100."
    if not reason:
        return f"Look {look}"
    return f"{reason[0].upper()}{reason[1:]}; look {look}"


def _http_error(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or unreachable"
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"


def _session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.trust_env = False  # never send cluster probes through an HTTP proxy
    return session


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
    url = f"{base_url(host, MASTER)}/cluster/status"
    view = _MasterView(host=host, url=url)
    start = time.monotonic()
    try:
        with _session() as session:
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
        view.error = _http_error(exc)
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
    peers = view.status.get("Peers") or []  # omitted for a single master (-peers=none)
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
    masters = topology.component(MASTER)
    inventory_masters = {host_port(h.address, port_of(h, MASTER)): h.name for h in masters}
    views = parallel_map(lambda h: _cluster_status(h, ctx), masters)
    results = [_master_result(view, len(masters) - 1) for view in views]
    results.append(_leader_result(views, inventory_masters))
    return results


# --- 2. every volume server is registered where the inventory says -------------------------


def _dir_status(topology: Topology, ctx: CheckContext) -> tuple[dict[str, Any] | None, str, str]:
    """``/dir/status`` from the first master that answers: (body, url, error summary)."""
    errors: list[str] = []
    url = ""
    with _session() as session:
        for master in topology.component(MASTER):
            url = f"{base_url(master, MASTER)}/dir/status"
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
                errors.append(f"{url}: {_http_error(exc)}")
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
    if body is None:
        return [
            CheckResult(
                "volume registered",
                COMPONENT,
                False,
                f"no master answered /dir/status: {error}",
                fix="Fix the masters first (see the master checks), then rerun.",
                endpoint=url,
                duration=duration,
                host=v.name,
            )
            for v in volumes
        ]
    nodes = _data_nodes(body)
    results = []
    for volume in volumes:
        node_url = host_port(volume.address, port_of(volume, VOLUME))
        want_dc = str(volume.var("seaweedfs_data_center", default="") or "")
        want_rack = str(volume.var("seaweedfs_rack", default="") or "")
        found = nodes.get(node_url)
        if found is None:
            known = ", ".join(sorted(nodes)) or "none"
            results.append(
                CheckResult(
                    "volume registered",
                    COMPONENT,
                    False,
                    f"{node_url} is not a data node of the cluster (registered: {known})",
                    fix=_journal_fix(
                        volume,
                        VOLUME,
                        f"start the volume server on {volume.name} and let it reach the masters "
                        "on their HTTP and gRPC (+10000) ports",
                    ),
                    endpoint=url,
                    duration=duration,
                    host=volume.name,
                )
            )
            continue
        dc, rack, node = found
        placement = f"{dc}/{rack}"
        wrong = (want_dc and want_dc != dc) or (want_rack and want_rack != rack)
        slots = f"{node.get('Volumes', 0)} volume(s) of max {node.get('Max', '?')}"
        detail = f"{node_url} in {placement}, {slots}"
        if wrong:
            results.append(
                CheckResult(
                    "volume registered",
                    COMPONENT,
                    False,
                    f"{node_url} registered in {placement}, "
                    f"inventory says {want_dc or '*'}/{want_rack or '*'}",
                    fix=(
                        f"Render -dataCenter/-rack of {UNITS[VOLUME]} on {volume.name} from "
                        "seaweedfs_data_center/seaweedfs_rack (rerun deploy) and restart it."
                    ),
                    endpoint=url,
                    duration=duration,
                    host=volume.name,
                )
            )
        else:
            results.append(
                CheckResult(
                    "volume registered",
                    COMPONENT,
                    True,
                    detail,
                    endpoint=url,
                    duration=duration,
                    host=volume.name,
                )
            )
    return results


# --- 3. filer health -------------------------------------------------------------------------


def _filer_healthz(topology: Topology, host: Host) -> str:
    return f"{base_url(host, FILER)}/healthz"


@host_check("filer health", COMPONENT, group=FILER, endpoint=_filer_healthz)
def filer_health(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
    """The filer's /healthz answers 200 (it queries the filer store)."""
    url = _filer_healthz(topology, host)
    try:
        with _session() as session:
            response = session.get(url, timeout=ctx.http_timeout)
    except requests.RequestException as exc:
        return CheckResult(
            "filer health", COMPONENT, False, _http_error(exc), fix=_journal_fix(host, FILER)
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


def _filer_base(topology: Topology, host: Host) -> str:
    return f"{base_url(host, FILER)}{VERIFY_DIR}/"


def _payload() -> bytes:
    """64 KiB plus up to 64 KiB of random bytes (so chunking and sizes vary between runs)."""
    return os.urandom(64 * 1024 + int.from_bytes(os.urandom(2), "big"))


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


@host_check("filer round trip", COMPONENT, group=FILER, endpoint=_filer_base)
def filer_round_trip(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
    """PUT random bytes through the filer, GET them back identical, DELETE them."""
    url = f"{_filer_base(topology, host)}{uuid.uuid4().hex}.bin"
    data = _payload()
    digest = hashlib.sha256(data).hexdigest()
    timings: dict[str, float] = {}
    step = "PUT"
    fix = _journal_fix(host, FILER, "check the filer can write to its volume servers")

    def fail(detail: str, fix_text: str = fix) -> CheckResult:
        return CheckResult("filer round trip", COMPONENT, False, detail, fix=fix_text)

    with _session() as session:
        try:
            start = time.monotonic()
            response = session.put(url, data=data, timeout=ctx.http_timeout)
            timings["PUT"] = time.monotonic() - start
            if response.status_code not in (200, 201):
                answer = response.text[:120].strip()
                return fail(f"PUT {_size(len(data))}: HTTP {response.status_code} {answer}")
            step = "GET"
            start = time.monotonic()
            response = session.get(url, timeout=ctx.http_timeout)
            timings["GET"] = time.monotonic() - start
            if response.status_code != 200:
                return fail(f"GET after PUT: HTTP {response.status_code}")
            got = response.content
            if hashlib.sha256(got).hexdigest() != digest:
                return fail(
                    f"read back {_size(len(got))} differing from the {_size(len(data))} written",
                    "Data corruption or a stale replica: run `volume.check.disk` in weed shell "
                    "and check the volume servers' disks.",
                )
        except requests.RequestException as exc:
            return fail(f"{step}: {_http_error(exc)}")
        finally:
            step = "DELETE"
            try:
                start = time.monotonic()
                deleted = session.delete(url, timeout=ctx.http_timeout)
                timings["DELETE"] = time.monotonic() - start
            except requests.RequestException:
                deleted = None
    if deleted is None or deleted.status_code not in (200, 202, 204):
        status = "no answer" if deleted is None else f"HTTP {deleted.status_code}"
        return fail(f"wrote and read {_size(len(data))} but DELETE failed: {status}")
    spent = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items())
    return CheckResult(
        "filer round trip",
        COMPONENT,
        True,
        f"{_size(len(data))} written, read back identical (sha256), deleted; {spent}",
    )


# --- 5. S3 write / read / delete -------------------------------------------------------------


def _s3_url(topology: Topology, host: Host) -> str:
    return base_url(host, S3)


def s3_client(endpoint: str, access_key: str, secret_key: str, ctx: CheckContext) -> Any:
    """A boto3 S3 client for one gateway: path-style, short timeouts, few retries."""
    connect, read = ctx.http_timeout
    config = Config(
        s3={"addressing_style": "path"},
        connect_timeout=connect,
        read_timeout=read,
        retries={"max_attempts": 2, "mode": "standard"},
        user_agent_extra=USER_AGENT,
        signature_version="s3v4",
    )
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=config,
    )


_AUTH_ERRORS = frozenset(
    {"AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "403", "401", "Forbidden"}
)


@host_check("s3 round trip", COMPONENT, group=S3, endpoint=_s3_url)
def s3_round_trip(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
    """Create the verify bucket if missing, PUT/GET (byte-identical)/DELETE an object."""
    endpoint = _s3_url(topology, host)
    access_key = host.var("seaweedfs_s3_access_key", default="")
    secret_key = host.var("seaweedfs_s3_secret_key", default="")
    if not access_key or not secret_key:
        return CheckResult(
            "s3 round trip",
            COMPONENT,
            False,
            "seaweedfs_s3_access_key / seaweedfs_s3_secret_key are not set for this host",
            fix="Set seaweedfs_s3_access_key and seaweedfs_s3_secret_key in the inventory (vault).",
        )
    client = s3_client(endpoint, str(access_key), str(secret_key), ctx)
    key = f"{uuid.uuid4().hex}.bin"
    data = _payload()
    timings: dict[str, float] = {}
    step = "HeadBucket"
    try:
        start = time.monotonic()
        try:
            client.head_bucket(Bucket=VERIFY_BUCKET)
        except ClientError as exc:
            if _error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise
            step = "CreateBucket"
            try:
                client.create_bucket(Bucket=VERIFY_BUCKET)
            except ClientError as create_exc:
                if _error_code(create_exc) not in (
                    "BucketAlreadyOwnedByYou",
                    "BucketAlreadyExists",
                ):
                    raise
        timings["bucket"] = time.monotonic() - start
        step = "PutObject"
        start = time.monotonic()
        client.put_object(Bucket=VERIFY_BUCKET, Key=key, Body=data)
        timings["PUT"] = time.monotonic() - start
        step = "GetObject"
        start = time.monotonic()
        got = client.get_object(Bucket=VERIFY_BUCKET, Key=key)["Body"].read()
        timings["GET"] = time.monotonic() - start
        step = "DeleteObject"
        start = time.monotonic()
        client.delete_object(Bucket=VERIFY_BUCKET, Key=key)
        timings["DELETE"] = time.monotonic() - start
    except ClientError as exc:
        code = _error_code(exc)
        if code in _AUTH_ERRORS:
            fix = (
                "The gateway rejected the configured keys: make seaweedfs_s3_access_key/"
                "seaweedfs_s3_secret_key match an identity of the S3 config (with Admin for "
                f"CreateBucket, or pre-create bucket {VERIFY_BUCKET})."
            )
        else:
            fix = _journal_fix(host, S3)
        return CheckResult(
            "s3 round trip", COMPONENT, False, f"{step}: {code}: {_error_message(exc)}", fix=fix
        )
    except BotoCoreError as exc:
        return CheckResult(
            "s3 round trip", COMPONENT, False, f"{step}: {exc}", fix=_journal_fix(host, S3)
        )
    finally:
        client.close()
    if got != data:
        return CheckResult(
            "s3 round trip",
            COMPONENT,
            False,
            f"GetObject returned {_size(len(got))} differing from the {_size(len(data))} written",
            fix="Data corruption between gateway, filer and volume servers: check their logs.",
        )
    spent = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items())
    return CheckResult(
        "s3 round trip",
        COMPONENT,
        True,
        f"s3://{VERIFY_BUCKET}/{key}: {_size(len(data))} put, read back identical, "
        f"deleted; {spent}",
    )


def _error_code(exc: Any) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    return str(error.get("Code") or "")


def _error_message(exc: Any) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    return str(error.get("Message") or exc)


# --- 6. anonymous S3 access is refused -------------------------------------------------------


@host_check("s3 anonymous refused", COMPONENT, group=S3, endpoint=_s3_url)
def s3_anonymous_refused(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
    """Unsigned list and PUT requests to the gateway get 401/403."""
    endpoint = _s3_url(topology, host)
    bucket_url = f"{endpoint}/{VERIFY_BUCKET}/"
    object_url = f"{bucket_url}anonymous-{uuid.uuid4().hex}.bin"
    answers: dict[str, int] = {}
    with _session() as session:
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
                _http_error(exc),
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
    s3_round_trip,
    s3_anonymous_refused,
]
