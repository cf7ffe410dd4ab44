"""JuiceFS on the edge clients: both mount the volume, see each other's files, survive a mount
restart; its Redis runs under Sentinel: redis.conf cannot be rewritten by Redis, and when the
Redis master stops the Sentinels promote a replica, the clients follow and ``storagectl verify``
is green again once the old master is back as a replica. Every wait is bounded.

Skipped when the inventory has no JuiceFS client.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from conftest import INVENTORY, Lab, run_local, wait_for
from storagectl.checks.juicefs import CLIENT, unit_for
from storagectl.checks.redis import REDIS, REDIS_UNIT

SIZE = 1024 * 1024


@pytest.fixture(scope="module")
def clients(lab: Lab) -> list[str]:
    names = [h.name for h in lab.topology.group(CLIENT)]
    if not names:
        pytest.skip("no juicefs_client host in the inventory")
    return names


def mountpoint(lab: Lab, name: str) -> str:
    return str(lab.topology.hosts[name].var("juicefs_mountpoint", default="/data"))


def unit(lab: Lab, name: str) -> str:
    return unit_for(lab.topology.hosts[name])


def mounted(lab: Lab, name: str) -> bool:
    mp = mountpoint(lab, name)
    result = lab.run(
        name, f"timeout 5 stat -c %i {mp}; awk '$2 == \"{mp}\" {{print $3}}' /proc/mounts"
    )
    return result.rc == 0 and result.stdout.split() == ["1", "fuse.juicefs"]


def sha256(lab: Lab, name: str, path: str) -> str:
    result = lab.run(name, f"timeout 10 sha256sum {path}")
    return result.stdout.split(" ", 1)[0] if result.rc == 0 else ""


def verify(*components: str) -> dict[str, Any]:
    args = [f"--component={c}" for c in components]
    result = run_local(
        "storagectl", "verify", "-i", str(INVENTORY), "--format", "json", "--timeout", "20", *args
    )
    return json.loads(result.stdout)


def failing(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["name"], c["host"]) for c in document["checks"] if not c["ok"]}


def test_both_clients_mount_the_volume(lab: Lab, clients: list[str]) -> None:
    for name in clients:
        assert lab.run(name, f"systemctl is-active {unit(lab, name)}").stdout.strip() == "active"
        assert lab.run(name, f"systemctl is-enabled {unit(lab, name)}").stdout.strip() == "enabled"
        assert mounted(lab, name), f"{mountpoint(lab, name)} on {name} is not a JuiceFS root"


def test_a_file_written_on_one_client_reads_back_on_the_other(lab: Lab, clients: list[str]) -> None:
    writer, reader = clients[0], clients[-1]
    path = f"{mountpoint(lab, writer)}/molecule-ha/{uuid.uuid4().hex}.bin"
    written = lab.run(
        writer,
        f"mkdir -p $(dirname {path}) && head -c {SIZE} /dev/urandom > {path} && sha256sum {path}",
    )
    assert written.rc == 0, written.stderr
    expected = written.stdout.split(" ", 1)[0]
    other = path.replace(mountpoint(lab, writer), mountpoint(lab, reader), 1)
    assert wait_for(lambda: sha256(lab, reader, other) == expected, 10, f"{other} on {reader}")
    lab.run(writer, f"rm -f {path}")


def test_a_restarted_mount_comes_back_with_its_files(lab: Lab, clients: list[str]) -> None:
    name = clients[0]
    path = f"{mountpoint(lab, name)}/molecule-ha/{uuid.uuid4().hex}.bin"
    written = lab.run(name, f"mkdir -p $(dirname {path}) && head -c {SIZE} /dev/urandom > {path}")
    assert written.rc == 0, written.stderr
    before = sha256(lab, name, path)
    lab.systemctl(name, "restart", unit(lab, name))
    wait_for(lambda: mounted(lab, name), 60, f"{unit(lab, name)} on {name} mounted again")
    assert sha256(lab, name, path) == before
    lab.run(name, f"rm -f {path}")


def test_redis_cannot_rewrite_its_configuration(lab: Lab) -> None:
    """The Sentinels send CONFIG REWRITE after a failover: it must fail, leaving Ansible's file."""
    name = lab.topology.group(REDIS)[0].name
    before = lab.run(name, "sha256sum /etc/redis/redis.conf").stdout
    # The password comes from the rendered file on the host itself, never a command line.
    rewrite = lab.run(
        name,
        "REDISCLI_AUTH=$(awk '$1 == \"requirepass\" {print $2}' /etc/redis/redis.conf) "
        "redis-cli --no-auth-warning -h 127.0.0.1 CONFIG REWRITE",
    )
    assert "ERR" in rewrite.stdout + rewrite.stderr, rewrite.stdout
    assert lab.run(name, "sha256sum /etc/redis/redis.conf").stdout == before
    assert lab.run(name, "ls /etc/redis | grep -c tmp || true").stdout.strip() == "0"


def test_a_stopped_redis_master_fails_over_and_juicefs_follows(
    lab: Lab, clients: list[str]
) -> None:
    assert verify("juicefs", "redis")["ok"] is True
    old = wait_for(lab.redis_master, 10, "a Redis master every Sentinel names")
    writer = clients[0]
    start = time.monotonic()
    lab.systemctl(old, "stop", REDIS_UNIT)
    try:
        new = wait_for(
            lambda: (m := lab.redis_master()) and m != old and m, 60, "a new Redis master", 0.2
        )
        promoted = time.monotonic() - start
        path = f"{mountpoint(lab, writer)}/molecule-ha/{uuid.uuid4().hex}.bin"
        wait_for(
            lambda: (
                lab.run(writer, f"mkdir -p $(dirname {path}) && timeout 10 touch {path}").rc == 0
            ),
            60,
            f"a write on {writer} after the failover",
            0.2,
        )
        written = time.monotonic() - start
        print(
            f"redis failover: {new} promoted after {promoted:.1f} s, "
            f"first JuiceFS write after {written:.1f} s"
        )
        down = failing(verify("redis"))
        assert ("redis reachable", old) in down, down
    finally:
        lab.systemctl(old, "start", REDIS_UNIT)
    # The old master comes back as a master (redis.conf holds no replicaof); the Sentinels turn
    # it into a replica of the new one.
    wait_for(
        lambda: verify("juicefs", "redis")["ok"], 90, "verify green with the old master back", 2
    )
    assert lab.redis_master() == new
    lab.run(writer, f"rm -f {path}")
