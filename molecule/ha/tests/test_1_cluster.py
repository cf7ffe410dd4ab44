"""The converged ha lab: every unit up on its host, the raft settings as chosen, verify green."""

from __future__ import annotations

import json
import re

import pytest

from conftest import INVENTORY, run_local

# group -> units its hosts run
UNITS = {
    "seaweedfs_master": ["seaweedfs-master"],
    "seaweedfs_volume": ["seaweedfs-volume"],
    "seaweedfs_filer": ["seaweedfs-filer"],
    "seaweedfs_s3": ["seaweedfs-s3"],
    "haproxy": ["haproxy"],
}


def _units(host) -> list[str]:
    groups = host.ansible.get_variables().get("group_names", [])
    return [unit for group, units in UNITS.items() if group in groups for unit in units]


def test_units_active_and_enabled(host):
    units = _units(host)
    assert units, "every lab host runs at least one service"
    for unit in units:
        service = host.service(unit)
        assert service.is_running, host.run(f"journalctl -u {unit} -n 30 --no-pager").stdout
        assert service.is_enabled, unit


def test_masters_use_hashicorp_raft_and_peers_match_ip(host):
    if "seaweedfs-master" not in _units(host):
        pytest.skip("not a master")
    cmd = host.run("systemctl show seaweedfs-master -p ExecStart --value").stdout
    assert "-raftHashicorp=true" in cmd
    assert "-raftBootstrap" not in cmd
    own = re.search(r"-ip=(\S+)", cmd).group(1)
    peers = re.search(r"-peers=(\S+)", cmd).group(1).split(",")
    assert len(peers) == 3
    assert f"{own}:9333" in peers
    assert host.file("/var/lib/seaweedfs/master/m9333/logs.dat").exists


def test_haproxy_config_is_valid(host):
    if "haproxy" not in _units(host):
        pytest.skip("not an HAProxy host")
    assert host.run("haproxy -c -f /etc/haproxy/haproxy.cfg").rc == 0


def test_storagectl_verify_passes():
    """`storagectl verify` from the inventory alone: every check of every component passes."""
    proc = run_local("storagectl", "verify", "-i", str(INVENTORY), "--format", "json")
    report = json.loads(proc.stdout)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert proc.returncode == 0, failed
    names = {c["name"] for c in report["checks"]}
    assert {"master leader", "filer cross read", "replica placement", "haproxy backends"} <= names


def test_check_mode_reports_no_changes():
    """After the converge, --check --diff predicts nothing to change."""
    proc = run_local("ansible-playbook", "site.yml", "-i", str(INVENTORY), "--check", "--diff")
    assert proc.returncode == 0, proc.stdout[-3000:]
    recap = re.findall(r"changed=(\d+)", proc.stdout.split("PLAY RECAP")[-1])
    assert recap, proc.stdout[-2000:]
    assert all(n == "0" for n in recap), proc.stdout[-3000:]
