"""The inventory groups of the platform: one name each, the same in the playbooks and here.

The playbooks target these groups by name (``hosts: seaweedfs_master`` ...); there is no
``<component>_group`` variable to rename them, so the checks, the inventory rules and the CLI
read the same names from this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storagectl.inventory.loader import Topology

MASTER = "seaweedfs_master"
VOLUME = "seaweedfs_volume"
FILER = "seaweedfs_filer"
S3 = "seaweedfs_s3"
HAPROXY = "haproxy"
ETCD = "etcd"
POSTGRES = "postgres"
REDIS = "redis"
RUSTFS = "rustfs"
JUICEFS_CLIENT = "juicefs_client"

#: Every group a playbook deploys.
ALL = (MASTER, VOLUME, FILER, S3, HAPROXY, ETCD, POSTGRES, REDIS, RUSTFS, JUICEFS_CLIENT)


def summary(topology: Topology) -> str:
    """Host count of every group that has hosts, e.g. ``"seaweedfs_master 3, haproxy 2"``."""
    counts = [(name, len(topology.group(name))) for name in ALL]
    return ", ".join(f"{name} {count}" for name, count in counts if count)
