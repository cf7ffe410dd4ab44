"""HAProxy on loopback in front of the ``weed_cluster``, as the haproxy role lays it out.

* ``haproxy_lb`` puts a real HAProxy in front of that cluster, laid out as the haproxy role
  renders it (backend and server names), and ``start_haproxy`` starts variants of it;
  ``haproxy_process`` runs any haproxy.cfg until its servers settle (the PostgreSQL listeners
  use it too).

Tests that need them are skipped, not failed, when there is no haproxy binary.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from support.common import _free_ports, _spawn, stop_processes
from support.weed import WeedCluster

HAPROXY = "/usr/sbin/haproxy"


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
