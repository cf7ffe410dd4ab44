"""Benchmark (not a test): ``juicefs bench`` on a lab client, through the deployed (tuned) mount
and through a temporary mount with JuiceFS's default options, side by side.

    python benchmarks/juicefs_bench.py -i inventories/lab [--client lab-edge-1] [--json]

On the client (over ssh, as Ansible reaches it) it runs ``juicefs bench`` in the deployed mount
(``juicefs_mountpoint``, unit ``juicefs-data``), then mounts the same volume a second time at a
temporary mountpoint with no tuning flags (``juicefs mount -d --no-usage-report META-URL MP``,
META_PASSWORD read on the client from the mount unit's 0600 environment file, never on a command
line), benches it, and unmounts it (also when the bench fails). Small sizes keep both runs well
under 2 minutes; every remote command is bounded. Exits 1 when a run fails.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import uuid
from collections.abc import Sequence
from typing import Any

from _common import DEFAULT_INVENTORY, BenchmarkError, fail, load

from storagectl import remote
from storagectl.checks.juicefs import CLIENT, PATH_PREFIX, env_file, meta_url
from storagectl.inventory import Host, InventoryError

#: Each of the two runs (mount, bench, umount) must finish within this.
RUN_BOUND = 55.0
BIG_FILE_MIB = 64
SMALL_FILE_COUNT = 100


def bench_command(path: str, big_file_mib: int, small_files: int) -> str:
    """The ``juicefs bench`` shell command for ``path`` (one thread: comparable runs)."""
    return (
        f"juicefs bench {shlex.quote(path)} --big-file-size {big_file_mib} "
        f"--small-file-count {small_files} --threads 1"
    )


def parse_bench(output: str) -> list[tuple[str, str, str]]:
    """(item, value, cost) rows of the table ``juicefs bench`` prints; ``ValueError`` when
    there is none."""
    rows = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().split("|")]
        if len(cells) < 5 or not cells[1] or cells[1] == "ITEM":
            continue
        rows.append((cells[1], cells[2], cells[3]))
    if not rows:
        raise ValueError("no result table in the output of juicefs bench")
    return rows


def side_by_side(
    tuned: Sequence[tuple[str, str, str]], default: Sequence[tuple[str, str, str]]
) -> str:
    """A table: ITEM, the tuned mount's value and cost, the default mount's value and cost."""
    other = {item: (value, cost) for item, value, cost in default}
    header = ("ITEM", "TUNED", "(COST)", "DEFAULT OPTIONS", "(COST)")
    rows = [header] + [(i, v, c, *other.get(i, ("-", "-"))) for i, v, c in tuned]
    widths = [max(len(row[n]) for row in rows) for n in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(widths[n]) for n, cell in enumerate(row)).rstrip() for row in rows
    )


def _tuned_script(host: Host, big: int, small: int) -> str:
    mountpoint = str(host.var("juicefs_mountpoint", default="/data"))
    return f"{PATH_PREFIX}; timeout {RUN_BOUND:g} {bench_command(mountpoint, big, small)}"


def _default_script(topology: Any, host: Host, big: int, small: int) -> str:
    env = shlex.quote(env_file(host))
    url = shlex.quote(meta_url(topology, host))
    mp = f"/run/storagectl-bench-{uuid.uuid4().hex[:8]}"
    return (
        f"set -e; {PATH_PREFIX}; set -a; . {env}; set +a; mkdir -p {mp}; "
        f"trap 'juicefs umount {mp} >/dev/null 2>&1 || juicefs umount -f {mp} >/dev/null 2>&1; "
        f"rmdir {mp}' EXIT; "
        f"timeout 20 juicefs mount -d --no-usage-report {url} {mp} >/dev/null 2>&1; "
        f"timeout {RUN_BOUND - 20:g} {bench_command(mp, big, small)}"
    )


def run_bench(host: Host, script: str, what: str) -> list[tuple[str, str, str]]:
    try:
        result = remote.run_shell(host, script, timeout=RUN_BOUND + 5, what=what)
    except remote.RemoteError as exc:
        raise BenchmarkError(str(exc)) from None
    if result.returncode != 0:
        why = (result.stderr or result.stdout).strip().splitlines()
        raise BenchmarkError(
            f"{host.name}: {what} exited {result.returncode}{': ' + why[-1] if why else ''}"
        )
    try:
        return parse_bench(result.stdout)
    except ValueError as exc:
        raise BenchmarkError(f"{host.name}: {what}: {exc}") from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default=str(DEFAULT_INVENTORY))
    parser.add_argument("--client", help="the juicefs_client host to run on (default: first)")
    parser.add_argument("--big-file-size", type=int, default=BIG_FILE_MIB, metavar="MIB")
    parser.add_argument("--small-file-count", type=int, default=SMALL_FILE_COUNT, metavar="N")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        topology = load(args.inventory)
        clients = topology.group(CLIENT)
        host = next((h for h in clients if h.name == args.client), None) if args.client else None
        host = host or (clients[0] if clients and not args.client else None)
        if host is None:
            return fail(f"no juicefs_client host {args.client or ''} in {args.inventory}".strip())
        big, small = args.big_file_size, args.small_file_count
        tuned = run_bench(host, _tuned_script(host, big, small), "juicefs bench (deployed mount)")
        default = run_bench(
            host, _default_script(topology, host, big, small), "juicefs bench (default options)"
        )
    except (BenchmarkError, InventoryError, ValueError) as exc:
        return fail(str(exc))
    if args.json:
        document = {
            "benchmark": "juicefs bench",
            "client": host.name,
            "big_file_mib": big,
            "small_file_count": small,
            "tuned": [dict(zip(("item", "value", "cost"), r, strict=True)) for r in tuned],
            "default": [dict(zip(("item", "value", "cost"), r, strict=True)) for r in default],
        }
        print(json.dumps(document, indent=2))
    else:
        print(f"juicefs bench on {host.name} (big file {big} MiB, {small} small files, 1 thread)")
        print(side_by_side(tuned, default))
    return 0


if __name__ == "__main__":
    sys.exit(main())
