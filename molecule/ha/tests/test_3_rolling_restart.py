"""Quorum is sacred: a changed master setting restarts the masters one at a time, the leader
last, and the cluster has a leader again before each next restart; a changed Redis setting
restarts the Redis replicas one at a time, then the master after it handed mastership over, and
JuiceFS keeps writing throughout."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid

import pytest

from conftest import BOUND, INVENTORY, Lab, run_local, wait_for
from storagectl.checks.juicefs import CLIENT
from storagectl.checks.redis import REDIS, REDIS_UNIT

# A harmless change of every master's command line (and back): the vacuum threshold.
CHANGED = {"seaweedfs_master_extra_args": ["-garbageThreshold=0.31"]}


def _started(lab: Lab, name: str, unit: str = "seaweedfs-master") -> int:
    """When ``unit``'s current process started (µs, CLOCK_MONOTONIC: the lab hosts share the
    machine's kernel, so these compare across hosts)."""
    prop = "ExecMainStartTimestampMonotonic"
    out = lab.run(name, f"systemctl show {unit} -p {prop} --value")
    return int(out.stdout.strip())


def _converge_masters(extra: dict | None = None):
    args = ["ansible-playbook", "playbooks/seaweedfs.yml", "-i", str(INVENTORY)]
    args += ["-l", "seaweedfs_master"]
    if extra:
        args += ["-e", json.dumps(extra)]
    return run_local(*args)


def test_masters_restart_one_at_a_time_leader_last(lab: Lab) -> None:
    masters = lab.names("seaweedfs_master")
    leader = wait_for(lab.leader, 30, "a single leader before the change")
    before = {name: _started(lab, name) for name in masters}

    samples: list[tuple[float, int]] = []  # (time, masters claiming to lead)
    done = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 4 * BOUND
        while not done.is_set() and time.monotonic() < deadline:
            claiming = sum(
                1 for n in masters if (lab.master_status(n) or {}).get("IsLeader") is True
            )
            samples.append((time.monotonic(), claiming))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        proc = _converge_masters(CHANGED)
    finally:
        done.set()
        watcher.join()
    assert proc.returncode == 0, proc.stdout[-3000:]

    after = {name: _started(lab, name) for name in masters}
    assert all(after[n] > before[n] for n in masters), "every master restarted once"
    order = sorted(masters, key=after.__getitem__)
    assert order[-1] == leader, f"restart order {order}: the leader {leader} must go last"
    assert all(count <= 1 for _, count in samples), "never two masters leading at once"
    leaderless = sum(
        later[0] - earlier[0] for earlier, later in itertools.pairwise(samples) if earlier[1] == 0
    )
    print(f"restart order {order}; leaderless for {leaderless:.1f} s in total")
    assert leaderless < 5, f"no leader for {leaderless:.1f} s during the rolling restart"

    restore = _converge_masters()
    assert restore.returncode == 0, restore.stdout[-3000:]
    wait_for(lab.masters_agree, 60, "all masters agreeing on one leader again")


def _converge_redis(extra: dict | None = None):
    args = ["ansible-playbook", "playbooks/juicefs.yml", "-i", str(INVENTORY), "-l", "redis"]
    if extra:
        args += ["-e", json.dumps(extra)]
    return run_local(*args)


def test_redis_restarts_replicas_first_and_hands_the_master_over(lab: Lab) -> None:
    hosts = [h.name for h in lab.topology.group(REDIS)]
    clients = [h.name for h in lab.topology.group(CLIENT)]
    if len(hosts) < 3 or not clients:
        pytest.skip("needs Redis under Sentinel and a JuiceFS client")
    master = wait_for(lab.redis_master, 30, "a Redis master every Sentinel names")
    before = {name: _started(lab, name, REDIS_UNIT) for name in hosts}
    mountpoint = lab.topology.hosts[clients[0]].var("juicefs_mountpoint", default="/data")
    writes: list[tuple[float, bool]] = []
    done = threading.Event()

    def write() -> None:  # JuiceFS metadata writes on a client throughout the restarts
        deadline = time.monotonic() + 4 * BOUND
        while not done.is_set() and time.monotonic() < deadline:
            path = f"{mountpoint}/molecule-ha/redis-roll-{uuid.uuid4().hex}"
            ok = lab.run(clients[0], f"mkdir -p $(dirname {path}) && timeout 15 touch {path}")
            writes.append((time.monotonic(), ok.rc == 0))
            time.sleep(0.3)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        proc = _converge_redis({"redis_extra_config": ["tcp-keepalive 61"]})
    finally:
        done.set()
        writer.join()
    assert proc.returncode == 0, proc.stdout[-3000:]
    after = {name: _started(lab, name, REDIS_UNIT) for name in hosts}
    assert all(after[n] > before[n] for n in hosts), "every Redis restarted once"
    order = sorted(hosts, key=after.__getitem__)
    assert order[-1] == master, f"restart order {order}: the master {master} must go last"
    new = wait_for(lab.redis_master, 30, "a Redis master every Sentinel names, after")
    assert new != master, "the master handed mastership to a replica before its restart"
    failed = [t for t, ok in writes if not ok]
    print(
        f"redis restart order {order}; master {master} -> {new}; "
        f"{len(writes)} JuiceFS writes, {len(failed)} failed"
    )
    assert writes, "no JuiceFS write was attempted"
    assert not failed, f"{len(failed)} of {len(writes)} JuiceFS writes failed"
    lab.run(clients[0], f"rm -f {mountpoint}/molecule-ha/redis-roll-*")

    restore = _converge_redis()
    assert restore.returncode == 0, restore.stdout[-3000:]
    wait_for(lab.redis_master, 60, "one Redis master again")
