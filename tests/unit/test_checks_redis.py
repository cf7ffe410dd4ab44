"""Redis checks against a real redis-server on loopback (see support.redis ``redis_server``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from storagectl.checks import all_checks, run_checks
from storagectl.checks.base import CheckResult
from storagectl.checks.redis import CHECKS
from storagectl.inventory import load_topology
from support.common import write_inventory
from support.redis import REDIS_PASSWORD

if TYPE_CHECKING:
    from support.redis import RedisServer, SentinelGroup

StartRedis = Callable[..., "RedisServer"]


def verify(inventory: Path, project_root: Path, timeout: float = 5.0) -> list[CheckResult]:
    return run_checks(load_topology([inventory], basedir=project_root), CHECKS, timeout=timeout)


def inventory(tmp_path: Path, *servers: RedisServer, **overrides: object) -> Path:
    hosts = {f"redis{i + 1}": {**s.host_vars(), **overrides} for i, s in enumerate(servers)}
    return write_inventory(tmp_path / "inv", {"redis": hosts})


def test_a_redis_set_up_for_juicefs_passes(
    redis_server: RedisServer, tmp_path: Path, project_root: Path
) -> None:
    [result] = verify(inventory(tmp_path, redis_server), project_root)
    assert result.ok, result.detail
    assert (result.name, result.component, result.host) == ("redis reachable", "redis", "redis1")
    assert result.endpoint == f"redis://127.0.0.1:{redis_server.port}"
    assert result.detail.startswith("PONG; redis ")
    assert "role master; maxmemory-policy noeviction; aof_enabled 1" in result.detail
    assert "redis" in [c.component for c in all_checks()]


def test_redis_is_probed_where_it_binds(
    redis_server: RedisServer, tmp_path: Path, project_root: Path
) -> None:
    """verify follows redis_bind_address (192.0.2.1, the storage address, answers nothing), and
    a wildcard bind is reached on the storage address."""
    bound = {"storage_address": "192.0.2.1", "redis_bind_address": "127.0.0.1"}
    [result] = verify(inventory(tmp_path, redis_server, **bound), project_root)
    assert result.ok, result.detail
    assert result.endpoint == f"redis://127.0.0.1:{redis_server.port}"
    wildcard = {"storage_address": "127.0.0.1", "redis_bind_address": "0.0.0.0"}  # noqa: S104
    [result] = verify(inventory(tmp_path, redis_server, **wildcard), project_root)
    assert result.ok, result.detail
    assert result.endpoint == f"redis://127.0.0.1:{redis_server.port}"


def test_a_wrong_password_fails_without_showing_it(
    redis_server: RedisServer, tmp_path: Path, project_root: Path
) -> None:
    wrong = "not-the-password-4711"
    [result] = verify(inventory(tmp_path, redis_server, redis_password=wrong), project_root)
    assert not result.ok
    assert result.detail.startswith("authentication failed")
    assert "redis_password" in result.fix
    assert "requirepass" in result.fix
    for text in (result.detail, result.fix, result.endpoint):
        assert wrong not in text
        assert redis_server.password not in text


def test_an_evicting_redis_without_aof_fails(
    start_redis: StartRedis, tmp_path: Path, project_root: Path
) -> None:
    server = start_redis("--maxmemory-policy", "allkeys-lru", "--appendonly", "no")
    [result] = verify(inventory(tmp_path, server), project_root)
    assert not result.ok
    assert "maxmemory-policy is allkeys-lru, JuiceFS needs noeviction" in result.detail
    assert "AOF persistence is off" in result.detail
    assert "maxmemory-policy noeviction" in result.fix
    assert "appendonly yes" in result.fix


def test_a_replica_as_metadata_server_fails_and_a_stopped_redis_names_its_unit(
    redis_server: RedisServer, start_redis: StartRedis, tmp_path: Path, project_root: Path
) -> None:
    replica = start_redis("--replicaof", "127.0.0.1", str(redis_server.port))
    replica.stop()
    results = verify(inventory(tmp_path, replica), project_root)
    assert not results[0].ok
    assert results[0].detail.startswith("no answer: ")
    assert "systemctl start redis-server" in results[0].fix

    replica.start()
    # The first host is JuiceFS's metadata server: a replica there cannot take writes.
    results = verify(inventory(tmp_path, replica, redis_server), project_root)
    first, second = results
    assert not first.ok
    assert "JuiceFS metadata server but its role is slave" in first.detail
    assert "REPLICAOF NO ONE" in first.fix
    assert second.ok, second.detail


# --- Sentinel ---------------------------------------------------------------------------------


def sentinel_inventory(tmp_path: Path, group: SentinelGroup, **overrides: object) -> Path:
    hosts = {f"redis{i + 1}": {**group.host_vars(i), **overrides} for i in range(3)}
    return write_inventory(
        tmp_path / "inv", {"redis": hosts}, all_vars={"redis_sentinel_enabled": True}
    )


def by_name(results: list[CheckResult], name: str) -> list[CheckResult]:
    return [r for r in results if r.name == name]


def test_a_sentinel_group_passes(
    sentinel_group: SentinelGroup, tmp_path: Path, project_root: Path
) -> None:
    results = verify(sentinel_inventory(tmp_path, sentinel_group), project_root)
    assert all(r.ok for r in results), [(r.name, r.host, r.detail) for r in results]
    roles = [
        r.detail.split("; role ")[1].split(";")[0] for r in by_name(results, "redis reachable")
    ]
    assert roles == ["master", "slave", "slave"]
    [sentinel] = by_name(results, "redis sentinel")
    master = sentinel_group.servers[0].port
    assert sentinel.detail.startswith(
        f"master redis1 (127.0.0.1:{master}), agreed by 3 Sentinel(s)"
    )
    assert "each sees 2 replica(s) and 2 other Sentinel(s)" in sentinel.detail
    assert "CKQUORUM OK" in sentinel.detail


def test_the_check_follows_a_failover_and_names_the_dead_master(
    sentinel_group: SentinelGroup, tmp_path: Path, project_root: Path
) -> None:
    inv = sentinel_inventory(tmp_path, sentinel_group)
    old = sentinel_group.servers[0]
    old.stop()
    deadline = time.monotonic() + 30  # down-after 1 s, then the election
    while sentinel_group.master_port() in (old.port, None) and time.monotonic() < deadline:
        time.sleep(0.2)
    new = sentinel_group.master_port()
    assert new in (sentinel_group.servers[1].port, sentinel_group.servers[2].port)
    # While the failover finishes the check reports it (flags failover_in_progress); then it
    # names the new master. The dead one is failed by "redis reachable".
    while True:
        results = verify(inv, project_root)
        [sentinel] = by_name(results, "redis sentinel")
        if sentinel.ok or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sentinel.ok, sentinel.detail
    assert f"(127.0.0.1:{new}), agreed by 3 Sentinel(s)" in sentinel.detail
    [dead] = [r for r in by_name(results, "redis reachable") if r.host == "redis1"]
    assert not dead.ok
    assert "systemctl status redis-server" in dead.fix


def test_a_stopped_sentinel_is_named(
    sentinel_group: SentinelGroup, tmp_path: Path, project_root: Path
) -> None:
    sentinel_group.stop_sentinel(2)
    results = verify(sentinel_inventory(tmp_path, sentinel_group), project_root)
    [sentinel] = by_name(results, "redis sentinel")
    assert not sentinel.ok
    assert sentinel.detail.startswith("redis3: ")
    assert "systemctl status redis-sentinel" in sentinel.fix
    assert "on redis3" in sentinel.fix
    assert REDIS_PASSWORD not in sentinel.detail + sentinel.fix + sentinel.endpoint
