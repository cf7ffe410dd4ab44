"""``up``, ``status`` and ``down``: the lab's life, built from its parts."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from storagectl import paths
from storagectl.lab import image, machines, network, state
from storagectl.lab import topology as topo
from storagectl.lab.errors import LabError
from storagectl.lab.inventory import KNOWN_HOSTS_FILE, write_inventory
from storagectl.lab.prereq import READ_TOOLS, check_prerequisites
from storagectl.lab.proc import Progress, elapsed, step

DOWN_HINT = "run `storagectl lab down` first"
# Lab machines and the lab network have machine-wide names: one up/down at a time per machine.
LOCK_FILE = Path("/run/lock/storagectl-lab.lock")


@contextlib.contextmanager
def _exclusive() -> Iterator[None]:
    """Hold the machine-wide lab lock, or fail at once if another up/down holds it."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabError(
                "another `storagectl lab up` or `lab down` is running on this machine: "
                "wait for it to finish, then run this again"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class MachineStatus:
    """One lab machine as ``status`` reports it."""

    name: str
    address: str
    state: str  # running, stopped or missing
    groups: list[str] = field(default_factory=list)


def up(topology: str = "dev", storage_hosts: int = 3, progress: Progress = print) -> Path:
    """Bring up (or reuse, or grow) the lab of ``topology``; return the inventory directory."""
    check_prerequisites()
    with _exclusive():
        return _up(topology, storage_hosts, progress)


def _up(topology: str, storage_hosts: int, progress: Progress) -> Path:
    start = time.monotonic()
    rustfs_binary = os.environ.get(topo.RUSTFS_BINARY_ENV) or None
    specs = topo.machines(topology, storage_hosts, rustfs=rustfs_binary is not None)
    count = topo.storage_count(topology, storage_hosts)
    recorded = state.read_state(paths.LAB_STATE_DIR)
    check_compatible(
        recorded,
        machines.containers(),
        topology_name=topology,
        storage_hosts=count,
        specs=specs,
        project_root=str(paths.PROJECT_ROOT),
    )
    with step(progress, "image"):
        image_name = image.ensure_image(progress)
    key = state.ensure_key(paths.LAB_STATE_DIR)
    s3_secrets = state.ensure_secrets(paths.LAB_STATE_DIR)
    info = network.ensure_network(progress)
    record = state_record(topology, count, specs, info)
    if recorded:  # same topology (checked above): keep when it was first brought up
        record["created"] = recorded.get("created", record["created"])
        before = recorded.get("storage_hosts", count)
        if count > before:
            progress(f"    growing the lab from {before} to {count} storage hosts")
    state.write_state(paths.LAB_STATE_DIR, record)
    with step(progress, f"machines ({topology}: {', '.join(s.name for s in specs)})"):
        machines.start_machines(
            specs,
            image=image_name,
            public_key=key.with_name(key.name + ".pub"),
            labels={"topology": topology, "root": str(paths.PROJECT_ROOT)},
            progress=progress,
        )
        machines.wait_ready(specs, key=key, progress=progress)
        state.write_private(key.with_name(KNOWN_HOSTS_FILE), machines.known_hosts(specs))
    inventory = write_inventory(
        paths.LAB_INVENTORY,
        topology=topology,
        specs=specs,
        key=key,
        s3_secrets=s3_secrets,
        rustfs_binary=rustfs_binary,
    )
    progress(f"==> lab {topology} up in {elapsed(start)}; inventory: {inventory}")
    return inventory


def check_compatible(
    recorded: dict[str, Any] | None,
    existing: Iterable[machines.Container],
    *,
    topology_name: str,
    storage_hosts: int,
    specs: list[topo.MachineSpec],
    project_root: str,
) -> None:
    """Refuse to ``up`` over a lab of another shape or another checkout.

    The same topology with more storage hosts than recorded is not another shape: ``up`` grows
    the lab (the new hosts are booted, the running ones left alone). Fewer storage hosts, or
    another topology, are refused.
    """
    if recorded and not _can_become(recorded, topology_name, storage_hosts):
        raise LabError(
            f"The lab is up as {describe(recorded.get('topology'), recorded.get('storage_hosts'))}"
            f", not {describe(topology_name, storage_hosts)}: {DOWN_HINT}."
        )
    wanted = {spec.container for spec in specs}
    for container in existing:
        if container.name not in wanted:
            raise LabError(
                f"Lab machine {container.machine} does not belong to the {topology_name} "
                f"topology: {DOWN_HINT}."
            )
        owner = container.labels.get(f"{machines.LABEL_PREFIX}root", project_root)
        if owner != project_root:
            raise LabError(
                f"Lab machine {container.machine} was made from the checkout at {owner}: "
                f"{DOWN_HINT} (there or here)."
            )


def _can_become(recorded: dict[str, Any], topology_name: str, storage_hosts: int) -> bool:
    """Whether the recorded lab is, or can grow into, ``topology_name`` with ``storage_hosts``."""
    if recorded.get("topology") != topology_name:
        return False
    count = recorded.get("storage_hosts")
    return isinstance(count, int) and not isinstance(count, bool) and storage_hosts >= count


def describe(topology_name: object, storage_hosts: object) -> str:
    """A topology in words, e.g. ``ha with 3 storage hosts``."""
    if topology_name == "dev":
        return "dev"
    return f"{topology_name} with {storage_hosts} storage hosts"


def state_record(
    topology_name: str, storage_hosts: int, specs: list[topo.MachineSpec], info: dict[str, Any]
) -> dict[str, Any]:
    """What state.json records about the lab."""
    return {
        "topology": topology_name,
        "storage_hosts": storage_hosts,
        "network": network.NETWORK,
        "bridge": network.bridge_name(info),
        "subnet": str(topo.SUBNET),
        "image": image.IMAGE,
        "project_root": str(paths.PROJECT_ROOT),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machines": [
            {**asdict(spec), "groups": list(spec.groups), "container": spec.container}
            for spec in specs
        ],
    }


def status() -> list[MachineStatus]:
    """The lab's machines (recorded and found) with their address, state and groups."""
    check_prerequisites(READ_TOOLS)
    recorded = _read_state_quietly() or {}
    found = {c.machine: c for c in machines.containers()}
    rows = []
    for machine in recorded.get("machines", []):
        container = found.pop(machine["name"], None)
        rows.append(
            MachineStatus(
                name=machine["name"],
                address=machine["address"],
                state=_state_word(container),
                groups=list(machine.get("groups", [])),
            )
        )
    for name, container in sorted(found.items()):
        address = container.labels.get(f"{machines.LABEL_PREFIX}address", "")
        rows.append(MachineStatus(name=name, address=address, state=_state_word(container)))
    return rows


def _state_word(container: machines.Container | None) -> str:
    """running, stopped or missing."""
    if container is None:
        return "missing"
    return "running" if container.running else "stopped"


def _read_state_quietly() -> dict[str, Any] | None:
    """state.json, or None when it is missing or unreadable."""
    try:
        return state.read_state(paths.LAB_STATE_DIR)
    except LabError:
        return None


def down(progress: Progress = print) -> None:
    """Remove the lab's machines, network, inventory and state; keep the cached image."""
    check_prerequisites(READ_TOOLS)
    with _exclusive():
        _down(progress)


def _down(progress: Progress) -> None:
    recorded = _read_state_quietly() or {}
    with step(progress, "lab down"):
        machines.remove_containers(progress)
        bridges = network.remove_networks(progress)
        if recorded.get("bridge"):
            bridges.append(str(recorded["bridge"]))
            network.delete_bridge(str(recorded["bridge"]))
        network.remove_cni_chains(progress)
        for path in (paths.LAB_INVENTORY, paths.LAB_STATE_DIR):
            if path.exists():
                shutil.rmtree(path)
                progress(f"    removed {path}")
    problems = network.leftovers(sorted(set(bridges)))
    if problems:
        raise LabError(
            f"The lab left {'; '.join(problems)} behind: remove those by hand "
            "(ip link delete / iptables -D) and report it."
        )
    progress(
        f"==> nothing of the lab is left: no container, network, bridge, veth, address, "
        f"route or iptables rule for {topo.SUBNET} (image {image.IMAGE} kept as a cache)"
    )
