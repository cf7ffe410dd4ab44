"""JuiceFS checks against a real JuiceFS volume mounted twice on this machine (see
support.juicefs ``juicefs_volume``): two inventory clients reached with
``ansible_connection: local``, metadata in a real Redis, data in local ``file://`` storage.

systemd does not run here, so the mount units cannot exist: a ``systemctl`` stand-in on PATH
answers ``is-active``/``is-enabled`` from files of the test (the only thing not real here).
Mount, inode, /proc/mounts, the shared file and ``juicefs status`` are the real thing; the lab
test (molecule/ha/tests/test_5_juicefs.py) covers the real units.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from storagectl import remote
from storagectl.checks import run_checks
from storagectl.checks.base import CheckResult
from storagectl.checks.juicefs import (
    CHECKS,
    Mount,
    env_file,
    meta_url,
    mounts_of,
    parse_mount_state,
    parse_status,
    session_of,
    unit_for,
)
from storagectl.inventory import load_topology
from support.common import write_inventory
from support.juicefs import JUICEFS_META_DB, JUICEFS_VOLUME

if TYPE_CHECKING:
    from support.juicefs import JuiceFSVolume

SYSTEMCTL = """#!/bin/sh
# is-active|is-enabled UNIT: the content of $SYSTEMCTL_STATE/UNIT.<verb>, else active/enabled.
verb=$1; unit=$2
f="$SYSTEMCTL_STATE/$unit.$verb"
if [ -f "$f" ]; then cat "$f"; exit 1; fi
case "$verb" in is-active) echo active ;; is-enabled) echo enabled ;; *) exit 1 ;; esac
"""


@pytest.fixture
def systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The directory whose ``<unit>.<verb>`` files override the stand-in's answers; juicefs
    and the stand-in come first on PATH (the local transport inherits this environment)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(SYSTEMCTL)
    (bin_dir / "systemctl").chmod(0o755)
    state = tmp_path / "units"
    state.mkdir()
    monkeypatch.setenv("SYSTEMCTL_STATE", str(state))
    path = f"{bin_dir}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    monkeypatch.setenv("PATH", path)
    return state


def client_vars(volume: JuiceFSVolume, index: int) -> dict[str, Any]:
    return {
        "ansible_connection": "local",
        "juicefs_mountpoint": str(volume.mountpoints[index]),
        # The role's env file is <juicefs_config_dir>/<juicefs_mount_name>.env.
        "juicefs_config_dir": str(volume.env_file.parent),
        "juicefs_mount_name": volume.env_file.stem,
    }


@pytest.fixture
def jfs_inventory(juicefs_volume: JuiceFSVolume, systemctl: Path, tmp_path: Path) -> Path:
    return write_inventory(
        tmp_path / "inv",
        {
            "juicefs_client": {
                "client1": client_vars(juicefs_volume, 0),
                "client2": client_vars(juicefs_volume, 1),
            },
            "redis": {"redis1": juicefs_volume.redis.host_vars()},
        },
        all_vars={"juicefs_volume_name": JUICEFS_VOLUME, "juicefs_meta_db": JUICEFS_META_DB},
    )


def verify(inventory: Path, project_root: Path, timeout: float = 8.0) -> list[CheckResult]:
    return run_checks(load_topology([inventory], basedir=project_root), CHECKS, timeout=timeout)


def by_name(results: list[CheckResult], name: str) -> list[CheckResult]:
    return [r for r in results if r.name == name]


def failures(results: list[CheckResult]) -> str:
    return "\n".join(f"{r.name} {r.host}: {r.detail} | {r.fix}" for r in results if not r.ok)


def test_healthy_mounts_pass(
    juicefs_volume: JuiceFSVolume, jfs_inventory: Path, project_root: Path
) -> None:
    results = verify(jfs_inventory, project_root)
    assert all(r.ok for r in results), failures(results)
    assert [(r.name, r.host) for r in results] == [
        ("juicefs mount", "client1"),
        ("juicefs mount", "client2"),
        ("juicefs shared data", ""),
        ("juicefs status", ""),
    ]
    mount = results[0]
    assert mount.detail.endswith("active, enabled, inode 1, fuse.juicefs")
    assert f"{juicefs_volume.mountpoints[0]} (juicefs-{juicefs_volume.env_file.stem})" in (
        mount.detail
    )
    shared = results[2]
    assert "written on client1, read back identical (sha256) on client2; deleted" in shared.detail
    verify_dir = juicefs_volume.mountpoints[0] / ".storagectl-verify"
    assert list(verify_dir.iterdir()) == []  # the file was deleted
    status = results[3]
    assert status.detail.startswith(f"volume {JUICEFS_VOLUME} (file), 2 session(s)")
    assert status.endpoint == juicefs_volume.meta_url
    assert juicefs_volume.redis.password not in " ".join(
        f"{r.detail} {r.fix} {r.endpoint}" for r in results
    )


def test_inactive_unit_and_missing_mount_fail(
    juicefs_volume: JuiceFSVolume,
    jfs_inventory: Path,
    systemctl: Path,
    tmp_path: Path,
    project_root: Path,
) -> None:
    unit = f"juicefs-{juicefs_volume.env_file.stem}"
    (systemctl / f"{unit}.service.is-active").write_text("failed\n")
    (systemctl / f"{unit}.service.is-enabled").write_text("disabled\n")
    empty = tmp_path / "not-mounted"
    empty.mkdir()
    inventory = write_inventory(
        tmp_path / "inv2",
        {
            "juicefs_client": {
                "client1": client_vars(juicefs_volume, 0),
                # A subdir mount that is not there, and a client that is not mounted.
                "client2": {
                    **client_vars(juicefs_volume, 1),
                    "juicefs_subdir_mounts": [
                        {"name": "extra", "subdir": "extra", "mountpoint": str(empty)}
                    ],
                },
            },
            "redis": {"redis1": juicefs_volume.redis.host_vars()},
        },
        all_vars={"juicefs_volume_name": JUICEFS_VOLUME, "juicefs_meta_db": JUICEFS_META_DB},
    )
    results = verify(inventory, project_root)
    first, second = by_name(results, "juicefs mount")
    assert not first.ok
    assert f"{unit}.service is failed" in first.detail
    assert "is disabled, not enabled" in first.detail
    assert f"systemctl start {unit}" in first.fix
    assert f"systemctl enable {unit}" in first.fix
    assert not second.ok
    assert f"{empty} has inode" in second.detail
    assert "not a JuiceFS mount root" in second.detail
    assert f"/proc/mounts shows none at {empty}" in second.detail
    [status] = by_name(results, "juicefs status")
    assert not status.ok
    assert status.detail == f"no session of client2:{empty}"
    assert "systemctl status juicefs-extra" in status.fix


def test_wrong_volume_name_fails(
    juicefs_volume: JuiceFSVolume, jfs_inventory: Path, project_root: Path, tmp_path: Path
) -> None:
    text = jfs_inventory.joinpath("hosts.yml").read_text()
    jfs_inventory.joinpath("hosts.yml").write_text(text.replace(JUICEFS_VOLUME, "other-volume"))
    [status] = by_name(verify(jfs_inventory, project_root), "juicefs status")
    assert not status.ok
    assert status.detail == f"the metadata engine holds volume {JUICEFS_VOLUME}, not other-volume"


def test_unit_and_env_file_follow_the_role_default_mount_name(
    tmp_path: Path, project_root: Path
) -> None:
    clients = {"c1": {"juicefs_mountpoint": "/srv/jfs/"}, "c2": {}}
    inventory = write_inventory(tmp_path / "inv", {"juicefs_client": clients})
    c1, c2 = load_topology([inventory], basedir=project_root).group("juicefs_client")
    assert (unit_for(c1), env_file(c1)) == ("juicefs-srv-jfs", "/etc/juicefs/srv-jfs.env")
    assert (unit_for(c2), env_file(c2)) == ("juicefs-data", "/etc/juicefs/data.env")


def test_pure_parts() -> None:
    state = parse_mount_state(
        "unit juicefs-data.service active enabled\ninode juicefs-data.service 0 1\n"
        "fstype juicefs-data.service fuse.juicefs\n"
    )
    assert state == {
        "juicefs-data.service": {
            "active": "active",
            "enabled": "enabled",
            "inode_rc": "0",
            "inode": "1",
            "fstype": "fuse.juicefs",
        }
    }
    with pytest.raises(ValueError, match="no JSON"):
        parse_status("redis: connection refused")


def test_sessions_match_by_host_name_or_address(tmp_path: Path, project_root: Path) -> None:
    inventory = write_inventory(
        tmp_path / "inv",
        {
            "juicefs_client": {
                "lab-edge-1": {"ansible_host": "10.0.0.21"},
                "lab-edge-2": {
                    "ansible_host": "10.0.0.22",
                    "juicefs_subdir_mounts": [
                        {"name": "web", "subdir": "web", "mountpoint": "/srv/web"}
                    ],
                },
            },
            "redis": {"r1": {"ansible_host": "10.0.0.5"}},
        },
        all_vars={"redis_password": "secret"},
    )
    topology = load_topology([inventory], basedir=project_root)
    edge1, edge2 = topology.group("juicefs_client")
    assert meta_url(topology, edge1) == "redis://10.0.0.5:6379/2"
    assert mounts_of(edge2) == [
        Mount("juicefs-data", "/data"),
        Mount("juicefs-web", "/srv/web", "web"),
    ]
    sessions = [
        {"HostName": "lab-edge-1", "IPAddrs": ["10.0.0.21"], "MountPoint": "/data"},
        {"HostName": "box", "IPAddrs": ["10.0.0.22", "fe80::1"], "MountPoint": "/srv/web"},
    ]
    assert session_of(sessions, edge1, "/data") is sessions[0]
    assert session_of(sessions, edge2, "/srv/web") is sessions[1]
    assert session_of(sessions, edge2, "/data") is None


def test_remote_runs_local_hosts_here_and_others_over_ssh(
    tmp_path: Path, project_root: Path
) -> None:
    inventory = write_inventory(
        tmp_path / "inv",
        {
            "juicefs_client": {
                "here": {"ansible_connection": "local"},
                "there": {
                    "ansible_host": "10.0.0.9",
                    "ansible_user": "admin",
                    "ansible_become": True,
                    "ansible_port": 2222,
                },
            }
        },
    )
    here, there = load_topology([inventory], basedir=project_root).group("juicefs_client")
    assert remote.is_local(here)
    assert not remote.is_local(there)
    assert remote.run_shell(here, "hostname").stdout.strip() == socket.gethostname()
    argv = remote.ssh_argv(there, ["stat", "-c", "%i", "/my data"])
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[-2:] == ["admin@10.0.0.9", "sudo -n sh -c 'stat -c %i '\"'\"'/my data'\"'\"''"]
    with pytest.raises(remote.RemoteError, match=r"gave no answer in 0\.2 s"):
        remote.run_shell(here, "sleep 5", timeout=0.2)
    with pytest.raises(remote.RemoteError, match="exited 3"):
        remote.run(here, "sh", "-c", "exit 3")


def test_redis_outage_fails_every_check_naming_redis(
    juicefs_volume: JuiceFSVolume, jfs_inventory: Path, project_root: Path
) -> None:
    """Last in this module: it stops the volume's Redis (and starts it again)."""
    juicefs_volume.redis.stop()
    try:
        results = verify(jfs_inventory, project_root, timeout=6.0)
    finally:
        juicefs_volume.redis.start()
    status = by_name(results, "juicefs status")[0]
    assert not status.ok
    assert "gave no answer" in status.detail
    assert "check Redis on redis1" in status.fix
    shared = by_name(results, "juicefs shared data")[0]
    assert not shared.ok
    assert "check Redis on redis1" in shared.fix
    # The mounts answer stat/statfs from their caches: the mount checks stay green.
    assert all(r.ok for r in by_name(results, "juicefs mount")), failures(results)
    # Once Redis is back the mounts reconnect by themselves (the Redis client backs off).
    deadline = time.monotonic() + 20
    while True:
        results = verify(jfs_inventory, project_root)
        if all(r.ok for r in results) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert all(r.ok for r in results), failures(results)
