"""Crash the PostgreSQL primary of the ha lab and check the filers on postgres2 keep working.

Patroni and its PostgreSQL are SIGKILLed together on the leader (``systemctl kill
--kill-who=all``; the unit is masked first, ``--runtime``, so ``Restart=`` cannot bring them
back during the measurement). A surviving member must take the lead, HAProxy's read-write
listener must follow it, and a filer write through the filer load balancer must succeed again
within 30 s; every file written before reads back byte-identical. The old primary is then
started again and must rejoin as a replica, with exactly one leader. Every wait is bounded.
"""

from __future__ import annotations

import time

import pytest

from conftest import Lab, wait_for
from storagectl.checks.postgres import PATRONI_UNIT, POSTGRES, filers_on_postgres

#: A filer write must work again within this many seconds of the kill.
WRITE_BOUND = 30.0


@pytest.fixture(scope="module", autouse=True)
def _filers_on_postgres(lab: Lab) -> None:
    if not lab.topology.group(POSTGRES):
        pytest.skip("no postgres hosts in the inventory")
    if not filers_on_postgres(lab.topology):
        pytest.skip("no filer has seaweedfs_filer_store: postgres2")


def test_killed_primary_fails_over_and_filer_writes_resume(lab: Lab) -> None:
    wait_for(lab.patroni_healthy, 60, "one Patroni leader and running replicas before the fault")
    before = [lab.put() for _ in range(3)]
    old = wait_for(lab.patroni_leader, 30, "a single Patroni leader before the fault")
    members = [h.name for h in lab.topology.group(POSTGRES)]
    others = [n for n in members if n != old]

    lab.systemctl(old, "mask", "--runtime", PATRONI_UNIT)
    try:
        lab.systemctl(old, "kill", "--kill-who=all", "--signal=SIGKILL", PATRONI_UNIT)
        start = time.monotonic()
        wait_for(lab.try_put, WRITE_BOUND, "a filer write through the load balancer")
        written = time.monotonic() - start
        new = wait_for(lambda: lab.patroni_leader(among=others), 30, "a new Patroni leader")
        elected = time.monotonic() - start
        print(
            f"primary {old} killed: first filer write after {written:.2f} s; "
            f"new leader {new} (seen after {elected:.2f} s)"
        )
        assert written <= WRITE_BOUND
        lab.assert_intact(before)
    finally:
        lab.systemctl(old, "unmask", "--runtime", PATRONI_UNIT)
        lab.run(old, f"systemctl reset-failed {PATRONI_UNIT}")
        lab.systemctl(old, "start", PATRONI_UNIT)

    wait_for(lambda: lab.patroni_rejoined(old), 60, f"{old} back as a replica", pause=0.5)
    assert lab.patroni_healthy(), f"after the rejoin: {lab.patroni_members()}"
    assert lab.patroni_leader() == new  # exactly one leader, the one elected during the fault
    lab.assert_intact(before)
