"""The inventory rules (storagectl.inventory.validate) on small inventories written to tmp_path.

Inventories are loaded with load_topology against a project whose role defaults are written here
(the SeaweedFS contract: groups, ports, placement, slots), so the rules are tested independently
of the real roles; one test runs against the real project too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from storagectl.inventory import load_topology
from storagectl.inventory.validate import PORTS, Problem, validate

STORAGE = ("seaweedfs_master", "seaweedfs_volume", "seaweedfs_filer")
KEYS = {"seaweedfs_s3_access_key": "AKIDTEST01", "seaweedfs_s3_secret_key": "never-print-me-0123"}
PLACEMENT = "seaweedfs_default_replica_placement"

Hosts = dict[str, tuple[Sequence[str], dict[str, Any]]]

# Three storage hosts on two racks of one data center, one edge host running the S3 gateway.
GOOD: Hosts = {
    "s1": (STORAGE, {"seaweedfs_rack": "rack1"}),
    "s2": (STORAGE, {"seaweedfs_rack": "rack2"}),
    "s3": (STORAGE, {"seaweedfs_rack": "rack1"}),
    "edge": (("seaweedfs_s3",), {}),
}


@pytest.fixture
def project(project_root: Path) -> Path:
    """A copy of the project's group_vars and role defaults: the rules read every default from
    the roles, as a run does, and a test may change its copy."""
    return project_root


def _check(
    tmp_path: Path,
    project: Path | None,
    hosts: Hosts,
    all_vars: dict[str, Any] | None = None,
    *,
    all_vars_yaml: str = "",
    extra_vars: Sequence[str] = (),
) -> list[Problem]:
    """Write the inventory (``all_vars_yaml`` is written as is, for YAML typing pitfalls)."""
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True, exist_ok=True)
    groups: dict[str, dict[str, None]] = {}
    for name, (member_of, _) in hosts.items():
        for group in member_of:
            groups.setdefault(group, {})[name] = None
    document = {
        "all": {
            "vars": {**KEYS, **(all_vars or {})},
            "hosts": {name: dict(variables) for name, (_, variables) in hosts.items()},
            "children": {group: {"hosts": members} for group, members in groups.items()},
        }
    }
    (inventory / "hosts.yml").write_text(yaml.safe_dump(document))
    (inventory / "group_vars" / "all.yml").write_text(all_vars_yaml or "{}\n")
    kwargs: dict[str, Any] = {"extra_vars": extra_vars}
    if project is not None:
        kwargs["basedir"] = project
    return validate(load_topology([inventory], **kwargs))


def _only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


def _with(hosts: Hosts, name: str, groups: Sequence[str] = (), **variables: Any) -> Hosts:
    """``hosts`` with host ``name`` added to ``groups`` and given ``variables``."""
    member_of, current = hosts.get(name, ((), {}))
    return {**hosts, name: ((*member_of, *groups), {**current, **variables})}


# --- a good inventory --------------------------------------------------------------------------


def test_good_inventory_passes(tmp_path: Path, project: Path) -> None:
    assert _check(tmp_path, project, GOOD) == []


def test_good_inventory_passes_with_the_real_role_defaults(tmp_path: Path) -> None:
    assert _check(tmp_path, None, GOOD) == []


def test_problem_reads_host_variable_message_fix() -> None:
    problem = Problem("lab-ha-2", "seaweedfs_rack", "is not defined.", "define it")
    assert str(problem) == "lab-ha-2: seaweedfs_rack: is not defined. Fix: define it"
    assert str(Problem(None, "x", "m", "f")) == "x: m. Fix: f"


# --- groups ----------------------------------------------------------------------------------


def test_masters_and_volume_servers_are_required(tmp_path: Path, project: Path) -> None:
    problems = _check(tmp_path, project, {"edge": (("seaweedfs_filer", "seaweedfs_s3"), {})})
    assert [p.variable for p in problems] == ["[seaweedfs_master]", "[seaweedfs_volume]"]
    assert "group seaweedfs_master has no hosts" in problems[0].message
    assert problems[0].fix == "put at least one host in group seaweedfs_master"


def test_s3_gateways_need_filers(tmp_path: Path, project: Path) -> None:
    hosts: Hosts = {name: (STORAGE[:2], v) for name, (_, v) in GOOD.items() if name != "edge"}
    problem = _only(_check(tmp_path, project, {**hosts, "edge": (("seaweedfs_s3",), {})}))
    assert problem.variable == "[seaweedfs_filer]"
    assert "S3 gateways (edge)" in problem.message


def test_group_variables_rename_nothing(tmp_path: Path, project: Path) -> None:
    """The playbooks target the groups by name: a ``<group>_group`` variable renames nothing."""
    hosts: Hosts = {
        name: (["storage" if g == "seaweedfs_master" else g for g in groups], variables)
        for name, (groups, variables) in GOOD.items()
    }
    problems = _check(tmp_path, project, hosts, {"seaweedfs_master_group": "storage"})
    assert problems[0].message.startswith("group seaweedfs_master has no hosts")


# --- master count ----------------------------------------------------------------------------


def test_two_masters_are_refused(tmp_path: Path, project: Path) -> None:
    hosts = {**GOOD, "s3": (("seaweedfs_volume", "seaweedfs_filer"), GOOD["s3"][1])}
    problem = _only(_check(tmp_path, project, hosts))
    assert problem.host is None
    assert problem.variable == "[seaweedfs_master]"
    assert "seaweedfs_master has 2 hosts (s1, s2)" in problem.message
    assert "odd number" in problem.message
    assert problem.fix == "add or remove one host in group seaweedfs_master"


def test_one_and_five_masters_pass(tmp_path: Path, project: Path) -> None:
    single: Hosts = {"solo": ((*STORAGE, "seaweedfs_s3"), {})}
    assert _check(tmp_path / "one", project, single, {PLACEMENT: "000"}) == []
    five = {**GOOD, **{f"m{i}": (("seaweedfs_master",), {}) for i in range(2)}}
    assert _check(tmp_path / "five", project, five) == []


# --- replica placement -----------------------------------------------------------------------


def test_rack_placement_with_one_rack_is_refused(tmp_path: Path, project: Path) -> None:
    one_rack = {name: (groups, {}) for name, (groups, _) in GOOD.items()}
    problem = _only(_check(tmp_path, project, one_rack, {PLACEMENT: "010"}))
    assert problem.variable == PLACEMENT
    assert '"010" keeps 1 copy on other racks of the same data center' in problem.message
    assert "at least 2 racks" in problem.message
    assert "racks: dc1/rack1 = [s1, s2, s3]" in problem.message
    assert "seaweedfs_rack" in problem.fix


def test_rack_placement_with_two_racks_passes(tmp_path: Path, project: Path) -> None:
    assert _check(tmp_path, project, GOOD, {PLACEMENT: "010"}) == []


def test_data_center_placement_with_one_data_center_is_refused(
    tmp_path: Path, project: Path
) -> None:
    problem = _only(_check(tmp_path, project, GOOD, {PLACEMENT: "100"}))
    assert '"100" keeps 1 copy in other data centers' in problem.message
    assert "at least 2 data centers" in problem.message
    assert "data centers: dc1 = [s1, s2, s3]" in problem.message
    assert "seaweedfs_data_center" in problem.fix


def test_data_center_placement_with_two_data_centers_passes(tmp_path: Path, project: Path) -> None:
    hosts = _with(GOOD, "s3", seaweedfs_data_center="dc2")
    assert _check(tmp_path, project, hosts, {PLACEMENT: "100"}) == []


def test_same_rack_placement_with_one_volume_server_is_refused(
    tmp_path: Path, project: Path
) -> None:
    hosts: Hosts = {"solo": ((*STORAGE, "seaweedfs_s3"), {})}
    problem = _only(_check(tmp_path, project, hosts))  # the default placement is "001"
    assert '"001" keeps 1 copy on other servers of the same rack' in problem.message
    assert "a rack needs at least 2 volume servers" in problem.message
    assert "racks: dc1/rack1 = [solo]" in problem.message


def test_same_rack_placement_needs_two_servers_in_one_rack(tmp_path: Path, project: Path) -> None:
    spread = _with(GOOD, "s3", seaweedfs_rack="rack3")  # three racks of one server each
    problem = _only(_check(tmp_path, project, spread))
    assert "racks: dc1/rack1 = [s1], dc1/rack2 = [s2], dc1/rack3 = [s3]" in problem.message


def test_unquoted_placement_is_refused(tmp_path: Path, project: Path) -> None:
    yaml_text = f"{PLACEMENT}: 001\n"  # YAML reads this as the integer 1
    problem = _only(_check(tmp_path, project, GOOD, all_vars_yaml=yaml_text))
    assert problem.variable == PLACEMENT
    assert problem.message.startswith("is the number 1, not three digits")
    assert "quoted" in problem.fix


def test_malformed_placement_is_refused(tmp_path: Path, project: Path) -> None:
    problem = _only(_check(tmp_path, project, GOOD, extra_vars=[f"{PLACEMENT}=01"]))
    assert problem.message == "is '01', not three digits XYZ"


# --- volume slots ----------------------------------------------------------------------------


def test_too_few_volume_slots_are_refused(tmp_path: Path, project: Path) -> None:
    problem = _only(_check(tmp_path, project, GOOD, {"seaweedfs_volume_max": 4}))
    assert problem.host is None
    assert problem.variable == "seaweedfs_volume_max"
    assert "have 12 volume slots (s1 4 x 1 dir, s2 4 x 1 dir, s3 4 x 1 dir)" in problem.message
    assert "need 6 x 2 x 2 = 24" in problem.message  # "001": 2 copies, grown 6 at a time


def test_volume_slots_count_every_directory(tmp_path: Path, project: Path) -> None:
    more_dirs = {"seaweedfs_volume_max": 4, "seaweedfs_volume_dirs": ["/d1", "/d2"]}
    assert _check(tmp_path, project, GOOD, more_dirs) == []  # 3 x 4 x 2 = 24


def test_single_copy_grows_seven_volumes(tmp_path: Path, project: Path) -> None:
    hosts: Hosts = {"solo": ((*STORAGE, "seaweedfs_s3"), {})}
    small = {PLACEMENT: "000", "seaweedfs_volume_max": 10}  # the -max=10 of the HTTP 500 report
    problem = _only(_check(tmp_path, project, hosts, small))
    assert "need 7 x 1 x 2 = 14" in problem.message


def test_bad_volume_max_is_refused(tmp_path: Path, project: Path) -> None:
    hosts = _with(GOOD, "s2", seaweedfs_volume_max="lots")
    problem = _only(_check(tmp_path, project, hosts))
    assert (problem.host, problem.variable) == ("s2", "seaweedfs_volume_max")


# --- S3 credentials --------------------------------------------------------------------------


def test_missing_s3_secret_is_refused_without_printing_any_key(
    tmp_path: Path, project: Path
) -> None:
    # The inventory-wide keys are overridden on edge2: empty secret, access key too short.
    hosts = _with(
        _with(GOOD, "edge2", ["seaweedfs_s3"]),
        "edge2",
        seaweedfs_s3_secret_key="",
        seaweedfs_s3_access_key="ab",
    )
    problems = _check(tmp_path, project, hosts)
    assert [(p.host, p.variable, p.message) for p in problems] == [
        ("edge2", "seaweedfs_s3_access_key", "is shorter than 3 characters"),
        ("edge2", "seaweedfs_s3_secret_key", "is not set"),
    ]
    assert "Ansible Vault" in problems[1].fix
    shown = "\n".join(f"{p}\n{p!r}" for p in problems)
    assert KEYS["seaweedfs_s3_secret_key"] not in shown
    assert KEYS["seaweedfs_s3_access_key"] not in shown


def test_short_s3_secret_is_refused(tmp_path: Path, project: Path) -> None:
    problem = _only(_check(tmp_path, project, GOOD, {"seaweedfs_s3_secret_key": "Zq9#x"}))
    assert str(problem).startswith(
        "edge: seaweedfs_s3_secret_key: is shorter than 8 characters. Fix: "
    )
    assert "Zq9#x" not in f"{problem}{problem!r}"


# --- PostgreSQL HA: etcd, Patroni, the filers' postgres2 store --------------------------------

PG_SECRETS = {
    "patroni_superuser_password": "never-print-super-0",
    "patroni_replication_password": "never-print-repl-0",
    "patroni_rewind_password": "never-print-rewind-0",
    "seaweedfs_filer_db_password": "NeverPrintFiler0",
}
PG_CORE = (*STORAGE, "seaweedfs_s3", "etcd", "postgres")
# The ha lab's layout: etcd, PostgreSQL and the S3 gateways on the three storage hosts, HAProxy
# on the edge host.
PG_HOSTS: Hosts = {
    "s1": (PG_CORE, {"seaweedfs_rack": "rack1"}),
    "s2": (PG_CORE, {"seaweedfs_rack": "rack2"}),
    "s3": (PG_CORE, {"seaweedfs_rack": "rack1"}),
    "edge": (("haproxy",), {}),
}
POSTGRES2 = {**PG_SECRETS, "seaweedfs_filer_store": "postgres2"}


def _assert_no_password(problems: list[Problem]) -> None:
    shown = "\n".join(f"{p}\n{p!r}" for p in problems)
    for value in PG_SECRETS.values():
        assert value not in shown


def test_postgres_ha_inventory_passes(tmp_path: Path, project: Path) -> None:
    assert _check(tmp_path, project, PG_HOSTS, POSTGRES2) == []


def test_postgres_ha_inventory_passes_with_the_real_role_defaults(tmp_path: Path) -> None:
    assert _check(tmp_path, None, PG_HOSTS, POSTGRES2) == []


@pytest.mark.parametrize("members", [1, 2, 4])
def test_etcd_needs_an_odd_count_of_at_least_three(
    tmp_path: Path, project: Path, members: int
) -> None:
    hosts = {name: (STORAGE if name.startswith("s") else g, v) for name, (g, v) in GOOD.items()}
    names = [f"e{i}" for i in range(members)]
    hosts.update({name: (("etcd",), {}) for name in names})
    problem = _only(_check(tmp_path, project, hosts))
    assert (problem.host, problem.variable) == (None, "[etcd]")
    assert f"group etcd has {members} host" in problem.message
    assert f"({', '.join(names)})" in problem.message
    assert "odd number of members, at least 3" in problem.message
    assert problem.fix == "put 3 or 5 hosts in group etcd (the PostgreSQL hosts may carry them)"


def test_postgres_needs_etcd(tmp_path: Path, project: Path) -> None:
    hosts = {n: (tuple(g for g in groups if g != "etcd"), v) for n, (groups, v) in PG_HOSTS.items()}
    problem = _only(_check(tmp_path, project, hosts, PG_SECRETS))
    assert (problem.host, problem.variable) == (None, "[etcd]")
    assert "group postgres has hosts (s1, s2, s3), but group etcd has none" in problem.message


def test_missing_patroni_passwords_are_refused_without_printing_any(
    tmp_path: Path, project: Path
) -> None:
    hosts = _with(PG_HOSTS, "s2", patroni_replication_password="", patroni_superuser_password="abc")
    problems = _check(tmp_path, project, hosts, PG_SECRETS)
    assert [(p.host, p.variable, p.message) for p in problems] == [
        ("s2", "patroni_superuser_password", "is shorter than 8 characters"),
        ("s2", "patroni_replication_password", "is not set"),
    ]
    assert "Ansible Vault" in problems[0].fix
    assert "at least 8 characters" in problems[0].fix
    _assert_no_password(problems)


def test_every_patroni_password_is_required(tmp_path: Path, project: Path) -> None:
    secrets = {k: v for k, v in PG_SECRETS.items() if k != "patroni_rewind_password"}
    problems = _check(tmp_path, project, PG_HOSTS, secrets)
    assert [(p.host, p.variable) for p in problems] == [
        (host, "patroni_rewind_password") for host in ("s1", "s2", "s3")
    ]


def test_postgres2_needs_the_filer_password(tmp_path: Path, project: Path) -> None:
    variables = {k: v for k, v in POSTGRES2.items() if k != "seaweedfs_filer_db_password"}
    problems = _check(tmp_path, project, PG_HOSTS, variables)
    assert [(p.host, p.variable, p.message) for p in problems] == [
        *((h, "seaweedfs_filer_db_password", "is not set") for h in ("s1", "s2", "s3")),
        *(
            (
                h,
                "seaweedfs_filer_db_password",
                "is not set, but the patroni role creates the filers' role with it",
            )
            for h in ("s1", "s2", "s3")
        ),
    ]
    assert "group_vars/all" in problems[0].fix
    assert "Ansible Vault" in problems[0].fix


@pytest.mark.parametrize(
    "password", ["has space-0123", "quote'0123456", "dollar$0123456", "b\\ack0123"]
)
def test_filer_password_must_fit_an_unquoted_connection_string(
    tmp_path: Path, project: Path, password: str
) -> None:
    variables = {**POSTGRES2, "seaweedfs_filer_db_password": password}
    problems = _check(tmp_path, project, PG_HOSTS, variables)
    assert {(p.variable, p.message) for p in problems} == {
        ("seaweedfs_filer_db_password", "contains a space, a quote, a backslash, $ or a backtick")
    }
    assert "not quoted" in problems[0].fix
    assert all(password not in f"{p}{p!r}" for p in problems)


def test_postgres_hosts_must_see_the_filers_password(tmp_path: Path, project: Path) -> None:
    hosts = _with(PG_HOSTS, "edge")
    for name in ("s1", "s2", "s3"):  # the filers' value on the filers only, another on s3
        hosts = _with(hosts, name, seaweedfs_filer_db_password="FilerOnly0123")
    hosts = _with(hosts, "s3", ["seaweedfs_filer"], seaweedfs_filer_db_password="Another0123")
    problems = _check(tmp_path, project, hosts, POSTGRES2)
    assert [(p.host, p.variable, p.message) for p in problems] == [
        ("s3", "seaweedfs_filer_db_password", "differs from the one the filers use (s1)")
    ]
    assert problems[0].fix.startswith("set seaweedfs_filer_db_password once in group_vars/all")
    assert "FilerOnly0123" not in str(problems[0])
    assert "Another0123" not in str(problems[0])


def test_postgres_hosts_must_see_the_filers_database_name(tmp_path: Path, project: Path) -> None:
    hosts = _with(PG_HOSTS, "s2", seaweedfs_filer_db_user="other")
    problems = _check(tmp_path, project, hosts, POSTGRES2)
    assert [(p.host, p.variable, p.message) for p in problems] == [
        ("s2", "seaweedfs_filer_db_user", "is 'other', but the filers use 'seaweedfs' (s1)")
    ]


def test_postgres2_without_postgres_needs_an_explicit_database_host(
    tmp_path: Path, project: Path
) -> None:
    hosts = {**GOOD, "s1": (STORAGE, {"seaweedfs_rack": "rack1"})}
    problems = _check(tmp_path, project, hosts, POSTGRES2)
    assert [(p.host, p.variable) for p in problems] == [
        (h, "seaweedfs_filer_db_host") for h in ("s1", "s2", "s3")
    ]
    assert "group postgres has no hosts" in problems[0].message
    assert "seaweedfs_filer_db_host is not set" in problems[0].message
    external = {**POSTGRES2, "seaweedfs_filer_db_host": "pg.example.net"}
    assert _check(tmp_path / "external", project, hosts, external) == []


def test_filers_share_one_store(tmp_path: Path, project: Path) -> None:
    hosts = _with(PG_HOSTS, "s2", seaweedfs_filer_store="leveldb2")
    problem = _only(_check(tmp_path, project, hosts, POSTGRES2))
    assert (problem.host, problem.variable) == (None, "seaweedfs_filer_store")
    assert problem.message == (
        "filers s1, s3 use postgres2 but s2 use leveldb2: the filers of one cluster must share "
        "one metadata store"
    )


def test_unknown_store_is_refused(tmp_path: Path, project: Path) -> None:
    problem = _only(_check(tmp_path, project, _with(GOOD, "s1", seaweedfs_filer_store="mysql")))
    assert (problem.host, problem.variable) == ("s1", "seaweedfs_filer_store")
    assert problem.message == "is 'mysql', not a store the filer role knows"


def test_filer_pools_must_fit_max_connections(tmp_path: Path, project: Path) -> None:
    tight = {**POSTGRES2, "patroni_max_connections": 70, "seaweedfs_filer_db_max_open": 20}
    problem = _only(_check(tmp_path, project, PG_HOSTS, tight))
    assert (problem.host, problem.variable) == (None, "seaweedfs_filer_db_max_open")
    assert problem.message == (
        "the 3 postgres2 filers may open 60 connections (s1 20, s2 20, s3 20), but "
        "patroni_max_connections is 70 and 13 stay reserved (3 for superusers, 10 for Patroni, "
        "pg_rewind and administrators), leaving 57"
    )
    assert problem.fix.startswith(
        "lower seaweedfs_filer_db_max_open to at most 19, or raise patroni_max_connections to "
        "at least 73"
    )
    assert (
        _check(tmp_path / "fits", project, PG_HOSTS, {**tight, "patroni_max_connections": 73}) == []
    )


def test_filer_pool_sizes_must_be_numbers(tmp_path: Path, project: Path) -> None:
    hosts = _with(PG_HOSTS, "s3", seaweedfs_filer_db_max_open="many")
    problem = _only(_check(tmp_path, project, hosts, POSTGRES2))
    assert (problem.host, problem.variable) == ("s3", "seaweedfs_filer_db_max_open")


# --- ports -----------------------------------------------------------------------------------


def test_port_clash_is_refused(tmp_path: Path, project: Path) -> None:
    hosts = _with(GOOD, "edge", ["haproxy"], haproxy_s3_port=8333)
    problem = _only(_check(tmp_path, project, hosts))
    assert (problem.host, problem.variable) == ("edge", "haproxy_s3_port")
    assert problem.message == (
        "port 8333 is used by both SeaweedFS S3 gateway (seaweedfs_s3_port) "
        "and HAProxy (haproxy_s3_port)"
    )
    assert problem.fix.startswith("change haproxy_s3_port on edge")


def test_haproxy_defaults_clash_with_a_filer_on_the_same_host(
    tmp_path: Path, project: Path
) -> None:
    hosts = _with(GOOD, "s1", ["haproxy"])
    problems = _check(tmp_path, project, hosts)
    assert [(p.host, p.variable) for p in problems] == [
        ("s1", "haproxy_filer_port"),
        ("s1", "haproxy_filer_grpc_port"),
    ]
    assert "SeaweedFS filer gRPC (seaweedfs_filer_port + 10000)" in problems[1].message
    moved = _with(hosts, "s1", haproxy_filer_port=8889, haproxy_filer_grpc_port=18889)
    assert _check(tmp_path / "moved", project, moved) == []


def test_metrics_port_clashing_with_a_grpc_port(tmp_path: Path, project: Path) -> None:
    hosts = _with(GOOD, "s2", seaweedfs_volume_metrics_port=19333)
    problem = _only(_check(tmp_path, project, hosts))
    assert (problem.host, problem.variable) == ("s2", "seaweedfs_volume_metrics_port")
    assert "SeaweedFS master gRPC (seaweedfs_master_port + 10000)" in problem.message


def test_planned_components_use_their_default_ports(tmp_path: Path, project: Path) -> None:
    hosts = _with(GOOD, "s1", ["redis", "rustfs"], rustfs_console_port=6379)
    secrets = {
        "redis_password": "NeverPrintRedis0",
        "rustfs_access_key": "RUSTFSKEY01",
        "rustfs_secret_key": "NeverPrintRustfs0",
    }
    problem = _only(_check(tmp_path, project, hosts, secrets))
    assert problem.message == (
        "port 6379 is used by both Redis (redis_port) and RustFS (rustfs_console_port)"
    )


def test_haproxy_postgres_ports_only_with_postgres(tmp_path: Path, project: Path) -> None:
    hosts = _with(GOOD, "edge", ["haproxy"], haproxy_postgres_rw_port=8333, haproxy_s3_port=80)
    assert _check(tmp_path / "without", project, hosts) == []
    with_postgres = {**hosts, **{n: v for n, v in PG_HOSTS.items() if n != "edge"}}
    problem = _only(_check(tmp_path / "with", project, with_postgres, PG_SECRETS))
    assert (problem.host, problem.variable) == ("edge", "haproxy_postgres_rw_port")


@pytest.mark.parametrize("value", ["http", 0, 70000, True])
def test_ports_must_be_tcp_port_numbers(tmp_path: Path, project: Path, value: object) -> None:
    problem = _only(_check(tmp_path, project, _with(GOOD, "edge", seaweedfs_s3_port=value)))
    assert (problem.host, problem.variable) == ("edge", "seaweedfs_s3_port")
    assert problem.fix == "use a whole number from 1 to 65535"


def test_grpc_port_must_fit(tmp_path: Path, project: Path) -> None:
    problem = _only(_check(tmp_path, project, _with(GOOD, "edge", seaweedfs_s3_port=60000)))
    assert "gRPC port 60000 + 10000 is above 65535" in problem.message


def test_port_from_extra_vars_string(tmp_path: Path, project: Path) -> None:
    assert _check(tmp_path, project, GOOD, extra_vars=["seaweedfs_s3_port=9000"]) == []


def test_every_port_row_names_variables_of_its_component() -> None:
    for service in PORTS:
        prefix = {"postgres": ("patroni_", "postgresql_")}.get(service.group, (service.group,))
        assert all(p.variable.startswith(prefix) for p in service.ports), service


# --- variables that cannot be resolved --------------------------------------------------------


def test_unresolvable_variable_is_a_problem_not_a_crash(tmp_path: Path, project: Path) -> None:
    hosts = _with(GOOD, "s2", seaweedfs_rack="{{ rack_of[inventory_hostname] }}")
    problem = _only(_check(tmp_path, project, hosts))
    assert (problem.host, problem.variable) == ("s2", "seaweedfs_rack")
    assert problem.message.startswith("cannot be resolved: ")
    assert "rack_of" in problem.message


def test_unresolvable_secret_shows_no_detail(tmp_path: Path, project: Path) -> None:
    template = "{{ undefined_vault_lookup }}-never-print-me"
    hosts = _with(GOOD, "edge", seaweedfs_s3_secret_key=template)
    problem = _only(_check(tmp_path, project, hosts))
    assert (problem.host, problem.variable) == ("edge", "seaweedfs_s3_secret_key")
    assert problem.message == "cannot be resolved"
    assert "never-print-me" not in str(problem)


def test_undefined_required_variable(tmp_path: Path, project: Path) -> None:
    (project / "roles" / "seaweedfs_volume" / "defaults" / "main.yml").write_text(
        yaml.safe_dump({"seaweedfs_volume_dirs": ["/d"], "seaweedfs_volume_metrics_port": 0})
    )
    problem = _only(_check(tmp_path, project, GOOD))
    assert str(problem) == (
        "s1: seaweedfs_volume_max: is not defined. "
        "Fix: define it in the inventory (group_vars or host_vars)"
    )


# --- shared filesystem: Redis, RustFS, JuiceFS ------------------------------------------------

FS_SECRETS = {
    "redis_password": "NeverPrintRedis0",
    "rustfs_access_key": "RUSTFSKEY01",
    "rustfs_secret_key": "NeverPrintRustfs0",
}
# The ha lab's layout: one Redis (no Sentinel) on a storage host, HAProxy and the JuiceFS clients
# on the edge.
FS_HOSTS: Hosts = {
    "s1": ((*STORAGE, "seaweedfs_s3", "redis"), {"seaweedfs_rack": "rack1"}),
    "s2": ((*STORAGE, "seaweedfs_s3"), {"seaweedfs_rack": "rack2"}),
    "s3": ((*STORAGE, "seaweedfs_s3"), {"seaweedfs_rack": "rack1"}),
    "edge": (("haproxy", "juicefs_client"), {}),
}
SEAWEEDFS_BACKEND = {**FS_SECRETS, "juicefs_backend": "seaweedfs"}


def _assert_no_fs_secret(problems: list[Problem]) -> None:
    shown = "\n".join(f"{p}\n{p!r}" for p in problems)
    for value in FS_SECRETS.values():
        assert value not in shown


@pytest.mark.parametrize("project_dir", [True, False], ids=["test-defaults", "role-defaults"])
def test_juicefs_on_seaweedfs_passes(tmp_path: Path, project: Path, project_dir: bool) -> None:
    assert _check(tmp_path, project if project_dir else None, FS_HOSTS, SEAWEEDFS_BACKEND) == []


def test_juicefs_on_rustfs_passes(tmp_path: Path) -> None:
    hosts = _with(FS_HOSTS, "edge", ("rustfs",))
    assert _check(tmp_path, None, hosts, FS_SECRETS) == []


def test_missing_redis_password_is_refused(tmp_path: Path) -> None:
    variables = {k: v for k, v in SEAWEEDFS_BACKEND.items() if k != "redis_password"}
    problems = _check(tmp_path, None, FS_HOSTS, variables)
    assert {(p.host, p.variable) for p in problems} == {
        ("s1", "redis_password"),
        ("edge", "redis_password"),
    }
    assert all(p.message == "is not set" for p in problems)


def test_several_redis_hosts_without_sentinel_are_refused(tmp_path: Path) -> None:
    hosts = _with(FS_HOSTS, "s2", ("redis",))
    problem = _only(_check(tmp_path, None, hosts, SEAWEEDFS_BACKEND))
    assert (problem.host, problem.variable) == ("s2", "redis")
    assert "without Sentinel JuiceFS uses one Redis server (s1)" in problem.message
    assert problem.fix.startswith(
        "keep only s1 in group redis, or set redis_sentinel_enabled: true"
    )


def test_sentinel_on_three_redis_hosts_passes(tmp_path: Path) -> None:
    hosts = _with(_with(FS_HOSTS, "s2", ("redis",)), "s3", ("redis",))
    variables = {**SEAWEEDFS_BACKEND, "redis_sentinel_enabled": True}
    assert _check(tmp_path, None, hosts, variables) == []


def test_sentinel_on_two_redis_hosts_is_refused(tmp_path: Path) -> None:
    hosts = _with(FS_HOSTS, "s2", ("redis",))
    variables = {**SEAWEEDFS_BACKEND, "redis_sentinel_enabled": True}
    problem = _only(_check(tmp_path, None, hosts, variables))
    assert (problem.host, problem.variable) == ("s1", "redis_sentinel_enabled")
    assert "group redis has 2 host(s) (s1, s2): Sentinel needs at least 3" in problem.message
    assert "add hosts to group redis (3 or 5)" in problem.fix


def test_clients_that_disagree_on_sentinel_are_named(tmp_path: Path) -> None:
    hosts = _with(
        _with(_with(FS_HOSTS, "s2", ("redis",)), "s3", ("redis",)),
        "edge",
        redis_sentinel_enabled=False,
    )
    variables = {**SEAWEEDFS_BACKEND, "redis_sentinel_enabled": True}
    problem = _only(_check(tmp_path, None, hosts, variables))
    assert (problem.host, problem.variable) == ("edge", "redis_sentinel_enabled")
    assert problem.message == "is False here but True on s1"
    assert "set redis_sentinel_enabled once, in group_vars/all" in problem.fix


def test_sentinel_port_clash_is_refused(tmp_path: Path) -> None:
    hosts = _with(_with(FS_HOSTS, "s2", ("redis",)), "s3", ("redis",))
    variables = {
        **SEAWEEDFS_BACKEND,
        "redis_sentinel_enabled": True,
        "redis_sentinel_port": 6379,
    }
    problems = _check(tmp_path, None, hosts, variables)
    assert {(p.host, p.variable) for p in problems} == {
        (h, "redis_sentinel_port") for h in ("s1", "s2", "s3")
    }
    assert "used by both Redis (redis_port) and Redis Sentinel" in problems[0].message


def test_redis_password_with_a_quote_is_refused(tmp_path: Path) -> None:
    variables = {**SEAWEEDFS_BACKEND, "redis_password": "NeverPrint'Redis0"}
    problems = _check(tmp_path, None, FS_HOSTS, variables)
    assert problems
    assert all(p.variable == "redis_password" for p in problems)
    assert "NeverPrint'Redis0" not in "\n".join(map(str, problems))


def test_rustfs_backend_without_rustfs_hosts_names_juicefs_backend(tmp_path: Path) -> None:
    problem = _only(_check(tmp_path, None, FS_HOSTS, FS_SECRETS))
    assert (problem.host, problem.variable) == ("edge", "juicefs_backend")
    assert "group rustfs has no hosts" in problem.message
    assert "juicefs_backend: seaweedfs" in problem.fix


def test_missing_rustfs_keys_are_refused_without_printing_them(tmp_path: Path) -> None:
    hosts = _with(FS_HOSTS, "edge", ("rustfs",))
    variables = {**FS_SECRETS, "rustfs_secret_key": "short"}
    del variables["rustfs_access_key"]
    problems = _check(tmp_path, None, hosts, variables)
    assert {(p.variable, p.message) for p in problems} == {
        ("rustfs_access_key", "is not set"),
        ("rustfs_secret_key", "is shorter than 8 characters"),
    }
    assert "rustfsadmin" in problems[0].fix
    assert "short" not in "\n".join(f"{p}{p!r}" for p in problems).replace("shorter", "")


def test_seaweedfs_backend_needs_haproxy(tmp_path: Path) -> None:
    hosts = {**FS_HOSTS, "edge": (("juicefs_client",), {})}
    problem = _only(_check(tmp_path, None, hosts, SEAWEEDFS_BACKEND))
    assert (problem.variable, problem.host) == ("juicefs_backend", "edge")
    assert "group haproxy has no hosts" in problem.message


def test_external_backend_needs_an_endpoint_and_keys(tmp_path: Path) -> None:
    variables = {**FS_SECRETS, "juicefs_backend": "external"}
    problems = _check(tmp_path, None, FS_HOSTS, variables)
    assert {p.variable for p in problems} == {
        "juicefs_s3_endpoint",
        "juicefs_s3_access_key",
        "juicefs_s3_secret_key",
    }
    variables |= {
        "juicefs_s3_endpoint": "http://s3.example:9000",
        "juicefs_s3_access_key": "EXTKEY01",
        "juicefs_s3_secret_key": "NeverPrintExt0",
    }
    assert _check(tmp_path, None, FS_HOSTS, variables) == []


def test_unknown_backend_is_refused(tmp_path: Path) -> None:
    variables = {**FS_SECRETS, "juicefs_backend": "minio"}
    problem = _only(_check(tmp_path, None, FS_HOSTS, variables))
    assert problem.variable == "juicefs_backend"
    assert "'minio'" in problem.message


@pytest.mark.parametrize("name", ["ab", "-abc", "abc-", "ABC", "a_bc", "a" * 64])
def test_bad_volume_names_are_refused(tmp_path: Path, name: str) -> None:
    variables = {**SEAWEEDFS_BACKEND, "juicefs_volume_name": name}
    problem = _only(_check(tmp_path, None, FS_HOSTS, variables))
    assert (problem.host, problem.variable) == ("edge", "juicefs_volume_name")


def test_juicefs_clients_need_a_redis_host(tmp_path: Path) -> None:
    hosts = {
        name: (tuple(g for g in groups if g != "redis"), v)
        for name, (groups, v) in FS_HOSTS.items()
    }
    problem = _only(_check(tmp_path, None, hosts, SEAWEEDFS_BACKEND))
    assert problem.variable == "[redis]"


def test_fs_problems_never_show_a_secret(tmp_path: Path) -> None:
    hosts = {**FS_HOSTS, "edge": (("juicefs_client",), {})}
    _assert_no_fs_secret(_check(tmp_path, None, hosts, FS_SECRETS))


# --- values an operator types (inventory/values.py) --------------------------------------------


def test_two_hosts_on_one_storage_address_are_refused(tmp_path: Path, project: Path) -> None:
    hosts = _with(_with(GOOD, "s1", storage_address="10.0.0.5"), "s2", storage_address="10.0.0.5")
    problem = _only(_check(tmp_path, project, hosts))
    assert (problem.host, problem.variable) == ("s2", "storage_address")
    assert "the address of s1 too" in problem.message


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "*", "::"])  # noqa: S104 - an inventory value
def test_a_wildcard_storage_address_is_refused(
    tmp_path: Path, project: Path, wildcard: str
) -> None:
    problem = _only(_check(tmp_path, project, _with(GOOD, "s3", storage_address=wildcard)))
    assert (problem.host, problem.variable) == ("s3", "storage_address")
    assert "not a wildcard" in problem.message


def test_a_misspelt_group_is_refused(tmp_path: Path, project: Path) -> None:
    problems = _check(tmp_path, project, _with(GOOD, "c1", ("juicefs_clients",)))
    problem = _only(problems)
    assert problem.variable == "[juicefs_clients]"
    assert problem.fix == "rename group juicefs_clients to juicefs_client"
    assert _check(tmp_path, project, _with(GOOD, "x1", ("monitoring_extra",))) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("data", "not an absolute path"),
        ("/", "system directory"),
        ("/etc", "system directory"),
        ("/etc/", "system directory"),
        ("/data/../etc", "'..' are not allowed"),
    ],
)
def test_bad_juicefs_mountpoints_are_refused(tmp_path: Path, value: str, message: str) -> None:
    hosts = _with(FS_HOSTS, "edge", juicefs_mountpoint=value)
    problem = _only(_check(tmp_path, None, hosts, SEAWEEDFS_BACKEND))
    assert (problem.host, problem.variable) == ("edge", "juicefs_mountpoint")
    assert message in problem.message


@pytest.mark.parametrize(
    ("mounts", "variable", "message"),
    [
        ({"name": "a", "subdir": "/a", "mountpoint": "/srv/a"}, "juicefs_subdir_mounts", "dict"),
        (["/srv/a"], "juicefs_subdir_mounts[0]", "not a mapping"),
        (
            [{"name": "a", "subdir": "/../x", "mountpoint": "/srv/a"}],
            "juicefs_subdir_mounts[0]",
            "..",
        ),
        (
            [{"name": "a", "subdir": "/a", "mountpoint": "/data"}],
            "juicefs_subdir_mounts[0]",
            "second",
        ),
        (
            [{"name": "a", "subdir": "/a", "mountpoint": "/usr"}],
            "juicefs_subdir_mounts[0]",
            "system",
        ),
    ],
)
def test_bad_subdirectory_mounts_are_refused(
    tmp_path: Path, mounts: Any, variable: str, message: str
) -> None:
    hosts = _with(FS_HOSTS, "edge", juicefs_subdir_mounts=mounts)
    problem = _only(_check(tmp_path, None, hosts, SEAWEEDFS_BACKEND))
    assert problem.variable == variable
    assert message in problem.message


def test_a_sentinel_quorum_above_the_sentinels_is_refused(tmp_path: Path) -> None:
    hosts = _with(_with(FS_HOSTS, "s2", ("redis",)), "s3", ("redis",))
    variables = {**SEAWEEDFS_BACKEND, "redis_sentinel_enabled": True, "redis_sentinel_quorum": 4}
    problem = _only(_check(tmp_path, None, hosts, variables))
    assert (problem.host, problem.variable) == ("s1", "redis_sentinel_quorum")
    assert "there are 3 Sentinels" in problem.message
    assert "(2)" in problem.fix


def test_a_secret_with_a_quote_is_refused_once_without_its_value(
    tmp_path: Path, project: Path
) -> None:
    secret = 'never"print-me-0123'
    problem = _only(_check(tmp_path, project, GOOD, {**KEYS, "seaweedfs_s3_secret_key": secret}))
    assert (problem.host, problem.variable) == (None, "seaweedfs_s3_secret_key")
    assert secret not in str(problem)


def test_placeholders_and_rustfs_default_keys_are_refused(tmp_path: Path) -> None:
    variables = {
        **SEAWEEDFS_BACKEND,
        "redis_password": "CHANGE-ME-redis-0123",
        "rustfs_secret_key": "rustfsadmin",
    }
    hosts = _with(FS_HOSTS, "s3", ("rustfs",))
    problems = [p for p in _check(tmp_path, None, hosts, variables) if p.host is None]
    assert [(p.variable, p.message.split(",")[0]) for p in problems] == [
        ("redis_password", "is still a placeholder of the sample inventory"),
        ("rustfs_secret_key", "is RustFS's built-in default (rustfsadmin)"),
    ]
    assert all("CHANGE-ME-redis" not in str(p) for p in problems)


def test_rustfs_values_the_role_would_refuse_are_refused_first(tmp_path: Path) -> None:
    hosts = _with(
        FS_HOSTS,
        "s3",
        ("rustfs",),
        rustfs_bind_address="0.0.0.0",  # noqa: S104 - an inventory value
        rustfs_data_dirs=["relative/dir"],
    )
    variables = {**SEAWEEDFS_BACKEND, "rustfs_access_key": "key with space"}
    problems = [p for p in _check(tmp_path, None, hosts, variables) if p.host == "s3"]
    assert [p.variable for p in problems] == [
        "rustfs_access_key",
        "rustfs_bind_address",
        "rustfs_data_dirs",
    ]


def test_a_smaller_growth_batch_needs_fewer_slots(tmp_path: Path, project: Path) -> None:
    growth = {"copy_1": 7, "copy_2": 2, "copy_3": 3, "copy_other": 1}
    small = {"seaweedfs_volume_max": 4, "seaweedfs_master_volume_growth": growth}
    assert _check(tmp_path, project, GOOD, small) == []  # 2 x 2 x 2 = 8 <= 12


@pytest.mark.parametrize(
    "growth",
    [{"copy_1": 7}, {"copy_1": 7, "copy_2": 0, "copy_3": 3, "copy_other": 1}, "six", None],
)
def test_a_bad_growth_batch_is_refused(tmp_path: Path, project: Path, growth: object) -> None:
    problem = _only(_check(tmp_path, project, GOOD, {"seaweedfs_master_volume_growth": growth}))
    assert problem.variable == "seaweedfs_master_volume_growth"
    assert "copy_other" in problem.message
