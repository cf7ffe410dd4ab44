"""PostgreSQL HA on loopback: etcd, two Patroni members, HAProxy's PostgreSQL listeners and a
filer storing its metadata in PostgreSQL.

* ``patroni_cluster`` runs etcd and two real Patroni members (PostgreSQL 15) on loopback,
  ``postgres_lb`` HAProxy's PostgreSQL listeners in front of them (rw: the primary, ro: the
  replica), and ``postgres_filer`` a filer on postgres2 through the rw listener.

Tests that need them are skipped, not failed, when a binary (etcd, patroni, PostgreSQL, haproxy,
weed) is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import yaml
from psycopg import sql

from support.common import _free_ports, _spawn, stop_processes
from support.haproxy import haproxy_process
from support.weed import WeedCluster

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
