"""What the benchmarks share: load an inventory's topology, run a command on one of its hosts.

Not a package: the scripts of this directory import it as ``_common`` (Python puts a script's
own directory first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from storagectl import remote
from storagectl.inventory import Host, InventoryError, Topology, load_topology
from storagectl.paths import PROJECT_ROOT
from storagectl.remote import SSH_OPTIONS, ssh_argv

__all__ = ["SSH_OPTIONS", "BenchmarkError", "fail", "load", "run_on", "ssh_argv"]

DEFAULT_INVENTORY = PROJECT_ROOT / "inventories" / "lab"


class BenchmarkError(Exception):
    """The benchmark cannot go on (inventory, ssh or cluster trouble); the message says why."""


def load(inventory: str | Path) -> Topology:
    """The topology of ``inventory``, loaded as ``storagectl verify`` loads it."""
    return load_topology([inventory])


def storagectl() -> str:
    """The storagectl console script next to this Python, else the one on PATH."""
    candidate = Path(sys.executable).parent / "storagectl"
    if candidate.is_file():
        return str(candidate)
    return shutil.which("storagectl") or str(candidate)


def run_on(
    host: Host, *command: str, timeout: float = 60.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` on ``host`` as Ansible reaches it (:mod:`storagectl.remote`); raise
    BenchmarkError when it fails and ``check``."""
    try:
        return remote.run(host, *command, timeout=timeout, check=check)
    except remote.RemoteError as exc:
        raise BenchmarkError(str(exc)) from None


def repeat_parser(
    description: str, flag: str, *, default: int, maximum: int, what: str
) -> argparse.ArgumentParser:
    """The command line of a benchmark that repeats one measurement on the lab: ``-i INVENTORY``,
    ``--<flag> N`` (a whole number from 1 to ``maximum``: every loop of the lab is bounded) and
    ``--json``."""

    def count(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = 0
        if not 1 <= number <= maximum:
            raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {maximum}")
        return number

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("-i", "--inventory", default=str(DEFAULT_INVENTORY), help="inventory")
    parser.add_argument(f"--{flag}", type=count, default=default, help=f"{what} (1-{maximum})")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


def fail(message: str) -> int:
    """Print ``message`` on stderr; return exit code 1."""
    print(f"error: {message}", file=sys.stderr)
    return 1


def finish(
    benchmark: str,
    rounds: Sequence[Any],
    stopped: str,
    summary: dict[str, Any],
    *,
    as_json: bool,
    round_document: Callable[[Any], dict[str, Any]],
    summary_line: Callable[[dict[str, Any]], str],
) -> int:
    """Print a round-based benchmark's result (JSON document or summary line); its exit code:
    1 when it stopped early or a round did not recover, else 0."""
    ok = not stopped and all(r.ok for r in rounds)
    if as_json:
        document = {
            "benchmark": benchmark,
            "ok": ok,
            "stopped": stopped,
            **summary,
            "round_results": [round_document(r) for r in rounds],
        }
        print(json.dumps(document, indent=2))
    else:
        if stopped:
            print(f"stopped early: {stopped}", file=sys.stderr)
        print(summary_line(summary))
    return 0 if ok else 1


def run_rounds(
    count: int,
    one_round: Callable[[int], tuple[Any, str]],
    *,
    as_json: bool,
    round_line: Callable[[Any], str],
) -> tuple[list[Any], str]:
    """``one_round(number)`` for rounds 1..``count``; each returns (its result, the problem that
    stops the benchmark, e.g. the killed member did not come back, or ""). Each round's line is
    printed as it ends (unless ``as_json``). Returns (the rounds, why it stopped early or "")."""
    rounds: list[Any] = []
    for number in range(1, count + 1):
        result, problem = one_round(number)
        rounds.append(result)
        if not as_json:
            print(round_line(result), flush=True)
        if problem:
            return rounds, problem
    return rounds, ""


def benchmark_main(
    name: str,
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace], tuple[Sequence[Any], str]],
    *,
    summarise: Callable[[Sequence[Any]], dict[str, Any]],
    summary_line: Callable[[dict[str, Any]], str],
) -> int:
    """A round-based benchmark's main: ``run(args)``, then :func:`finish`. A BenchmarkError or
    InventoryError (the lab is not ready for it) is one line on stderr and exit code 1."""
    try:
        rounds, stopped = run(args)
    except (BenchmarkError, InventoryError) as exc:
        return fail(str(exc))
    return finish(
        name,
        rounds,
        stopped,
        summarise(rounds),
        as_json=args.json,
        round_document=round_document,
        summary_line=summary_line,
    )


def milestones_line(
    head: str, steps: Sequence[tuple[float | None, str, str]], bound_s: float, error: str = ""
) -> str:
    """``head; <done> after A s; ...`` with ``no <missing> within <bound_s> s`` for each step
    ``(seconds, done, missing)`` that did not happen, then `` (error)`` when there is one."""
    parts = [head]
    for seconds, done, missing in steps:
        if seconds is None:
            parts.append(f"no {missing} within {bound_s:g} s")
        else:
            parts.append(f"{done} after {seconds:.2f} s")
    line = "; ".join(parts)
    return f"{line} ({error})" if error else line


def summarise_first_writes(rounds: Sequence[Any], target_s: float | None) -> dict[str, Any]:
    """Median and max ``first_write_s`` over the rounds that recovered (``ok``); ``target_s``
    None when the benchmark has no target."""
    times = [r.first_write_s for r in rounds if r.ok and r.first_write_s is not None]
    return {
        "rounds": len(rounds),
        "recovered": len(times),
        "median_first_write_s": round(statistics.median(times), 3) if times else None,
        "max_first_write_s": round(max(times), 3) if times else None,
        "target_s": target_s,
    }


def first_write_line(benchmark: str, write: str, summary: Mapping[str, Any]) -> str:
    """``<benchmark>: first <write> median X s, max Y s over N rounds[, K did not recover]
    [ (target <= T s)]`` from :func:`summarise_first_writes`."""
    target = summary.get("target_s")
    target_text = f" (target <= {target:g} s)" if target is not None else ""
    if not summary["recovered"]:
        return f"{benchmark}: no round recovered over {summary['rounds']} rounds{target_text}"
    failed = summary["rounds"] - summary["recovered"]
    extra = f", {failed} did not recover" if failed else ""
    return (
        f"{benchmark}: first {write} median {summary['median_first_write_s']:.2f} s, "
        f"max {summary['max_first_write_s']:.2f} s over {summary['rounds']} rounds{extra}"
        f"{target_text}"
    )


def round_document(result: Any) -> dict[str, Any]:
    """One round (a dataclass with ``ok``) for ``--json``: its fields, seconds to the
    millisecond, and ``ok``."""
    fields = {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(result).items()}
    return {**fields, "ok": result.ok}
