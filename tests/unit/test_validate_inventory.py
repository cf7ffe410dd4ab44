"""playbooks/validate-inventory.yml stops bad inventories before any host is touched.

Only the validation playbook runs (it gathers no facts and its one task, the
storagectl_inventory_check action, runs on the controller), against hosts that point at a closed
loopback port, so nothing outside this machine is contacted. The rules themselves are tested in
test_validate.py; these tests prove the play applies them inside a real ansible-playbook run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "playbooks" / "validate-inventory.yml"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

pytestmark = pytest.mark.skipif(not ANSIBLE_PLAYBOOK.exists(), reason="ansible-playbook missing")


def _inventory(tmp_path: Path, masters: int, all_vars: dict[str, Any]) -> Path:
    """Every host is a master and a volume server (one rack, so "001" holds); m0 also runs the
    filer and the S3 gateway."""
    hosts = {
        f"m{i}": {"ansible_host": f"127.0.0.{i + 1}", "ansible_port": 1} for i in range(masters)
    }
    inventory = {
        "all": {
            "vars": all_vars,
            "hosts": hosts,
            "children": {
                "seaweedfs_master": {"hosts": dict.fromkeys(hosts)},
                "seaweedfs_volume": {"hosts": dict.fromkeys(hosts)},
                "seaweedfs_filer": {"hosts": {"m0": None}},
                "seaweedfs_s3": {"hosts": {"m0": None}},
            },
        }
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


def _run(inventory: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(PLAYBOOK)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


GOOD_SECRETS = {
    "seaweedfs_s3_access_key": "ACCESSKEY01",
    "seaweedfs_s3_secret_key": "s3cr3t-key-0123",
}


def _assert_no_secret(out: str) -> None:
    for value in GOOD_SECRETS.values():
        assert value not in out


def test_valid_inventory_passes(tmp_path: Path) -> None:
    proc = _run(_inventory(tmp_path, 3, GOOD_SECRETS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _assert_no_secret(proc.stdout + proc.stderr)


def test_even_master_count_is_refused(tmp_path: Path) -> None:
    proc = _run(_inventory(tmp_path, 2, GOOD_SECRETS))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "seaweedfs_master has 2 hosts (m0, m1)" in out
    assert "odd number" in out
    _assert_no_secret(out)


def test_missing_s3_secret_is_refused_without_leaking_the_key(tmp_path: Path) -> None:
    proc = _run(_inventory(tmp_path, 3, {"seaweedfs_s3_access_key": "ACCESSKEY01"}))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "m0: seaweedfs_s3_secret_key: is not set. Fix: set seaweedfs_s3_secret_key" in out
    assert "ACCESSKEY01" not in out


def test_placement_over_racks_with_one_rack_is_refused(tmp_path: Path) -> None:
    placement = {**GOOD_SECRETS, "seaweedfs_default_replica_placement": "010"}
    proc = _run(_inventory(tmp_path, 3, placement))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert 'seaweedfs_default_replica_placement: "010" keeps 1 copy on other racks' in out
    assert "racks: dc1/rack1 = [m0, m1, m2]" in out
    _assert_no_secret(out)
