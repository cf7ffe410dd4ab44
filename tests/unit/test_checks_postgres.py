"""PostgreSQL HA checks against real servers on loopback (see support.postgres): etcd and two
Patroni 3.0.2 members running PostgreSQL 15, HAProxy's PostgreSQL listeners in front of them,
and a SeaweedFS filer on postgres2 through the read-write listener.

Situations a shared, healthy cluster cannot show without being broken for the other tests
(several leaders, a lagging replica, a paused cluster) are tested on the pure functions, with
/cluster payloads in the shape Patroni 3.0.2 produces (``patroni/utils.py`` ``cluster_as_json``,
the same shape as the fixture's real answers); they are marked as such below.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from storagectl.checks import all_checks, run_checks
from storagectl.checks.base import CheckResult, Findings
from storagectl.checks.postgres import (
    CHECKS,
    Member,
    MemberView,
    _answer_problems,
    _leadership_problems,
    _membership_problems,
    _replica_result,
    cluster_view,
    lag_bytes,
    match_members,
    parse_cluster,
    replica_ready,
    size,
)
from storagectl.inventory import load_topology
from support.common import write_inventory
from support.postgres import FILER_DB_PASSWORD, running_postgres_haproxy

if TYPE_CHECKING:
    from support.postgres import PatroniCluster, PostgresHAProxy
    from support.weed import WeedCluster

FreePorts = Callable[[int], list[int]]
MakeInventory = Callable[..., Path]


def verify(inventory: Path, project_root: Path, timeout: float = 10.0) -> list[CheckResult]:
    topology = load_topology([inventory], basedir=project_root)
    return run_checks(topology, CHECKS, timeout=timeout)


def by_name(results: list[CheckResult], name: str) -> list[CheckResult]:
    return [r for r in results if r.name == name]


def one(results: list[CheckResult], name: str) -> CheckResult:
    found = by_name(results, name)
    assert len(found) == 1, f"expected one {name!r} in {[(r.name, r.host) for r in results]}"
    return found[0]


def failures(results: list[CheckResult]) -> str:
    return "\n".join(f"{r.name} {r.host}: {r.detail} | {r.fix}" for r in results if not r.ok)


@pytest.fixture
def pg_inventory(
    patroni_cluster: PatroniCluster,
    postgres_lb: PostgresHAProxy,
    tmp_path: Path,
) -> Callable[..., Path]:
    """Factory writing an inventory of the Patroni members (pg1, pg2), lb1 for ``postgres_lb``
    and etcd1; ``members`` renames or replaces the members (name -> host vars), ``lb`` overrides
    lb1's vars, ``filers`` adds filer hosts, ``all_vars`` overrides cluster-wide variables."""

    def make(
        *,
        name: str = "pg",
        members: Mapping[str, Mapping[str, Any]] | None = None,
        lb: Mapping[str, Any] | None = None,
        filers: Mapping[str, Mapping[str, Any]] | None = None,
        all_vars: Mapping[str, Any] | None = None,
    ) -> Path:
        if members is None:
            members = {n: patroni_cluster.host_vars(n) for n in patroni_cluster.members}
        layout: dict[str, dict[str, Any]] = {
            "postgres": {n: dict(v) for n, v in members.items()},
            "etcd": {"etcd1": {"ansible_host": patroni_cluster.address}},
            "haproxy": {"lb1": {**postgres_lb.host_vars(), **dict(lb or {})}},
        }
        if filers:
            layout["seaweedfs_filer"] = {n: dict(v) for n, v in filers.items()}
        variables = {**patroni_cluster.all_vars(), **dict(all_vars or {})}
        return write_inventory(tmp_path / name, layout, all_vars=variables)

    return make


def no_password(results: list[CheckResult]) -> None:
    text = json.dumps([r.to_dict() for r in results])
    assert FILER_DB_PASSWORD not in text


# --- the real cluster -------------------------------------------------------------------------


def test_every_check_passes_on_a_healthy_cluster(
    patroni_cluster: PatroniCluster,
    postgres_lb: PostgresHAProxy,
    postgres_filer: tuple[int, int],
    pg_inventory: MakeInventory,
    project_root: Path,
) -> None:
    http, grpc = postgres_filer
    filer = {
        "ansible_host": "127.0.0.1",
        "seaweedfs_filer_port": http,
        "seaweedfs_filer_grpc_port": grpc,
        "seaweedfs_filer_store": "postgres2",
    }
    results = verify(pg_inventory(filers={"pgfiler1": filer}), project_root)
    assert not failures(results), failures(results)
    assert [(r.name, r.host) for r in results] == [
        ("patroni leader", ""),
        ("patroni replication", "pg2"),
        ("postgres rw endpoint", "lb1"),
        ("postgres ro endpoint", "lb1"),
        ("filer metadata in postgres", "pgfiler1"),
    ]
    assert all(r.component == "postgres" for r in results)
    api1, pg1 = patroni_cluster.members["pg1"]
    leader = one(results, "patroni leader")
    assert leader.detail == (
        "leader pg1, timeline 1; 2 member(s): pg1 leader running, pg2 replica running"
    )
    assert leader.endpoint == f"http://127.0.0.1:{api1}/cluster"
    replication = one(results, "patroni replication")
    # The replica streams: its lag is a small number of bytes (0 when it has caught up).
    assert re.match(
        r"replica of pg1, state (running|streaming), lag \d+(\.\d+)? (B|KiB)", replication.detail
    )
    assert "(max 16.0 MiB, patroni_max_lag_bytes)" in replication.detail
    rw = one(results, "postgres rw endpoint")
    assert rw.detail.startswith(
        f"primary pg1 (127.0.0.1:{pg1}) answers through 127.0.0.1:{postgres_lb.rw_port}, "
        "pg_is_in_recovery() = false"
    )
    assert rw.endpoint == f"postgresql://seaweedfs@127.0.0.1:{postgres_lb.rw_port}/seaweedfs"
    ro = one(results, "postgres ro endpoint")
    pg2 = patroni_cluster.members["pg2"][1]
    assert ro.detail.startswith(f"replica pg2 (127.0.0.1:{pg2}) answers through ")
    assert "pg_is_in_recovery() = true" in ro.detail
    metadata = one(results, "filer metadata in postgres")
    assert "/storagectl-verify/" in metadata.detail
    assert "written through pgfiler1 is a row of filemeta of postgresql://seaweedfs@" in (
        metadata.detail
    )
    assert "deleted" in metadata.detail
    assert metadata.endpoint == f"http://127.0.0.1:{http}/storagectl-verify/"
    no_password(results)


def test_all_checks_include_postgres_only_with_postgres_hosts(
    haproxy_lb: Any,
    cluster_inventory: MakeInventory,
    pg_inventory: MakeInventory,
    project_root: Path,
) -> None:
    without = load_topology([cluster_inventory(haproxy=haproxy_lb)], basedir=project_root)
    assert run_checks(without, CHECKS) == []
    with_pg = load_topology([pg_inventory()], basedir=project_root)
    names = [r.name for r in run_checks(with_pg, all_checks(["postgres"]), timeout=10)]
    assert names == [
        "patroni leader",
        "patroni replication",
        "postgres rw endpoint",
        "postgres ro endpoint",
    ]  # no filer on postgres2: no metadata check


def test_members_named_otherwise_are_matched_by_their_rest_api(
    patroni_cluster: PatroniCluster, pg_inventory: MakeInventory, project_root: Path
) -> None:
    members = {"db-a": patroni_cluster.host_vars("pg1"), "db-b": patroni_cluster.host_vars("pg2")}
    results = verify(pg_inventory(members=members), project_root)
    assert not failures(results), failures(results)
    assert one(results, "patroni leader").detail.startswith(
        "leader db-a (pg1), timeline 1; 2 member(s): db-a (pg1) leader running, "
        "db-b (pg2) replica running"
    )
    assert one(results, "patroni replication").host == "db-b"
    assert one(results, "postgres rw endpoint").detail.startswith("primary db-a (127.0.0.1:")


def test_a_member_that_is_down_is_named(
    patroni_cluster: PatroniCluster,
    pg_inventory: MakeInventory,
    project_root: Path,
    free_ports: FreePorts,
) -> None:
    api, pg = free_ports(2)
    members = {
        **{n: patroni_cluster.host_vars(n) for n in patroni_cluster.members},
        "pg3": {"ansible_host": "127.0.0.1", "patroni_restapi_port": api, "postgresql_port": pg},
    }
    results = verify(pg_inventory(members=members), project_root)
    leader = one(results, "patroni leader")
    assert not leader.ok
    assert f"pg3: http://127.0.0.1:{api} GET /patroni: connection refused" in leader.detail
    assert "pg3 is not a member of cluster storagectl" in leader.detail
    assert leader.detail.endswith("[pg1 leader running, pg2 replica running]")
    assert "Start Patroni on pg3; look on pg3: systemctl status patroni;" in leader.fix
    assert "journalctl -u patroni -n 100" in leader.fix
    assert leader.fix.count("Start Patroni on pg3") == 1
    replication = {r.host: r for r in by_name(results, "patroni replication")}
    assert replication["pg2"].ok
    assert not replication["pg3"].ok
    assert replication["pg3"].detail.startswith("not a member of the cluster")
    assert "on pg3: systemctl status patroni" in replication["pg3"].fix


def test_a_member_of_another_scope_is_refused(
    pg_inventory: MakeInventory, project_root: Path
) -> None:
    results = verify(pg_inventory(all_vars={"patroni_scope": "other"}), project_root)
    leader = one(results, "patroni leader")
    assert not leader.ok
    assert "pg1 is a member of cluster 'storagectl', not 'other'" in leader.detail
    assert "Render scope other (patroni_scope) into its patroni.yml; look on pg1" in leader.fix


def test_a_single_member_has_no_replication_or_ro_check(
    patroni_cluster: PatroniCluster, pg_inventory: MakeInventory, project_root: Path
) -> None:
    results = verify(pg_inventory(members={"pg1": patroni_cluster.host_vars("pg1")}), project_root)
    assert [r.name for r in results] == ["patroni leader", "postgres rw endpoint"]
    leader = one(results, "patroni leader")
    # pg2 runs but is not in this inventory: an unknown member is a problem.
    assert not leader.ok
    assert "replica pg2 (127.0.0.1:" in leader.detail
    assert "is not a postgres host of the inventory" in leader.detail
    assert one(results, "postgres rw endpoint").ok


def test_wrong_password_is_reported_without_the_password(
    pg_inventory: MakeInventory, project_root: Path
) -> None:
    wrong = "not-the-password-0123"
    results = verify(pg_inventory(all_vars={"seaweedfs_filer_db_password": wrong}), project_root)
    rw = one(results, "postgres rw endpoint")
    assert not rw.ok
    assert 'password authentication failed for user "seaweedfs"' in rw.detail
    assert "seaweedfs_filer_db_password" in rw.fix
    assert wrong not in json.dumps([r.to_dict() for r in results])
    assert not one(results, "postgres ro endpoint").ok


def test_unset_password_is_reported(pg_inventory: MakeInventory, project_root: Path) -> None:
    results = verify(pg_inventory(all_vars={"seaweedfs_filer_db_password": ""}), project_root)
    rw = one(results, "postgres rw endpoint")
    assert not rw.ok
    assert rw.detail == "seaweedfs_filer_db_password is not set"


def test_closed_listener_names_haproxy(
    pg_inventory: MakeInventory, project_root: Path, free_ports: FreePorts
) -> None:
    (closed,) = free_ports(1)
    results = verify(pg_inventory(lb={"haproxy_postgres_rw_port": closed}), project_root)
    rw = one(results, "postgres rw endpoint")
    assert not rw.ok
    assert "Connection refused" in rw.detail
    assert f"Nothing listens on 127.0.0.1:{closed}" in rw.fix
    assert "on lb1: systemctl status haproxy" in rw.fix
    assert rw.endpoint == f"postgresql://seaweedfs@127.0.0.1:{closed}/seaweedfs"


def test_swapped_listeners_are_caught(
    postgres_lb: PostgresHAProxy, pg_inventory: MakeInventory, project_root: Path
) -> None:
    swapped = {
        "haproxy_postgres_rw_port": postgres_lb.ro_port,
        "haproxy_postgres_ro_port": postgres_lb.rw_port,
    }
    results = verify(pg_inventory(lb=swapped), project_root)
    rw = one(results, "postgres rw endpoint")
    assert not rw.ok
    assert rw.detail.startswith("replica pg2 (127.0.0.1:")
    assert rw.detail.endswith("it should route to the Patroni primary")
    assert "option httpchk OPTIONS /primary" in rw.fix
    ro = one(results, "postgres ro endpoint")
    assert not ro.ok
    assert ro.detail.startswith("primary pg1 (127.0.0.1:")
    assert "option httpchk OPTIONS /replica" in ro.fix


def test_no_server_up_behind_the_listener(
    patroni_cluster: PatroniCluster,
    pg_inventory: MakeInventory,
    project_root: Path,
    free_ports: FreePorts,
    tmp_path: Path,
) -> None:
    closed = free_ports(4)
    dead = {"pg1": (closed[0], closed[1]), "pg2": (closed[2], closed[3])}
    with running_postgres_haproxy(patroni_cluster, tmp_path / "haproxy", dead) as lb:
        results = verify(pg_inventory(lb=lb.host_vars()), project_root)
    rw = one(results, "postgres rw endpoint")
    assert not rw.ok
    assert "server closed the connection unexpectedly" in rw.detail
    assert "HAProxy on lb1 has no UP server for" in rw.fix
    assert "option httpchk OPTIONS /primary" in rw.fix
    assert "systemctl status patroni" in rw.fix
    assert "systemctl status haproxy" in rw.fix


def test_filers_not_on_postgres2_are_caught(
    weed_cluster: WeedCluster,
    postgres_filer: tuple[int, int],
    pg_inventory: MakeInventory,
    project_root: Path,
) -> None:
    # The loopback cluster's filers keep leveldb2 stores, whatever the inventory claims; the
    # postgres2 filer has created filemeta, so the lookup finds the table but not their files.
    filers = {
        name: {
            "ansible_host": weed_cluster.address,
            "seaweedfs_filer_port": ports[0],
            "seaweedfs_filer_store": "postgres2",
        }
        for name, ports in weed_cluster.filers.items()
    }
    results = by_name(
        verify(pg_inventory(filers=filers), project_root), "filer metadata in postgres"
    )
    assert [r.host for r in results] == ["filer1", "filer2"]
    for result in results:
        assert not result.ok
        assert "has no row named" in result.detail
        assert "(read back identical)" in result.detail
        assert "[postgres2] enabled and [leveldb2] disabled" in result.fix
        assert f"on {result.host}: journalctl -u seaweedfs-filer" in result.fix
    leveldb = {n: {**v, "seaweedfs_filer_store": "leveldb2"} for n, v in filers.items()}
    results = verify(pg_inventory(name="leveldb", filers=leveldb), project_root)
    assert not by_name(results, "filer metadata in postgres")


# --- pure functions, on payloads in Patroni 3.0.2's shape --------------------------------------

# Shapes as patroni/utils.py cluster_as_json (v3.0.2) builds them; the healthy one is what the
# fixture's real cluster answers.
HEALTHY = {
    "members": [
        {
            "name": "pg1",
            "role": "leader",
            "state": "running",
            "api_url": "http://10.0.0.11:8008/patroni",
            "host": "10.0.0.11",
            "port": 5432,
            "timeline": 3,
        },
        {
            "name": "pg2",
            "role": "sync_standby",
            "state": "streaming",
            "api_url": "http://10.0.0.12:8008/patroni",
            "host": "10.0.0.12",
            "port": 5432,
            "timeline": 3,
            "lag": 0,
        },
        {
            "name": "pg3",
            "role": "replica",
            "state": "running",
            "api_url": "http://10.0.0.13:8008/patroni",
            "host": "10.0.0.13",
            "port": 5432,
            "timeline": 3,
            "lag": "unknown",
        },
    ]
}


def test_parse_cluster() -> None:
    members = parse_cluster(HEALTHY)
    assert [(m.name, m.role, m.state, m.lag) for m in members] == [
        ("pg1", "leader", "running", None),
        ("pg2", "sync_standby", "streaming", 0),
        ("pg3", "replica", "running", "unknown"),
    ]
    assert members[0].leads
    assert members[1].api_netloc == "10.0.0.12:8008"
    assert lag_bytes(members[1]) == 0
    assert lag_bytes(members[2]) is None  # "unknown"
    assert replica_ready(members[1])
    assert replica_ready(members[2])
    assert not replica_ready(members[0])
    assert not replica_ready(None)
    with pytest.raises(ValueError, match="no members list"):
        parse_cluster({"state": "running"})
    with pytest.raises(ValueError, match="without a name"):
        parse_cluster({"members": [{"role": "leader"}]})


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (16 * 1024 * 1024, "16.0 MiB")],
)
def test_size(n: int, text: str) -> None:
    assert size(n) == text


def test_lagging_and_unknown_replicas_fail(tmp_path: Path, project_root: Path) -> None:
    """Pure: _replica_result on members in Patroni's shape (lag cannot be made on demand)."""
    inventory = write_inventory(
        tmp_path / "inv", {"postgres": {"pg2": {"ansible_host": "10.0.0.12"}}}
    )
    host = load_topology([inventory], basedir=project_root).hosts["pg2"]
    view = MemberView(host=host, url="http://10.0.0.12:8008", patroni={"state": "running"})
    behind = Member("pg2", "replica", "running", lag=17 * 1024 * 1024)
    result = _replica_result(host, behind, view, leader="pg1", max_lag=16 * 1024 * 1024)
    assert not result.ok
    assert result.detail == (
        "replica of pg1, state running, lag 17.0 MiB (max 16.0 MiB, patroni_max_lag_bytes)"
    )
    assert "pg_stat_replication on pg1" in result.fix
    assert "on pg2: journalctl -u patroni" in result.fix
    unknown = Member("pg2", "replica", "running", lag="unknown")
    result = _replica_result(host, unknown, view, leader="pg1", max_lag=1)
    assert not result.ok
    assert "lag unknown" in result.detail
    stopped = MemberView(host=host, url=view.url, patroni={"state": "stopped"})
    result = _replica_result(
        host, Member("pg2", "replica", "running", lag=0), stopped, leader="pg1", max_lag=1
    )
    assert not result.ok
    assert result.detail == "replica of pg1 in state stopped"
    assert "patronictl -c <patroni.yml> reinit <scope> pg2" in result.fix


def test_leadership_problems(tmp_path: Path, project_root: Path) -> None:
    """Pure: no leader, two leaders, a paused cluster, members disagreeing (payloads as above)."""
    hosts = {f"pg{i}": {"ansible_host": f"10.0.0.1{i}"} for i in (1, 2, 3)}
    inventory = write_inventory(tmp_path / "inv", {"postgres": hosts, "etcd": hosts})
    topology = load_topology([inventory], basedir=project_root)
    members = topology.group("postgres")

    def views(*bodies: dict[str, Any]) -> list[MemberView]:
        return [
            MemberView(
                host=h,
                url=f"http://{h.address}:8008",
                patroni={"state": "running", "role": "replica"},
                members=parse_cluster(body),
                paused=bool(body.get("pause")),
            )
            for h, body in zip(members, bodies, strict=True)
        ]

    nobody = {"members": [{**m, "role": "replica"} for m in HEALTHY["members"]]}
    found = Findings()
    seen = views(nobody, nobody, nobody)
    _leadership_problems(topology, seen, seen[0], found)
    assert found.problems == ["no member holds the leader lock"]
    assert "etcd on pg1, pg2, pg3 (systemctl status etcd" in found.fixes[0]

    two = {"members": [{**m, "role": "leader"} for m in HEALTHY["members"][:2]]}
    found = Findings()
    seen = views(two, two, two)
    _leadership_problems(topology, seen, seen[0], found)
    assert found.problems == ["2 members claim the lead (pg1, pg2)"]
    assert "Split brain" in found.fixes[0]

    found = Findings()
    seen = views(HEALTHY, HEALTHY, nobody)
    assert cluster_view(seen) is seen[0]
    _leadership_problems(topology, seen, seen[0], found)
    assert found.problems[0] == (
        "members disagree on the leader (pg1 says pg1; pg2 says pg1; pg3 says none)"
    )
    # pg1's own /patroni says replica while it holds the lock.
    assert found.problems[1] == "pg1 holds the leader lock but its PostgreSQL is replica (running)"

    found = Findings()
    paused = {**HEALTHY, "pause": True}
    seen = views(paused, paused, paused)
    _membership_problems(topology, seen[0], found)
    assert found.problems == ["the cluster is paused (maintenance mode: no automatic failover)"]
    assert "patronictl -c <patroni.yml> resume" in found.fixes[0]


def test_match_members_by_name_then_rest_api(tmp_path: Path, project_root: Path) -> None:
    hosts = {"pg1": {"ansible_host": "10.0.0.11"}, "db-b": {"ansible_host": "10.0.0.12"}}
    inventory = write_inventory(tmp_path / "inv", {"postgres": hosts})
    topology = load_topology([inventory], basedir=project_root)
    matched = match_members(parse_cluster(HEALTHY), topology.group("postgres"))
    assert {h: m.name for h, m in matched.items()} == {"pg1": "pg1", "db-b": "pg2"}


def test_a_member_that_cannot_list_the_cluster_points_at_etcd(
    tmp_path: Path, project_root: Path
) -> None:
    """Pure: /patroni answers, /cluster does not (Patroni cannot read etcd)."""
    hosts = {"pg1": {"ansible_host": "10.0.0.11"}}
    inventory = write_inventory(tmp_path / "inv", {"postgres": hosts, "etcd": hosts})
    topology = load_topology([inventory], basedir=project_root)
    (host,) = topology.group("postgres")
    view = MemberView(
        host=host,
        url="http://10.0.0.11:8008",
        patroni={"state": "running", "role": "replica"},
        error="GET /cluster: HTTP 503",
    )
    found = Findings()
    _answer_problems(topology, [view], found)
    assert found.problems == ["pg1: http://10.0.0.11:8008 GET /cluster: HTTP 503"]
    assert found.fixes == [
        "Patroni on pg1 answers but cannot list the cluster: check that it reaches etcd on pg1 "
        "(systemctl status etcd; etcdctl endpoint health); look on pg1: systemctl status "
        "patroni; journalctl -u patroni -n 100."
    ]
