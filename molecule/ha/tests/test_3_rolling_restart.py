"""Quorum is sacred: a changed master setting restarts the masters one at a time, the leader
last, and the cluster has a leader again before each next restart."""

from __future__ import annotations

import itertools
import json
import threading
import time

from conftest import BOUND, INVENTORY, Lab, run_local, wait_for

# A harmless change of every master's command line (and back): the vacuum threshold.
CHANGED = {"seaweedfs_master_extra_args": ["-garbageThreshold=0.31"]}


def _started(lab: Lab, name: str) -> int:
    """When the master's current process started (µs, CLOCK_MONOTONIC: the lab hosts share
    the machine's kernel, so these compare across hosts)."""
    prop = "ExecMainStartTimestampMonotonic"
    out = lab.run(name, f"systemctl show seaweedfs-master -p {prop} --value")
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
