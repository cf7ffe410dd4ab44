"""Benchmark (not a test): how long the filers cannot write after the PostgreSQL primary dies.

    python benchmarks/pg_failover.py -i inventories/lab [--rounds 1] [--json]

Each round finds the Patroni leader (``GET /cluster`` on the first member that answers) and
crashes it over ssh, PostgreSQL included, so that nothing brings it back during the measurement:

    systemctl mask --runtime patroni && systemctl kill --kill-who=all --signal=SIGKILL patroni

Masking first (``--runtime``: until the next boot, or the unmask below) makes systemd refuse the
restart that ``Restart=on-failure`` would start; ``kill --kill-who=all`` SIGKILLs every process
of the unit's cgroup, so the PostgreSQL that Patroni runs as its child (in a session of its own,
outside ``KillMode=process``) dies with it: a crash, not a clean stop that hands the leader lock
over. A timer starts when that command returns. Three probes then run side by side, each every
100 ms and each bounded by 60 s:

* a new leader: a surviving member's ``/cluster`` names a leader other than the killed one;
* HAProxy's read-write listener (``haproxy_postgres_rw_port`` on the first HAProxy host) reaches
  a primary: a psycopg connection as the filer user (libpq's 2 s minimum connect timeout) gets
  ``pg_is_in_recovery()`` false;
* a filer write: ``PUT http://<haproxy bind>:<haproxy_filer_port>/bench-pg/<uuid>`` of 1 KiB
  (2 s timeout per try) answers 201.

Then the killed member is unmasked and started again, and the round ends once ``/cluster`` lists
it as a running replica (bounded 120 s).

Needs an inventory with at least two postgres members, filers on postgres2 and an HAProxy host
(``storagectl lab up --topology ha``, then ``storagectl deploy``), ssh to the members as Ansible
reaches them, and HTTP/PostgreSQL to the members and HAProxy. Exits 1 when a round did not
recover (no new leader, primary or write within 60 s, or the killed member did not rejoin); the
target is a first filer write within 15 s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
import requests
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
from storagectl.checks.haproxy import HAPROXY, _filer_frontend
from storagectl.checks.postgres import (
    PATRONI_UNIT,
    POSTGRES,
    Database,
    Member,
    api_url,
    filers_on_postgres,
    leaders,
    listener,
    match_members,
    member_label,
    parse_cluster,
    replica_ready,
    server_role,
)
from storagectl.checks.transfer import http_session
from storagectl.inventory import Host, Topology

MAX_ROUNDS = 5
POLL_SECONDS = 0.1
#: From the kill: the new leader, the primary behind HAProxy and the first write, each within.
BOUND_SECONDS = 60.0
#: How long the restarted member may take to rejoin as a replica.
REJOIN_SECONDS = 120.0
TARGET_SECONDS = 15.0
PUT_TIMEOUT = 2.0
#: psycopg's connect timeout; libpq takes 2 s at least.
SQL_TIMEOUT = 1.0
#: Short HTTP timeouts (connect 0.5 s, read 1.2 s) for Patroni's REST API.
PROBE = CheckContext(timeout=2.0)
PAYLOAD_BYTES = 1024
BENCH_DIR = "/bench-pg"

#: Crash the member: no restart (masked until unmasked or reboot), PostgreSQL killed too.
KILL_COMMAND = (
    "sh",
    "-c",
    f"systemctl mask --runtime {PATRONI_UNIT} && "
    f"systemctl kill --kill-who=all --signal=SIGKILL {PATRONI_UNIT}",
)
#: Bring it back: unmask, forget the failure, start.
RESTORE_COMMAND = (
    "sh",
    "-c",
    f"systemctl unmask --runtime {PATRONI_UNIT} && "
    f"{{ systemctl reset-failed {PATRONI_UNIT} || true; }} && systemctl start {PATRONI_UNIT}",
)

T = TypeVar("T")


@dataclass
class Round:
    """One failover: who was killed, who took over, and when (seconds after the kill; None when
    it did not happen within BOUND_SECONDS). It recovered when all three happened."""

    number: int
    killed: str
    new_leader: str = ""
    new_leader_s: float | None = None
    primary_s: float | None = None
    first_write_s: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and None not in (
            self.new_leader_s,
            self.primary_s,
            self.first_write_s,
        )


# --- pure parts: leaders, rejoining, reporting ------------------------------------------------


def sole_leader(members: Sequence[Member] | None) -> Member | None:
    """The leader when exactly one member holds the lock, else None."""
    found = leaders(members or [])
    return found[0] if len(found) == 1 else None


def new_leader(members: Sequence[Member] | None, killed: str) -> Member | None:
    """A leader other than ``killed`` (a Patroni member name), else None."""
    leader = sole_leader(members)
    return leader if leader is not None and leader.name != killed else None


def rejoined(members: Sequence[Member] | None, name: str) -> bool:
    """Whether member ``name`` is back as a running (or streaming) replica."""
    member = next((m for m in members or [] if m.name == name), None)
    return replica_ready(member)


def round_line(result: Round) -> str:
    """``round N: primary <host> killed; new leader <host> after A s; :5000 primary after B s;
    first filer write after C s`` (what did not happen is said instead)."""
    return milestones_line(
        f"round {result.number}: primary {result.killed} killed",
        [
            (result.new_leader_s, f"new leader {result.new_leader}", "new leader"),
            (result.primary_s, ":5000 primary", "primary on :5000"),
            (result.first_write_s, "first filer write", "filer write"),
        ],
        BOUND_SECONDS,
        result.error,
    )


def summarise(rounds: Sequence[Round]) -> dict[str, Any]:
    """Median and max time to the first filer write over the rounds that recovered."""
    return summarise_first_writes(rounds, TARGET_SECONDS)


def summary_line(summary: Mapping[str, Any]) -> str:
    """``postgres failover: first filer write median X s, max Y s over N rounds (target <=
    15 s)``."""
    return first_write_line("postgres failover", "filer write", summary)


# --- talking to the cluster -------------------------------------------------------------------


def cluster_members(session: requests.Session, hosts: Sequence[Host]) -> list[Member] | None:
    """``/cluster`` from the first of ``hosts`` that answers (None when none does)."""
    for host in hosts:
        try:
            response = session.get(f"{api_url(host)}/cluster", timeout=PROBE.http_timeout)
            if response.status_code == 200:
                return parse_cluster(response.json())
        except (requests.RequestException, ValueError):
            continue
    return None


def current_leader(session: requests.Session, members: Sequence[Host]) -> tuple[Member, Host]:
    """The sole leader and its inventory host; BenchmarkError unless every member is healthy."""
    found = cluster_members(session, members)
    if found is None:
        raise BenchmarkError("no Patroni member answered /cluster")
    matched = match_members(found, members)
    states = ", ".join(f"{member_label(m, matched)} {m.role} {m.state}" for m in found)
    leader = sole_leader(found)
    if leader is None:
        raise BenchmarkError(f"the cluster has no single leader ({states})")
    unhealthy = [h.name for h in members if h.name not in matched]
    unhealthy += [n for n, m in matched.items() if m is not leader and not replica_ready(m)]
    if unhealthy:
        raise BenchmarkError(f"not every member is a running replica or the leader ({states})")
    host = next(h for h in members if matched.get(h.name) is leader)
    return leader, host


def poll(probe: Callable[[], T | None], start: float) -> tuple[float | None, T | None]:
    """Call ``probe`` every POLL_SECONDS until it returns something truthy or BOUND_SECONDS
    after ``start`` pass: (seconds after ``start``, its value) or (None, None)."""
    deadline = start + BOUND_SECONDS
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return time.monotonic() - start, value
        time.sleep(POLL_SECONDS)
    return None, None


def is_primary(db: Database) -> bool:
    """Whether a primary answers at ``db`` (pg_is_in_recovery() false)."""
    try:
        in_recovery, _, _ = server_role(db, SQL_TIMEOUT)
    except psycopg.Error:
        return False
    return not in_recovery


def failover(
    number: int, leader: Member, killed: Host, *, topology: Topology, members: Sequence[Host]
) -> Round:
    """Crash ``killed`` (the leader) and time the new leader, the primary behind HAProxy and
    the first filer write, probed side by side."""
    result = Round(number=number, killed=killed.name)
    lb = topology.group(HAPROXY)[0]
    db = listener(topology, lb, "haproxy_postgres_rw_port")
    write_url = f"{_filer_frontend(topology, lb)}{BENCH_DIR}/{uuid.uuid4().hex}"
    payload = os.urandom(PAYLOAD_BYTES)
    survivors = [m for m in members if m.name != killed.name]
    sessions = [http_session(), http_session()]

    def elected() -> Member | None:
        return new_leader(cluster_members(sessions[0], survivors), leader.name)

    def written() -> bool:
        try:
            response = sessions[1].put(write_url, data=payload, timeout=PUT_TIMEOUT)
        except requests.RequestException:
            return False
        return response.status_code in (200, 201)

    run_on(killed, *KILL_COMMAND)
    start = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            leader_future = pool.submit(poll, elected, start)
            primary_future = pool.submit(poll, lambda: is_primary(db), start)
            write_future = pool.submit(poll, written, start)
            result.new_leader_s, new = leader_future.result()
            result.primary_s, _ = primary_future.result()
            result.first_write_s, _ = write_future.result()
        if new is not None:
            result.new_leader = member_label(new, match_members([new], members))
        if result.first_write_s is not None:
            with contextlib.suppress(requests.RequestException):
                sessions[1].delete(write_url, timeout=PUT_TIMEOUT)
    finally:
        for session in sessions:
            session.close()
    return result


def restore(killed: Host, name: str, members: Sequence[Host]) -> str:
    """Unmask and start Patroni on ``killed`` (member ``name``) and wait until it is a running
    replica again: "" or the problem."""
    try:
        run_on(killed, *RESTORE_COMMAND)
    except BenchmarkError as exc:
        return str(exc)
    deadline = time.monotonic() + REJOIN_SECONDS
    with http_session() as session:
        while time.monotonic() < deadline:
            if rejoined(cluster_members(session, members), name):
                return ""
            time.sleep(0.5)
    return f"{killed.name} did not rejoin as a running replica within {REJOIN_SECONDS:g} s"


# --- command line -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return repeat_parser(
        __doc__.splitlines()[0], "rounds", default=1, maximum=MAX_ROUNDS, what="failovers to time"
    ).parse_args(argv)


def preflight(topology: Topology, inventory: str) -> list[Host]:
    """The postgres members; BenchmarkError when the inventory cannot show a failover."""
    members = topology.group(POSTGRES)
    if len(members) < 2:
        raise BenchmarkError(
            f"{len(members)} postgres member(s) in {inventory}: failover needs at least 2 "
            "(storagectl lab up --topology ha)"
        )
    if not topology.group(HAPROXY):
        raise BenchmarkError(f"no haproxy host in {inventory}: nothing to write through")
    if not filers_on_postgres(topology):
        raise BenchmarkError(
            f"no filer has seaweedfs_filer_store: postgres2 in {inventory}: the filers do not "
            "use PostgreSQL, so its failover does not stop their writes"
        )
    if not listener(topology, topology.group(HAPROXY)[0], "haproxy_postgres_rw_port").password:
        raise BenchmarkError("seaweedfs_filer_db_password is not set in the inventory")
    return members


def run(args: argparse.Namespace) -> tuple[list[Round], str]:
    """Every round; (the rounds, why the benchmark stopped early or "")."""
    topology = load(args.inventory)
    members = preflight(topology, args.inventory)

    def one_round(number: int) -> tuple[Round, str]:
        with http_session() as session:
            leader, killed = current_leader(session, members)
        try:
            result = failover(number, leader, killed, topology=topology, members=members)
        finally:
            problem = restore(killed, leader.name, members)
        return result, problem

    return run_rounds(args.rounds, one_round, as_json=args.json, round_line=round_line)


def main(argv: Sequence[str] | None = None) -> int:
    return benchmark_main(
        "postgres failover", parse_args(argv), run, summarise=summarise, summary_line=summary_line
    )


if __name__ == "__main__":
    sys.exit(main())
