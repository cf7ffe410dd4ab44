"""Report shapes: the table people read, the JSON document and the JUnit XML machines read."""

from __future__ import annotations

import io
import json
from pathlib import Path
from xml.etree import ElementTree as ET

from storagectl.checks.base import CheckResult
from storagectl.inventory import Topology, load_topology
from storagectl.report import (
    print_report,
    render_json,
    render_table,
    storage_block,
    summarise,
    timing_line,
    write_junit,
)
from support.common import write_inventory

RESULTS = [
    CheckResult(
        "master leader",
        "seaweedfs",
        True,
        "leader 10.0.0.1:9333 (m1), agreed by 3 master(s)",
        endpoint="cluster",
        duration=0.012,
    ),
    CheckResult(
        "filer health",
        "seaweedfs",
        False,
        "HTTP 503",
        fix="systemctl status seaweedfs-filer on f1; journalctl -u seaweedfs-filer there.",
        endpoint="http://10.0.0.5:8888/healthz",
        duration=0.5,
        host="f1",
    ),
    CheckResult("replication", "postgres", True, "2 streaming replicas", host="pg1"),
]


def test_table_groups_by_component_and_ends_with_the_summary() -> None:
    table = render_table(RESULTS)
    lines = table.splitlines()
    assert lines[0] == "== seaweedfs =="
    assert lines[1].split() == ["STATUS", "CHECK", "HOST", "/", "ENDPOINT", "DETAIL"]
    assert lines[2].startswith("OK ")
    assert "master leader" in lines[2]
    assert lines[3].startswith("FAIL ")
    assert "f1 http://10.0.0.5:8888/healthz" in lines[3]
    assert lines[3].endswith("HTTP 503")
    assert lines[4].strip() == f"fix: {RESULTS[1].fix}"
    assert "== postgres ==" in lines
    assert lines[-1] == "2 passed, 1 failed"
    assert "\033[" not in table


def test_table_columns_line_up() -> None:
    lines = [line for line in render_table(RESULTS).splitlines() if line[:2] in ("OK", "FA")]
    starts = {line.index("HTTP 503") for line in lines if "HTTP 503" in line}
    details = {line.index(r.detail) for r in RESULTS[:2] for line in lines if r.detail in line}
    assert len(details) == 1, details
    assert starts <= details


def test_table_colour_is_opt_in() -> None:
    assert "\033[31m" in render_table(RESULTS, color=True)


def test_empty_table() -> None:
    assert render_table([]).splitlines()[-1] == "0 passed, 0 failed"


def test_json_document_shape() -> None:
    document = json.loads(render_json(RESULTS))
    assert set(document) == {"ok", "summary", "checks"}
    assert document["ok"] is False
    assert document["summary"] == {
        "total": 3,
        "passed": 2,
        "failed": 1,
        "warnings": 0,
        "duration": 0.5,
        "components": {
            "seaweedfs": {"passed": 1, "failed": 1},
            "postgres": {"passed": 1, "failed": 0},
        },
    }
    assert document["checks"][1] == {
        "name": "filer health",
        "component": "seaweedfs",
        "ok": False,
        "detail": "HTTP 503",
        "fix": RESULTS[1].fix,
        "endpoint": "http://10.0.0.5:8888/healthz",
        "duration": 0.5,
        "host": "f1",
        "warning": False,
    }
    assert json.loads(render_json(RESULTS[:1]))["ok"] is True


def test_a_warning_passes_but_shows_with_its_fix() -> None:
    low = CheckResult(
        "volume slots",
        "capacity",
        True,
        "2 left",
        fix="add servers",
        endpoint="cluster",
        warning=True,
    )
    table = render_table([low, *RESULTS[:1]])
    assert "WARN    volume slots" in table
    assert "fix: add servers" in table
    assert table.rstrip().endswith("2 passed (1 with warnings), 0 failed")
    document = json.loads(render_json([low]))
    assert (document["ok"], document["summary"]["warnings"]) == (True, 1)


def test_print_report_json_is_only_json() -> None:
    stream = io.StringIO()
    print_report(RESULTS, "json", stream)
    assert json.loads(stream.getvalue())["summary"]["failed"] == 1


def _topology(tmp_path: Path, project_root: Path, groups: dict[str, list[str]]) -> Topology:
    layout = {group: dict.fromkeys(hosts) for group, hosts in groups.items()}
    inventory = write_inventory(tmp_path / "inventory", layout, {"juicefs_volume_name": "v"})
    return load_topology([inventory], basedir=project_root)


def test_storage_block(tmp_path: Path, project_root: Path) -> None:
    mount_ok = CheckResult("juicefs mount", "juicefs", True, "ok", host="c1")
    mount_bad = CheckResult("juicefs mount", "juicefs", False, "inactive", host="c2")
    status_bad = CheckResult("juicefs status", "juicefs", False, "no answer")
    ready = CheckResult("rustfs ready", "rustfs", True, "HTTP 200", host="r1")
    s3_bad = CheckResult("rustfs s3 round trip", "rustfs", False, "403", host="r1")
    both = _topology(tmp_path, project_root, {"juicefs_client": ["c1", "c2"], "rustfs": ["r1"]})

    block = storage_block(both, [mount_ok, status_bad, ready])
    # Only the mount checks decide juicefs_mounted; every RustFS check decides rustfs_healthy.
    assert block == {"juicefs_mounted": True, "rustfs_healthy": True, "juicefs_volume": "v"}
    block = storage_block(both, [mount_ok, mount_bad, ready, s3_bad])
    assert block == {"juicefs_mounted": False, "rustfs_healthy": False, "juicefs_volume": "v"}
    # No such hosts, or their checks were not run (--component): null.
    neither = _topology(tmp_path, project_root, {"seaweedfs_master": ["m1"]})
    assert storage_block(neither, [mount_ok, ready]) == {
        "juicefs_mounted": None,
        "rustfs_healthy": None,
        "juicefs_volume": None,
    }
    assert storage_block(both, RESULTS)["juicefs_mounted"] is None

    stream = io.StringIO()
    print_report([mount_ok], "json", stream, storage=block)
    assert json.loads(stream.getvalue())["storage"]["juicefs_volume"] == "v"


def test_summary_counts() -> None:
    assert summarise(RESULTS)["failed"] == 1
    assert summarise([])["total"] == 0


def test_junit_xml(tmp_path: Path) -> None:
    target = tmp_path / "out" / "verify.xml"
    write_junit(RESULTS, target)
    root = ET.fromstring(target.read_bytes())  # noqa: S314 - our own file, just written
    assert root.tag == "testsuites"
    assert root.get("tests") == "3"
    assert root.get("failures") == "1"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"seaweedfs", "postgres"}
    cases = suites["seaweedfs"].findall("testcase")
    assert [c.get("name") for c in cases] == ["master leader", "filer health [f1]"]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == "HTTP 503"
    assert "fix: systemctl status seaweedfs-filer" in (failure.text or "")
    assert cases[1].get("classname") == "storagectl.seaweedfs.filer_health"
    assert float(cases[1].get("time") or 0) == 0.5


def test_timing_line_names_the_slowest_check() -> None:
    assert timing_line(RESULTS) == "2 passed, 1 failed"
    assert timing_line(RESULTS, 2.44) == (
        "2 passed, 1 failed in 2.4 s (slowest: filer health f1 0.5 s)"
    )
    assert render_table(RESULTS, elapsed=2.44).splitlines()[-1] == timing_line(RESULTS, 2.44)
    cluster = [CheckResult("master leader", "seaweedfs", True, "ok", endpoint="cluster")]
    assert timing_line(cluster, 0.1).endswith("(slowest: master leader cluster 0.0 s)")


def test_json_wall_time() -> None:
    document = json.loads(render_json(RESULTS, elapsed=0.61234))
    assert document["summary"]["wall"] == 0.612
    assert document["summary"]["duration"] == 0.5
    stream = io.StringIO()
    print_report(RESULTS, "json", stream, elapsed=1.0)
    assert json.loads(stream.getvalue())["summary"]["wall"] == 1.0
