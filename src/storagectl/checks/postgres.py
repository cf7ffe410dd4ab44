"""PostgreSQL HA checks: Patroni has one leader and healthy replicas, HAProxy's PostgreSQL
listeners reach the primary (read-write) and the replicas (read-only), and filers on postgres2
keep their metadata there.

What the roles deploy (their contract with these checks):

* Patroni members are the hosts of the ``postgres`` group. Each member serves
  its REST API on ``storage_address:patroni_restapi_port`` (8008) and PostgreSQL on
  ``postgresql_port`` (5432), in the cluster ``patroni_scope`` ("storagectl"), under the
  systemd unit ``patroni`` (PostgreSQL runs as its child). The DCS is etcd, on the hosts of the
  ``etcd`` group, unit ``etcd``, port ``etcd_client_port`` (2379).
* On each HAProxy host (``haproxy`` group), ``haproxy_postgres_rw_port`` (5000) on
  ``haproxy_bind_address`` routes to the Patroni primary and ``haproxy_postgres_ro_port`` (5001)
  to the replicas.
* Filers with ``seaweedfs_filer_store: postgres2`` use database ``seaweedfs_filer_db_name`` as
  ``seaweedfs_filer_db_user`` / ``seaweedfs_filer_db_password`` through the rw listener.

Patroni 3.0.2 behaviour these checks rely on (Debian bookworm's ``patroni``; verified against
it, see ``patroni/utils.py`` ``cluster_as_json`` and ``docs/rest_api.rst`` at v3.0.2):

* ``GET /cluster`` on any member returns the cluster as the DCS holds it: ``{"members": [{"name",
  "role", "state", "api_url": "http://<host>:8008/patroni", "host", "port", "timeline", "lag"}],
  "pause": true}``. ``role`` is ``leader`` (``standby_leader`` in a standby cluster),
  ``sync_standby`` or ``replica``; ``state`` ``running`` (later releases also say
  ``streaming``), ``starting``, ``stopped``, ``crashed`` ... ``lag`` is given for every member
  but the leader: how many bytes its last reported WAL position trails the leader's, or
  ``"unknown"`` when it reported none. ``pause`` is present only in maintenance mode. A member
  whose Patroni died stays listed until its key expires (the DCS ``ttl``, 30 s by default).
* ``GET /patroni`` is the member's own live view: ``{"state", "role": "master"|"replica", ...,
  "patroni": {"version", "scope"}}`` (later releases say ``primary``).

The SQL checks connect with libpq's ``connect_timeout`` (2 s at least, libpq's minimum); the
password is never part of a detail, fix or endpoint.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from storagectl.checks.base import (
    CheckContext,
    CheckResult,
    Findings,
    cluster_check,
    host_check,
    parallel_map,
    unit_fix,
)
from storagectl.checks.seaweedfs import UNITS
from storagectl.checks.transfer import VERIFY_DIR, filer_transfer, http_error, http_session
from storagectl.endpoints import haproxy_address, host_port, patroni_api_url, weed_url
from storagectl.inventory import Host, Topology
from storagectl.inventory.groups import ETCD, FILER, HAPROXY, POSTGRES

if TYPE_CHECKING:
    import psycopg

# psycopg is imported where a check connects, not here: every verify imports this module, and
# loading libpq's bindings at start-up delayed the first check of every run.

COMPONENT = "postgres"

PATRONI_UNIT = "patroni"
ETCD_UNIT = "etcd"
HAPROXY_UNIT = "haproxy"

LEADER_ROLES = frozenset({"leader", "standby_leader"})
REPLICA_ROLES = frozenset({"replica", "sync_standby"})
HEALTHY_STATES = frozenset({"running", "streaming"})
PRIMARY_ROLES = frozenset({"master", "primary"})  # /patroni says "master" up to 3.0


def _var(host: Host, name: str) -> Any:
    return host.var(name)


def _setting(topology: Topology, name: str) -> Any:
    return topology.var(name)


def size(n: float) -> str:
    """``0 B``, ``12.0 KiB``, ``16.0 MiB``."""
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"


def _patroni_fix(host: Host, reason: str = "") -> str:
    return unit_fix(host, PATRONI_UNIT, reason)


def _etcd_hosts(topology: Topology) -> str:
    return ", ".join(h.name for h in topology.group(ETCD)) or "the etcd hosts"


# --- Patroni's REST API ----------------------------------------------------------------------


def api_url(host: Host) -> str:
    """``http://<storage_address>:<patroni_restapi_port>`` of a Patroni member."""
    return patroni_api_url(host)


@dataclass(frozen=True)
class Member:
    """One member of a ``/cluster`` answer."""

    name: str
    role: str
    state: str
    api_url: str = ""
    host: str = ""
    port: int | None = None
    timeline: int | None = None
    lag: int | str | None = None

    @property
    def leads(self) -> bool:
        return self.role in LEADER_ROLES

    @property
    def api_netloc(self) -> str:
        """``host:port`` of its REST API (from ``api_url``)."""
        return urlsplit(self.api_url).netloc if self.api_url else ""


def parse_cluster(body: Any) -> list[Member]:
    """The members of a ``GET /cluster`` answer (``ValueError`` when it is not one)."""
    if not isinstance(body, dict) or not isinstance(body.get("members"), list):
        raise ValueError("not a Patroni /cluster answer (no members list)")
    members = []
    for item in body["members"]:
        if not isinstance(item, dict) or not item.get("name"):
            raise ValueError(f"a /cluster member without a name: {item!r}"[:200])
        lag = item.get("lag")
        members.append(
            Member(
                name=str(item["name"]),
                role=str(item.get("role") or ""),
                state=str(item.get("state") or ""),
                api_url=str(item.get("api_url") or ""),
                host=str(item.get("host") or ""),
                port=int(item["port"]) if isinstance(item.get("port"), int) else None,
                timeline=item.get("timeline") if isinstance(item.get("timeline"), int) else None,
                lag=lag if isinstance(lag, int | str) else None,
            )
        )
    return members


def leaders(members: Sequence[Member]) -> list[Member]:
    """The members holding the leader lock (exactly one in a healthy cluster)."""
    return [m for m in members if m.leads]


def lag_bytes(member: Member) -> int | None:
    """The member's replication lag in bytes; None when Patroni does not know it."""
    if isinstance(member.lag, int) and not isinstance(member.lag, bool):
        return member.lag
    return None


def replica_ready(member: Member | None) -> bool:
    """Whether ``member`` follows the leader: a replica role in a healthy state."""
    return member is not None and member.role in REPLICA_ROLES and member.state in HEALTHY_STATES


def match_members(members: Sequence[Member], hosts: Sequence[Host]) -> dict[str, Member]:
    """Inventory host name -> its member of ``/cluster``: the member named after the host, else
    the one whose REST API is the host's ``storage_address:patroni_restapi_port``."""
    by_name = {m.name: m for m in members}
    by_api = {m.api_netloc: m for m in members if m.api_netloc}
    found = {}
    for host in hosts:
        member = by_name.get(host.name) or by_api.get(api_url(host).removeprefix("http://"))
        if member is not None:
            found[host.name] = member
    return found


def member_label(member: Member, matched: Mapping[str, Member]) -> str:
    """The inventory host of ``member``, with its Patroni name when that differs."""
    for host, candidate in matched.items():
        if candidate is member:
            return host if member.name == host else f"{host} ({member.name})"
    return member.name


@dataclass
class MemberView:
    """What one member's REST API says: its own view (``/patroni``) and the cluster's."""

    host: Host
    url: str
    patroni: dict[str, Any] | None = None
    members: list[Member] | None = None
    paused: bool = False
    error: str = ""
    duration: float = 0.0

    @property
    def scope(self) -> str:
        return str(((self.patroni or {}).get("patroni") or {}).get("scope") or "")


def _get_json(session: requests.Session, url: str, ctx: CheckContext) -> Any:
    response = session.get(url, timeout=ctx.http_timeout)
    if response.status_code != 200:
        raise requests.HTTPError(f"HTTP {response.status_code}")
    return response.json()


def member_view(host: Host, ctx: CheckContext) -> MemberView:
    """``GET /patroni`` and ``GET /cluster`` on ``host``; trouble is kept in ``error``."""
    view = MemberView(host=host, url=api_url(host))
    start = time.monotonic()
    step = "/patroni"
    try:
        with http_session() as session:
            own = _get_json(session, f"{view.url}/patroni", ctx)
            if not isinstance(own, dict):
                raise ValueError("not a JSON object")
            view.patroni = own
            step = "/cluster"
            body = _get_json(session, f"{view.url}/cluster", ctx)
            view.members = parse_cluster(body)
            view.paused = bool(body.get("pause"))
    except requests.HTTPError as exc:
        view.error = f"GET {step}: {exc}"
    except requests.RequestException as exc:
        view.error = f"GET {step}: {http_error(exc)}"
    except ValueError as exc:
        view.error = f"GET {step}: {exc}"
    view.duration = time.monotonic() - start
    return view


def member_views(topology: Topology, ctx: CheckContext) -> list[MemberView]:
    """Every Patroni member's view, asked concurrently, in inventory order."""
    return parallel_map(lambda h: member_view(h, ctx), topology.group(POSTGRES))


def _leader_names(view: MemberView) -> tuple[str, ...]:
    return tuple(sorted(m.name for m in leaders(view.members or [])))


def cluster_view(views: Sequence[MemberView]) -> MemberView | None:
    """The view to judge the cluster by: the one most members agree on for the leader,
    preferring the leader's own answer; None when no member answered /cluster."""
    answered = [v for v in views if v.members is not None]
    if not answered:
        return None
    agreed = Counter(_leader_names(v) for v in answered).most_common(1)[0][0]
    candidates = [v for v in answered if _leader_names(v) == agreed]
    for view in candidates:
        own = match_members(view.members or [], [view.host]).get(view.host.name)
        if own is not None and own.leads:
            return view
    return candidates[0]


# --- 1. one leader, every member present ------------------------------------------------------


def _answer_problems(topology: Topology, views: Sequence[MemberView], found: Findings) -> None:
    """Members whose REST API does not answer, or that belong to another cluster."""
    scope = str(_setting(topology, "patroni_scope"))
    for view in views:
        if view.patroni is None:
            found.add(
                f"{view.host.name}: {view.url} {view.error}",
                _patroni_fix(view.host, f"start Patroni on {view.host.name}"),
            )
        elif view.members is None:
            found.add(
                f"{view.host.name}: {view.url} {view.error}",
                _patroni_fix(
                    view.host,
                    f"Patroni on {view.host.name} answers but cannot list the cluster: check "
                    f"that it reaches etcd on {_etcd_hosts(topology)} (systemctl status "
                    f"{ETCD_UNIT}; etcdctl endpoint health)",
                ),
            )
        elif view.scope and view.scope != scope:
            found.add(
                f"{view.host.name} is a member of cluster {view.scope!r}, not {scope!r}",
                _patroni_fix(
                    view.host, f"render scope {scope} (patroni_scope) into its patroni.yml"
                ),
            )


def _leadership_problems(
    topology: Topology, views: Sequence[MemberView], reference: MemberView, found: Findings
) -> None:
    """Members disagreeing on the leader, no or several leaders, a leader that is not primary."""
    members = reference.members or []
    matched = match_members(members, topology.group(POSTGRES))
    answered = [v for v in views if v.members is not None]
    if len({_leader_names(v) for v in answered}) > 1:
        named = "; ".join(
            f"{v.host.name} says {', '.join(_leader_names(v)) or 'none'}" for v in answered
        )
        found.add(
            f"members disagree on the leader ({named})",
            "Members read different leaders from etcd: check that every patroni.yml lists the "
            f"same etcd hosts ({_etcd_hosts(topology)}) and that etcd has quorum "
            f"(systemctl status {ETCD_UNIT}; etcdctl endpoint health).",
        )
    claiming = leaders(members)
    if not claiming:
        hosts = ", ".join(h.name for h in topology.group(POSTGRES))
        found.add(
            "no member holds the leader lock",
            f"Check etcd on {_etcd_hosts(topology)} (systemctl status {ETCD_UNIT}; etcdctl "
            f"endpoint health) and Patroni on {hosts} (journalctl -u {PATRONI_UNIT} -n 100): a "
            "leader needs a reachable etcd quorum and a member whose PostgreSQL can start.",
        )
        return
    if len(claiming) > 1:
        found.add(
            f"{len(claiming)} members claim the lead "
            f"({', '.join(member_label(m, matched) for m in claiming)})",
            f"Split brain: stop Patroni on all but one of them (systemctl stop {PATRONI_UNIT}) "
            f"and check etcd quorum on {_etcd_hosts(topology)}.",
        )
        return
    leader = claiming[0]
    if leader.role == "standby_leader":
        found.add(
            f"{member_label(leader, matched)} is a standby leader: the cluster replicates from "
            "another cluster and is read-only",
            "Remove standby_cluster from the DCS configuration (patronictl edit-config) unless "
            "this cluster is meant to be a standby.",
        )
    own = next((v for v in views if matched.get(v.host.name) is leader), None)
    if own is not None and own.patroni is not None and leader.role == "leader":
        role = str(own.patroni.get("role") or "")
        if role not in PRIMARY_ROLES:
            found.add(
                f"{own.host.name} holds the leader lock but its PostgreSQL is {role or '?'} "
                f"({own.patroni.get('state') or '?'})",
                _patroni_fix(own.host, "Patroni is still promoting it or cannot"),
            )


def _membership_problems(
    topology: Topology, reference: MemberView, found: Findings, silent: Collection[str] = ()
) -> None:
    """Inventory members missing from /cluster, and members the inventory does not know;
    ``silent`` names the members whose REST API did not answer."""
    scope = str(_setting(topology, "patroni_scope"))
    members = reference.members or []
    matched = match_members(members, topology.group(POSTGRES))
    for host in topology.group(POSTGRES):
        if host.name in matched:
            continue
        if host.name in silent:  # its Patroni is down: the fix is already to start it
            fix = _patroni_fix(host, f"start Patroni on {host.name}")
        else:
            fix = _patroni_fix(
                host,
                f"its Patroni runs but is not in cluster {scope}: give it scope {scope} and the "
                f"cluster's etcd hosts ({_etcd_hosts(topology)})",
            )
        found.add(f"{host.name} is not a member of cluster {scope}", fix)
    known = [id(m) for m in matched.values()]
    for member in members:
        if id(member) not in known:
            found.add(
                f"{member.role or 'member'} {member.name} ({member.api_netloc or '?'}) is not a "
                "postgres host of the inventory",
                f"Stop Patroni ({PATRONI_UNIT}) on that machine or add it to the postgres group.",
            )
    if reference.paused:
        found.add(
            "the cluster is paused (maintenance mode: no automatic failover)",
            f"When the maintenance is over, on {reference.host.name}: patronictl -c "
            "<patroni.yml> resume.",
        )


def _states(topology: Topology, members: Sequence[Member]) -> str:
    """``lab-ha-1 leader running, lab-ha-2 replica streaming``."""
    matched = match_members(members, topology.group(POSTGRES))
    return ", ".join(f"{member_label(m, matched)} {m.role} {m.state}" for m in members)


@cluster_check("patroni leader", COMPONENT, requires=(POSTGRES,))
def patroni_leader(topology: Topology, ctx: CheckContext) -> CheckResult:
    """Every member's REST API answers, /cluster lists every member and exactly one leader."""
    views = member_views(topology, ctx)
    found = Findings()
    _answer_problems(topology, views, found)
    reference = cluster_view(views)
    duration = max((v.duration for v in views), default=0.0)
    if reference is None:
        return CheckResult(
            "patroni leader",
            COMPONENT,
            False,
            f"no member answered /cluster: {found.detail}",
            fix=found.fix,
            endpoint=f"{api_url(views[0].host)}/cluster",
            duration=duration,
        )
    _leadership_problems(topology, views, reference, found)
    silent = [v.host.name for v in views if v.patroni is None]
    _membership_problems(topology, reference, found, silent)
    members = reference.members or []
    states = _states(topology, members)
    endpoint = f"{reference.url}/cluster"
    if found.problems:
        return CheckResult(
            "patroni leader",
            COMPONENT,
            False,
            f"{found.detail} [{states}]",
            fix=found.fix,
            endpoint=endpoint,
            duration=duration,
        )
    matched = match_members(members, topology.group(POSTGRES))
    leader = leaders(members)[0]
    timeline = f", timeline {leader.timeline}" if leader.timeline is not None else ""
    return CheckResult(
        "patroni leader",
        COMPONENT,
        True,
        f"leader {member_label(leader, matched)}{timeline}; {len(members)} member(s): {states}",
        endpoint=endpoint,
        duration=duration,
    )


# --- 2. every replica follows, with little lag ------------------------------------------------


def _replica_problem(
    host: Host, member: Member | None, view: MemberView, leader: str
) -> tuple[str, str]:
    """Why ``host`` is not a running replica of ``leader`` (problem, fix); ("", "") if it is."""
    if member is None:
        return (
            "not a member of the cluster (its Patroni is down or in another scope)",
            _patroni_fix(host, f"start Patroni on {host.name}"),
        )
    if view.patroni is None:
        return (
            f"listed as {member.role} {member.state}, but its REST API does not answer "
            f"({view.error}): the listing is what it last wrote to etcd",
            _patroni_fix(host, f"start Patroni on {host.name}"),
        )
    state = str(view.patroni.get("state") or member.state)
    if member.role not in REPLICA_ROLES:
        return (
            f"role {member.role or '?'}, state {state}: not a replica of {leader}",
            _patroni_fix(host),
        )
    if state not in HEALTHY_STATES:
        return (
            f"{member.role} of {leader} in state {state}",
            _patroni_fix(
                host,
                f"its PostgreSQL does not follow {leader}; if it cannot catch up, rebuild it: "
                f"patronictl -c <patroni.yml> reinit <scope> {member.name}",
            ),
        )
    return "", ""


def _replica_result(
    host: Host, member: Member | None, view: MemberView, *, leader: str, max_lag: int
) -> CheckResult:
    name = "patroni replication"
    problem, fix = _replica_problem(host, member, view, leader)
    if problem or member is None or view.patroni is None:
        return CheckResult(name, COMPONENT, False, problem, fix=fix)
    state = str(view.patroni.get("state") or member.state)
    lag = lag_bytes(member)
    limit = f"(max {size(max_lag)}, patroni_max_lag_bytes)"
    head = f"{member.role} of {leader}, state {state}"
    if lag is None:
        return CheckResult(
            name,
            COMPONENT,
            False,
            f"{head}, lag {member.lag or 'not reported'}: it reported no WAL position",
            fix=_patroni_fix(host, "its PostgreSQL does not report a replay position"),
        )
    if lag > max_lag:
        return CheckResult(
            name,
            COMPONENT,
            False,
            f"{head}, lag {size(lag)} {limit}",
            fix=(
                f"Replication to {host.name} falls behind: check its disk and network, and "
                f"pg_stat_replication on {leader}; look on {host.name}: journalctl -u "
                f"{PATRONI_UNIT} -n 100."
            ),
        )
    return CheckResult(name, COMPONENT, True, f"{head}, lag {size(lag)} {limit}")


@cluster_check("patroni replication", COMPONENT, requires=(POSTGRES,))
def patroni_replication(topology: Topology, ctx: CheckContext) -> list[CheckResult]:
    """Every member but the leader is a running replica lagging at most patroni_max_lag_bytes."""
    hosts = topology.group(POSTGRES)
    if len(hosts) < 2:
        return []  # a single member has nothing to replicate to
    views = member_views(topology, ctx)
    reference = cluster_view(views)
    if reference is None:
        return [
            CheckResult(
                "patroni replication",
                COMPONENT,
                False,
                "no member answered /cluster",
                fix="Fix the Patroni members first (see patroni leader), then rerun.",
                endpoint=f"{api_url(hosts[0])}/cluster",
                host=h.name,
            )
            for h in hosts
        ]
    endpoint = f"{reference.url}/cluster"
    members = reference.members or []
    matched = match_members(members, hosts)
    claiming = leaders(members)
    leader = member_label(claiming[0], matched) if len(claiming) == 1 else ""
    max_lag = int(_setting(topology, "patroni_max_lag_bytes"))
    results = []
    for host, view in zip(hosts, views, strict=True):
        member = matched.get(host.name)
        if member is not None and member.leads and len(claiming) == 1:
            continue
        if not leader:
            result = CheckResult(
                "patroni replication",
                COMPONENT,
                False,
                f"no single leader to replicate from ({len(claiming)} claim the lead)",
                fix="Fix the leader first (see patroni leader), then rerun.",
                endpoint=endpoint,
            )
        else:
            result = _replica_result(host, member, view, leader=leader, max_lag=max_lag)
        result.host = host.name
        result.endpoint = endpoint
        results.append(result)
    return results


# --- 3. HAProxy's PostgreSQL listeners ---------------------------------------------------------


@dataclass(frozen=True)
class Database:
    """Where and as whom to connect; ``str()`` and ``url`` never show the password."""

    host: str
    port: int
    dbname: str
    user: str
    password: str = field(repr=False)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{host_port(self.host, self.port)}/{self.dbname}"

    def __str__(self) -> str:
        return self.url

    def scrub(self, text: str) -> str:
        """``text`` with the password replaced (driver messages should not carry it, but)."""
        return text.replace(self.password, "***") if len(self.password) >= 4 else text


def filer_database(topology: Topology, host: str, port: int) -> Database:
    """The filers' database at ``host:port``, as the filer user (inventory settings)."""
    return Database(
        host=host,
        port=port,
        dbname=str(_setting(topology, "seaweedfs_filer_db_name")),
        user=str(_setting(topology, "seaweedfs_filer_db_user")),
        password=str(topology.var("seaweedfs_filer_db_password", default="") or ""),
    )


def listener(topology: Topology, lb: Host, port_var: str) -> Database:
    """The filers' database through HAProxy host ``lb``'s listener ``port_var``."""
    return filer_database(topology, haproxy_address(lb), int(_var(lb, port_var)))


@contextmanager
def connect(db: Database, timeout: float) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to ``db``; ``timeout`` bounds the connect (libpq: at least 2 s)
    and every statement."""
    import psycopg

    seconds = max(2, round(timeout))
    with psycopg.connect(
        host=db.host,
        port=db.port,
        dbname=db.dbname,
        user=db.user,
        password=db.password,
        connect_timeout=seconds,
        options=f"-c statement_timeout={seconds * 1000}",
        application_name="storagectl-verify",
        autocommit=True,
    ) as conn:
        yield conn


def server_role(db: Database, timeout: float) -> tuple[bool, str, int | None]:
    """``(pg_is_in_recovery(), inet_server_addr(), inet_server_port())`` of what answers at
    ``db`` (``psycopg.Error`` when nothing does)."""
    import psycopg

    with connect(db, timeout) as conn:
        row = conn.execute(
            "SELECT pg_is_in_recovery(), host(inet_server_addr()), inet_server_port()"
        ).fetchone()
    if row is None:
        raise psycopg.DataError("SELECT pg_is_in_recovery() returned no row")
    return bool(row[0]), str(row[1] or ""), row[2]


def db_error(exc: psycopg.Error, db: Database) -> str:
    """A one-line description of a failed connection or query (without the password)."""
    lines = str(exc).strip().splitlines()
    text = " ".join(lines[0].split()) if lines else type(exc).__name__
    return db.scrub(text)


def _postgres_host(topology: Topology, address: str, port: int | None) -> str:
    """The inventory member serving PostgreSQL at ``address:port`` ("" when none)."""
    for host in topology.group(POSTGRES):
        if host.address == address and int(_var(host, "postgresql_port")) == port:
            return host.name
    return ""


def _connect_fix(topology: Topology, lb: Host, db: Database, message: str, routes_to: str) -> str:
    """Why connecting to ``db`` through ``lb`` failed, as a fix sentence."""
    lowered = message.lower()
    health = "/primary" if "primary" in routes_to else "/replica"
    members = ", ".join(h.name for h in topology.group(POSTGRES))
    if "password authentication failed" in lowered:
        return (
            f"PostgreSQL refuses user {db.user}'s password: make seaweedfs_filer_db_password "
            "the password the patroni role gives that user (rerun deploy), and check "
            f"`journalctl -u {PATRONI_UNIT} -n 100` on {members}."
        )
    if "does not exist" in lowered:
        return (
            f"Database {db.dbname} or user {db.user} is missing: the patroni role creates them "
            f"on the leader (rerun deploy); check `journalctl -u {PATRONI_UNIT} -n 100` on "
            f"{members}."
        )
    if "pg_hba.conf" in lowered:
        return (
            f"PostgreSQL's pg_hba.conf refuses connections from {lb.name} (HAProxy connects "
            f"from its own address): allow user {db.user} from the HAProxy hosts in the patroni "
            f"role's pg_hba and rerun deploy (Patroni reloads it; unit {PATRONI_UNIT})."
        )
    if "connection refused" in lowered:
        return (
            f"Nothing listens on {host_port(db.host, db.port)}: check haproxy.cfg's PostgreSQL "
            f"listen section on {lb.name}; look on {lb.name}: systemctl status {HAPROXY_UNIT}; "
            f"journalctl -u {HAPROXY_UNIT} -n 100."
        )
    return (
        f"HAProxy on {lb.name} has no UP server for {host_port(db.host, db.port)} (it should "
        f"route to {routes_to}): check the Patroni members ({members}; see patroni leader, "
        f"systemctl status {PATRONI_UNIT}) and the listen section's health check (`option "
        f"httpchk OPTIONS {health}` with `check port` the Patroni REST port); look on "
        f"{lb.name}: systemctl status {HAPROXY_UNIT}."
    )


def _endpoint_check(
    topology: Topology, lb: Host, ctx: CheckContext, *, name: str, port_var: str, primary: bool
) -> CheckResult:
    db = listener(topology, lb, port_var)
    routes_to = "the Patroni primary" if primary else "the Patroni replicas"
    if not db.password:
        return CheckResult(
            name,
            COMPONENT,
            False,
            "seaweedfs_filer_db_password is not set",
            fix="Set seaweedfs_filer_db_password in the inventory (vault), as the roles need it.",
            endpoint=db.url,
        )
    import psycopg

    start = time.monotonic()
    try:
        in_recovery, address, port = server_role(db, ctx.http_timeout[0])
    except psycopg.Error as exc:
        message = db_error(exc, db)
        return CheckResult(
            name,
            COMPONENT,
            False,
            message,
            fix=_connect_fix(topology, lb, db, message, routes_to),
            endpoint=db.url,
            duration=time.monotonic() - start,
        )
    spent = time.monotonic() - start
    member = _postgres_host(topology, address, port)
    server = (
        f"{member} ({host_port(address, port or 0)})" if member else host_port(address, port or 0)
    )
    kind = "replica" if in_recovery else "primary"
    detail = (
        f"{kind} {server} answers through {host_port(db.host, db.port)}, "
        f"pg_is_in_recovery() = {str(in_recovery).lower()}; {spent * 1000:.0f} ms"
    )
    if in_recovery == (not primary):
        return CheckResult(name, COMPONENT, True, detail, endpoint=db.url, duration=spent)
    check = "OPTIONS /primary" if primary else "OPTIONS /replica"
    rest_port = _var(topology.group(POSTGRES)[0], "patroni_restapi_port")
    return CheckResult(
        name,
        COMPONENT,
        False,
        f"{detail}: it should route to {routes_to}",
        fix=(
            f"HAProxy on {lb.name} routes {host_port(db.host, db.port)} to a {kind}: its listen "
            f"section must health-check `option httpchk {check}` on the Patroni REST port "
            f"(`check port` {rest_port}) so only {routes_to} are UP; "
            f"rerun deploy and look on {lb.name}: systemctl status {HAPROXY_UNIT}."
        ),
        endpoint=db.url,
        duration=spent,
    )


def _rw_url(topology: Topology, host: Host) -> str:
    return listener(topology, host, "haproxy_postgres_rw_port").url


def _ro_url(topology: Topology, host: Host) -> str:
    return listener(topology, host, "haproxy_postgres_ro_port").url


@host_check(
    "postgres rw endpoint",
    COMPONENT,
    group=HAPROXY,
    endpoint=_rw_url,
)
def postgres_rw_endpoint(topology: Topology, host: Host, ctx: CheckContext) -> list[CheckResult]:
    """HAProxy's read-write listener reaches the primary: pg_is_in_recovery() is false."""
    if not topology.group(POSTGRES):
        return []  # no PostgreSQL in the inventory: the roles render no PostgreSQL listener
    return [
        _endpoint_check(
            topology,
            host,
            ctx,
            name="postgres rw endpoint",
            port_var="haproxy_postgres_rw_port",
            primary=True,
        )
    ]


@host_check(
    "postgres ro endpoint",
    COMPONENT,
    group=HAPROXY,
    endpoint=_ro_url,
)
def postgres_ro_endpoint(topology: Topology, host: Host, ctx: CheckContext) -> list[CheckResult]:
    """HAProxy's read-only listener reaches a replica: pg_is_in_recovery() is true."""
    if len(topology.group(POSTGRES)) < 2:
        return []  # no PostgreSQL, or a single member: no replica to route to
    return [
        _endpoint_check(
            topology,
            host,
            ctx,
            name="postgres ro endpoint",
            port_var="haproxy_postgres_ro_port",
            primary=False,
        )
    ]


# --- 4. filers keep their metadata in PostgreSQL ----------------------------------------------


def on_postgres(host: Host) -> bool:
    """Whether filer ``host`` is deployed with ``seaweedfs_filer_store: postgres2``."""
    return host.var("seaweedfs_filer_store") == "postgres2"


def filers_on_postgres(topology: Topology) -> list[Host]:
    """The filers of the inventory deployed on postgres2."""
    return [h for h in topology.group(FILER) if on_postgres(h)]


def _filer_verify_url(topology: Topology, host: Host) -> str:
    return f"{weed_url(host, FILER)}{VERIFY_DIR}/"


@dataclass
class _Lookup:
    """What the filemeta table said while the verify file existed."""

    rows: int | None = None
    directories: list[str] = field(default_factory=list)
    error: str = ""


def lookup_entry(db: Database, name: str, timeout: float) -> tuple[int, list[str]]:
    """``(rows of filemeta, directories holding an entry called name)`` (``psycopg.Error``)."""
    with connect(db, timeout) as conn:
        count = conn.execute("SELECT count(*) FROM filemeta").fetchone()
        rows = conn.execute("SELECT directory FROM filemeta WHERE name = %s", (name,)).fetchall()
    return int(count[0] if count else 0), [str(r[0]) for r in rows]


def _metadata_fix(host: Host, db: Database) -> str:
    unit = UNITS[FILER]
    return (
        f"{unit} on {host.name} does not keep its metadata in PostgreSQL: render its filer.toml "
        f"with [postgres2] enabled and [leveldb2] disabled, pointing at the HAProxy read-write "
        f"listener ({host_port(db.host, db.port)}, database {db.dbname}, user {db.user}; "
        f"seaweedfs_filer_store: postgres2), rerun deploy and look on {host.name}: journalctl -u "
        f"{unit} -n 100."
    )


@host_check(
    "filer metadata in postgres",
    COMPONENT,
    group=FILER,
    endpoint=_filer_verify_url,
)
def filer_metadata_in_postgres(
    topology: Topology, host: Host, ctx: CheckContext
) -> list[CheckResult]:
    """A file PUT through the filer is a row of filemeta (read through HAProxy's rw listener)."""
    lbs = topology.group(HAPROXY)
    if not on_postgres(host) or not lbs or not topology.group(POSTGRES):
        return []  # this filer is not meant to use PostgreSQL (through HAProxy)
    lb = lbs[0]
    db = listener(topology, lb, "haproxy_postgres_rw_port")
    name = "filer metadata in postgres"
    if not db.password:
        return [
            CheckResult(
                name,
                COMPONENT,
                False,
                "seaweedfs_filer_db_password is not set",
                fix="Set seaweedfs_filer_db_password in the inventory (vault).",
            )
        ]
    file_name = f"{uuid.uuid4().hex}.bin"
    url = f"{_filer_verify_url(topology, host)}{file_name}"
    found = _Lookup()

    def look() -> None:
        import psycopg

        try:
            found.rows, found.directories = lookup_entry(db, file_name, ctx.http_timeout[0])
        except psycopg.Error as exc:
            found.error = db_error(exc, db)

    outcome = filer_transfer(url, url, ctx, while_stored=look)
    where = f"filemeta of {db.url}"
    if not outcome.ok:
        return [
            CheckResult(
                name,
                COMPONENT,
                False,
                f"through {host.name}: {outcome.detail}",
                fix=(
                    f"Fix the filer first (see filer round trip; on {host.name}: journalctl -u "
                    f"{UNITS[FILER]} -n 100; its /healthz answers 503 while PostgreSQL is "
                    "unreachable)."
                ),
            )
        ]
    if found.error:
        missing_table = "filemeta" in found.error and "does not exist" in found.error
        fix = (
            _metadata_fix(host, db)
            if missing_table
            else _connect_fix(topology, lb, db, found.error, "the Patroni primary")
        )
        return [CheckResult(name, COMPONENT, False, f"{where}: {found.error}", fix=fix)]
    if VERIFY_DIR not in found.directories:
        return [
            CheckResult(
                name,
                COMPONENT,
                False,
                f"{host.name} stored {VERIFY_DIR}/{file_name} (read back identical) but {where} "
                f"({found.rows} rows) has no row named {file_name} in {VERIFY_DIR}",
                fix=_metadata_fix(host, db),
            )
        ]
    return [
        CheckResult(
            name,
            COMPONENT,
            True,
            f"{VERIFY_DIR}/{file_name} written through {host.name} is a row of {where} "
            f"({found.rows} rows); deleted; {outcome.spent()}",
        )
    ]


CHECKS = [
    patroni_leader,
    patroni_replication,
    postgres_rw_endpoint,
    postgres_ro_endpoint,
    filer_metadata_in_postgres,
]
