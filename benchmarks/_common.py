"""What the benchmarks share: load an inventory's topology, run a command on one of its hosts.

Not a package: the scripts of this directory import it as ``_common`` (Python puts a script's
own directory first on ``sys.path``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from storagectl import remote
from storagectl.inventory import Host, Topology, load_topology
from storagectl.paths import PROJECT_ROOT
from storagectl.remote import SSH_OPTIONS, ssh_argv

__all__ = ["SSH_OPTIONS", "BenchmarkError", "fail", "load", "run_on", "ssh_argv"]

DEFAULT_INVENTORY = PROJECT_ROOT / "inventories" / "lab"


class BenchmarkError(Exception):
    """The benchmark cannot go on (inventory, ssh or cluster trouble); the message says why."""


def load(inventory: str | Path) -> Topology:
    """The topology of ``inventory``, loaded as ``storagectl verify`` loads it."""
    return load_topology([inventory])


def run_on(
    host: Host, *command: str, timeout: float = 60.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` on ``host`` as Ansible reaches it (:mod:`storagectl.remote`); raise
    BenchmarkError when it fails and ``check``."""
    try:
        return remote.run(host, *command, timeout=timeout, check=check)
    except remote.RemoteError as exc:
        raise BenchmarkError(str(exc)) from None


def fail(message: str) -> int:
    """Print ``message`` on stderr; return exit code 1."""
    print(f"error: {message}", file=sys.stderr)
    return 1
