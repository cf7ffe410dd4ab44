"""SeaweedFS checks against a real single-node ``weed server`` on loopback (see conftest)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from storagectl.checks import all_checks, run_checks
from storagectl.checks.base import CheckResult
from storagectl.checks.seaweedfs import CHECKS, host_port
from storagectl.inventory import load_topology

if TYPE_CHECKING:
    from conftest import WeedServer

MakeInventory = Callable[..., Path]
FreePorts = Callable[[int], list[int]]


def verify(inventory: Path, project_root: Path, timeout: float = 10.0) -> list[CheckResult]:
    topology = load_topology([inventory], basedir=project_root)
    return run_checks(topology, CHECKS, timeout=timeout)


def by_name(results: list[CheckResult], name: str) -> list[CheckResult]:
    found = [r for r in results if r.name == name]
    assert found, f"no result named {name!r} in {[r.name for r in results]}"
    return found


def test_every_check_passes_on_a_healthy_cluster(
    weed_inventory: MakeInventory, project_root: Path
) -> None:
    results = verify(weed_inventory(), project_root)
    failed = [r for r in results if not r.ok]
    assert not failed, "\n".join(f"{r.name} {r.host}: {r.detail}" for r in failed)
    assert [r.name for r in results] == [
        "master status",
        "master leader",
        "volume registered",
        "filer health",
        "filer round trip",
        "s3 round trip",
        "s3 anonymous refused",
    ]
    assert by_name(results, "master status")[0].detail.startswith("leads (127.0.0.1:")
    assert "dc1/rack1" in by_name(results, "volume registered")[0].detail
    assert "read back identical" in by_name(results, "filer round trip")[0].detail
    assert "read back identical" in by_name(results, "s3 round trip")[0].detail
    assert "403" in by_name(results, "s3 anonymous refused")[0].detail
    assert all(r.component == "seaweedfs" for r in results)
    assert all(r.duration > 0 for r in results)


def test_round_trips_leave_nothing_behind(
    weed: WeedServer, weed_inventory: MakeInventory, project_root: Path
) -> None:
    verify(weed_inventory(), project_root)
    listing = requests.get(
        f"http://{weed.address}:{weed.filer_port}/storagectl-verify/",
        headers={"Accept": "application/json"},
        timeout=5,
    )
    assert listing.status_code == 200
    assert not listing.json().get("Entries")


def test_wrong_secret_key_fails_the_s3_round_trip(
    weed_inventory: MakeInventory, project_root: Path
) -> None:
    inventory = weed_inventory(host_vars={"seaweedfs_s3_secret_key": "not-the-secret"})
    results = verify(inventory, project_root)
    (s3,) = by_name(results, "s3 round trip")
    assert not s3.ok
    assert "SignatureDoesNotMatch" in s3.detail or "403" in s3.detail
    assert "seaweedfs_s3_secret_key" in s3.fix
    assert by_name(results, "s3 anonymous refused")[0].ok
    assert by_name(results, "filer round trip")[0].ok


def test_missing_s3_keys_are_reported(weed_inventory: MakeInventory, project_root: Path) -> None:
    inventory = weed_inventory(host_vars={"seaweedfs_s3_access_key": ""})
    (s3,) = by_name(verify(inventory, project_root), "s3 round trip")
    assert not s3.ok
    assert "not set" in s3.detail
    assert "vault" in s3.fix


def test_unknown_volume_server_is_named(
    weed: WeedServer, weed_inventory: MakeInventory, project_root: Path
) -> None:
    inventory = weed_inventory(
        extra_hosts={"ghost-volume": (["seaweedfs_volume"], {"ansible_host": "127.0.0.2"})}
    )
    results = by_name(verify(inventory, project_root), "volume registered")
    assert [(r.host, r.ok) for r in results] == [("node1", True), ("ghost-volume", False)]
    ghost = results[1]
    assert f"127.0.0.2:{weed.volume_port} is not a data node" in ghost.detail
    assert "on ghost-volume: systemctl status seaweedfs-volume" in ghost.fix


def test_wrong_rack_is_reported(weed_inventory: MakeInventory, project_root: Path) -> None:
    inventory = weed_inventory(host_vars={"seaweedfs_rack": "rack9"})
    (volume,) = by_name(verify(inventory, project_root), "volume registered")
    assert not volume.ok
    assert "registered in dc1/rack1, inventory says dc1/rack9" in volume.detail


def test_missing_masters_break_the_leader_check(
    weed: WeedServer, weed_inventory: MakeInventory, project_root: Path
) -> None:
    inventory = weed_inventory(
        extra_hosts={
            "m2": (["seaweedfs_master"], {"ansible_host": "127.0.0.3"}),
            "m3": (["seaweedfs_master"], {"ansible_host": "127.0.0.4"}),
        }
    )
    results = verify(inventory, project_root)
    statuses = {r.host: r for r in by_name(results, "master status")}
    assert "has 0 peer(s), the inventory has 2 other(s)" in statuses["node1"].detail
    assert not statuses["m2"].ok
    assert "connection refused" in statuses["m2"].detail
    assert statuses["m2"].endpoint == f"http://127.0.0.3:{weed.master_port}/cluster/status"
    assert "on m2: systemctl status seaweedfs-master" in statuses["m2"].fix
    (leader,) = by_name(results, "master leader")
    assert not leader.ok
    assert "2 of 3 master(s) did not answer" in leader.detail
    assert leader.fix


def test_unreachable_filer_fails_quickly(
    weed_inventory: MakeInventory, project_root: Path, free_ports: FreePorts
) -> None:
    (closed,) = free_ports(1)
    inventory = weed_inventory(host_vars={"seaweedfs_filer_port": closed})
    start = time.monotonic()
    results = verify(inventory, project_root)
    assert time.monotonic() - start < 10
    for name in ("filer health", "filer round trip"):
        (result,) = by_name(results, name)
        assert not result.ok
        assert "connection refused" in result.detail
        assert "on node1: systemctl status seaweedfs-filer" in result.fix
        assert str(closed) in result.endpoint


def test_group_name_overrides_are_honoured(
    weed_inventory: MakeInventory, project_root: Path
) -> None:
    inventory = weed_inventory(
        groups=("masters", "seaweedfs_volume"),
        host_vars={"seaweedfs_master_group": "masters"},
    )
    results = verify(inventory, project_root)
    assert {r.name for r in results} == {"master status", "master leader", "volume registered"}
    assert all(r.ok for r in results), [r.detail for r in results]


def test_all_checks_includes_seaweedfs(weed_inventory: MakeInventory, project_root: Path) -> None:
    topology = load_topology([weed_inventory()], basedir=project_root)
    assert len(run_checks(topology, all_checks(), timeout=10)) == 7


# --- an S3 gateway without identities (conftest's ``open_s3_gateway``): anonymous access is open


def test_anonymous_access_is_detected(
    open_s3_gateway: int, weed_inventory: MakeInventory, project_root: Path
) -> None:
    inventory = weed_inventory(host_vars={"seaweedfs_s3_port": open_s3_gateway})
    (anonymous,) = by_name(verify(inventory, project_root), "s3 anonymous refused")
    assert not anonymous.ok
    assert "anonymous access is open" in anonymous.detail
    assert "identities" in anonymous.fix.lower()
    assert anonymous.endpoint.startswith(f"http://{host_port('127.0.0.1', open_s3_gateway)}/")
