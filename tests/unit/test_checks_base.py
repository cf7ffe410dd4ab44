"""run_checks: concurrency, per-task timeouts, exceptions become failed results, the registry."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from storagectl.checks import all_checks, registry
from storagectl.checks.base import (
    CheckContext,
    CheckResult,
    cluster_check,
    host_check,
    run_checks,
)
from storagectl.inventory import Host, Topology, load_topology


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Topology:
    root = tmp_path_factory.mktemp("base")
    inv = root / "hosts.yml"
    inv.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "widgets": {"hosts": {"w1": None, "w2": None, "w3": None}},
                        "empty": {"hosts": {}},
                    }
                }
            }
        )
    )
    return load_topology([inv], basedir=root)


def _endpoint(topology: Topology, host: Host) -> str:
    return f"http://{host.name}:1234/"


def test_host_check_runs_once_per_host_concurrently(topology: Topology) -> None:
    barrier = threading.Barrier(3, timeout=5)

    @host_check("sync", "demo", group="widgets", endpoint=_endpoint)
    def sync(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
        barrier.wait()  # only passes if all three hosts run at the same time
        return CheckResult("sync", "demo", True, f"hello {host.name}")

    results = run_checks(topology, [sync], timeout=5)
    assert [(r.host, r.ok, r.endpoint) for r in results] == [
        ("w1", True, "http://w1:1234/"),
        ("w2", True, "http://w2:1234/"),
        ("w3", True, "http://w3:1234/"),
    ]
    assert all(r.duration > 0 for r in results)


def test_exception_becomes_failed_result(topology: Topology) -> None:
    @host_check("boom", "demo", group="widgets", endpoint=_endpoint)
    def boom(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
        if host.name == "w2":
            raise RuntimeError("kaput")
        return CheckResult("boom", "demo", True, "fine")

    results = run_checks(topology, [boom], timeout=5)
    failed = [r for r in results if not r.ok]
    assert len(results) == 3
    assert len(failed) == 1
    assert failed[0].host == "w2"
    assert failed[0].detail == "RuntimeError: kaput"
    assert failed[0].endpoint == "http://w2:1234/"
    assert failed[0].fix


def test_undefined_variable_becomes_failed_result(topology: Topology) -> None:
    @host_check("needs var", "demo", group="widgets")
    def needs_var(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
        return CheckResult("needs var", "demo", True, str(host.var("not_defined_anywhere")))

    results = run_checks(topology, [needs_var], timeout=5)
    assert [r.ok for r in results] == [False, False, False]
    assert "not_defined_anywhere is not defined" in results[0].detail
    assert "inventory" in results[0].fix


def test_timeout_names_the_endpoint(topology: Topology) -> None:
    release = threading.Event()

    @host_check("slow", "demo", group="widgets", endpoint=_endpoint)
    def slow(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
        if host.name == "w3":
            release.wait(10)
        return CheckResult("slow", "demo", True, "quick")

    start = time.monotonic()
    try:
        results = run_checks(topology, [slow], timeout=0.5)
    finally:
        release.set()
    assert time.monotonic() - start < 3
    assert [r.ok for r in results] == [True, True, False]
    assert "timed out after 0.5 s" in results[2].detail
    assert "http://w3:1234/" in results[2].detail
    assert results[2].host == "w3"


def test_cluster_check_and_order(topology: Topology) -> None:
    @cluster_check("first", "demo", requires=("widgets",))
    def first(topology: Topology, ctx: CheckContext) -> list[CheckResult]:
        time.sleep(0.2)
        return [CheckResult("first", "demo", True, "a"), CheckResult("first", "demo", False, "b")]

    @cluster_check("second", "demo")
    def second(topology: Topology, ctx: CheckContext) -> CheckResult:
        return CheckResult("second", "demo", True, "c")

    results = run_checks(topology, [first, second], timeout=5)
    assert [r.detail for r in results] == ["a", "b", "c"]  # declaration order, not finish order
    assert results[0].endpoint == "cluster"
    assert first.description == ""  # no docstring, no description


def test_checks_of_absent_components_do_not_run(topology: Topology) -> None:
    @host_check("none", "demo", group="empty")
    def none(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
        raise AssertionError("must not run")

    @cluster_check("nothing", "demo", requires=("no_such_group",))
    def nothing(topology: Topology, ctx: CheckContext) -> CheckResult:
        raise AssertionError("must not run")

    assert run_checks(topology, [none, nothing]) == []


def test_check_is_callable_alone(topology: Topology) -> None:
    @host_check("alone", "demo", group="widgets")
    def alone(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
        return CheckResult("alone", "demo", True, host.name)

    assert [r.detail for r in alone(topology)] == ["w1", "w2", "w3"]


def test_registry_discovers_component_modules() -> None:
    checks = registry()
    assert "seaweedfs" in checks
    names = [c.name for c in checks["seaweedfs"]]
    assert names == [
        "master leader",
        "volume registered",
        "filer health",
        "filer round trip",
        "filer cross read",
        "replica placement",
        "s3 round trip",
        "s3 anonymous refused",
    ]
    assert all_checks(["seaweedfs"]) == checks["seaweedfs"]
    with pytest.raises(KeyError, match="unknown component"):
        all_checks(["nope"])


def test_registry_leaves_the_client_libraries_to_the_checks() -> None:
    """Loading every check module imports no S3, PostgreSQL or Redis client: those cost about a
    quarter of a second and are imported inside the checks that use them."""
    script = (
        "import sys; from storagectl.checks import registry; registry(); "
        "print(' '.join(m for m in ('boto3', 'botocore', 'psycopg', 'redis') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ""


def test_result_to_dict() -> None:
    result = CheckResult("n", "c", False, "d", fix="f", endpoint="e", duration=1.23456, host="h")
    assert result.to_dict() == {
        "name": "n",
        "component": "c",
        "ok": False,
        "detail": "d",
        "fix": "f",
        "endpoint": "e",
        "duration": 1.235,
        "host": "h",
        "warning": False,
    }


def test_http_timeout_stays_below_the_check_timeout() -> None:
    connect, read = CheckContext(timeout=10).http_timeout
    assert connect <= 3
    assert read < 10


def test_a_hung_check_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    """Threads cannot be killed: the runner's daemon workers are dropped when verify exits."""
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump({"all": {"children": {"widgets": {"hosts": {"w1": None}}}}}))
    script = f"""
import time
from storagectl.checks.base import CheckResult, host_check, parallel_map, run_checks
from storagectl.inventory import load_topology

@host_check("hang", "demo", group="widgets")
def hang(topology, host, ctx):
    parallel_map(time.sleep, [600, 600])  # sub-probes hang too
    return CheckResult("hang", "demo", True, "never")

results = run_checks(load_topology([{str(inv)!r}]), [hang], timeout=0.3)
print(results[0].ok, results[0].detail)
"""
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert time.monotonic() - start < 15
    assert done.stdout.strip() == "False timed out after 0.3 s waiting for w1"


def test_queued_tasks_still_run_after_a_worker_hangs(topology: Topology) -> None:
    release = threading.Event()

    @host_check("one slot", "demo", group="widgets")
    def one_slot(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
        if host.name == "w1":
            release.wait(10)
        return CheckResult("one slot", "demo", True, host.name)

    try:
        results = run_checks(topology, [one_slot], timeout=0.3, max_workers=1)
    finally:
        release.set()
    assert [r.ok for r in results] == [False, True, True]
