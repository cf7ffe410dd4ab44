"""Lab topologies: which machines a topology has, their addresses, racks and Ansible groups.

Edit ``TOPOLOGY_GROUPS`` to change which groups a kind of machine joins. The ha topology has
``CORE_HOSTS`` core storage hosts (kind ``storage``: every SeaweedFS daemon plus etcd, PostgreSQL
and Redis), then, beyond them, volume-only storage hosts (kind ``volume``), then ``EDGE_HOSTS``
edge hosts (kind ``edge``: HAProxy and JuiceFS clients).

No registry reachable here carries the RustFS server binary, so the ha lab's ``rustfs`` group is
empty and JuiceFS stores its data on the SeaweedFS S3 gateways (through HAProxy). When the
environment variable ``STORAGECTL_RUSTFS_BINARY`` names a rustfs binary on the controller,
``lab-edge-1`` also runs a single-node RustFS and JuiceFS uses it instead.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from storagectl.lab.errors import LabError

TOPOLOGIES: tuple[str, ...] = ("dev", "ha")

SUBNET = ipaddress.IPv4Network("10.213.0.0/24")
#: Storage host ``i`` (from 1) gets ``SUBNET[STORAGE_BASE + i]``; edge host ``i`` likewise.
STORAGE_BASE = 10
EDGE_BASE = 100
MAX_STORAGE_HOSTS = EDGE_BASE - STORAGE_BASE - 1
#: ha: storage hosts 1..CORE_HOSTS are core hosts; the ones after them only hold volumes.
CORE_HOSTS = 3
#: ha: how many edge hosts (lab-edge-1 ...) front the cluster.
EDGE_HOSTS = 2
MIN_HA_STORAGE_HOSTS = CORE_HOSTS
#: Names a rustfs binary on the controller; set, the ha lab runs RustFS on ``RUSTFS_HOST``.
RUSTFS_BINARY_ENV = "STORAGECTL_RUSTFS_BINARY"
RUSTFS_HOST = "lab-edge-1"

#: Every group the inventory declares, in order; groups a topology leaves out stay empty.
GROUPS: tuple[str, ...] = (
    "seaweedfs_master",
    "seaweedfs_volume",
    "seaweedfs_filer",
    "seaweedfs_s3",
    "etcd",
    "postgres",
    "haproxy",
    "redis",
    "rustfs",
    "juicefs_client",
)

# fmt: off
#: topology -> kind of machine -> groups each machine of that kind joins.
TOPOLOGY_GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "dev": {
        "storage": ("seaweedfs_master", "seaweedfs_volume", "seaweedfs_filer", "seaweedfs_s3"),
    },
    "ha": {
        # Core storage hosts 1..CORE_HOSTS.
        "storage": ("seaweedfs_master", "seaweedfs_volume", "seaweedfs_filer", "seaweedfs_s3",
                    "etcd", "postgres", "redis"),
        # Storage hosts after the core ones (--storage-hosts > CORE_HOSTS).
        "volume":  ("seaweedfs_volume",),
        # No seaweedfs_s3 here: HAProxy's S3 frontend (8333) would clash with a local gateway.
        "edge":    ("haproxy", "juicefs_client"),
    },
}
# fmt: on

#: Variables that differ per topology (written to group_vars/all/lab.yml). The ha filers share
#: one metadata store: PostgreSQL (Patroni on the core hosts) through HAProxy on lab-edge-1.
#: JuiceFS (ha) keeps its data on the SeaweedFS S3 gateways, unless the lab runs RustFS, and its
#: metadata in Redis on the three core hosts, under Sentinel.
TOPOLOGY_VARS: dict[str, dict[str, str | bool]] = {
    "dev": {"seaweedfs_default_replica_placement": "000", "seaweedfs_filer_store": "leveldb2"},
    "ha": {
        "seaweedfs_default_replica_placement": "001",
        "seaweedfs_filer_store": "postgres2",
        "juicefs_backend": "seaweedfs",
        "redis_sentinel_enabled": True,
    },
}

DATA_CENTER = "dc1"
RACKS: tuple[str, ...] = ("rack1", "rack2")


@dataclass(frozen=True)
class MachineSpec:
    """One lab machine as a topology defines it."""

    name: str
    address: str
    kind: str
    rack: str
    groups: tuple[str, ...] = field(default=())

    @property
    def container(self) -> str:
        """The podman container's name."""
        return f"storagectl-{self.name}"


def validate(topology: str, storage_hosts: int) -> None:
    """Raise ``LabError`` unless ``topology`` and ``storage_hosts`` make a lab."""
    if topology not in TOPOLOGIES:
        raise LabError(f"Unknown topology {topology!r}: use one of {', '.join(TOPOLOGIES)}.")
    if topology == "ha" and not MIN_HA_STORAGE_HOSTS <= storage_hosts <= MAX_STORAGE_HOSTS:
        raise LabError(
            f"The ha topology needs {MIN_HA_STORAGE_HOSTS} to {MAX_STORAGE_HOSTS} storage hosts: "
            f"pass a storage host count in that range (got {storage_hosts})."
        )


def storage_count(topology: str, storage_hosts: int) -> int:
    """How many storage hosts ``topology`` has (dev always has one)."""
    return 1 if topology == "dev" else storage_hosts


def storage_kind(topology: str, index: int) -> str:
    """The kind of storage host ``index`` (from 1): ``storage`` (core), or ``volume`` past the
    core hosts when the topology has volume-only hosts."""
    if index > CORE_HOSTS and "volume" in TOPOLOGY_GROUPS[topology]:
        return "volume"
    return "storage"


def machines(topology: str, storage_hosts: int = 3, *, rustfs: bool = False) -> list[MachineSpec]:
    """The machines of ``topology``: storage hosts (core, then volume-only), then edge hosts.

    ``rustfs`` (ha only: a RustFS binary was given) adds ``RUSTFS_HOST`` to group ``rustfs``.
    """
    validate(topology, storage_hosts)
    kinds = TOPOLOGY_GROUPS[topology]
    specs = []
    for i in range(1, storage_count(topology, storage_hosts) + 1):
        kind = storage_kind(topology, i)
        specs.append(
            MachineSpec(
                name=f"lab-{topology}-{i}",
                address=str(SUBNET[STORAGE_BASE + i]),
                kind=kind,
                rack=RACKS[(i - 1) % len(RACKS)],
                groups=kinds[kind],
            )
        )
    if "edge" in kinds:
        specs.extend(
            MachineSpec(
                name=f"lab-edge-{i}",
                address=str(SUBNET[EDGE_BASE + i]),
                kind="edge",
                rack=RACKS[(i - 1) % len(RACKS)],
                groups=kinds["edge"] + (("rustfs",) if rustfs and i == 1 else ()),
            )
            for i in range(1, EDGE_HOSTS + 1)
        )
    return specs


def group_members(specs: list[MachineSpec]) -> dict[str, list[str]]:
    """Every group of ``GROUPS`` with the names of its members (possibly none), in order."""
    return {group: [s.name for s in specs if group in s.groups] for group in GROUPS}
