"""Redis on loopback: single servers and a Sentinel group.

* ``redis_server`` runs a real Redis (requirepass, AOF, noeviction) and ``start_redis`` variants
  of it; ``sentinel_group`` a master, two replicas and three Sentinels beside them.

Tests that need them are skipped, not failed, when there is no redis-server binary.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from support.common import _free_ports, _listening, stop_processes

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_PASSWORD = "storagectl-test-redis-8910"


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
