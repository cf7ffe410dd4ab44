"""HAProxy checks against a real HAProxy in front of the real loopback cluster (see
support.haproxy)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from storagectl.checks import all_checks, run_checks
from storagectl.checks.base import CheckResult
from storagectl.checks.haproxy import CHECKS, parse_stats
from storagectl.inventory import load_topology

if TYPE_CHECKING:
    from support.haproxy import HAProxy
    from support.weed import WeedCluster

MakeInventory = Callable[..., Path]
FreePorts = Callable[[int], list[int]]
StartHAProxy = Callable[..., "HAProxy"]
Leftovers = Callable[..., dict[int, list[str]]]


def verify(inventory: Path, project_root: Path, timeout: float = 10.0) -> list[CheckResult]:
    topology = load_topology([inventory], basedir=project_root)
    return run_checks(topology, CHECKS, timeout=timeout)


def by_name(results: list[CheckResult], name: str) -> CheckResult:
    found = [r for r in results if r.name == name]
    assert len(found) == 1, f"expected one {name!r} in {[r.name for r in results]}"
    return found[0]


def test_every_check_passes_through_a_healthy_haproxy(
    haproxy_lb: HAProxy, cluster_inventory: MakeInventory, project_root: Path
) -> None:
    results = verify(cluster_inventory(haproxy=haproxy_lb), project_root)
    failed = [r for r in results if not r.ok]
    assert not failed, "\n".join(f"{r.name} {r.host}: {r.detail}" for r in failed)
    assert [r.name for r in results] == ["haproxy backends", "haproxy filer", "haproxy s3"]
    assert all(r.component == "haproxy" and r.host == "lb1" for r in results)
    backends = by_name(results, "haproxy backends")
    assert backends.detail == (
        "seaweedfs_filer_http 2/2 UP, seaweedfs_filer_grpc 2/2 UP, seaweedfs_s3 1/1 UP"
    )
    assert backends.endpoint == f"http://127.0.0.1:{haproxy_lb.stats_port}/stats;csv"
    filer = by_name(results, "haproxy filer")
    assert filer.detail.startswith("/healthz 200; ")
    assert "read back identical (sha256), deleted" in filer.detail
    assert filer.endpoint == f"http://127.0.0.1:{haproxy_lb.filer_port}"
    s3 = by_name(results, "haproxy s3")
    assert "read back identical, deleted" in s3.detail
    assert s3.endpoint == f"http://127.0.0.1:{haproxy_lb.s3_port}"


def test_round_trips_through_haproxy_leave_nothing_behind(
    weed_cluster: WeedCluster,
    haproxy_lb: HAProxy,
    cluster_inventory: MakeInventory,
    project_root: Path,
    verify_leftovers: Leftovers,
) -> None:
    # The DELETE through HAProxy may reach a filer that has not seen the file yet (it answers
    # 204 and keeps nothing to delete); several runs make that likely, the check must clean up.
    inventory = cluster_inventory(haproxy=haproxy_lb)
    for _ in range(4):
        assert by_name(verify(inventory, project_root), "haproxy filer").ok
    assert not verify_leftovers(weed_cluster.address, weed_cluster.filer_ports)


def test_all_checks_run_the_haproxy_checks_with_the_rest(
    haproxy_lb: HAProxy, cluster_inventory: MakeInventory, project_root: Path
) -> None:
    topology = load_topology([cluster_inventory(haproxy=haproxy_lb)], basedir=project_root)
    results = run_checks(topology, all_checks(), timeout=10)
    assert {r.component for r in results} == {"seaweedfs", "haproxy", "capacity"}
    assert [r.name for r in results if r.component == "haproxy"] == [
        "haproxy backends",
        "haproxy filer",
        "haproxy s3",
    ]
    assert all(r.ok for r in results), [f"{r.name}: {r.detail}" for r in results if not r.ok]


def test_no_haproxy_host_means_no_haproxy_check(
    cluster_inventory: MakeInventory, project_root: Path
) -> None:
    assert verify(cluster_inventory(), project_root) == []


def test_wildcard_bind_address_is_probed_on_the_storage_address(
    haproxy_lb: HAProxy, cluster_inventory: MakeInventory, project_root: Path
) -> None:
    wildcard = {"haproxy_bind_address": "0.0.0.0"}  # noqa: S104 - what the inventory says
    inventory = cluster_inventory(haproxy=haproxy_lb, all_vars=wildcard)
    results = verify(inventory, project_root)
    assert all(r.ok for r in results), [r.detail for r in results]
    assert by_name(results, "haproxy filer").endpoint == f"http://127.0.0.1:{haproxy_lb.filer_port}"


def test_a_down_filer_is_named_with_its_last_check(
    weed_cluster: WeedCluster,
    start_haproxy: StartHAProxy,
    cluster_inventory: MakeInventory,
    project_root: Path,
    free_ports: FreePorts,
) -> None:
    (closed,) = free_ports(1)
    lb = start_haproxy(filers={**weed_cluster.filers, "filer3": (closed, closed)}, down={"filer3"})
    inventory = cluster_inventory(
        haproxy=lb,
        extra_hosts={"filer3": (["seaweedfs_filer"], {"seaweedfs_filer_port": closed})},
    )
    results = verify(inventory, project_root)
    backends = by_name(results, "haproxy backends")
    assert not backends.ok
    assert "seaweedfs_filer_http: filer3 DOWN (L4CON Layer4 connection problem" in backends.detail
    assert f"127.0.0.1:{closed}, for " in backends.detail  # the stats page hides addr
    assert "seaweedfs_filer_grpc: filer3 DOWN" in backends.detail
    assert "[seaweedfs_filer_http 2/3 UP, seaweedfs_filer_grpc 2/3 UP, seaweedfs_s3 1/1 UP]" in (
        backends.detail
    )
    assert f"health check fails for filer3 (127.0.0.1:{closed})" in backends.fix
    assert "systemctl status seaweedfs-filer" in backends.fix
    # HAProxy routes around the DOWN filer: traffic through it still works.
    assert by_name(results, "haproxy filer").ok


def test_no_filer_up_behind_haproxy_fails_the_filer_frontend(
    start_haproxy: StartHAProxy,
    cluster_inventory: MakeInventory,
    project_root: Path,
    free_ports: FreePorts,
) -> None:
    closed = free_ports(2)
    filers = {"filer1": (closed[0], closed[0]), "filer2": (closed[1], closed[1])}
    lb = start_haproxy(filers=filers, down=set(filers))
    results = verify(cluster_inventory(haproxy=lb), project_root)
    filer = by_name(results, "haproxy filer")
    assert not filer.ok
    assert filer.detail == (
        f"GET http://127.0.0.1:{lb.filer_port}/healthz: HTTP 503 (no filer UP behind HAProxy?)"
    )
    assert "seaweedfs_filer_http (haproxy backends)" in filer.fix
    assert "seaweedfs_filer_http 0/2 UP" in by_name(results, "haproxy backends").detail
    assert by_name(results, "haproxy s3").ok


def test_a_filer_missing_from_the_backends_is_named(
    haproxy_lb: HAProxy, cluster_inventory: MakeInventory, project_root: Path
) -> None:
    inventory = cluster_inventory(
        haproxy=haproxy_lb, extra_hosts={"filer9": (["seaweedfs_filer"], {})}
    )
    backends = by_name(verify(inventory, project_root), "haproxy backends")
    assert not backends.ok
    assert "seaweedfs_filer_http lacks filer9" in backends.detail
    assert "seaweedfs_filer_grpc lacks filer9" in backends.detail
    assert "Rerun deploy on the haproxy hosts" in backends.fix


def test_unreachable_stats_listener_is_reported(
    haproxy_lb: HAProxy,
    cluster_inventory: MakeInventory,
    project_root: Path,
    free_ports: FreePorts,
) -> None:
    (closed,) = free_ports(1)
    inventory = cluster_inventory(
        haproxy=haproxy_lb, host_vars={"lb1": {"haproxy_stats_port": closed}}
    )
    backends = by_name(verify(inventory, project_root), "haproxy backends")
    assert not backends.ok
    assert backends.detail == (
        f"no stats from http://127.0.0.1:{closed}/stats;csv: connection refused or unreachable"
    )
    assert f"stats listener on 127.0.0.1:{closed}" in backends.fix
    assert "on lb1: systemctl status haproxy" in backends.fix


def test_closed_frontends_fail_the_traffic_checks(
    haproxy_lb: HAProxy,
    cluster_inventory: MakeInventory,
    project_root: Path,
    free_ports: FreePorts,
) -> None:
    filer_port, s3_port = free_ports(2)
    inventory = cluster_inventory(
        haproxy=haproxy_lb,
        host_vars={"lb1": {"haproxy_filer_port": filer_port, "haproxy_s3_port": s3_port}},
    )
    results = verify(inventory, project_root)
    filer = by_name(results, "haproxy filer")
    assert not filer.ok
    assert "connection refused" in filer.detail
    assert f"haproxy listens on 127.0.0.1:{filer_port}" in filer.fix
    s3 = by_name(results, "haproxy s3")
    assert not s3.ok
    assert str(s3_port) in s3.detail
    assert "on lb1: systemctl status haproxy" in s3.fix
    assert by_name(results, "haproxy backends").ok


def test_s3_through_haproxy_uses_the_first_gateways_keys(
    haproxy_lb: HAProxy, cluster_inventory: MakeInventory, project_root: Path
) -> None:
    wrong = cluster_inventory(
        name="wrong",
        haproxy=haproxy_lb,
        host_vars={"s3gw1": {"seaweedfs_s3_secret_key": "not-the-secret"}},
    )
    s3 = by_name(verify(wrong, project_root), "haproxy s3")
    assert not s3.ok
    assert "SignatureDoesNotMatch" in s3.detail or "403" in s3.detail
    assert "seaweedfs_s3_secret_key" in s3.fix
    unset = cluster_inventory(
        name="unset", haproxy=haproxy_lb, host_vars={"s3gw1": {"seaweedfs_s3_access_key": ""}}
    )
    s3 = by_name(verify(unset, project_root), "haproxy s3")
    assert not s3.ok
    assert s3.detail.startswith(
        "seaweedfs_s3_access_key / seaweedfs_s3_secret_key are not set for s3gw1"
    )


@pytest.mark.parametrize(
    ("status", "up"),
    [
        ("UP", True),
        ("UP 1/3", True),
        ("DOWN", False),
        ("DOWN 1/2", False),
        ("MAINT", False),
        ("DRAIN", False),
        ("NOLB", False),
        ("no check", False),
    ],
)
def test_server_states(status: str, up: bool) -> None:
    header = "# pxname,svname,status,check_status,addr"
    (server,) = parse_stats(f"{header}\nb,s1,{status},L7OK,10.0.0.1:8888\nb,BACKEND,UP,,\n")
    assert server.up is up


def test_parse_stats_refuses_other_pages() -> None:
    with pytest.raises(ValueError, match="show stat"):
        parse_stats("<html>login</html>")
