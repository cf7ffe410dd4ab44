"""The pure parts of benchmarks/: leader parsing and mapping, ssh command lines, recap parsing.

benchmarks/ is not a package: its scripts are imported from their paths, with the directory on
``sys.path`` so they find ``_common`` as they do when run. Nothing here touches the network.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from storagectl.checks.redis import REDIS, SentinelView
from storagectl.inventory import Topology
from storagectl.lab import topology as topo
from storagectl.lab.inventory import ssh_common_args, write_inventory

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _import(name: str) -> ModuleType:
    """benchmarks/<name>.py as module ``name``."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


failover = _import("master_failover")
deploy_time = _import("deploy_time")
common = _import("_common")


@pytest.fixture(scope="module")
def ha_topology(tmp_path_factory: pytest.TempPathFactory) -> Topology:
    """The ha lab's inventory (4 storage hosts), written and loaded; no host is contacted."""
    inv = tmp_path_factory.mktemp("bench") / "lab"
    write_inventory(
        inv,
        topology="ha",
        specs=topo.machines("ha", 4),
        key=Path("/lab/id_ed25519"),
        s3_secrets={"seaweedfs_s3_access_key": "A" * 20, "seaweedfs_s3_secret_key": "b" * 40},
    )
    return common.load(inv)


# --- master failover ------------------------------------------------------------------------


LEADER_1 = {"IsLeader": True, "Leader": "10.213.0.11:9333.19333", "Peers": ["10.213.0.12:9333"]}
FOLLOWS_1 = {"Leader": "10.213.0.11:9333.19333", "Peers": ["10.213.0.11:9333"]}


@pytest.mark.parametrize(
    ("status", "address"),
    [
        ({"Leader": "10.213.0.11:9333.19333"}, "10.213.0.11:9333"),
        ({"Leader": "10.213.0.11:9333"}, "10.213.0.11:9333"),
        ({"Leader": ""}, ""),
        ({}, ""),
        (None, ""),
    ],
)
def test_leader_address_strips_the_grpc_port(status: dict | None, address: str) -> None:
    assert failover.leader_address(status) == address


def test_leaders_map_to_inventory_masters(ha_topology: Topology) -> None:
    endpoints = failover.master_endpoints(ha_topology)
    assert {a: h.name for a, h in endpoints.items()} == {
        "10.213.0.11:9333": "lab-ha-1",
        "10.213.0.12:9333": "lab-ha-2",
        "10.213.0.13:9333": "lab-ha-3",
    }
    address = failover.leader_address({"Leader": "10.213.0.12:9333.19333"})
    assert failover.host_of(address, endpoints) == "lab-ha-2"
    assert failover.host_of("10.9.9.9:9333", endpoints) == "10.9.9.9:9333"


def test_agreed_leader() -> None:
    assert failover.agreed_leader({"a": LEADER_1, "b": FOLLOWS_1, "c": FOLLOWS_1}) == (
        "10.213.0.11:9333"
    )
    assert failover.agreed_leader({"a": LEADER_1, "b": FOLLOWS_1, "c": None}) == ""
    other = {"Leader": "10.213.0.12:9333.19333"}
    assert failover.agreed_leader({"a": LEADER_1, "b": other}) == ""
    assert failover.agreed_leader({"a": FOLLOWS_1, "b": FOLLOWS_1}) == ""  # nobody claims it
    assert failover.agreed_leader({}) == ""


def test_elected_needs_a_claim_of_another_leader() -> None:
    killed = "10.213.0.11:9333"
    assert failover.elected({"b": FOLLOWS_1, "c": None}, killed) == ""
    stale = {"IsLeader": True, "Leader": "10.213.0.11:9333.19333"}
    assert failover.elected({"b": stale}, killed) == ""
    new = {"IsLeader": True, "Leader": "10.213.0.13:9333.19333"}
    assert failover.elected({"b": FOLLOWS_1, "c": new}, killed) == "10.213.0.13:9333"
    assert failover.elected({"b": {"Leader": "10.213.0.13:9333.19333"}}, killed) == ""


def test_round_lines_and_summary() -> None:
    good = failover.Round(1, "lab-ha-1", "lab-ha-2", 0.42, 1.234)
    slow = failover.Round(2, "lab-ha-2", "lab-ha-3", 0.5, 3.0)
    assert failover.round_line(good) == (
        "round 1: leader lab-ha-1 killed, new leader lab-ha-2 after 0.42 s, "
        "first write after 1.23 s"
    )
    summary = failover.summarise([good, slow])
    assert failover.summary_line(summary) == (
        "master failover: first write median 2.12 s, max 3.00 s over 2 rounds (target <= 2 s)"
    )
    lost = failover.Round(3, "lab-ha-3", error="no surviving master took the lead within 30 s")
    assert failover.round_line(lost) == (
        "round 3: leader lab-ha-3 killed, no surviving master took the lead within 30 s"
    )
    assert not lost.ok
    summary = failover.summarise([good, lost])
    assert summary["recovered"] == 1
    assert "1 did not recover" in failover.summary_line(summary)
    assert common.round_document(good)["first_write_s"] == 1.234
    assert common.round_document(good)["ok"] is True


@pytest.mark.parametrize(("value", "ok"), [("1", True), ("10", True), ("0", False), ("11", False)])
def test_rounds_are_bounded(value: str, ok: bool, capsys: pytest.CaptureFixture[str]) -> None:
    if ok:
        assert failover.parse_args(["--rounds", value]).rounds == int(value)
    else:
        with pytest.raises(SystemExit):
            failover.parse_args(["--rounds", value])
        assert "must be a whole number from 1 to 10" in capsys.readouterr().err
    assert failover.parse_args([]).rounds == 3


def test_ssh_uses_the_inventory_connection(ha_topology: Topology) -> None:
    argv = common.ssh_argv(ha_topology.hosts["lab-ha-2"], ["systemctl", "start", "x y"])
    assert argv[0] == "ssh"
    assert argv[argv.index("-i") + 1] == "/lab/id_ed25519"
    joined = " ".join(argv)
    assert shlex.join(shlex.split(ssh_common_args(Path("/lab/known_hosts")))) in joined
    assert "BatchMode=yes" in joined
    assert argv[-2:] == ["root@10.213.0.12", "systemctl start 'x y'"]


# --- deploy time ----------------------------------------------------------------------------


ANSIBLE_RECAP = """
PLAY RECAP *********************************************************************
lab-edge-1                 : ok=3    changed=0    unreachable=0    failed=0    skipped=1
lab-ha-1                   : ok=40   changed=12   unreachable=0    failed=0    skipped=2
lab-ha-2                   : ok=40   changed=11   unreachable=0    failed=0    skipped=2
"""

STORAGECTL_SUMMARY = """
[  12.0s]   lab-ha-1 changed
[  12.1s]   lab-ha-2 ok

SUMMARY
  lab-edge-1  ok=3 changed=0 failed=0 unreachable=0 skipped=1
  lab-ha-1    ok=40 changed=\x1b[33m12\x1b[0m failed=0 unreachable=0 skipped=2
  lab-ha-2    ok=40 changed=11 failed=0 unreachable=0 skipped=2

Run successful. Artifacts: /x
"""


@pytest.mark.parametrize("output", [ANSIBLE_RECAP, STORAGECTL_SUMMARY])
def test_recap_changed_counts(output: str) -> None:
    assert deploy_time.changed_by_host(output) == {"lab-edge-1": 0, "lab-ha-1": 12, "lab-ha-2": 11}
    assert deploy_time.changed_total(output) == 23


def test_both_recaps_are_not_counted_twice() -> None:
    assert deploy_time.changed_total(ANSIBLE_RECAP + STORAGECTL_SUMMARY) == 23
    assert deploy_time.changed_total("no recap here\nok=3 changed=2\n") == 0


def test_result_line() -> None:
    first = deploy_time.Timed(200.0, 0, ANSIBLE_RECAP)
    second = deploy_time.Timed(30.0, 0, "PLAY RECAP ***\nlab-ha-1 : ok=40 changed=0 failed=0\n")
    verify = deploy_time.Timed(5.04, 3, "")
    assert deploy_time.result_line(first, second, verify) == (
        "first deploy: 200.0 s (changed=23), second converge: 30.0 s (changed=0, 15% of first), "
        "verify: 5.0 s rc=3"
    )
    assert deploy_time.percent(1.0, 0.0) == 0.0


# --- postgres failover ------------------------------------------------------------------------

pg_failover = _import("pg_failover")


def _members(*rows: tuple[str, str, str]) -> list:
    """/cluster members in Patroni 3.0.2's shape (patroni/utils.py cluster_as_json)."""
    body = {
        "members": [
            {
                "name": name,
                "role": role,
                "state": state,
                "api_url": f"http://10.213.0.1{name[-1]}:8008/patroni",
                "host": f"10.213.0.1{name[-1]}",
                "port": 5432,
                "timeline": 2,
                **({} if role == "leader" else {"lag": 0}),
            }
            for name, role, state in rows
        ]
    }
    return pg_failover.parse_cluster(body)


def test_pg_new_leader_and_rejoin() -> None:
    before = _members(
        ("lab-ha-1", "leader", "running"),
        ("lab-ha-2", "replica", "streaming"),
        ("lab-ha-3", "replica", "running"),
    )
    assert pg_failover.sole_leader(before).name == "lab-ha-1"
    assert pg_failover.new_leader(before, "lab-ha-1") is None  # the killed one still listed
    after = _members(
        ("lab-ha-1", "replica", "stopped"),
        ("lab-ha-2", "leader", "running"),
        ("lab-ha-3", "replica", "running"),
    )
    assert pg_failover.new_leader(after, "lab-ha-1").name == "lab-ha-2"
    assert pg_failover.new_leader(None, "lab-ha-1") is None
    assert pg_failover.new_leader(_members(("lab-ha-2", "replica", "running")), "x") is None
    assert not pg_failover.rejoined(after, "lab-ha-1")  # stopped
    assert not pg_failover.rejoined(after, "lab-ha-9")  # absent
    back = _members(("lab-ha-1", "sync_standby", "streaming"), ("lab-ha-2", "leader", "running"))
    assert pg_failover.rejoined(back, "lab-ha-1")
    two = _members(("lab-ha-1", "leader", "running"), ("lab-ha-2", "leader", "running"))
    assert pg_failover.sole_leader(two) is None


def test_pg_round_lines_and_summary() -> None:
    good = pg_failover.Round(1, "lab-ha-1", "lab-ha-2", 11.2, 12.345, 13.5)
    slow = pg_failover.Round(2, "lab-ha-2", "lab-ha-3", 12.0, 14.0, 16.5)
    assert good.ok
    assert pg_failover.round_line(good) == (
        "round 1: primary lab-ha-1 killed; new leader lab-ha-2 after 11.20 s; "
        ":5000 primary after 12.35 s; first filer write after 13.50 s"
    )
    summary = pg_failover.summarise([good, slow])
    assert pg_failover.summary_line(summary) == (
        "postgres failover: first filer write median 15.00 s, max 16.50 s over 2 rounds "
        "(target <= 15 s)"
    )
    lost = pg_failover.Round(3, "lab-ha-3", "lab-ha-1", 10.0, None, None)
    assert not lost.ok
    assert pg_failover.round_line(lost) == (
        "round 3: primary lab-ha-3 killed; new leader lab-ha-1 after 10.00 s; "
        "no primary on :5000 within 60 s; no filer write within 60 s"
    )
    summary = pg_failover.summarise([good, lost])
    assert summary["recovered"] == 1
    assert "1 did not recover" in pg_failover.summary_line(summary)
    none = pg_failover.summarise([lost])
    assert pg_failover.summary_line(none) == (
        "postgres failover: no round recovered over 1 rounds (target <= 15 s)"
    )
    assert common.round_document(good)["primary_s"] == 12.345
    assert common.round_document(lost)["ok"] is False


@pytest.mark.parametrize(("value", "ok"), [("1", True), ("5", True), ("0", False), ("6", False)])
def test_pg_rounds_are_bounded(value: str, ok: bool, capsys: pytest.CaptureFixture[str]) -> None:
    if ok:
        assert pg_failover.parse_args(["--rounds", value]).rounds == int(value)
    else:
        with pytest.raises(SystemExit):
            pg_failover.parse_args(["--rounds", value])
        assert "must be a whole number from 1 to 5" in capsys.readouterr().err
    assert pg_failover.parse_args([]).rounds == 1


def test_pg_kill_masks_then_kills_the_whole_unit(ha_topology: Topology) -> None:
    host = ha_topology.hosts["lab-ha-1"]
    kill = common.ssh_argv(host, pg_failover.KILL_COMMAND)[-1]
    assert kill == (
        "sh -c 'systemctl mask --runtime patroni && "
        "systemctl kill --kill-who=all --signal=SIGKILL patroni'"
    )
    restore = common.ssh_argv(host, pg_failover.RESTORE_COMMAND)[-1]
    assert restore.startswith("sh -c 'systemctl unmask --runtime patroni && ")
    assert restore.endswith("systemctl start patroni'")


def test_pg_preflight(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    write_inventory(
        lab,
        topology="dev",
        specs=topo.machines("dev", 1),
        key=Path("/lab/id_ed25519"),
        s3_secrets={"seaweedfs_s3_access_key": "A" * 20, "seaweedfs_s3_secret_key": "b" * 40},
    )
    with pytest.raises(common.BenchmarkError, match="0 postgres member"):
        pg_failover.preflight(common.load(lab), "lab")
    hosts = {f"db{i}": {"ansible_host": f"10.0.0.1{i}"} for i in (1, 2)}
    filer = {"ansible_host": "10.0.0.31", "seaweedfs_filer_store": "leveldb2"}
    document = {
        "all": {
            "children": {
                "postgres": {"hosts": hosts},
                "haproxy": {"hosts": {"lb1": {"ansible_host": "10.0.0.21"}}},
                "seaweedfs_filer": {"hosts": {"filer1": filer}},
            },
            "vars": {"seaweedfs_filer_db_password": "x" * 8},
        }
    }
    inventory = tmp_path / "pg.yml"
    inventory.write_text(json.dumps(document))
    with pytest.raises(common.BenchmarkError, match="no filer has seaweedfs_filer_store"):
        pg_failover.preflight(common.load(inventory), "pg")
    filer["seaweedfs_filer_store"] = "postgres2"
    inventory.write_text(json.dumps(document))
    members = pg_failover.preflight(common.load(inventory), "pg")
    assert [h.name for h in members] == ["db1", "db2"]


# --- juicefs bench --------------------------------------------------------------------------

juicefs_bench = _import("juicefs_bench")

# What juicefs 1.4.2 printed for `juicefs bench MP --big-file-size 64 --small-file-count 50
# --threads 1` on a local mount.
JUICEFS_BENCH_OUTPUT = """Benchmark finished!
BlockSize: 1.0 MiB, BigFileSize: 64 MiB, SmallFileSize: 128 KiB, SmallFileCount: 50, NumThreads: 1
+------------------+------------------+--------------+
|       ITEM       |       VALUE      |     COST     |
+------------------+------------------+--------------+
|   Write big file |    1398.57 MiB/s |  0.05 s/file |
|    Read big file |    8470.11 MiB/s |  0.01 s/file |
| Write small file |   1274.5 files/s | 0.78 ms/file |
|  Read small file |  17579.5 files/s | 0.06 ms/file |
|        Stat file | 162154.4 files/s | 0.01 ms/file |
+------------------+------------------+--------------+
"""


def test_juicefs_bench_table_is_parsed_and_shown_side_by_side() -> None:
    rows = juicefs_bench.parse_bench(JUICEFS_BENCH_OUTPUT)
    assert rows[0] == ("Write big file", "1398.57 MiB/s", "0.05 s/file")
    assert [r[0] for r in rows][-1] == "Stat file"
    assert len(rows) == 5
    table = juicefs_bench.side_by_side(rows, rows[:1]).splitlines()
    assert table[0].split() == ["ITEM", "TUNED", "(COST)", "DEFAULT", "OPTIONS", "(COST)"]
    assert table[1].split()[-4:] == ["1398.57", "MiB/s", "0.05", "s/file"]
    assert table[2].split()[-2:] == ["-", "-"]
    with pytest.raises(ValueError, match="no result table"):
        juicefs_bench.parse_bench("FATAL: not a JuiceFS mount")
    command = juicefs_bench.bench_command("/my data", 64, 100)
    assert (
        command == "juicefs bench '/my data' --big-file-size 64 --small-file-count 100 --threads 1"
    )


# --- verify time ----------------------------------------------------------------------------


verify_time = _import("verify_time")


def _verify_document(*durations: float, failed: int = 0, wall: float | None = None) -> str:
    checks = [
        {"name": f"check {i}", "component": "demo", "ok": True, "duration": d, "host": f"h{i}"}
        for i, d in enumerate(durations)
    ]
    summary: dict[str, Any] = {
        "total": len(checks),
        "passed": len(checks) - failed,
        "failed": failed,
    }
    if wall is not None:
        summary["wall"] = wall
    return json.dumps({"ok": not failed, "summary": summary, "checks": checks, "storage": {}})


def test_verify_document_gives_the_slowest_check_and_ratio() -> None:
    run = verify_time.parse_document(1, 0, 2.6, _verify_document(0.2, 2.0, 0.5))
    assert (run.slowest_s, run.slowest_check, run.passed, run.ok) == (2.0, "check 1 h1", 3, True)
    assert run.ratio == pytest.approx(1.3)
    assert verify_time.run_line(run) == (
        "run 1: 2.60 s wall, slowest check 2.00 s (check 1 h1), ratio 1.30"
    )
    timed = verify_time.parse_document(1, 0, 2.6, _verify_document(0.2, 2.0, 0.5, wall=2.1))
    assert timed.outside_s == pytest.approx(0.5)
    assert timed.checks_ratio == pytest.approx(1.05)
    assert verify_time.run_line(timed).endswith(
        "ratio 1.30, 0.50 s outside the checks (checks alone: ratio 1.05)"
    )
    red = verify_time.parse_document(2, 1, 1.0, _verify_document(0.5, failed=1))
    assert not red.ok
    assert verify_time.run_line(red).endswith("[rc=1, 1 failed]")


def test_verify_document_errors_are_runs_without_checks() -> None:
    broken = verify_time.parse_document(1, 70, 0.3, "Traceback (most recent call last):\n")
    assert broken.slowest_s is None
    assert broken.ratio is None
    assert broken.error.startswith("no JSON on stdout (rc=70): Traceback")
    assert verify_time.run_line(broken) == f"run 1: 0.30 s wall, {broken.error}"
    invalid = json.dumps({"ok": False, "error": "bad inventory", "checks": []})
    assert verify_time.parse_document(2, 3, 0.1, invalid).error == "bad inventory"
    instant = verify_time.parse_document(3, 0, 0.1, _verify_document(0.0))
    assert instant.slowest_s == 0.0
    assert instant.ratio is None


def test_verify_summary_line() -> None:
    runs = [
        verify_time.parse_document(n, 0, wall, _verify_document(slowest))
        for n, (wall, slowest) in enumerate([(2.0, 1.6), (3.0, 2.0), (2.5, 2.0)], start=1)
    ]
    summary = verify_time.summarise(runs)
    assert (summary["median_wall_s"], summary["median_slowest_s"]) == (2.5, 2.0)
    assert summary["median_ratio"] == 1.25
    assert verify_time.summary_line(summary) == (
        "verify: median 2.50 s wall, slowest check median 2.00 s, ratio 1.25 "
        "(targets: <= 3 s, <= 1.3x)"
    )
    broken = [verify_time.parse_document(1, 70, 0.3, "")]
    assert verify_time.summary_line(verify_time.summarise(broken)) == (
        "verify: no run produced checks over 1 runs (targets: <= 3 s, <= 1.3x)"
    )
    timed = [
        verify_time.parse_document(n, 0, wall, _verify_document(1.0, wall=1.1))
        for n, wall in enumerate([1.4, 1.5, 1.3], start=1)
    ]
    assert verify_time.summary_line(verify_time.summarise(timed)) == (
        "verify: median 1.40 s wall, slowest check median 1.00 s, ratio 1.40, "
        "0.30 s outside the checks (checks alone: ratio 1.10) (targets: <= 3 s, <= 1.3x)"
    )
    mixed = verify_time.summarise([*runs, *broken])
    assert "1 of 4 runs not green" in verify_time.summary_line(mixed)


@pytest.mark.parametrize(("value", "ok"), [("1", True), ("20", True), ("0", False), ("21", False)])
def test_verify_runs_are_bounded(value: str, ok: bool, capsys: pytest.CaptureFixture[str]) -> None:
    if ok:
        assert verify_time.parse_args(["--runs", value]).runs == int(value)
    else:
        with pytest.raises(SystemExit):
            verify_time.parse_args(["--runs", value])
        assert "must be a whole number from 1 to 20" in capsys.readouterr().err
    assert verify_time.parse_args([]).runs == 5


# --- redis failover ---------------------------------------------------------------------------

redis_failover = _import("redis_failover")


def test_redis_master_is_the_one_every_sentinel_names(ha_topology: Topology) -> None:
    hosts = ha_topology.group(REDIS)
    assert [h.name for h in hosts] == ["lab-ha-1", "lab-ha-2", "lab-ha-3"]

    def view(host_index: int, master: str, error: str = "") -> SentinelView:
        return SentinelView(hosts[host_index], master=master, error=error)

    agreed = [view(0, "10.213.0.12:6379"), view(1, "10.213.0.12:6379")]
    assert redis_failover.agreed_master(agreed, hosts) == "lab-ha-2"
    # A Sentinel that did not answer does not count; one that disagrees makes it unclear.
    silent = [*agreed, view(2, "", error="Connection refused")]
    assert redis_failover.agreed_master(silent, hosts) == "lab-ha-2"
    assert redis_failover.agreed_master([*agreed, view(2, "10.213.0.11:6379")], hosts) is None
    assert redis_failover.agreed_master([view(0, "10.9.9.9:6379")], hosts) is None


def test_redis_round_and_summary_lines() -> None:
    good = redis_failover.Round(1, "lab-ha-1", "lab-ha-2", 6.3, 7.25)
    assert redis_failover.round_line(good) == (
        "round 1: master lab-ha-1 killed; new master lab-ha-2 after 6.30 s; "
        "first JuiceFS write after 7.25 s"
    )
    lost = redis_failover.Round(2, "lab-ha-2", error="did not rejoin")
    assert redis_failover.round_line(lost).endswith(
        "no new master within 60 s; no JuiceFS write within 60 s (did not rejoin)"
    )
    summary = redis_failover.summarise([good, lost])
    assert redis_failover.summary_line(summary) == (
        "redis failover: first JuiceFS write median 7.25 s, max 7.25 s over 2 rounds, "
        "1 did not recover"
    )
    assert redis_failover.parse_args([]).rounds == 1
