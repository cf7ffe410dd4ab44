"""HAProxy checks: every filer and S3 gateway is an UP server of its backend, and the frontends
carry filer and S3 traffic end to end.

What the haproxy role deploys (its contract with these checks): on each host of the ``haproxy``
group, frontends bind to ``haproxy_bind_address`` (default: the host's
``storage_address``) on ``haproxy_filer_port`` (HTTP to the filers), ``haproxy_filer_grpc_port``
(TCP to the filers' gRPC) and ``haproxy_s3_port`` (HTTP to the S3 gateways), and a stats
listener on ``storage_address:haproxy_stats_port`` serves ``stats uri /stats``. The backends
are ``seaweedfs_filer_http``, ``seaweedfs_filer_grpc`` and ``seaweedfs_s3``; their servers are
named after the inventory hosts.

HAProxy behaviour these checks rely on (2.6, verified against the binary):

* ``GET /stats;csv`` on the stats listener returns the CSV of ``show stat``: a header line
  ``# pxname,svname,...``, then one row per frontend, server and backend (rows named
  ``FRONTEND``/``BACKEND`` are aggregates).
* A server's ``status`` is ``UP``, ``DOWN``, ``MAINT``, ``DRAIN``, ``NOLB`` or ``no check``;
  while a run of checks is changing it, `` n/m`` follows (``UP 1/3`` is still up, ``DOWN 1/2``
  still down). ``check_status`` (``L7OK``, ``L4CON``, ``L7STS`` ...; ``* `` in front while
  the next check runs), ``check_desc`` and ``last_chk`` (empty while a check runs) describe the
  last health check, ``lastchg`` the seconds since the last change. ``addr`` is empty unless
  the stats page has ``stats show-legends``.
* With no server UP in a backend, an HTTP frontend answers 503.
"""

from __future__ import annotations

import csv
import uuid
from dataclasses import dataclass

import requests

from storagectl.checks.base import CheckContext, CheckResult, host_check, unit_fix
from storagectl.checks.seaweedfs import UNITS
from storagectl.checks.transfer import (
    VERIFY_DIR,
    filer_transfer,
    http_error,
    http_session,
    s3_transfer,
    visible_within,
)
from storagectl.endpoints import (
    haproxy_stats_url,
    haproxy_url,
    host_port,
    port,
    s3_region,
    weed_address,
    weed_url,
)
from storagectl.inventory import Host, Topology
from storagectl.inventory.groups import FILER, HAPROXY, S3

COMPONENT = "haproxy"

BACKENDS = {
    "seaweedfs_filer_http": FILER,
    "seaweedfs_filer_grpc": FILER,
    "seaweedfs_s3": S3,
}
"""Backend name -> the component group whose hosts must be its servers."""

UNIT = "haproxy"


# --- endpoints -------------------------------------------------------------------------------


def _stats_url(topology: Topology, host: Host) -> str:
    return haproxy_stats_url(host)


def _filer_frontend(topology: Topology, host: Host) -> str:
    return haproxy_url(host, "haproxy_filer_port")


def _s3_frontend(topology: Topology, host: Host) -> str:
    return haproxy_url(host, "haproxy_s3_port")


def _journal_fix(host: Host, reason: str = "") -> str:
    return unit_fix(host, UNIT, reason)


# --- 1. every filer and S3 gateway is an UP server of its backend ----------------------------


@dataclass(frozen=True)
class Server:
    """One server row of ``show stat``."""

    backend: str
    name: str
    status: str
    check_status: str = ""
    check_desc: str = ""
    last_chk: str = ""
    addr: str = ""
    lastchg: str = ""

    @property
    def state(self) -> str:
        """``UP``, ``DOWN``, ``MAINT``, ``DRAIN``, ``NOLB`` or ``NO CHECK`` (no ``n/m`` suffix)."""
        if self.status.lower() == "no check":
            return "NO CHECK"
        return (self.status.split() or ["?"])[0].upper()

    @property
    def up(self) -> bool:
        return self.state == "UP"

    def describe(self, address: str = "") -> str:
        """``filer3 DOWN (L4CON Layer4 connection problem: Connection refused; 10.0.0.3:8888,
        for 12s)``; ``address`` stands in when the stats page hides ``addr`` (it shows it only
        with ``stats show-legends``)."""
        check = " ".join(p for p in (self.check_status, self.check_desc) if p)
        if self.last_chk:
            check = f"{check}: {self.last_chk}" if check else self.last_chk
        where = ", ".join(
            p for p in (self.addr or address, f"for {self.lastchg}s" if self.lastchg else "") if p
        )
        facts = "; ".join(p for p in (check, where) if p)
        return f"{self.name} {self.status}" + (f" ({facts})" if facts else "")


def parse_stats(text: str) -> list[Server]:
    """The server rows of a ``show stat`` CSV (``ValueError`` when ``text`` is not one)."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# pxname,svname,"):
        raise ValueError("not the CSV of HAProxy's show stat")
    rows = csv.DictReader([lines[0][2:], *lines[1:]])
    servers = []
    for row in rows:
        if row.get("svname") in ("FRONTEND", "BACKEND", None, ""):
            continue
        servers.append(
            Server(
                backend=row.get("pxname") or "",
                name=row.get("svname") or "",
                status=row.get("status") or "",
                # "* L4CON": the next check is running; the status is still the last one's.
                check_status=(row.get("check_status") or "").removeprefix("* "),
                check_desc=row.get("check_desc") or "",
                last_chk=row.get("last_chk") or "",
                addr=row.get("addr") or "",
                lastchg=row.get("lastchg") or "",
            )
        )
    return servers


def _fetch_stats(url: str, ctx: CheckContext) -> tuple[list[Server] | None, str]:
    """The servers listed by the stats listener at ``url``: (servers, error)."""
    try:
        with http_session() as session:
            response = session.get(url, timeout=ctx.http_timeout)
    except requests.RequestException as exc:
        return None, http_error(exc)
    if response.status_code != 200:
        return None, f"HTTP {response.status_code}"
    try:
        return parse_stats(response.text), ""
    except ValueError as exc:
        return None, f"HTTP 200 but {exc}"


def _health_target(host: Host, backend: str) -> str:
    """Where HAProxy's health check of inventory host ``host`` in ``backend`` goes: the HTTP
    port of the filer (also for the gRPC backend, checked with ``check port``) or gateway."""
    return weed_address(host, BACKENDS[backend])


def _not_up_fix(
    host: Host, servers: list[Server], targets: dict[tuple[str, str], str]
) -> list[str]:
    """Fix sentences for servers that are in the backend but not UP, by what is wrong."""
    fixes = []
    down = [s for s in servers if s.state == "DOWN"]
    if down:
        units = sorted({UNITS[BACKENDS[s.backend]] for s in down if s.backend in BACKENDS})
        named = sorted({f"{s.name} ({targets.get((s.backend, s.name), '?')})" for s in down})
        where = "that host" if len(named) == 1 else "each of them"
        fixes.append(
            f"HAProxy's health check fails for {', '.join(named)}: on {where}, systemctl status "
            f"{' '.join(units)}; journalctl -u {units[0]} -n 100; and check that {host.name} "
            "reaches that address (firewall, routing)."
        )
    parked = [s for s in servers if s.state in ("MAINT", "DRAIN", "NOLB")]
    for server in parked:
        fixes.append(
            f"{server.backend}/{server.name} is {server.state}: when its maintenance is over, "
            f"on {host.name}: echo 'set server {server.backend}/{server.name} state ready' "
            "| socat stdio UNIX-CONNECT:/run/haproxy/admin.sock."
        )
    if any(s.state == "NO CHECK" for s in servers):
        fixes.append(
            "Give every server line of haproxy.cfg a health check (`check`, as the haproxy role "
            "renders it) so HAProxy stops sending traffic to a dead filer or gateway."
        )
    return fixes


@host_check("haproxy backends", COMPONENT, group=HAPROXY, endpoint=_stats_url)
def haproxy_backends(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
    """Every filer and S3 gateway of the inventory is an UP server of its HAProxy backend."""
    url = _stats_url(topology, host)
    servers, error = _fetch_stats(url, ctx)
    if servers is None:
        listener = host_port(host.address, port(host, "haproxy_stats_port"))
        return CheckResult(
            "haproxy backends",
            COMPONENT,
            False,
            f"no stats from {url}: {error}",
            fix=_journal_fix(
                host,
                f"check that haproxy.cfg has a stats listener on {listener} with stats uri /stats",
            ),
        )
    by_backend: dict[str, dict[str, Server]] = {}
    for server in servers:
        by_backend.setdefault(server.backend, {})[server.name] = server
    summary: list[str] = []
    problems: list[str] = []
    incomplete = False
    not_up: list[Server] = []
    targets: dict[tuple[str, str], str] = {}
    for backend, group in BACKENDS.items():
        members = topology.group(group)
        if not members:
            continue  # that component is not deployed: HAProxy need not serve it
        expected = [h.name for h in members]
        targets.update({(backend, h.name): _health_target(h, backend) for h in members})
        present = by_backend.get(backend)
        if present is None:
            problems.append(f"no backend {backend}")
            summary.append(f"{backend} missing")
            incomplete = True
            continue
        missing = [name for name in expected if name not in present]
        down = [present[name] for name in expected if name in present and not present[name].up]
        up = len(expected) - len(missing) - len(down)
        extra = [name for name in present if name not in expected]
        note = f" (also {', '.join(extra)}, not in the inventory)" if extra else ""
        summary.append(f"{backend} {up}/{len(expected)} UP{note}")
        if missing:
            problems.append(f"{backend} lacks {', '.join(missing)}")
            incomplete = True
        if down:
            described = "; ".join(s.describe(targets.get((backend, s.name), "")) for s in down)
            problems.append(f"{backend}: {described}")
            not_up.extend(down)
    if not summary:
        return CheckResult(
            "haproxy backends",
            COMPONENT,
            True,
            "no filer or S3 gateway in the inventory: nothing to balance",
        )
    if not problems:
        return CheckResult("haproxy backends", COMPONENT, True, ", ".join(summary))
    fixes = []
    if incomplete:
        fixes.append(
            "Rerun deploy on the haproxy hosts so haproxy.cfg lists every filer and S3 gateway "
            "of the inventory (server names are the inventory host names) and reload haproxy."
        )
    fixes.extend(_not_up_fix(host, not_up, targets))
    return CheckResult(
        "haproxy backends",
        COMPONENT,
        False,
        f"{'; '.join(problems)} [{', '.join(summary)}]",
        fix=" ".join(fixes),
    )


# --- 2. the filer frontend answers and carries a file round trip -----------------------------


def _frontend_fix(host: Host, frontend: str, backend: str) -> str:
    return _journal_fix(
        host,
        f"check the servers of {backend} (haproxy backends) and the checks of what runs behind "
        f"it; if they are UP, check the frontend {frontend} in haproxy.cfg",
    )


@host_check("haproxy filer", COMPONENT, group=HAPROXY, endpoint=_filer_frontend)
def haproxy_filer(topology: Topology, host: Host, ctx: CheckContext) -> list[CheckResult]:
    """GET /healthz through the filer frontend is 200 and a PUT/GET/DELETE through it works."""
    if not topology.group(FILER):
        return []  # no filer in the inventory: the role renders no filer frontend
    base = _filer_frontend(topology, host)
    fix = _frontend_fix(host, base, "seaweedfs_filer_http")
    healthz = f"{base}/healthz"
    try:
        with http_session() as session:
            response = session.get(healthz, timeout=ctx.http_timeout)
    except requests.RequestException as exc:
        return [
            _fail(
                "haproxy filer",
                f"GET {healthz}: {http_error(exc)}",
                _journal_fix(host, f"check that haproxy listens on {base.removeprefix('http://')}"),
            )
        ]
    if response.status_code != 200:
        why = " (no filer UP behind HAProxy?)" if response.status_code == 503 else ""
        return [_fail("haproxy filer", f"GET {healthz}: HTTP {response.status_code}{why}", fix)]
    # HAProxy spreads the requests over the filers: the GET may reach a filer that learns of the
    # PUT through metadata aggregation, hence the same patience as the cross-filer read; and the
    # DELETE may reach one that has not seen the file yet (a silent 204), hence the direct
    # deletes through every filer afterwards.
    name = f"{VERIFY_DIR}/{uuid.uuid4().hex}.bin"
    url = f"{base}{name}"
    direct = [f"{weed_url(filer, FILER)}{name}" for filer in topology.group(FILER)]
    outcome = filer_transfer(url, url, ctx, within=visible_within(ctx), also_delete=direct)
    if not outcome.ok:
        if outcome.failed == "GET" and outcome.status == 404:
            fix = (
                "The filers behind HAProxy do not see each other's writes in time: see the "
                "filer cross read check (metadata aggregation or shared store)."
            )
        return [_fail("haproxy filer", f"through {base}: {outcome.detail}", fix)]
    size = f"{outcome.size / 1024:.1f} KiB"
    return [
        CheckResult(
            "haproxy filer",
            COMPONENT,
            True,
            f"/healthz 200; {size} written, read back identical (sha256), deleted; "
            f"{outcome.spent()}",
        )
    ]


def _fail(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, COMPONENT, False, detail, fix=fix)


# --- 3. the S3 frontend carries an S3 round trip -------------------------------------------


@host_check("haproxy s3", COMPONENT, group=HAPROXY, endpoint=_s3_frontend)
def haproxy_s3(topology: Topology, host: Host, ctx: CheckContext) -> list[CheckResult]:
    """Bucket, PUT, GET (byte-identical) and DELETE through the S3 frontend work."""
    gateways = topology.group(S3)
    if not gateways:
        return []  # no S3 gateway in the inventory: the role renders no S3 frontend
    endpoint = _s3_frontend(topology, host)
    first = gateways[0]
    return [
        s3_transfer(
            endpoint,
            str(first.var("seaweedfs_s3_access_key", default="") or ""),
            str(first.var("seaweedfs_s3_secret_key", default="") or ""),
            ctx,
            check="haproxy s3",
            component=COMPONENT,
            service_fix=_frontend_fix(host, endpoint, "seaweedfs_s3"),
            keys_of=f"{first.name} (the first S3 gateway, whose keys are used through HAProxy)",
            region=s3_region(topology),
        )
    ]


CHECKS = [haproxy_backends, haproxy_filer, haproxy_s3]
