"""What every cluster's fixtures share: free loopback ports, starting and stopping process
groups, and writing Ansible inventories that describe what they started.

* ``free_ports(n)`` hands out free TCP ports on 127.0.0.1, ``project_root`` a minimal project
  root to load inventories against; ``write_inventory`` writes ``hosts.yml`` + ``group_vars/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from storagectl.paths import PROJECT_ROOT as PROJECT


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


def run_playbook(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``ansible-playbook ARGS`` with the project's ansible.cfg, no colour, output captured."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    }
    return subprocess.run(
        ["ansible-playbook", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


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


def _listening(address: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``address:port``."""
    with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
        return True
    return False


@pytest.fixture(scope="session")
def free_ports() -> Callable[[int], list[int]]:
    """``free_ports(n)``: n distinct free TCP ports on 127.0.0.1."""
    return _free_ports


@pytest.fixture
def project_root(tmp_path: Path) -> Path:
    """A project root with the real project's top-level group_vars and role defaults.

    Tests load inventories against it (``basedir=``): the checks and the inventory rules read
    every default from the roles, as they do against the real project, while each test's
    inventory (and any change a test makes to its copy) stays its own.
    """
    root = tmp_path / "project"
    shutil.copytree(PROJECT / "group_vars", root / "group_vars")
    for defaults in (PROJECT / "roles").glob("*/defaults"):
        shutil.copytree(defaults, root / "roles" / defaults.parent.name / "defaults")
    return root
