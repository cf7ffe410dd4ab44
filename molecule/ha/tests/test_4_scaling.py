"""Scale out: a fourth storage host joins as a volume server; re-running the playbook adds it and
touches no other host, and verify sees it."""

from __future__ import annotations

import json
import re

from conftest import INVENTORY, Lab, run_local


def test_adding_a_volume_host_changes_only_that_host(lab: Lab) -> None:
    up = run_local("storagectl", "lab", "up", "--topology", "ha", "--storage-hosts", "4")
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
    deploy = run_local("ansible-playbook", "site.yml", "-i", str(INVENTORY))
    assert deploy.returncode == 0, deploy.stdout[-3000:]
    recap = dict(re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", deploy.stdout, re.M))
    assert int(recap.pop("lab-ha-4")) > 0
    assert recap, deploy.stdout[-2000:]
    assert all(n == "0" for n in recap.values()), recap

    proc = run_local("storagectl", "verify", "-i", str(INVENTORY), "--format", "json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, [c for c in report["checks"] if not c["ok"]]
    registered = [c for c in report["checks"] if c["name"] == "volume registered"]
    assert any(c.get("host") == "lab-ha-4" and c["ok"] for c in registered), registered
