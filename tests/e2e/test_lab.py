"""End to end: bring the dev lab up for real, reach it, bring it up again, take it down.

Needs root, podman, runc and debootstrap (scripts/setup.sh); the first run builds the image
(about 2 minutes). Skipped when a lab is already up, so it never tears down someone's lab.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from storagectl import paths
from storagectl.lab import down, machines, network, status, up

TOOLS = ("podman", "runc", "debootstrap", "ssh", "ssh-keygen")


def _skip_reason() -> str | None:
    """Why this machine cannot run the lab end to end, or None."""
    if os.geteuid() != 0:
        return "the lab needs root"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} missing: run scripts/setup.sh"
    return None


pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or ""),
]


def _lab_is_up() -> bool:
    """Whether some lab (of this checkout or another) already has machines."""
    out = subprocess.run(
        ["podman", "ps", "-aq", "--filter", f"label={network.LABEL}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return bool(out.strip()) or (paths.LAB_STATE_DIR / "state.json").exists()


@pytest.fixture(scope="module")
def lab() -> Iterator[Path]:
    """The dev lab, brought up for this module and taken down after it."""
    if _lab_is_up():
        pytest.skip("a lab is already up; run `storagectl lab down` to let this test use the host")
    lines: list[str] = []
    try:
        yield up("dev", progress=lines.append)
    finally:
        down(progress=lines.append)


def ssh(key: Path, address: str, *command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` on ``address`` over SSH with the lab key."""
    return subprocess.run(
        machines.ssh_command(key, address, *command),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_up_dev_is_reachable(lab: Path) -> None:
    assert lab == paths.LAB_INVENTORY
    (machine,) = status()
    assert (machine.name, machine.address, machine.state) == ("lab-dev-1", "10.213.0.11", "running")
    assert "seaweedfs_master" in machine.groups

    key = paths.LAB_STATE_DIR / "id_ed25519"
    result = ssh(key, machine.address, "systemctl", "is-system-running")
    assert result.stdout.strip() in ("running", "degraded"), result.stderr


def test_ansible_pings_every_host(lab: Path) -> None:
    ansible = Path(sys.executable).parent / "ansible"
    result = subprocess.run(
        [str(ansible), "-i", str(lab), "all", "-m", "ping"],
        capture_output=True,
        text=True,
        check=False,
        cwd=paths.PROJECT_ROOT,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lab-dev-1 | SUCCESS" in result.stdout


def _containers() -> dict[str, str]:
    """Lab container name -> ID."""
    out = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label={network.LABEL}", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return {item["Names"][0]: item["Id"] for item in json.loads(out or "[]")}


def test_up_twice_changes_nothing(lab: Path) -> None:
    files = ("hosts.yml", "group_vars/all/lab.yml", "group_vars/all/secrets.yml")
    before = {f: (lab / f).read_text() for f in files}
    containers = _containers()

    assert up("dev", progress=lambda _line: None) == lab

    assert _containers() == containers
    assert {f: (lab / f).read_text() for f in files} == before


def test_down_leaves_nothing_behind(lab: Path) -> None:
    bridge = network.bridge_name(network.network_info())
    assert bridge

    down(progress=lambda _line: None)

    assert _containers() == {}
    assert network.lab_networks() == []
    assert network.network_info() is None
    assert network.leftovers([bridge]) == []
    assert not any(master == bridge for _name, master in network.veths())
    assert not lab.exists()
    assert not paths.LAB_STATE_DIR.exists()
    assert status() == []
    down(progress=lambda _line: None)  # safe when nothing is up
