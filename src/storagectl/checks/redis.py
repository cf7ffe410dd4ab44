"""Redis checks: every Redis host answers with the inventory's password and is set up as the
JuiceFS metadata engine needs it.

What the redis role deploys (its contract with these checks): the hosts of the ``redis`` group
run ``redis-server`` (systemd unit ``redis-server``) on ``redis_bind_address:redis_port``
(default the storage address, 6379), protected by ``redis_password``. JuiceFS needs
``maxmemory-policy noeviction`` (an evicted key is lost metadata) and AOF persistence
(``appendonly yes``); its metadata server is the first host of the group unless
``redis_sentinel_enabled``. With Sentinel every host of the group also runs ``redis-sentinel``
on ``redis_bind_address:redis_sentinel_port`` (26379, same password), monitoring the master under
``redis_sentinel_master_name``; one Redis is the master and the others replicate it.

The password is never part of a detail, fix or endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from storagectl.checks.base import (
    CheckContext,
    CheckResult,
    Findings,
    cluster_check,
    host_check,
    parallel_map,
    unit_fix,
)
from storagectl.endpoints import host_port, port, reachable, redis_address
from storagectl.inventory import Host, Topology
from storagectl.inventory.groups import REDIS

if TYPE_CHECKING:
    import redis

# The redis client is imported by the check that uses it, not here: every verify (and the JuiceFS
# checks, which only need this module's names) imports this module.

COMPONENT = "redis"

REDIS_UNIT = "redis-server"
SENTINEL_UNIT = "redis-sentinel"

REQUIRED_POLICY = "noeviction"


def redis_port(host: Host) -> int:
    """The port Redis listens on, on ``host`` (``redis_port``)."""
    return port(host, "redis_port")


def redis_password(host: Host) -> str:
    return str(host.var("redis_password", default="") or "")


def sentinel_enabled(topology: Topology) -> bool:
    return bool(topology.var("redis_sentinel_enabled"))


def metadata_host(topology: Topology) -> Host | None:
    """The Redis host JuiceFS keeps its metadata on: the first of the redis group."""
    hosts = topology.group(REDIS)
    return hosts[0] if hosts else None


def redis_fix(host: Host, reason: str = "") -> str:
    """A fix sentence pointing at Redis on ``host`` (status, journal)."""
    return unit_fix(host, REDIS_UNIT, reason, what="Redis")


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def _error_line(exc: Exception, secret: str) -> str:
    """The first line of ``exc`` without ``secret`` (its type name when it says nothing)."""
    return _scrub(str(exc), secret).splitlines()[0] if str(exc) else type(exc).__name__


def _endpoint(topology: Topology, host: Host) -> str:
    return f"redis://{redis_address(host)}"


def connect(host: Host, port: int, ctx: CheckContext) -> redis.Redis:
    """A client of the Redis (or Sentinel) of ``host`` on ``port`` (at ``redis_bind_address``)
    that tries once and answers text."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    connect, read = ctx.http_timeout
    return redis.Redis(
        host=reachable(host, "redis_bind_address"),
        port=port,
        password=redis_password(host) or None,
        socket_connect_timeout=connect,
        socket_timeout=read,
        retry=Retry(NoBackoff(), 0),  # one attempt: the check reports, it does not insist
        decode_responses=True,
    )


def _info(client: redis.Redis, section: str) -> dict[str, Any]:
    answer = client.info(section)
    return answer if isinstance(answer, dict) else {}


@host_check("redis reachable", COMPONENT, group=REDIS, endpoint=_endpoint)
def redis_reachable(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
    """Redis answers PING with the inventory's password, evicts nothing and keeps an AOF."""
    import redis

    password = redis_password(host)
    client = connect(host, redis_port(host), ctx)
    try:
        client.ping()
        policy = str(client.config_get("maxmemory-policy").get("maxmemory-policy", "?"))
        aof = _info(client, "persistence").get("aof_enabled")
        replication = _info(client, "replication")
        version = _info(client, "server").get("redis_version", "?")
    except redis.AuthenticationError as exc:
        return CheckResult(
            "redis reachable",
            COMPONENT,
            False,
            f"authentication failed: {_scrub(str(exc), password)}",
            fix=redis_fix(
                host,
                "make redis_password in the inventory (vault) match requirepass of "
                f"/etc/redis/redis.conf on {host.name}, then rerun deploy",
            ),
        )
    except redis.ResponseError as exc:
        return CheckResult(
            "redis reachable",
            COMPONENT,
            False,
            f"Redis refused a command: {_scrub(str(exc), password)}",
            fix=redis_fix(host, "the password may lack rights (ACL) for PING/CONFIG/INFO"),
        )
    except redis.RedisError as exc:
        message = _error_line(exc, password)
        return CheckResult(
            "redis reachable",
            COMPONENT,
            False,
            f"no answer: {message}",
            fix=redis_fix(host, f"start Redis on {host.name} (systemctl start {REDIS_UNIT})"),
        )
    finally:
        client.close()
    role = str(replication.get("role") or "?")
    summary = f"PONG; redis {version}; role {role}; maxmemory-policy {policy}; aof_enabled {aof}"
    found = Findings()
    if policy != REQUIRED_POLICY:
        found.add(
            f"maxmemory-policy is {policy}, JuiceFS needs {REQUIRED_POLICY}",
            f"Set maxmemory-policy {REQUIRED_POLICY} in /etc/redis/redis.conf on {host.name} "
            "(rerun deploy) and CONFIG SET it on the running server: evicted keys are lost "
            "JuiceFS metadata.",
        )
    if str(aof) != "1":
        found.add(
            "AOF persistence is off (aof_enabled 0)",
            f"Set appendonly yes in /etc/redis/redis.conf on {host.name} (rerun deploy) and "
            "CONFIG SET appendonly yes: without it a restart loses recent metadata.",
        )
    first = metadata_host(topology)
    is_metadata = first is not None and first.name == host.name
    if is_metadata and not sentinel_enabled(topology) and role != "master":
        found.add(
            f"it is the JuiceFS metadata server but its role is {role}",
            f"JuiceFS writes its metadata to {host.name}: run REPLICAOF NO ONE there, or "
            "enable redis_sentinel_enabled so clients follow the master.",
        )
    if found.problems:
        return CheckResult(
            "redis reachable",
            COMPONENT,
            False,
            f"{found.detail} ({summary})",
            fix=found.fix,
        )
    return CheckResult("redis reachable", COMPONENT, True, summary)


# --- 2. Sentinel: one master, agreed on, replicated, failover possible ------------------------


def sentinel_port(host: Host) -> int:
    """The port of the Sentinel on ``host`` (``redis_sentinel_port``)."""
    return port(host, "redis_sentinel_port")


def master_name(topology: Topology) -> str:
    """The name the Sentinels monitor the master under (``redis_sentinel_master_name``)."""
    return str(topology.var("redis_sentinel_master_name"))


@dataclass
class SentinelView:
    """What the Sentinel on one host says about the master (``error`` when it did not answer)."""

    host: Host
    master: str = ""  # "ip:port" the Sentinel names, "" when it names none
    fields: dict[str, str] = field(default_factory=dict)
    quorum_ok: bool = False
    quorum_answer: str = ""
    error: str = ""

    def count(self, name: str) -> int:
        try:
            return int(self.fields.get(name, "0"))
        except ValueError:
            return 0


def _pairs(answer: Any) -> dict[str, str]:
    """SENTINEL MASTER's answer as a dict (a flat name/value list, or already a dict)."""
    if isinstance(answer, dict):
        return {str(k): str(v) for k, v in answer.items()}
    items = [str(a) for a in answer or []]
    return dict(zip(items[0::2], items[1::2], strict=False))


def sentinel_view(topology: Topology, host: Host, ctx: CheckContext) -> SentinelView:
    """Ask the Sentinel on ``host`` for the master, its view of the group and CKQUORUM."""
    import redis

    view = SentinelView(host)
    name = master_name(topology)
    client = connect(host, sentinel_port(host), ctx)
    try:
        address = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
        if address:
            view.master = host_port(str(address[0]), int(address[1]))
        view.fields = _pairs(client.execute_command("SENTINEL", "MASTER", name))
        try:
            view.quorum_answer = str(client.execute_command("SENTINEL", "CKQUORUM", name))
            view.quorum_ok = view.quorum_answer.startswith("OK")
        except redis.ResponseError as exc:
            view.quorum_answer = str(exc)
    except redis.RedisError as exc:
        view.error = _error_line(exc, redis_password(host))
    finally:
        client.close()
    return view


def _sentinel_fix(host: Host, reason: str = "") -> str:
    return unit_fix(host, SENTINEL_UNIT, reason, what="the Sentinel")


@cluster_check("redis sentinel", COMPONENT, requires=(REDIS,))
def redis_sentinel(topology: Topology, ctx: CheckContext) -> list[CheckResult]:
    """Every Sentinel answers, all name the same master (a Redis of the group), each sees the
    other Sentinels and every replica, and a failover could be authorised (CKQUORUM)."""
    if not sentinel_enabled(topology):
        return []
    name = "redis sentinel"
    hosts = topology.group(REDIS)
    views = parallel_map(lambda h: sentinel_view(topology, h, ctx), hosts)
    endpoint = ", ".join(f"{v.host.name}:{sentinel_port(v.host)}" for v in views)
    silent = [v for v in views if v.error]
    if silent:
        first = silent[0]
        return [
            CheckResult(
                name,
                COMPONENT,
                False,
                "; ".join(f"{v.host.name}: {v.error}" for v in silent),
                fix=_sentinel_fix(first.host, f"start the Sentinel on {first.host.name}"),
                endpoint=endpoint,
            )
        ]
    named = sorted({v.master for v in views})
    by_address = {redis_address(h): h for h in hosts}
    if len(named) != 1 or named[0] not in by_address:
        seen = "; ".join(f"{v.host.name} names {v.master or 'no master'}" for v in views)
        return [
            CheckResult(
                name,
                COMPONENT,
                False,
                f"the Sentinels do not agree on a master of group {REDIS}: {seen}",
                fix=(
                    f"Compare `redis-cli -p {sentinel_port(hosts[0])} SENTINEL masters` on the "
                    "Redis hosts and `INFO replication` of each Redis; a Sentinel that monitors "
                    "another master needs SENTINEL RESET or a fresh sentinel.conf (rerun deploy)."
                ),
                endpoint=endpoint,
            )
        ]
    master = by_address[named[0]]
    others = len(hosts) - 1
    found = Findings()
    for view in views:
        where = view.host.name
        if view.count("num-other-sentinels") < others:
            found.add(
                f"{where} sees {view.count('num-other-sentinels')} other Sentinel(s), not {others}",
                _sentinel_fix(view.host, "Sentinels find each other through the master"),
            )
        if view.count("num-slaves") < others:
            found.add(
                f"{where} sees {view.count('num-slaves')} replica(s), not {others}",
                redis_fix(master, "a replica does not replicate the master"),
            )
        flags = view.fields.get("flags", "")
        if "down" in flags:
            found.add(f"{where} flags the master {flags}", redis_fix(master))
        if not view.quorum_ok:
            found.add(
                f"{where}: CKQUORUM {view.quorum_answer}",
                _sentinel_fix(view.host, "a majority of Sentinels must be reachable"),
            )
    summary = (
        f"master {master.name} ({named[0]}), agreed by {len(views)} Sentinel(s); each sees "
        f"{others} replica(s) and {others} other Sentinel(s); failover possible (CKQUORUM OK)"
    )
    if found.problems:
        return [
            CheckResult(
                name,
                COMPONENT,
                False,
                f"master {master.name} ({named[0]}): {found.detail}",
                fix=found.fix,
                endpoint=endpoint,
            )
        ]
    return [CheckResult(name, COMPONENT, True, summary, endpoint=endpoint)]


CHECKS = [redis_reachable, redis_sentinel]
