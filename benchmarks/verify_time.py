"""Benchmark (not a test): how long ``storagectl verify`` takes, and how close that is to its
slowest check.

    python benchmarks/verify_time.py -i inventories/lab [--runs 5] [--json]

Runs ``storagectl verify -i INVENTORY --format json`` ``--runs`` times (1-20, default 5) from the
project root, one after the other. For each run it prints the wall time (measured around the
process), the slowest single check (the largest ``checks[].duration`` of the JSON document, with
its name and host), the ratio wall / slowest and the time spent outside the check phase (the
wall time minus verify's own ``summary.wall``: interpreter start, imports, loading the inventory
through Ansible, the report, exit). Checks run concurrently, so a ratio near 1 means the run
costs no more than its slowest probe; a larger one points at serialisation (a full pool) or at
the fixed start-up cost. Then one summary line; the targets are a median wall time of at most
3 s and a median ratio of at most 1.3.

Read-only: verify writes and deletes its own small test objects, nothing else. Exits 1 when a run
did not produce a JSON document or a check failed (the figures of a failing cluster say little).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import fail, repeat_parser, storagectl

from storagectl.paths import PROJECT_ROOT

MAX_RUNS = 20
TARGET_WALL_S = 3.0
TARGET_RATIO = 1.3
#: A run that takes longer than this is stopped (verify's own checks are bounded by --timeout).
RUN_BOUND_S = 300.0


@dataclass
class Run:
    """One ``storagectl verify``: its exit code, wall time and slowest check."""

    number: int
    rc: int
    wall_s: float
    slowest_s: float | None = None
    slowest_check: str = ""
    checks_wall_s: float | None = None
    passed: int = 0
    failed: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.rc == 0 and self.slowest_s is not None

    @property
    def outside_s(self) -> float | None:
        """Wall time outside verify's check phase (None when the document has no summary.wall)."""
        if self.checks_wall_s is None:
            return None
        return max(0.0, self.wall_s - self.checks_wall_s)

    @property
    def checks_ratio(self) -> float | None:
        """verify's check phase / slowest check: how well the checks overlap, start-up aside."""
        if not self.slowest_s or self.checks_wall_s is None:
            return None
        return self.checks_wall_s / self.slowest_s

    @property
    def ratio(self) -> float | None:
        """wall / slowest check (None without a slowest check or when it took no time)."""
        if not self.slowest_s:
            return None
        return self.wall_s / self.slowest_s


# --- pure parts: parsing verify's document, lines, summary ---------------------------------


def parse_document(number: int, rc: int, wall_s: float, stdout: str) -> Run:
    """A :class:`Run` from verify's exit code, wall time and JSON stdout."""
    run = Run(number=number, rc=rc, wall_s=wall_s)
    try:
        document = json.loads(stdout)
    except ValueError:
        first = stdout.strip().splitlines()[:1]
        run.error = f"no JSON on stdout (rc={rc}){': ' + first[0][:80] if first else ''}"
        return run
    if not isinstance(document, dict):
        run.error = f"unexpected JSON document (rc={rc})"
        return run
    if document.get("error"):
        run.error = str(document["error"])
    summary = document.get("summary") or {}
    run.passed = int(summary.get("passed", 0))
    run.failed = int(summary.get("failed", 0))
    if isinstance(summary.get("wall"), int | float):
        run.checks_wall_s = float(summary["wall"])
    checks = [c for c in document.get("checks") or [] if isinstance(c, Mapping)]
    if checks:
        worst = max(checks, key=lambda c: float(c.get("duration") or 0.0))
        run.slowest_s = float(worst.get("duration") or 0.0)
        where = worst.get("host") or worst.get("endpoint") or ""
        run.slowest_check = f"{worst.get('name', '?')} {where}".strip()
    elif not run.error:
        run.error = f"no checks in the document (rc={rc})"
    return run


def run_line(run: Run) -> str:
    """``run N: X.XX s wall, slowest check Y.YY s (<check> <host>), ratio Z.ZZ[, O.OO s outside
    the checks (checks alone: ratio C.CC)]``."""
    head = f"run {run.number}: {run.wall_s:.2f} s wall"
    if run.slowest_s is None:
        return f"{head}, {run.error or 'no checks'}"
    ratio = f"{run.ratio:.2f}" if run.ratio is not None else "n/a"
    line = f"{head}, slowest check {run.slowest_s:.2f} s ({run.slowest_check}), ratio {ratio}"
    if run.outside_s is not None and run.checks_ratio is not None:
        line += (
            f", {run.outside_s:.2f} s outside the checks (checks alone: ratio "
            f"{run.checks_ratio:.2f})"
        )
    if run.error or run.failed or run.rc:
        line += f" [rc={run.rc}, {run.failed} failed{', ' + run.error if run.error else ''}]"
    return line


def summarise(runs: Sequence[Run]) -> dict[str, Any]:
    """Medians of wall time, slowest check and ratio over the runs that produced checks."""
    measured = [r for r in runs if r.slowest_s is not None]
    ratios = [r.ratio for r in measured if r.ratio is not None]

    def median(values: Sequence[float]) -> float | None:
        return round(statistics.median(values), 3) if values else None

    return {
        "runs": len(runs),
        "measured": len(measured),
        "ok": sum(1 for r in runs if r.ok),
        "median_wall_s": median([r.wall_s for r in measured]),
        "median_slowest_s": median([r.slowest_s for r in measured if r.slowest_s is not None]),
        "median_ratio": median(ratios),
        "median_outside_s": median([r.outside_s for r in measured if r.outside_s is not None]),
        "median_checks_ratio": median(
            [r.checks_ratio for r in measured if r.checks_ratio is not None]
        ),
        "target_wall_s": TARGET_WALL_S,
        "target_ratio": TARGET_RATIO,
    }


def summary_line(summary: Mapping[str, Any]) -> str:
    """``verify: median X s wall, slowest check median Y s, ratio Z (targets: <= 3 s, <= 1.3x)``."""
    targets = f"(targets: <= {summary['target_wall_s']:g} s, <= {summary['target_ratio']:g}x)"
    if not summary["measured"]:
        return f"verify: no run produced checks over {summary['runs']} runs {targets}"
    ratio = summary["median_ratio"]
    failed = summary["runs"] - summary["ok"]
    outside = summary.get("median_outside_s")
    alone = summary.get("median_checks_ratio")
    extra = ""
    if outside is not None and alone is not None:
        extra = f", {outside:.2f} s outside the checks (checks alone: ratio {alone:.2f})"
    if failed:
        extra += f", {failed} of {summary['runs']} runs not green"
    return (
        f"verify: median {summary['median_wall_s']:.2f} s wall, slowest check median "
        f"{summary['median_slowest_s']:.2f} s, ratio "
        f"{'n/a' if ratio is None else f'{ratio:.2f}'}{extra} {targets}"
    )


# --- running verify -------------------------------------------------------------------------


def verify_once(number: int, inventory: str) -> Run:
    """One timed ``storagectl verify --format json``; stderr (warnings) is passed through."""
    command = [storagectl(), "verify", "-i", inventory, "--format", "json"]
    start = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=RUN_BOUND_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Run(number, rc=-1, wall_s=time.monotonic() - start, error="run timed out")
    except OSError as exc:
        return Run(number, rc=-1, wall_s=0.0, error=f"cannot run {command[0]}: {exc}")
    wall = time.monotonic() - start
    if done.stderr:
        sys.stderr.write(done.stderr)
    return parse_document(number, done.returncode, wall, done.stdout)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return repeat_parser(
        __doc__.splitlines()[0], "runs", default=5, maximum=MAX_RUNS, what="verify runs to time"
    ).parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(args.inventory).exists():
        return fail(f"no inventory at {args.inventory} (storagectl lab up creates inventories/lab)")
    runs: list[Run] = []
    for number in range(1, args.runs + 1):
        run = verify_once(number, args.inventory)
        runs.append(run)
        if not args.json:
            print(run_line(run), flush=True)
        if run.rc < 0:
            break
    summary = summarise(runs)
    if args.json:
        document = {
            "benchmark": "verify time",
            **summary,
            "run_results": [
                {
                    **{k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(r).items()},
                    "ratio": round(r.ratio, 3) if r.ratio is not None else None,
                    "ok": r.ok,
                }
                for r in runs
            ],
        }
        print(json.dumps(document, indent=2))
    else:
        print(summary_line(summary))
    return 0 if runs and all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
