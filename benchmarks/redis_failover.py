"""Benchmark (not a test): how long JuiceFS cannot write after the Redis master dies (Sentinel).

    python benchmarks/redis_failover.py -i inventories/lab [--rounds 1] [--json]

Each round finds the Redis master every Sentinel names and crashes it over ssh so that nothing
brings it back during the measurement:

    systemctl mask --runtime redis-server && systemctl kill --signal=SIGKILL redis-server

(``Restart=always`` would otherwise restart it within a second, before the Sentinels notice.)
A timer starts when that command returns. Two probes then run side by side, each bounded by 60 s:

* a new master: every surviving Sentinel names one master, not the killed one (every 100 ms);
* a JuiceFS write: ``touch <juicefs_mountpoint>/bench-redis/<uuid>`` on the first JuiceFS client,
  over ssh (one try at a time, each bounded by 10 s), succeeds.

Then the killed Redis is unmasked and started again, and the round ends once it replicates the
new master (the Sentinels turn the returning server into a replica; bounded 120 s).

Needs an inventory with Redis under Sentinel (``redis_sentinel_enabled``, 3 or more redis hosts)
and a JuiceFS client (``storagectl lab up --topology ha``, then ``storagectl deploy``), ssh as
Ansible reaches the hosts, and the Redis and Sentinel ports. Exits 1 when a round did not recover.
There is no target: the failover takes about ``redis_sentinel_down_after_ms`` (5 s by default)
plus the Sentinels' election; the figures show what a lower setting would buy.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from _common import (
    BenchmarkError,
    benchmark_main,
    first_write_line,
    load,
    milestones_line,
    repeat_parser,
    run_on,
    run_rounds,
    summarise_first_writes,
)

from storagectl.checks.base import CheckContext
from storagectl.checks.juicefs import CLIENT
from storagectl.checks.redis import (
    REDIS,
    REDIS_UNIT,
    SentinelView,
    connect,
    redis_address,
    redis_port,
    sentinel_enabled,
    sentinel_view,
)
from storagectl.inventory import Host, Topology

MAX_ROUNDS = 5
POLL_SECONDS = 0.1
#: From the kill: the new master and the first JuiceFS write, each within.
BOUND_SECONDS = 60.0
#: How long the restarted Redis may take to replicate the new master.
REJOIN_SECONDS = 120.0
WRITE_TIMEOUT = 10
PROBE = CheckContext(timeout=2.0)
BENCH_DIR = "bench-redis"

KILL_COMMAND = (
    "sh",
    "-c",
    f"systemctl mask --runtime {REDIS_UNIT} && systemctl kill --signal=SIGKILL {REDIS_UNIT}",
)
RESTORE_COMMAND = (
    "sh",
    "-c",
    f"systemctl unmask --runtime {REDIS_UNIT} && "
    f"{{ systemctl reset-failed {REDIS_UNIT} || true; }} && systemctl start {REDIS_UNIT}",
)

T = TypeVar("T")


@dataclass
class Round:
    """One failover: the killed master, the new one, and when (seconds after the kill; None when
    it did not happen within BOUND_SECONDS). It recovered when both happened."""

    number: int
    killed: str
    new_master: str = ""
    new_master_s: float | None = None
    first_write_s: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and None not in (self.new_master_s, self.first_write_s)


# --- pure parts: the agreed master, reporting --------------------------------------------------


def agreed_master(views: Sequence[SentinelView], hosts: Sequence[Host]) -> str | None:
    """The Redis host every answering Sentinel names master (None when they disagree, name
    none, or name an address outside ``hosts``)."""
    named = {v.master for v in views if not v.error}
    if len(named) != 1:
        return None
    by_address = {redis_address(h): h.name for h in hosts}
    return by_address.get(named.pop())


def round_line(result: Round) -> str:
    """``round N: master <host> killed; new master <host> after A s; first JuiceFS write after
    B s`` (what did not happen is said instead)."""
    return milestones_line(
        f"round {result.number}: master {result.killed} killed",
        [
            (result.new_master_s, f"new master {result.new_master}", "new master"),
            (result.first_write_s, "first JuiceFS write", "JuiceFS write"),
        ],
        BOUND_SECONDS,
        result.error,
    )


def summarise(rounds: Sequence[Round]) -> dict[str, Any]:
    """Median and max time to the first JuiceFS write over the rounds that recovered."""
    return summarise_first_writes(rounds, None)


def summary_line(summary: Mapping[str, Any]) -> str:
    """``redis failover: first JuiceFS write median X s, max Y s over N rounds (no target)``."""
    return first_write_line("redis failover", "JuiceFS write", summary)


# --- talking to the cluster -------------------------------------------------------------------


def views(topology: Topology, hosts: Sequence[Host]) -> list[SentinelView]:
    return [sentinel_view(topology, h, PROBE) for h in hosts]


def poll(
    probe: Callable[[], T | None], start: float, pause: float = POLL_SECONDS
) -> tuple[float | None, T | None]:
    """Call ``probe`` until it returns something truthy or BOUND_SECONDS after ``start`` pass:
    (seconds after ``start``, its value) or (None, None)."""
    deadline = start + BOUND_SECONDS
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return time.monotonic() - start, value
        time.sleep(pause)
    return None, None


def failover(number: int, killed: Host, *, topology: Topology, client: Host) -> Round:
    """Crash ``killed`` (the master) and time the new master and the first JuiceFS write."""
    result = Round(number=number, killed=killed.name)
    hosts = topology.group(REDIS)
    survivors = [h for h in hosts if h.name != killed.name]
    mountpoint = str(client.var("juicefs_mountpoint", default="/data")).rstrip("/")
    path = f"{mountpoint}/{BENCH_DIR}/{uuid.uuid4().hex}"
    touch = f"mkdir -p {mountpoint}/{BENCH_DIR} && timeout {WRITE_TIMEOUT} touch {path}"

    def elected() -> str | None:
        master = agreed_master(views(topology, survivors), hosts)
        return master if master != killed.name else None

    def written() -> bool:
        try:
            done = run_on(client, "sh", "-c", touch, timeout=WRITE_TIMEOUT + 5, check=False)
        except BenchmarkError:  # the write hung in the mount beyond its bound: try again
            return False
        return done.returncode == 0

    run_on(killed, *KILL_COMMAND)
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        master_future = pool.submit(poll, elected, start)
        write_future = pool.submit(poll, written, start, 0.0)
        result.new_master_s, new = master_future.result()
        result.first_write_s, _ = write_future.result()
    result.new_master = new or ""
    if result.first_write_s is not None:
        run_on(client, "rm", "-f", path, check=False)
    return result


def replicating(host: Host) -> bool:
    """Whether the Redis on ``host`` is a replica with its link to the master up."""
    import redis  # noqa: PLC0415 - as in the checks: only where a Redis is talked to

    client = connect(host, redis_port(host), PROBE)
    try:
        info = client.info("replication")
    except redis.RedisError:
        return False
    finally:
        client.close()
    return info.get("role") == "slave" and info.get("master_link_status") == "up"


def restore(killed: Host, topology: Topology) -> str:
    """Unmask and start Redis on ``killed`` and wait until it replicates the master the
    Sentinels name: "" or the problem."""
    try:
        run_on(killed, *RESTORE_COMMAND)
    except BenchmarkError as exc:
        return str(exc)
    hosts = topology.group(REDIS)
    deadline = time.monotonic() + REJOIN_SECONDS
    while time.monotonic() < deadline:
        every = views(topology, hosts)
        master = agreed_master(every, hosts)
        known = all(v.count("num-slaves") >= len(hosts) - 1 for v in every)
        if master and master != killed.name and known and replicating(killed):
            return ""
        time.sleep(1)
    return f"{killed.name} did not replicate the new master within {REJOIN_SECONDS:g} s"


# --- command line -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return repeat_parser(
        __doc__.splitlines()[0], "rounds", default=1, maximum=MAX_ROUNDS, what="failovers to time"
    ).parse_args(argv)


def run(args: argparse.Namespace) -> tuple[list[Round], str]:
    """The rounds (stopping at the first whose Redis did not rejoin) and why it stopped."""
    topology = load(args.inventory)
    hosts = topology.group(REDIS)
    clients = topology.group(CLIENT)
    if not sentinel_enabled(topology) or len(hosts) < 3:
        raise BenchmarkError("needs Redis under Sentinel (redis_sentinel_enabled, 3+ redis hosts)")
    if not clients:
        raise BenchmarkError("needs a juicefs_client host to write through")

    def one_round(number: int) -> tuple[Round, str]:
        master = agreed_master(views(topology, hosts), hosts)
        if master is None:
            raise BenchmarkError("the Sentinels do not agree on a master: verify first")
        killed = topology.hosts[master]
        try:
            result = failover(number, killed, topology=topology, client=clients[0])
        finally:
            problem = restore(killed, topology)
        return result, problem

    return run_rounds(args.rounds, one_round, as_json=args.json, round_line=round_line)


def main(argv: Sequence[str] | None = None) -> int:
    return benchmark_main(
        "redis failover", parse_args(argv), run, summarise=summarise, summary_line=summary_line
    )


if __name__ == "__main__":
    sys.exit(main())
