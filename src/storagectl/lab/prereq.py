"""Prerequisites: the lab needs root and a few Debian packages, checked before anything runs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable

from storagectl.lab.errors import LabError

#: Commands ``up`` runs, with the Debian package that brings each.
UP_TOOLS: dict[str, str] = {
    "podman": "podman",
    "runc": "runc",
    "debootstrap": "debootstrap",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "tar": "tar",
    "ip": "iproute2",
}
#: Commands ``status`` and ``down`` run.
READ_TOOLS: tuple[str, ...] = ("podman", "ip")


def missing_tools(tools: Iterable[str]) -> list[str]:
    """The commands in ``tools`` that are not on PATH."""
    return [tool for tool in tools if shutil.which(tool) is None]


def check_prerequisites(tools: Iterable[str] = tuple(UP_TOOLS)) -> None:
    """Raise ``LabError`` naming the fix unless we are root and every tool is installed."""
    if os.geteuid() != 0:
        raise LabError(
            "The lab needs root (podman with systemd, bridges, NAT): run as root, from a root "
            "shell (`.venv/bin/storagectl lab ...`)."
        )
    missing = missing_tools(tools)
    if missing:
        raise LabError(
            f"{', '.join(missing)} not found: run scripts/setup.sh, "
            "which apt-get installs podman runc debootstrap."
        )
