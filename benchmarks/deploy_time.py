"""Benchmark (not a test): how long a deploy takes, and how much of it a converged re-run costs.

    python benchmarks/deploy_time.py -i inventories/lab [--lab [--storage-hosts N]]

Runs ``storagectl deploy -i INVENTORY``, ``storagectl verify -i INVENTORY``, then the deploy
again (the console scripts of this Python's environment), timing each, and prints

    first deploy: X s (changed=N), second converge: Y s (changed=M, Z% of first), verify: W s rc=R

``changed`` is summed over the per-host recap lines of the output (ansible-playbook's PLAY RECAP
or the SUMMARY storagectl prints in the same ``host ok=.. changed=..`` form). A converged
second run should report ``changed=0``.

``--lab`` first rebuilds the lab from nothing (``storagectl lab down``, then ``storagectl lab
up --topology ha``; needs root and removes whatever lab is up) and times ``lab up`` on its own,
so the figure that matters, booted hosts to a green verify, is first deploy + verify.

Output of the commands goes to stderr as it comes (``--quiet`` hides it); the result lines go to
stdout. Exits 1 when a command fails.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from _common import DEFAULT_INVENTORY, storagectl

from storagectl.paths import PROJECT_ROOT

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: ``lab-ha-1 : ok=25 changed=3 unreachable=0 ...`` (PLAY RECAP) or ``lab-ha-1  ok=25 changed=3
#: failed=0 ...`` (storagectl's SUMMARY).
RECAP = re.compile(r"^\s*(?P<host>[^\s:]+)\s*:?\s+ok=\d+\s+(?:\S+=\d+\s+)*?changed=(?P<n>\d+)\b")


@dataclass
class Timed:
    """One command: how long it took, its exit code, what it printed."""

    seconds: float
    rc: int
    output: str


def changed_by_host(output: str) -> dict[str, int]:
    """``changed=`` of every host's recap line (the last recap wins when there are several)."""
    found: dict[str, int] = {}
    for line in ANSI.sub("", output).splitlines():
        match = RECAP.match(line)
        if match:
            found[match["host"]] = int(match["n"])
    return found


def changed_total(output: str) -> int:
    """The sum of ``changed=`` over the hosts of the recap."""
    return sum(changed_by_host(output).values())


def percent(part: float, whole: float) -> float:
    """``part`` as a percentage of ``whole`` (0 when ``whole`` is 0)."""
    return 100.0 * part / whole if whole else 0.0


def result_line(first: Timed, second: Timed, verify: Timed) -> str:
    """The benchmark's line."""
    return (
        f"first deploy: {first.seconds:.1f} s (changed={changed_total(first.output)}), "
        f"second converge: {second.seconds:.1f} s (changed={changed_total(second.output)}, "
        f"{percent(second.seconds, first.seconds):.0f}% of first), "
        f"verify: {verify.seconds:.1f} s rc={verify.rc}"
    )


def timed(args: Sequence[str], *, quiet: bool) -> Timed:
    """Run ``storagectl args`` from the project root, echoing its output to stderr."""
    command = [storagectl(), *args]
    print(f"==> {' '.join(command)}", file=sys.stderr, flush=True)
    lines: list[str] = []
    start = time.monotonic()
    with subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    ) as process:
        assert process.stdout is not None  # noqa: S101 - stdout=PIPE guarantees it
        for line in process.stdout:
            lines.append(line)
            if not quiet:
                sys.stderr.write(line)
        rc = process.wait()
    return Timed(seconds=time.monotonic() - start, rc=rc, output="".join(lines))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default=str(DEFAULT_INVENTORY), help="inventory")
    parser.add_argument(
        "--lab",
        action="store_true",
        help="first rebuild the lab: lab down, then lab up --topology ha (timed separately)",
    )
    parser.add_argument(
        "--storage-hosts", type=int, metavar="N", help="with --lab: lab up --storage-hosts N"
    )
    parser.add_argument("--quiet", action="store_true", help="do not echo the commands' output")
    return parser.parse_args(argv)


def lab_up(args: argparse.Namespace) -> Timed | None:
    """``lab down`` then a timed ``lab up --topology ha``; None when either failed."""
    down = timed(["lab", "down"], quiet=args.quiet)
    if down.rc != 0:
        print(f"lab down failed: rc={down.rc}", file=sys.stderr)
        return None
    up_args = ["lab", "up", "--topology", "ha"]
    if args.storage_hosts:
        up_args += ["--storage-hosts", str(args.storage_hosts)]
    up = timed(up_args, quiet=args.quiet)
    if up.rc != 0:
        print(f"lab up failed after {up.seconds:.1f} s: rc={up.rc}", file=sys.stderr)
        return None
    return up


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    up = None
    if args.lab:
        up = lab_up(args)
        if up is None:
            return 1
    inventory = ["-i", args.inventory]
    first = timed(["deploy", *inventory], quiet=args.quiet)
    if first.rc != 0:
        print(f"first deploy failed after {first.seconds:.1f} s: rc={first.rc}", file=sys.stderr)
        return 1
    # Booted hosts -> green verify: the verify right after the first deploy is part of it.
    verify = timed(["verify", *inventory], quiet=args.quiet)
    second = timed(["deploy", *inventory], quiet=args.quiet)
    if up is not None:
        print(f"lab up: {up.seconds:.1f} s")
    print(result_line(first, second, verify))
    if verify.rc != 0:  # say which checks failed, even with --quiet
        print("".join(line for line in verify.output.splitlines(True) if "FAIL" in line))
    if up is not None:
        outcome = "green verify" if verify.rc == 0 else f"verify (NOT green: rc={verify.rc})"
        print(
            f"booted hosts -> {outcome} (first deploy + verify): "
            f"{first.seconds + verify.seconds:.1f} s"
        )
    if second.rc != 0:
        print(f"second deploy failed: rc={second.rc}", file=sys.stderr)
    return 0 if second.rc == 0 and verify.rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
