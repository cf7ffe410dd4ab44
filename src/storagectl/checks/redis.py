"""Redis checks: every Redis host answers with the inventory's password and is set up as the
JuiceFS metadata engine needs it.

What the redis role deploys (its contract with these checks): the hosts of the ``redis`` group
(``redis_group``) run ``redis-server`` (systemd unit ``redis-server``) on
``storage_address:redis_port`` (6379), protected by ``redis_password``. JuiceFS needs
``maxmemory-policy noeviction`` (an evicted key is lost metadata) and AOF persistence
(``appendonly yes``); its metadata server is the first host of the group unless
``redis_sentinel_enabled``.

The password is never part of a detail, fix or endpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from storagectl.checks.base import CheckContext, CheckResult, host_check, unit_fix
from storagectl.checks.seaweedfs import host_port
from storagectl.inventory import Host, Topology

if TYPE_CHECKING:
    import redis

# The redis client is imported by the check that uses it, not here: every verify (and the JuiceFS
# checks, which only need this module's names) imports this module.

COMPONENT = "redis"

REDIS = "redis"
"""The logical group of the Redis hosts (``redis_group`` overrides it)."""
REDIS_UNIT = "redis-server"

# Used only when neither the inventory nor the roles' defaults define them.
DEFAULT_PORT = 6379
REQUIRED_POLICY = "noeviction"


def redis_port(host: Host) -> int:
    """The port Redis listens on, on ``host`` (``redis_port``)."""
    return int(host.var("redis_port", default=DEFAULT_PORT))


def redis_address(host: Host) -> str:
    """``storage_address:redis_port`` of ``host``."""
    return host_port(host.address, redis_port(host))


def redis_password(host: Host) -> str:
    return str(host.var("redis_password", default="") or "")


def sentinel_enabled(topology: Topology) -> bool:
    return bool(topology.var("redis_sentinel_enabled", default=False))


def metadata_host(topology: Topology) -> Host | None:
    """The Redis host JuiceFS keeps its metadata on: the first of the redis group."""
    hosts = topology.component(REDIS)
    return hosts[0] if hosts else None


def redis_fix(host: Host, reason: str = "") -> str:
    """A fix sentence pointing at Redis on ``host`` (status, journal)."""
    return unit_fix(host, REDIS_UNIT, reason, what="Redis")


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def _endpoint(topology: Topology, host: Host) -> str:
    return f"redis://{redis_address(host)}"


def _info(client: redis.Redis, section: str) -> dict[str, Any]:
    answer = client.info(section)
    return answer if isinstance(answer, dict) else {}


@host_check("redis reachable", COMPONENT, group=REDIS, endpoint=_endpoint)
def redis_reachable(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
    """Redis answers PING with the inventory's password, evicts nothing and keeps an AOF."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    password = redis_password(host)
    connect, read = ctx.http_timeout
    client = redis.Redis(
        host=host.address,
        port=redis_port(host),
        password=password or None,
        socket_connect_timeout=connect,
        socket_timeout=read,
        retry=Retry(NoBackoff(), 0),  # one attempt: the check reports, it does not insist
    )
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
        message = _scrub(str(exc), password).splitlines()[0] if str(exc) else type(exc).__name__
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
    problems: list[str] = []
    fixes: list[str] = []
    if policy != REQUIRED_POLICY:
        problems.append(f"maxmemory-policy is {policy}, JuiceFS needs {REQUIRED_POLICY}")
        fixes.append(
            f"Set maxmemory-policy {REQUIRED_POLICY} in /etc/redis/redis.conf on {host.name} "
            "(rerun deploy) and CONFIG SET it on the running server: evicted keys are lost "
            "JuiceFS metadata."
        )
    if str(aof) != "1":
        problems.append("AOF persistence is off (aof_enabled 0)")
        fixes.append(
            f"Set appendonly yes in /etc/redis/redis.conf on {host.name} (rerun deploy) and "
            "CONFIG SET appendonly yes: without it a restart loses recent metadata."
        )
    first = metadata_host(topology)
    is_metadata = first is not None and first.name == host.name
    if is_metadata and not sentinel_enabled(topology) and role != "master":
        problems.append(f"it is the JuiceFS metadata server but its role is {role}")
        fixes.append(
            f"JuiceFS writes its metadata to {host.name}: run REPLICAOF NO ONE there, or "
            "enable redis_sentinel_enabled so clients follow the master."
        )
    if problems:
        return CheckResult(
            "redis reachable",
            COMPONENT,
            False,
            f"{'; '.join(problems)} ({summary})",
            fix=" ".join(fixes),
        )
    return CheckResult("redis reachable", COMPONENT, True, summary)


CHECKS = [redis_reachable]
