"""Fixtures of the ha scenario: the lab's topology, commands on lab hosts, HTTP through HAProxy."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import testinfra

from storagectl.checks.base import CheckContext
from storagectl.checks.postgres import (
    POSTGRES,
    Member,
    api_url,
    leaders,
    match_members,
    parse_cluster,
    replica_ready,
)
from storagectl.checks.redis import REDIS, redis_address, sentinel_view
from storagectl.endpoints import haproxy_url
from storagectl.inventory.loader import Topology, load_topology

ROOT = Path(__file__).resolve().parents[3]
INVENTORY = ROOT / "inventories" / "lab"
BIN = Path(sys.executable).parent
T = TypeVar("T")

# Every fault and every wait below is bounded: no loop runs longer than this many seconds.
BOUND = 60.0


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def run_local(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a project command (storagectl, ansible-playbook) from the repository root."""
    env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    # Molecule forces colour for its own output; these outputs are parsed, so no escape codes.
    env.pop("ANSIBLE_FORCE_COLOR", None)
    env.update(ANSIBLE_NOCOLOR="1", PY_COLORS="0", NO_COLOR="1")
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def wait_for(probe: Callable[[], T | None], within: float, what: str, pause: float = 0.1) -> T:
    """Call ``probe`` until it returns something truthy (returned) or ``within`` seconds pass."""
    deadline = time.monotonic() + min(within, BOUND)
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except (requests.RequestException, ValueError, KeyError) as exc:
            value, last = None, exc
        if value:
            return value
        time.sleep(pause)
    raise AssertionError(f"{what}: not within {within:.0f} s (last error: {last})")


@dataclass
class Lab:
    """The deployed ha lab, as its inventory describes it."""

    topology: Topology
    session: requests.Session = field(default_factory=requests.Session)
    written: dict[str, bytes] = field(default_factory=dict)

    def names(self, group: str) -> list[str]:
        return [h.name for h in self.topology.group(group)]

    def address(self, name: str) -> str:
        return self.topology.hosts[name].address

    def run(self, name: str, command: str) -> Any:
        """Run ``command`` on lab host ``name`` over SSH (testinfra's Ansible backend)."""
        remote = testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")
        return remote.run(command)

    def systemctl(self, name: str, *args: str) -> None:
        result = self.run(name, "systemctl " + " ".join(args))
        assert result.rc == 0, f"systemctl {' '.join(args)} on {name}: {result.stderr}"

    # --- Redis under Sentinel ----------------------------------------------------------------
    def redis_master(self) -> str | None:
        """The Redis host every Sentinel names master (None while they disagree or name none)."""
        hosts = self.topology.group(REDIS)
        views = [sentinel_view(self.topology, h, CheckContext(timeout=4)) for h in hosts]
        named = {v.master for v in views}
        by_address = {redis_address(h): h.name for h in hosts}
        return by_address.get(named.pop()) if len(named) == 1 else None

    # --- masters -----------------------------------------------------------------------------
    def master_status(self, name: str) -> dict[str, Any] | None:
        url = f"http://{self.address(name)}:9333/cluster/status"
        try:
            return self.session.get(url, timeout=1).json()
        except (requests.RequestException, ValueError):
            return None

    def leader(self, among: list[str] | None = None) -> str | None:
        """The master that says it leads (of ``among``), if exactly one does."""
        claiming = [
            n
            for n in among or self.names("seaweedfs_master")
            if (self.master_status(n) or {}).get("IsLeader") is True
        ]
        return claiming[0] if len(claiming) == 1 else None

    def masters_agree(self) -> bool:
        statuses = [self.master_status(n) for n in self.names("seaweedfs_master")]
        leaders = {(s or {}).get("Leader") for s in statuses}
        return None not in statuses and len(leaders) == 1 and leaders != {None}

    # --- files through the filer load balancer -----------------------------------------------
    @property
    def filer_lb(self) -> str:
        edge = self.topology.group("haproxy")[0]
        return haproxy_url(edge, "haproxy_filer_port")

    def put(self, size: int = 256 * 1024, prefix: str = "molecule-ha") -> str:
        """Write random bytes through the filer load balancer; remember them; return the path."""
        path = f"/{prefix}/{uuid.uuid4().hex}.bin"
        data = os.urandom(size)
        response = self.session.put(self.filer_lb + path, data=data, timeout=10)
        assert response.status_code in (200, 201), f"PUT {path}: {response.status_code}"
        self.written[path] = data
        return path

    def try_put(self) -> str | None:
        """``put``, or None when the write did not succeed (for polling during a fault)."""
        try:
            return self.put(size=16 * 1024)
        except (AssertionError, requests.RequestException):
            return None

    def read(self, path: str, within: float = 5.0) -> bytes:
        """GET ``path`` through the load balancer. Filers with embedded stores follow each
        other's metadata asynchronously, so a 404 right after a write is retried briefly."""
        deadline = time.monotonic() + within
        while True:
            response = self.session.get(self.filer_lb + path, timeout=10)
            if response.status_code != 404 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert response.status_code == 200, f"GET {path}: HTTP {response.status_code}"
        return response.content

    def assert_intact(self, paths: list[str]) -> None:
        """Every file in ``paths`` reads back byte-identical to what was written."""
        for path in paths:
            got = self.read(path)
            want = self.written[path]
            assert hashlib.sha256(got).hexdigest() == hashlib.sha256(want).hexdigest(), path

    # --- Patroni (PostgreSQL HA) --------------------------------------------------------------
    def patroni_members(self) -> dict[str, Member] | None:
        """Inventory host -> its member of Patroni's /cluster, from the first member that
        answers (None when none does); members the inventory does not know are left out."""
        hosts = self.topology.group(POSTGRES)
        for host in hosts:
            try:
                response = self.session.get(f"{api_url(host)}/cluster", timeout=2)
                members = parse_cluster(response.json())
            except (requests.RequestException, ValueError):
                continue
            return match_members(members, hosts)
        return None

    def patroni_leader(self, among: list[str] | None = None) -> str | None:
        """The inventory host of the Patroni leader (of ``among``), if exactly one member leads
        and it is one of them."""
        members = self.patroni_members() or {}
        found = leaders(list(members.values()))
        if len(found) != 1:
            return None
        name = next(host for host, member in members.items() if member is found[0])
        return name if among is None or name in among else None

    def patroni_healthy(self) -> bool:
        """Every postgres host is listed, exactly one leads, every other is a running replica."""
        members = self.patroni_members() or {}
        hosts = self.names(POSTGRES)
        return (
            sorted(members) == sorted(hosts)
            and len(leaders(list(members.values()))) == 1
            and all(m.leads or replica_ready(m) for m in members.values())
        )

    def patroni_rejoined(self, name: str) -> bool:
        """Whether ``name`` is listed as a running (or streaming) replica."""
        return replica_ready((self.patroni_members() or {}).get(name))

    def healthy(self, name: str, port: int, path: str = "/healthz") -> bool:
        try:
            url = f"http://{self.address(name)}:{port}{path}"
            return self.session.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    instance = Lab(load_topology([INVENTORY]))
    yield instance
    for path in instance.written:  # leave the cluster as the tests found it
        with contextlib.suppress(requests.RequestException):
            instance.session.delete(instance.filer_lb + path, timeout=5)
