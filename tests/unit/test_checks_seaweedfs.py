"""SeaweedFS checks against real servers on loopback (see support.weed): a single-node
``weed server`` and a multi-process cluster with two filers and two volume servers."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from storagectl.checks import all_checks, run_checks
from storagectl.checks.base import CheckResult
from storagectl.checks.seaweedfs import CHECKS
from storagectl.endpoints import host_port
from storagectl.inventory import load_topology
from storagectl.placement import VolumeCopy, copy_count, spread_problem

if TYPE_CHECKING:
    from support.weed import WeedCluster, WeedServer

MakeInventory = Callable[..., Path]
FreePorts = Callable[[int], list[int]]
Leftovers = Callable[..., dict[int, list[str]]]


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
        "replica placement",
        "s3 round trip",
        "s3 anonymous refused",
    ]  # no "filer cross read": a single filer has no peer to read through
    assert by_name(results, "master status")[0].detail.startswith("leads (127.0.0.1:")
    assert "dc1/rack1" in by_name(results, "volume registered")[0].detail
    assert "read back identical" in by_name(results, "filer round trip")[0].detail
    assert "placement 000: volume " in by_name(results, "replica placement")[0].detail
    assert "has 1 copy on node1 (dc1/rack1)" in by_name(results, "replica placement")[0].detail
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


def test_all_checks_includes_seaweedfs(weed_inventory: MakeInventory, project_root: Path) -> None:
    topology = load_topology([weed_inventory()], basedir=project_root)
    # 8 SeaweedFS results and the capacity checks; no HAProxy host, so no haproxy check applies.
    results = run_checks(topology, all_checks(), timeout=10)
    assert len([r for r in results if r.component == "seaweedfs"]) == 8
    assert {r.component for r in results} == {"seaweedfs", "capacity"}


# --- an S3 gateway without identities (``open_s3_gateway``): anonymous access is open ----------


def test_anonymous_access_is_detected(
    open_s3_gateway: int, weed_inventory: MakeInventory, project_root: Path
) -> None:
    inventory = weed_inventory(host_vars={"seaweedfs_s3_port": open_s3_gateway})
    (anonymous,) = by_name(verify(inventory, project_root), "s3 anonymous refused")
    assert not anonymous.ok
    assert "anonymous access is open" in anonymous.detail
    assert "identities" in anonymous.fix.lower()
    assert anonymous.endpoint.startswith(f"http://{host_port('127.0.0.1', open_s3_gateway)}/")


# --- a multi-process cluster (``weed_cluster``): 2 filers, 2 volume servers, 001 ---------------


def test_cluster_passes_cross_reads_and_placement(
    cluster_inventory: MakeInventory, project_root: Path
) -> None:
    results = verify(cluster_inventory(), project_root)
    failed = [r for r in results if not r.ok]
    assert not failed, "\n".join(f"{r.name} {r.host}: {r.detail}" for r in failed)
    cross = by_name(results, "filer cross read")
    assert [r.host for r in cross] == ["filer1", "filer2"]
    assert "written through filer1, read back identical (sha256) through filer2" in cross[0].detail
    assert "written through filer2, read back identical (sha256) through filer1" in cross[1].detail
    assert " -> " in cross[0].endpoint
    (placement,) = by_name(results, "replica placement")
    assert placement.detail.startswith("placement 001: volume ")
    assert "has 2 copies on" in placement.detail
    assert "volume1 (dc1/rack1)" in placement.detail
    assert "volume2 (dc1/rack1)" in placement.detail
    assert "every copy read back identical (sha256); file deleted" in placement.detail


def test_cluster_checks_leave_nothing_behind(
    weed_cluster: WeedCluster,
    cluster_inventory: MakeInventory,
    project_root: Path,
    verify_leftovers: Leftovers,
) -> None:
    verify(cluster_inventory(), project_root)
    assert not verify_leftovers(weed_cluster.address, weed_cluster.filer_ports)


def test_cross_read_through_an_unsynced_filer_fails(
    weed: WeedServer, cluster_inventory: MakeInventory, project_root: Path
) -> None:
    # "filer2" is the single-node server's filer: it never sees the cluster's writes.
    inventory = cluster_inventory(host_vars={"filer2": {"seaweedfs_filer_port": weed.filer_port}})
    start = time.monotonic()
    results = verify(inventory, project_root, timeout=6)
    assert time.monotonic() - start < 6
    first, second = by_name(results, "filer cross read")
    assert not first.ok
    assert first.detail.startswith("filer2 does not see the file written through filer1")
    # A 6 s budget leaves up to 2 s of retries.
    assert re.search(r"HTTP 404, still after [12]\.\d s of retries", first.detail)
    assert "metadata over gRPC" in first.fix
    assert "cluster.ps" in first.fix
    assert "on filer2: journalctl -u seaweedfs-filer" in first.fix
    assert not second.ok
    assert second.detail.startswith("filer1 does not see the file written through filer2")


def test_cross_read_names_the_filer_that_is_down(
    cluster_inventory: MakeInventory, project_root: Path, free_ports: FreePorts
) -> None:
    (closed,) = free_ports(1)
    inventory = cluster_inventory(host_vars={"filer2": {"seaweedfs_filer_port": closed}})
    first, second = by_name(verify(inventory, project_root), "filer cross read")
    assert not first.ok
    assert first.detail.startswith("read through filer2 failed: GET: connection refused")
    assert "on filer2: systemctl status seaweedfs-filer" in first.fix
    assert not second.ok
    assert second.detail.startswith("through filer2: PUT: connection refused")
    assert "on filer2: systemctl status seaweedfs-filer" in second.fix


def test_placement_count_differing_from_the_cluster_fails(
    weed_cluster: WeedCluster, cluster_inventory: MakeInventory, project_root: Path
) -> None:
    inventory = cluster_inventory(all_vars={"seaweedfs_default_replica_placement": "000"})
    (placement,) = by_name(verify(inventory, project_root), "replica placement")
    assert not placement.ok
    assert "(placement 001): 2 copies, placement 000 wants 1:" in placement.detail
    assert "The masters write with placement 001" in placement.fix
    assert "-defaultReplication of seaweedfs-master" in placement.fix
    assert f"weed shell -master=127.0.0.1:{weed_cluster.master_port}" in placement.fix
    assert placement.endpoint.startswith("http://127.0.0.1:")
    assert placement.endpoint.endswith("/storagectl-verify/")  # the filer, not the random file
    assert f"(file {placement.endpoint}" in placement.detail


def test_placement_needing_two_racks_fails_on_one_rack(
    cluster_inventory: MakeInventory, project_root: Path
) -> None:
    # 010 and 001 both mean two copies: the count matches, the racks do not.
    inventory = cluster_inventory(all_vars={"seaweedfs_default_replica_placement": "010"})
    (placement,) = by_name(verify(inventory, project_root), "replica placement")
    assert not placement.ok
    assert "copies in 1 rack(s) of dc1 (rack1), placement 010 wants 2" in placement.detail
    assert "The masters write with placement 001" in placement.fix


def test_copies_in_racks_the_placement_does_not_allow_fail(
    cluster_inventory: MakeInventory, project_root: Path
) -> None:
    # The inventory puts volume2 in another rack: 001 wants both copies in one rack.
    inventory = cluster_inventory(host_vars={"volume2": {"seaweedfs_rack": "rack2"}})
    (placement,) = by_name(verify(inventory, project_root), "replica placement")
    assert not placement.ok
    assert "copies in 2 rack(s) of dc1 (rack1, rack2), placement 001 wants 1" in placement.detail
    assert "Placement 001 needs 2 servers in one rack" in placement.fix
    assert "volume.fix.replication -apply" in placement.fix


def test_copy_on_a_server_missing_from_the_inventory_is_named(
    weed_cluster: WeedCluster,
    cluster_inventory: MakeInventory,
    project_root: Path,
    free_ports: FreePorts,
) -> None:
    (closed,) = free_ports(1)
    inventory = cluster_inventory(host_vars={"volume2": {"seaweedfs_volume_port": closed}})
    (placement,) = by_name(verify(inventory, project_root), "replica placement")
    assert not placement.ok
    stranger = f"127.0.0.1:{weed_cluster.volume_ports[1]}"
    assert f"has copies on {stranger}, not volume servers of the inventory" in placement.detail
    assert "volumeServer.evacuate" in placement.fix


def test_filers_with_their_own_placement_are_asked_for_the_masters_one(
    cluster_inventory: MakeInventory, project_root: Path
) -> None:
    own = {"seaweedfs_filer_default_replica_placement": "000"}
    inventory = cluster_inventory(host_vars={"filer1": own, "filer2": own})
    (placement,) = by_name(verify(inventory, project_root), "replica placement")
    assert placement.ok, placement.detail
    assert placement.detail.startswith("placement 001, asked explicitly of filer1: volume ")


def test_malformed_placement_is_reported(
    cluster_inventory: MakeInventory, project_root: Path
) -> None:
    inventory = cluster_inventory(all_vars={"seaweedfs_default_replica_placement": "01"})
    (placement,) = by_name(verify(inventory, project_root), "replica placement")
    assert not placement.ok
    assert "'01', not XYZ with digits 0-2" in placement.detail
    assert placement.endpoint == "inventory"


# --- placement arithmetic for layouts a loopback cluster cannot have (several DCs and racks)


def _copy(name: str, dc: str, rack: str) -> VolumeCopy:
    return VolumeCopy(f"{name}:8080", name, dc, rack)


def test_copy_count_is_the_sum_of_the_digits_plus_one() -> None:
    # SeaweedFS's ReplicaPlacement.GetCopyCount: X+Y+Z+1 (not (X+1)(Y+1)(Z+1)).
    assert [copy_count(p) for p in ("000", "001", "010", "100", "011", "110", "111", "200")] == [
        1,
        2,
        2,
        2,
        3,
        3,
        4,
        3,
    ]


@pytest.mark.parametrize(
    ("placement", "copies", "problem"),
    [
        ("110", [_copy("a", "dc1", "r1"), _copy("b", "dc1", "r2"), _copy("c", "dc2", "r1")], None),
        ("011", [_copy("a", "dc1", "r1"), _copy("b", "dc1", "r1"), _copy("c", "dc1", "r2")], None),
        ("100", [_copy("a", "dc1", "r1"), _copy("b", "dc2", "r1")], None),
        (
            "100",
            [_copy("a", "dc1", "r1"), _copy("b", "dc1", "r2")],
            ("spread", "copies in 1 data center(s) (dc1), placement 100 wants 2"),
        ),
        (
            "002",
            [_copy("a", "dc1", "r1"), _copy("b", "dc1", "r1"), _copy("c", "dc1", "r2")],
            ("spread", "copies in 2 rack(s) of dc1 (r1, r2), placement 002 wants 1"),
        ),
        (
            "011",
            [_copy("a", "dc1", "r1"), _copy("b", "dc1", "r2"), _copy("c", "dc1", "r3")],
            ("spread", "copies in 3 rack(s) of dc1 (r1, r2, r3), placement 011 wants 2"),
        ),
        (
            "001",
            [_copy("a", "dc1", "r1"), _copy("a", "dc1", "r1")],
            ("count", "2 copies on only 1 distinct server(s)"),
        ),
        ("002", [_copy("a", "dc1", "r1")], ("count", "1 copy, placement 002 wants 3")),
    ],
)
def test_spread_problem(
    placement: str, copies: list[VolumeCopy], problem: tuple[str, str] | None
) -> None:
    assert spread_problem(placement, copies) == problem
