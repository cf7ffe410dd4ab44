"""What the benchmarks share: load an inventory's topology, run a command on one of its hosts.

Not a package: the scripts of this directory import it as ``_common`` (Python puts a script's
own directory first on ``sys.path``).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from storagectl.inventory import Host, Topology, load_topology
from storagectl.paths import PROJECT_ROOT

DEFAULT_INVENTORY = PROJECT_ROOT / "inventories" / "lab"
#: Options every ssh call gets, before the inventory's ``ansible_ssh_common_args``.
SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR")


class BenchmarkError(Exception):
    """The benchmark cannot go on (inventory, ssh or cluster trouble); the message says why."""


def load(inventory: str | Path) -> Topology:
    """The topology of ``inventory``, loaded as ``storagectl verify`` loads it."""
    return load_topology([inventory])


def ssh_argv(host: Host, command: Sequence[str]) -> list[str]:
    """The ``ssh`` command line running ``command`` on ``host`` as Ansible would connect.

    Uses the host's ``ansible_host``, ``ansible_port``, ``ansible_user``,
    ``ansible_ssh_private_key_file``, ``ansible_ssh_common_args`` and ``ansible_ssh_extra_args``.
    """
    address = str(host.var("ansible_host", default=host.name))
    user = host.var("ansible_user", default=None)
    port = host.var("ansible_port", default=None)
    key = host.var("ansible_ssh_private_key_file", default=None)
    argv = ["ssh", *SSH_OPTIONS]
    if key:
        argv += ["-i", str(Path(str(key)).expanduser())]
    if port:
        argv += ["-p", str(port)]
    for name in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        argv += shlex.split(str(host.var(name, default="") or ""))
    argv.append(f"{user}@{address}" if user else address)
    argv.append(shlex.join(command))  # ssh hands the remote shell one string
    return argv


def run_on(
    host: Host, *command: str, timeout: float = 60.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` on ``host`` over ssh; raise BenchmarkError when it fails and ``check``."""
    try:
        result = subprocess.run(
            ssh_argv(host, command), capture_output=True, text=True, check=False, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError(
            f"{host.name}: `{shlex.join(command)}` gave no answer in {timeout:g} s"
        ) from None
    if check and result.returncode != 0:
        why = (result.stderr or result.stdout).strip().splitlines()
        raise BenchmarkError(
            f"{host.name}: `{shlex.join(command)}` exited {result.returncode}"
            f"{': ' + why[-1] if why else ''}"
        )
    return result


def fail(message: str) -> int:
    """Print ``message`` on stderr; return exit code 1."""
    print(f"error: {message}", file=sys.stderr)
    return 1
