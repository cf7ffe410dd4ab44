"""Benchmark (not a test): how long a SeaweedFS cluster cannot write after its master leader dies.

    python benchmarks/master_failover.py -i inventories/lab [--rounds 3] [--json]

Each round finds the Raft leader (``GET /cluster/status`` on every master), SIGKILLs its
``seaweedfs-master`` over ssh and starts a timer when the kill command returns. It then polls the
surviving masters every 50 ms until one leads (``IsLeader``) a leader other than the dead one,
and writes a small file: ``GET /dir/assign`` on the new leader, multipart ``POST`` to the
assigned volume server (what ``weed upload`` does), retried until it works. The timer stops at
the first successful write; both steps share a 30 s bound. The killed master is started again
and the round ends once every master answers and all agree on one leader.

Needs an inventory with at least three masters (``storagectl lab up --topology ha``, then
``storagectl deploy``), ssh to the masters as Ansible reaches them, and HTTP to the masters and
volume servers. Exits 1 only when a round did not recover (no new leader, no write, or the
killed master did not rejoin); the target is a first write within 2 s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from _common import (
    BenchmarkError,
    benchmark_main,
    first_write_line,
    load,
    repeat_parser,
    run_on,
    run_rounds,
    summarise_first_writes,
)

from storagectl.checks.base import CheckContext, parallel_map
from storagectl.checks.seaweedfs import UNITS, _cluster_status, _strip_grpc
from storagectl.checks.transfer import http_error, http_session
from storagectl.endpoints import weed_address
from storagectl.inventory import Host, Topology
from storagectl.inventory.groups import MASTER

MAX_ROUNDS = 10
POLL_SECONDS = 0.05
#: From the kill: the new leader and the first write must both come within this.
BOUND_SECONDS = 30.0
#: How long the restarted master may take to rejoin and agree on the leader.
REJOIN_SECONDS = 60.0
TARGET_SECONDS = 2.0
#: Short HTTP timeouts (connect 0.5 s, read 1.2 s): a dead master must not stall the polling.
PROBE = CheckContext(timeout=2.0)
PAYLOAD_BYTES = 1024


@dataclass
class Round:
    """One failover: who was killed, who took over, and when (seconds after the kill)."""

    number: int
    killed: str
    new_leader: str = ""
    new_leader_s: float | None = None
    first_write_s: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.first_write_s is not None


# --- pure parts: leaders, agreement, reporting --------------------------------------------


def leader_address(status: Mapping[str, Any] | None) -> str:
    """The leader a ``/cluster/status`` answer names, as ``ip:port`` (``.grpcport`` stripped)."""
    if not status:
        return ""
    return _strip_grpc(str(status.get("Leader") or ""))


def master_endpoints(topology: Topology) -> dict[str, Host]:
    """``storage_address:port`` of every master -> its inventory host."""
    return {weed_address(h, MASTER): h for h in topology.group(MASTER)}


def host_of(address: str, endpoints: Mapping[str, Host]) -> str:
    """The inventory name of the master at ``address`` (the address itself when unknown)."""
    host = endpoints.get(address)
    return host.name if host else address


def elected(statuses: Mapping[str, Mapping[str, Any] | None], killed: str) -> str:
    """The address of a new leader: one master claims the lead and names a leader other than
    ``killed``; an empty string while none does."""
    for status in statuses.values():
        if status and status.get("IsLeader") is True:
            leader = leader_address(status)
            if leader and leader != killed:
                return leader
    return ""


def agreed_leader(statuses: Mapping[str, Mapping[str, Any] | None]) -> str:
    """The leader when every master answered, all name the same one and exactly one claims it."""
    if not statuses or any(status is None for status in statuses.values()):
        return ""
    leaders = {leader_address(status) for status in statuses.values()}
    claiming = [s for s in statuses.values() if s and s.get("IsLeader") is True]
    if len(leaders) != 1 or len(claiming) != 1:
        return ""
    return leaders.pop()


def round_line(result: Round) -> str:
    """``round N: leader <host> killed, new leader <host> after X.XX s, first write after ...``."""
    head = f"round {result.number}: leader {result.killed} killed"
    if result.new_leader_s is None:
        return f"{head}, {result.error}"
    head = f"{head}, new leader {result.new_leader} after {result.new_leader_s:.2f} s"
    if result.first_write_s is None:
        return f"{head}, {result.error}"
    line = f"{head}, first write after {result.first_write_s:.2f} s"
    return f"{line} ({result.error})" if result.error else line


def summarise(rounds: Sequence[Round]) -> dict[str, Any]:
    """Median and max time to the first write over the rounds that recovered."""
    return summarise_first_writes(rounds, TARGET_SECONDS)


def summary_line(summary: Mapping[str, Any]) -> str:
    """``master failover: first write median X s, max Y s over N rounds (target <= 2 s)``."""
    return first_write_line("master failover", "write", summary)


# --- talking to the cluster -----------------------------------------------------------------


def statuses(masters: Sequence[Host]) -> dict[str, dict[str, Any] | None]:
    """Every master's ``/cluster/status`` (None when it did not answer), asked concurrently."""
    views = parallel_map(lambda host: _cluster_status(host, PROBE), list(masters))
    return {view.host.name: view.status for view in views}


def assign_and_upload(session: requests.Session, master: str, payload: bytes) -> tuple[str, str]:
    """``weed upload`` by hand: assign a file id on ``master`` (``ip:port``), POST ``payload``
    to the volume server it names. Returns (the file's URL, "") or ("", what went wrong)."""
    try:
        response = session.get(f"http://{master}/dir/assign", timeout=PROBE.http_timeout)
        body = response.json()
    except requests.RequestException as exc:
        return "", f"assign: {http_error(exc)}"
    except ValueError:
        return "", f"assign: HTTP {response.status_code}, answer is not JSON"
    if not isinstance(body, dict) or not body.get("fid") or not body.get("url"):
        error = body.get("error") if isinstance(body, dict) else None
        return "", f"assign: HTTP {response.status_code} {error or 'no fid'}"
    url = f"http://{body['url']}/{body['fid']}"
    files = {"file": ("storagectl-failover.bin", payload, "application/octet-stream")}
    try:
        response = session.post(url, files=files, timeout=PROBE.http_timeout)
    except requests.RequestException as exc:
        return "", f"upload {url}: {http_error(exc)}"
    if response.status_code not in (200, 201):
        return "", f"upload {url}: HTTP {response.status_code} {response.text[:80].strip()}"
    return url, ""


def current_leader(masters: Sequence[Host], endpoints: Mapping[str, Host]) -> tuple[str, Host]:
    """The agreed leader's address and inventory host; BenchmarkError when there is none."""
    seen = statuses(masters)
    leader = agreed_leader(seen)
    if not leader:
        views = ", ".join(
            f"{name}: {leader_address(status) or 'no answer/leader'}"
            for name, status in seen.items()
        )
        raise BenchmarkError(f"the masters do not agree on one leader ({views})")
    if leader not in endpoints:
        raise BenchmarkError(f"leader {leader} is not a master of the inventory")
    return leader, endpoints[leader]


def failover(
    number: int,
    leader: str,
    killed: Host,
    *,
    masters: Sequence[Host],
    endpoints: Mapping[str, Host],
    session: requests.Session,
) -> Round:
    """Kill ``killed`` (the leader at ``leader``) and time the new leader and the first write."""
    result = Round(number=number, killed=killed.name)
    survivors = [m for m in masters if m.name != killed.name]
    run_on(killed, "systemctl", "kill", "-s", "SIGKILL", UNITS[MASTER])
    start = time.monotonic()
    deadline = start + BOUND_SECONDS
    new = ""
    while not new and time.monotonic() < deadline:
        new = elected(statuses(survivors), leader)
        if not new:
            time.sleep(POLL_SECONDS)
    if not new:
        result.error = f"no surviving master took the lead within {BOUND_SECONDS:g} s"
        return result
    result.new_leader_s = time.monotonic() - start
    result.new_leader = host_of(new, endpoints)
    payload = os.urandom(PAYLOAD_BYTES)
    error = "no attempt"
    while time.monotonic() < deadline:
        url, error = assign_and_upload(session, new, payload)
        if url:
            result.first_write_s = time.monotonic() - start
            with contextlib.suppress(requests.RequestException):
                session.delete(url, timeout=PROBE.http_timeout)
            return result
        time.sleep(POLL_SECONDS)
    result.error = f"no write within {BOUND_SECONDS:g} s (last: {error})"
    return result


def rejoin(killed: Host, masters: Sequence[Host]) -> str:
    """Start the killed master again and wait until all masters agree; "" or the problem."""
    try:
        run_on(killed, "systemctl", "start", UNITS[MASTER])
    except BenchmarkError as exc:
        return str(exc)
    deadline = time.monotonic() + REJOIN_SECONDS
    while time.monotonic() < deadline:
        seen = statuses(masters)
        if leader_address(seen.get(killed.name)) and agreed_leader(seen):
            return ""
        time.sleep(0.25)
    return f"{killed.name} did not rejoin with every master agreeing within {REJOIN_SECONDS:g} s"


# --- command line ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return repeat_parser(
        __doc__.splitlines()[0], "rounds", default=3, maximum=MAX_ROUNDS, what="failovers to time"
    ).parse_args(argv)


def run(args: argparse.Namespace) -> tuple[list[Round], str]:
    """Every round; (the rounds, why the benchmark stopped early or "")."""
    topology = load(args.inventory)
    masters = topology.group(MASTER)
    if len(masters) < 3:
        raise BenchmarkError(
            f"{len(masters)} master(s) in {args.inventory}: failover needs at least 3 "
            "(storagectl lab up --topology ha)"
        )
    endpoints = master_endpoints(topology)
    with http_session() as session:

        def one_round(number: int) -> tuple[Round, str]:
            leader, killed = current_leader(masters, endpoints)
            try:
                result = failover(
                    number, leader, killed, masters=masters, endpoints=endpoints, session=session
                )
            finally:
                problem = rejoin(killed, masters)
            return result, problem

        return run_rounds(args.rounds, one_round, as_json=args.json, round_line=round_line)


def main(argv: Sequence[str] | None = None) -> int:
    return benchmark_main(
        "master failover", parse_args(argv), run, summarise=summarise, summary_line=summary_line
    )


if __name__ == "__main__":
    sys.exit(main())
