"""The lab: throwaway Debian 12 machines (podman + systemd) on one host, for real deployments.

``up`` builds (once) an image, boots the machines of a topology on the lab's own bridge and
writes an Ansible inventory for them; ``status`` lists them; ``down`` removes everything but the
cached image. The lab knows nothing of the roles or of verification.
"""

from __future__ import annotations

from storagectl.lab.errors import LabError
from storagectl.lab.lifecycle import MachineStatus, down, status, up
from storagectl.lab.topology import TOPOLOGIES

__all__ = ["TOPOLOGIES", "LabError", "MachineStatus", "down", "status", "up"]
