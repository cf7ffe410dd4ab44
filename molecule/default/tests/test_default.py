"""Testinfra checks of the single-node dev stack on a lab host, run by `molecule verify`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
INVENTORY = ROOT / "inventories" / "lab"
BIN = Path(sys.executable).parent

# unit -> HTTP port; each daemon also serves gRPC on port + 10000.
SERVICES = {
    "seaweedfs-master": 9333,
    "seaweedfs-volume": 8080,
    "seaweedfs-filer": 8888,
    "seaweedfs-s3": 8333,
}


def _address(host) -> str:
    return host.ansible.get_variables()["storage_address"]


@pytest.fixture(autouse=True)
def _journal_on_failure(request, host):
    """Print the units' journals when a test fails, so CI logs say why."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for unit in SERVICES:
            print(host.run(f"journalctl -u {unit} -n 40 --no-pager").stdout)


@pytest.mark.parametrize("unit", sorted(SERVICES))
def test_unit_active_and_enabled(host, unit):
    service = host.service(unit)
    assert service.is_running, host.run(f"systemctl status {unit} --no-pager").stdout
    assert service.is_enabled


@pytest.mark.parametrize("unit", sorted(SERVICES))
def test_unit_is_hardened_and_unprivileged(host, unit):
    props = host.run(
        f"systemctl show {unit} -p User -p ProtectSystem -p NoNewPrivileges -p Restart"
    ).stdout
    assert "User=seaweedfs" in props
    assert "ProtectSystem=strict" in props
    assert "NoNewPrivileges=yes" in props
    assert "Restart=on-failure" in props
    pid = host.run(f"systemctl show {unit} -p MainPID --value").stdout.strip()
    assert host.run(f"ps -o user= -p {pid}").stdout.strip() == "seaweedfs"


@pytest.mark.parametrize(("unit", "port"), sorted(SERVICES.items()))
def test_listens_on_storage_address_only(host, unit, port):
    address = _address(host)
    for p in (port, port + 10000):
        assert host.socket(f"tcp://{address}:{p}").is_listening, f"{unit} not on {address}:{p}"
        assert not host.socket(f"tcp://0.0.0.0:{p}").is_listening, f"{unit} bound to 0.0.0.0:{p}"


def test_telemetry_off_and_no_raft_bootstrap(host):
    cmd = host.run("systemctl show seaweedfs-master -p ExecStart --value").stdout
    assert "-telemetry=false" in cmd
    assert "-raftBootstrap" not in cmd


def test_filer_round_trip_from_the_host(host):
    """Write a file through the filer from the host itself and read it back byte-identical."""
    address = _address(host)
    script = f"""
import hashlib, os, urllib.request, uuid
url = "http://{address}:8888/molecule-check/" + uuid.uuid4().hex + ".bin"
data = os.urandom(300 * 1024)
urllib.request.urlopen(urllib.request.Request(url, data=data, method="PUT"), timeout=10).read()
back = urllib.request.urlopen(url, timeout=10).read()
urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=10).read()
print(hashlib.sha256(data).hexdigest() == hashlib.sha256(back).hexdigest(), len(back))
"""
    out = host.run(f"python3 -c '{script}'")
    assert out.rc == 0, out.stderr
    assert out.stdout.split() == ["True", str(300 * 1024)]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def test_storagectl_verify_passes():
    """`storagectl verify` from the inventory alone: every check passes."""
    proc = _run(["storagectl", "verify", "-i", str(INVENTORY), "--format", "json"])
    report = json.loads(proc.stdout)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert proc.returncode == 0, failed
    assert report["ok"] is True
    assert not failed
    names = {c["name"] for c in report["checks"]}
    assert len(names) >= 6


def test_check_mode_reports_no_changes():
    """After a deploy, --check --diff predicts nothing to change."""
    proc = _run(["ansible-playbook", "site.yml", "-i", str(INVENTORY), "--check", "--diff"])
    assert proc.returncode == 0, proc.stdout[-3000:]
    recap = re.findall(r"changed=(\d+)", proc.stdout.split("PLAY RECAP")[-1])
    assert recap, proc.stdout[-2000:]
    assert all(n == "0" for n in recap), proc.stdout[-3000:]
