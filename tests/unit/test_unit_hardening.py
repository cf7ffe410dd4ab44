"""The sandboxing of every daemon unit, scored the way the issue asks: ``systemd-analyze
security`` (offline, on the rendered files) holds every unit at 5.0 or less and the JuiceFS
mounts at 7.0 or less.

The roles' own units (SeaweedFS, RustFS, JuiceFS) are rendered from their templates; the units
of Debian's packages (etcd, Patroni, HAProxy) are the ones this machine's packages installed
(scripts/setup.sh installs them), with the roles' drop-ins rendered next to them. The ha lab
test (molecule/ha/tests/test_6_security.py) scores the live units on the lab hosts.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.common import run_playbook

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "roles"
ANALYZE = shutil.which("systemd-analyze")
PACKAGE_UNITS = Path("/lib/systemd/system")
BAR = 5.0
JUICEFS_BAR = 7.0
SCORE = re.compile(r"Overall exposure level for (?P<unit>\S+): (?P<score>[0-9.]+)")

pytestmark = pytest.mark.skipif(
    ANALYZE is None or shutil.which("ansible-playbook") is None,
    reason="needs systemd-analyze and ansible-playbook",
)

#: (template under roles/, where it lands under the scoring root)
FILES = {
    "seaweedfs/templates/seaweedfs.service.j2": "etc/systemd/system/seaweedfs-volume.service",
    "rustfs/templates/etc/systemd/system/rustfs.service.j2": "etc/systemd/system/rustfs.service",
    "juicefs/templates/etc/systemd/system/juicefs.service.j2": (
        "etc/systemd/system/juicefs-data.service"
    ),
    "etcd/templates/etc/systemd/system/etcd.service.d/storagectl.conf.j2": (
        "etc/systemd/system/etcd.service.d/storagectl.conf"
    ),
    "patroni/templates/etc/systemd/system/patroni.service.d/storagectl.conf.j2": (
        "etc/systemd/system/patroni.service.d/storagectl.conf"
    ),
    "haproxy/templates/etc/systemd/system/haproxy.service.d/storagectl.conf.j2": (
        "etc/systemd/system/haproxy.service.d/storagectl.conf"
    ),
}
#: Units scored, and their bar.
UNITS = {
    "seaweedfs-volume.service": BAR,
    "rustfs.service": BAR,
    "etcd.service": BAR,
    "patroni.service": BAR,
    "haproxy.service": BAR,
    "juicefs-data.service": JUICEFS_BAR,
}


def _vars() -> dict[str, Any]:
    merged: dict[str, Any] = yaml.safe_load((ROOT / "group_vars/all/main.yml").read_text())
    for role in (
        "seaweedfs",
        "seaweedfs_volume",
        "rustfs",
        "juicefs",
        "etcd",
        "patroni",
        "haproxy",
    ):
        merged |= yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text()) or {}
    merged["storage_address"] = "10.0.0.5"
    merged["redis_password"] = "x"  # the unit names no secret; the role's vars reference it
    return merged


@pytest.fixture(scope="module")
def scoring_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with the packages' units and every rendered unit and drop-in."""
    tmp = tmp_path_factory.mktemp("hardening")
    root = tmp / "root"
    (root / "lib/systemd/system").mkdir(parents=True)
    for unit in ("etcd.service", "patroni.service", "haproxy.service"):
        if not (PACKAGE_UNITS / unit).is_file():
            pytest.skip(f"{PACKAGE_UNITS / unit} is missing (scripts/setup.sh installs it)")
        shutil.copy(PACKAGE_UNITS / unit, root / "lib/systemd/system" / unit)
    tasks = [
        {
            "name": f"Render {dest}",
            "ansible.builtin.template": {
                "src": str(ROLES / src),
                "dest": str(root / dest),
                "mode": "0644",
            },
        }
        for src, dest in FILES.items()
    ]
    for dest in FILES.values():
        (root / dest).parent.mkdir(parents=True, exist_ok=True)
    vars_files = [
        str(ROLES / r / "vars/main.yml")
        for r in ("rustfs", "juicefs", "etcd", "patroni", "haproxy")
    ]
    play = [
        {
            "name": "Render the units",
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": vars_files,
            "vars": {
                "seaweedfs_service_description": "SeaweedFS volume server",
                "seaweedfs_service_writable": ["/var/lib/seaweedfs/volume"],
                "seaweedfs_service_command": ["volume", "-dir=/var/lib/seaweedfs/volume"],
                "seaweedfs_binary": "/usr/local/bin/weed",
                "seaweedfs_service_stop_timeout": 30,
                "__juicefs_mount": {"name": "data", "mountpoint": "/data"},
                "__juicefs_meta_url": "redis://10.0.0.5:6379/1",
            },
            "tasks": tasks,
        }
    ]
    (tmp / "vars.yml").write_text(yaml.safe_dump(_vars()))
    (tmp / "render.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    result = run_playbook(
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"@{tmp / 'vars.yml'}",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        str(tmp / "render.yml"),
        cwd=tmp,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return root


def _score(root: Path, unit: str) -> tuple[float, str]:
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "security", "--offline=true", f"--root={root}", "--no-pager", unit],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    found = SCORE.search(result.stdout)
    assert found, result.stdout[-2000:] + result.stderr[-2000:]
    return float(found["score"]), result.stdout


@pytest.mark.parametrize("unit", list(UNITS))
def test_unit_is_sandboxed(scoring_root: Path, unit: str) -> None:
    score, table = _score(scoring_root, unit)
    print(f"{unit}: {score}")
    assert score <= UNITS[unit], f"{unit}: exposure {score} > {UNITS[unit]}\n{table}"


def test_juicefs_keeps_the_host_mount_namespace(scoring_root: Path) -> None:
    """A mount made in a namespace of the unit's own would be invisible to the host."""
    text = (
        scoring_root / FILES["juicefs/templates/etc/systemd/system/juicefs.service.j2"]
    ).read_text()
    for setting in ("ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectProc"):
        assert f"\n{setting}=" not in text, setting
    assert "DeviceAllow=/dev/fuse rw" in text
    assert "CapabilityBoundingSet=CAP_SYS_ADMIN" in text
