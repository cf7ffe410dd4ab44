"""Render check results: a table for people, one JSON document for machines, JUnit XML for CI.

The JSON document (``--format json``) is the only thing written to stdout in that mode::

    {
      "ok": false,
      "summary": {"total": 8, "passed": 7, "failed": 1, "duration": 1.234, "wall": 1.301,
                  "components": {"seaweedfs": {"passed": 7, "failed": 1}}},
      "checks": [
        {"name": "filer health", "component": "seaweedfs", "ok": true, "detail": "HTTP 200",
         "fix": "", "endpoint": "http://10.0.0.1:8888/healthz", "duration": 0.004,
         "host": "lab-dev-1"},
        ...
      ],
      "storage": {"juicefs_mounted": true, "rustfs_healthy": null, "juicefs_volume": "storagectl"}
    }

``summary.duration`` is the slowest single check, ``summary.wall`` the whole run (checks run
concurrently, so it is close to the slowest check); each check's own ``duration`` is in seconds.
``storage`` sums up the storage a client uses (:func:`storage_block`): ``juicefs_mounted`` is
true when every ``juicefs mount`` check passed, ``rustfs_healthy`` when every RustFS check
passed; each is null when the inventory has no such hosts or their checks did not run
(``--component``). ``juicefs_volume`` is the volume name, null without JuiceFS clients.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO
from xml.etree import ElementTree as ET

from storagectl.checks.base import CheckResult
from storagectl.inventory import Topology, VariableError, groups

__all__ = [
    "print_report",
    "render_json",
    "render_table",
    "slowest",
    "storage_block",
    "summarise",
    "timing_line",
    "wants_color",
    "write_junit",
]

_GREEN = "\033[32m"
_RED = "\033[31m"
_BOLD = "\033[1m"
_RESET = "\033[0m"
_YELLOW = "\033[33m"
_COLORS = {"OK": _GREEN, "WARN": _YELLOW, "FAIL": _RED}


def summarise(results: Sequence[CheckResult]) -> dict[str, Any]:
    """Counts of passed/failed results, overall and per component, and the longest duration."""
    components: dict[str, dict[str, int]] = {}
    for result in results:
        counts = components.setdefault(result.component, {"passed": 0, "failed": 0})
        counts["passed" if result.ok else "failed"] += 1
    passed = sum(1 for r in results if r.ok)
    return {
        "total": len(results),
        "passed": passed,
        "failed": len(results) - passed,
        "warnings": sum(1 for r in results if r.ok and r.warning),
        "duration": round(max((r.duration for r in results), default=0.0), 3),
        "components": components,
    }


def slowest(results: Sequence[CheckResult]) -> CheckResult | None:
    """The result that took longest (None without results)."""
    return max(results, key=lambda r: r.duration, default=None)


def timing_line(results: Sequence[CheckResult], elapsed: float | None = None) -> str:
    """``44 passed, 0 failed in 2.4 s (slowest: filer round trip lab-ha-1 1.9 s)``; without
    ``elapsed`` (the run's wall time) just the counts."""
    summary = summarise(results)
    warned = f" ({summary['warnings']} with warnings)" if summary["warnings"] else ""
    line = f"{summary['passed']} passed{warned}, {summary['failed']} failed"
    worst = slowest(results)
    if elapsed is None or worst is None:
        return line
    where = worst.host or worst.endpoint or worst.component
    return f"{line} in {elapsed:.1f} s (slowest: {worst.name} {where} {worst.duration:.1f} s)"


def wants_color(stream: TextIO) -> bool:
    """Colour only for a terminal, and never when NO_COLOR is set."""
    return bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ


def _where(result: CheckResult) -> str:
    if result.host and result.endpoint and result.endpoint not in ("cluster", result.host):
        return f"{result.host} {result.endpoint}"
    return result.host or result.endpoint or "-"


def _status(result: CheckResult) -> str:
    if not result.ok:
        return "FAIL"
    return "WARN" if result.warning else "OK"


def render_table(
    results: Sequence[CheckResult], *, color: bool = False, elapsed: float | None = None
) -> str:
    """Results grouped by component: STATUS, CHECK, HOST/ENDPOINT, DETAIL; a fix line under
    each failure; then ``N passed, M failed`` and, given ``elapsed``, the timing
    (:func:`timing_line`)."""
    if not results:
        return "No checks apply to this inventory.\n0 passed, 0 failed\n"
    headers = ("STATUS", "CHECK", "HOST / ENDPOINT", "DETAIL")
    rows = [(_status(r), r.name, _where(r), r.detail) for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers[:3])]

    def line(cells: Sequence[str], status_color: str = "") -> str:
        status = cells[0].ljust(widths[0])
        if status_color:
            status = f"{status_color}{status}{_RESET}"
        rest = [cells[1].ljust(widths[1]), cells[2].ljust(widths[2]), cells[3]]
        return "  ".join([status, *rest]).rstrip()

    out: list[str] = []
    components: list[str] = []
    for result in results:
        if result.component not in components:
            components.append(result.component)
    for component in components:
        title = f"== {component} =="
        out.append(f"{_BOLD}{title}{_RESET}" if color else title)
        out.append(line(headers))
        for result, row in zip(results, rows, strict=True):
            if result.component != component:
                continue
            out.append(line(row, _COLORS[row[0]] if color else ""))
            if (not result.ok or result.warning) and result.fix:
                out.append(f"{' ' * (widths[0] + 2)}fix: {result.fix}")
        out.append("")
    summary = summarise(results)
    tail = timing_line(results, elapsed)
    if color:
        tail = f"{_GREEN if not summary['failed'] else _RED}{tail}{_RESET}"
    out.append(tail)
    return "\n".join(out) + "\n"


def _all_ok(results: Sequence[CheckResult]) -> bool | None:
    return all(r.ok for r in results) if results else None


def storage_block(topology: Topology, results: Sequence[CheckResult]) -> dict[str, Any]:
    """The ``storage`` block of the JSON document: are the JuiceFS mounts up and RustFS healthy
    (None when the inventory has none), and the JuiceFS volume's name."""
    mounts = [r for r in results if r.component == "juicefs" and r.name == "juicefs mount"]
    rustfs = [r for r in results if r.component == "rustfs"]
    try:
        clients = topology.group(groups.JUICEFS_CLIENT)
        volume = str(clients[0].var("juicefs_volume_name")) if clients else None
    except VariableError:
        volume = None
    return {
        "juicefs_mounted": _all_ok(mounts) if volume is not None else None,
        "rustfs_healthy": _all_ok(rustfs) if topology.group(groups.RUSTFS) else None,
        "juicefs_volume": volume,
    }


def render_json(
    results: Sequence[CheckResult], *, elapsed: float | None = None, **extra: Any
) -> str:
    """The single JSON document of ``--format json`` (``extra`` keys are added at top level;
    ``elapsed``, the run's wall time, becomes ``summary.wall``)."""
    summary = summarise(results)
    if elapsed is not None:
        summary["wall"] = round(elapsed, 3)
    document: dict[str, Any] = {
        "ok": summary["failed"] == 0,
        "summary": summary,
        "checks": [r.to_dict() for r in results],
    }
    document.update(extra)
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def write_junit(
    results: Sequence[CheckResult], path: str | Path, *, suite: str = "storagectl verify"
) -> None:
    """Write JUnit XML: one ``<testsuite>`` per component, one ``<testcase>`` per result."""
    summary = summarise(results)
    root = ET.Element(
        "testsuites",
        name=suite,
        tests=str(summary["total"]),
        failures=str(summary["failed"]),
        errors="0",
        time=f"{sum(r.duration for r in results):.3f}",
    )
    by_component: dict[str, list[CheckResult]] = {}
    for result in results:
        by_component.setdefault(result.component, []).append(result)
    for component, members in by_component.items():
        testsuite = ET.SubElement(
            root,
            "testsuite",
            name=component,
            tests=str(len(members)),
            failures=str(sum(1 for r in members if not r.ok)),
            errors="0",
            skipped="0",
            time=f"{sum(r.duration for r in members):.3f}",
        )
        for result in members:
            name = f"{result.name} [{result.host}]" if result.host else result.name
            case = ET.SubElement(
                testsuite,
                "testcase",
                classname=f"storagectl.{component}.{result.name.replace(' ', '_')}",
                name=name,
                time=f"{result.duration:.3f}",
            )
            if not result.ok:
                failure = ET.SubElement(case, "failure", message=result.detail, type="CheckFailed")
                failure.text = "\n".join(
                    part
                    for part in (
                        f"endpoint: {result.endpoint}" if result.endpoint else "",
                        f"detail: {result.detail}",
                        f"fix: {result.fix}" if result.fix else "",
                    )
                    if part
                )
            else:
                ET.SubElement(case, "system-out").text = result.detail
    tree = ET.ElementTree(root)
    ET.indent(tree)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tree.write(target, encoding="utf-8", xml_declaration=True)


def print_report(
    results: Sequence[CheckResult],
    fmt: str = "table",
    stream: TextIO | None = None,
    *,
    storage: dict[str, Any] | None = None,
    elapsed: float | None = None,
) -> None:
    """Print ``results`` as ``table`` or ``json`` to ``stream`` (stdout by default); ``storage``
    is the JSON document's ``storage`` block (see :func:`storage_block`), ``elapsed`` the run's
    wall time in seconds."""
    out = stream or sys.stdout
    if fmt == "json":
        extra = {"storage": storage} if storage is not None else {}
        out.write(render_json(results, elapsed=elapsed, **extra))
    else:
        out.write(render_table(results, color=wants_color(out), elapsed=elapsed))
    out.flush()
