"""Break the ha lab on purpose, one fault at a time, and check it recovers.

Each test writes files through the filer load balancer before the fault, injects it, checks the
cluster keeps (or regains) service, reads every file back byte-identical, and restores the fault
before the next test. Every wait is bounded.
"""

from __future__ import annotations

import time

from conftest import Lab, wait_for


def test_killed_leader_master_is_replaced_and_writes_work(lab: Lab) -> None:
    before = [lab.put() for _ in range(3)]
    old = wait_for(lab.leader, 30, "a single leader before the fault")
    others = [n for n in lab.names("seaweedfs_master") if n != old]

    lab.systemctl(old, "kill", "-s", "SIGKILL", "seaweedfs-master")
    start = time.monotonic()
    new = wait_for(lambda: lab.leader(among=others), 30, "a new leader among the survivors")
    elected = time.monotonic() - start
    wait_for(lab.try_put, 30, "a write after the leader died")
    written = time.monotonic() - start
    assert new != old
    print(f"new leader {new} after {elected:.2f} s, first write after {written:.2f} s")

    lab.assert_intact(before)
    # Restart=on-failure brings the killed master back; it rejoins as a follower.
    lab.systemctl(old, "start", "seaweedfs-master")
    wait_for(lab.masters_agree, 60, "all masters agreeing on one leader again")
    assert lab.leader() is not None


def test_stopped_volume_server_loses_no_replicated_file(lab: Lab) -> None:
    before = [lab.put() for _ in range(6)]
    # Stop the volume server that holds the most volumes: it holds copies of these files.
    leader = wait_for(lab.leader, 30, "a leader")
    status = lab.session.get(f"http://{lab.address(leader)}:9333/vol/status", timeout=5).json()
    counts: dict[str, int] = {}
    for racks in status["Volumes"]["DataCenters"].values():
        for nodes in racks.values():
            for node, volumes in nodes.items():
                counts[node] = len(volumes or [])
    victim_url = max(counts, key=counts.__getitem__)
    victim = next(
        n for n in lab.names("seaweedfs_volume") if victim_url.startswith(lab.address(n) + ":")
    )

    lab.systemctl(victim, "stop", "seaweedfs-volume")
    try:
        # Reads only: with 001 and the lab's racks (two servers in rack1, one in rack2) no rack
        # has two live servers left, so new 001 volumes cannot grow until it is back.
        lab.assert_intact(before)
    finally:
        lab.systemctl(victim, "start", "seaweedfs-volume")
    wait_for(lambda: lab.healthy(victim, 8080), 60, f"the volume server on {victim} back")
    lab.assert_intact(before)


def test_stopped_filer_is_invisible_through_haproxy(lab: Lab) -> None:
    before = [lab.put() for _ in range(3)]
    victim = lab.names("seaweedfs_filer")[0]
    lab.systemctl(victim, "stop", "seaweedfs-filer")
    try:
        # Bounded load while HAProxy notices the dead filer: every request must succeed.
        failures = []
        deadline = time.monotonic() + 10
        count = 0
        while time.monotonic() < deadline and count < 100:
            count += 1
            try:
                path = lab.put(size=16 * 1024)
                lab.read(path)
            except AssertionError as exc:
                failures.append(str(exc))
        assert not failures, f"{len(failures)} of {count} requests failed: {failures[:3]}"
        lab.assert_intact(before)
    finally:
        lab.systemctl(victim, "start", "seaweedfs-filer")
    wait_for(lambda: lab.healthy(victim, 8888), 60, f"the filer on {victim} back")
