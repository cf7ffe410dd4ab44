"""JuiceFS on the edge clients: both mount the volume, see each other's files, survive a mount
restart, and ``storagectl verify`` reports a Redis outage (then recovers). Every wait is bounded.

Skipped when the inventory has no JuiceFS client.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from conftest import INVENTORY, Lab, run_local, wait_for
from storagectl.checks.juicefs import CLIENT, unit_for
from storagectl.checks.redis import REDIS, REDIS_UNIT

SIZE = 1024 * 1024


@pytest.fixture(scope="module")
def clients(lab: Lab) -> list[str]:
    names = [h.name for h in lab.topology.component(CLIENT)]
    if not names:
        pytest.skip("no juicefs_client host in the inventory")
    return names


def mountpoint(lab: Lab, name: str) -> str:
    return str(lab.topology.hosts[name].var("juicefs_mountpoint", default="/data"))


def unit(lab: Lab, name: str) -> str:
    return unit_for(mountpoint(lab, name))


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


def test_a_redis_outage_fails_verify_and_it_recovers(lab: Lab, clients: list[str]) -> None:
    metadata = lab.topology.component(REDIS)[0].name
    assert verify("juicefs", "redis")["ok"] is True
    lab.systemctl(metadata, "stop", REDIS_UNIT)
    try:
        document = verify("juicefs", "redis")
    finally:
        lab.systemctl(metadata, "start", REDIS_UNIT)
    failed = failing(document)
    # Redis itself, and every JuiceFS check that needs the metadata engine; the mounts answer
    # stat/statfs from their caches, so the mount checks may stay green for a while.
    assert {
        ("redis reachable", metadata),
        ("juicefs shared data", ""),
        ("juicefs status", ""),
    } <= failed, failed
    for check in document["checks"]:
        if check["component"] == "juicefs" and not check["ok"]:
            assert "Redis" in check["fix"], check
    wait_for(lambda: verify("juicefs", "redis")["ok"], 60, "verify green after Redis is back", 2)
    assert verify()["storage"]["juicefs_mounted"] is True
