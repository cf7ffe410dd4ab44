"""Capacity checks: is the cluster about to refuse writes, or refusing them already?

A SeaweedFS cluster with free disks can still refuse writes: every collection (each S3 bucket is
one) grows volumes in batches (``placement.growth_batch``: by default 6 at a time for ``001``,
``seaweedfs_master_volume_growth``), and a batch
needs free volume slots on servers that can hold the placement (two servers of one rack for
``001``). When no batch fits, a collection whose volumes are full gets ``No writable volumes and
no free volumes left`` and its writes fail; meanwhile a probe of another collection stays green.
A volume directory below ``-minFreeSpace`` turns read-only; a Redis at ``maxmemory`` with
``noeviction`` turns the JuiceFS file system read-only.

A PostgreSQL that cannot write WAL stops, and the filers (their metadata is there) with it.

These checks read what the servers report (the leader's ``/dir/status``, each volume server's
``/status``, Redis ``INFO memory``, ``df`` of the PostgreSQL data directory over ssh) and WARN
before the limit (thresholds are role defaults), FAIL once writes are refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import requests

from storagectl import placement as placements
from storagectl import remote
from storagectl.checks.base import CheckContext, CheckResult, cluster_check, host_check
from storagectl.checks.redis import connect, redis_fix, redis_port
from storagectl.checks.seaweedfs import UNITS, _dir_status, _expected_placement
from storagectl.checks.transfer import http_error, http_session
from storagectl.endpoints import weed_url
from storagectl.inventory import Host, Topology
from storagectl.inventory.groups import MASTER, POSTGRES, REDIS, VOLUME

COMPONENT = "capacity"

_ROOM_FIX = (
    "Add volume servers (or data directories) where the placement needs them, or raise "
    "seaweedfs_volume_max where the disks have room, then rerun deploy; deleting data frees "
    "slots only after vacuum (weed shell: volume.vacuum) and once the JuiceFS trash is emptied."
)


# --- volume slots per placement --------------------------------------------------------------


def _slots(body: dict[str, Any]) -> list[placements.Slots]:
    """Free volume slots of every data node of a ``/dir/status`` answer."""
    found = []
    for dc in body["Topology"].get("DataCenters") or []:
        for rack in dc.get("Racks") or []:
            for node in rack.get("DataNodes") or []:
                free = int(node.get("Max") or 0) - int(node.get("Volumes") or 0)
                # Erasure-coded shards take slots too (10 + 4 shards per volume).
                free -= -(-int(node.get("EcShards") or 0) // 14)
                found.append(
                    placements.Slots(
                        str(dc.get("Id")), str(rack.get("Id")), str(node.get("Url")), max(free, 0)
                    )
                )
    return found


def _layouts(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in body["Topology"].get("Layouts") or [] if isinstance(item, dict)]


def _placement_of(layout: dict[str, Any]) -> str:
    value = str(layout.get("replication") or "000")
    return value if placements.digits(value) else "000"


def _collection(layout: dict[str, Any]) -> str:
    return str(layout.get("collection") or "") or "(default)"


def _in_use(topology: Topology, layouts: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """Placement -> the collections that use it; the masters' default placement always."""
    used: dict[str, list[str]] = {_expected_placement(topology): []}
    for layout in layouts:
        used.setdefault(_placement_of(layout), []).append(_collection(layout))
    return used


def _no_status(topology: Topology, name: str, url: str, error: str) -> list[CheckResult]:
    return [
        CheckResult(
            name,
            COMPONENT,
            False,
            f"no master answered /dir/status: {error}",
            fix="Fix the masters first (storagectl verify --component seaweedfs), then rerun.",
            endpoint=url,
        )
    ]


@cluster_check("volume slots", COMPONENT, requires=(MASTER, VOLUME))
def volume_slots(topology: Topology, ctx: CheckContext) -> list[CheckResult]:
    """Free volume slots hold one growth batch of every collection of each placement in use
    (plus one for a new bucket): WARN below that, FAIL when not one more volume fits."""
    body, url, error = _dir_status(topology, ctx)
    if body is None:
        return _no_status(topology, "volume slots", url, error)
    slots = _slots(body)
    results = []
    for placement, collections in sorted(_in_use(topology, _layouts(body)).items()):
        batch = placements.growth_batch(placement, topology.var(placements.GROWTH_VARIABLE))
        needed = batch * (len(collections) + 1)
        room = placements.placeable(placement, slots, at_most=needed)
        where = f"placement {placement}"
        used_by = f"{len(collections)} collection(s)" if collections else "no collection yet"
        if room == 0:
            results.append(
                CheckResult(
                    "volume slots",
                    COMPONENT,
                    False,
                    f"{where}: no free volume slot pattern fits one more volume "
                    f"({placements.needs(placement)}); {used_by}: a collection whose volumes "
                    "are full, and every new bucket, has its writes refused",
                    fix=_ROOM_FIX,
                    endpoint=where,
                )
            )
            continue
        detail = (
            f"{where}: room for {room}{'+' if room >= needed else ''} more volume(s), "
            f"{used_by}, growth batch {batch}"
        )
        low = room < needed
        results.append(
            CheckResult(
                "volume slots",
                COMPONENT,
                True,
                detail
                + (f": below one batch per collection plus a new bucket ({needed})" if low else ""),
                fix=_ROOM_FIX if low else "",
                endpoint=where,
                warning=low,
            )
        )
    return results


@cluster_check("writable volumes", COMPONENT, requires=(MASTER, VOLUME))
def writable_volumes(topology: Topology, ctx: CheckContext) -> list[CheckResult]:
    """Every collection has a writable volume, or room to grow one: FAIL when a collection
    has neither (its writes are refused now)."""
    body, url, error = _dir_status(topology, ctx)
    if body is None:
        return _no_status(topology, "writable volumes", url, error)
    slots = _slots(body)
    stuck, counts = [], []
    for layout in _layouts(body):
        writable = len(layout.get("writables") or [])
        name = f"{_collection(layout)} ({_placement_of(layout)})"
        counts.append(f"{name} {writable}")
        if not writable and not placements.placeable(_placement_of(layout), slots, at_most=1):
            stuck.append(name)
    if stuck:
        return [
            CheckResult(
                "writable volumes",
                COMPONENT,
                False,
                f"no writable volume and no room to grow one: {', '.join(stuck)}: writes to "
                "these collections are refused now",
                fix=_ROOM_FIX,
                endpoint=url,
            )
        ]
    detail = ", ".join(counts) or "no collection yet"
    return [CheckResult("writable volumes", COMPONENT, True, f"writable: {detail}", endpoint=url)]


# --- free disk on every volume directory -------------------------------------------------------

_SIZE = re.compile(r"^\s*([0-9.]+)\s*([KMGT]i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def min_free(value: Any, total: int) -> float:
    """``-minFreeSpace`` as a percentage of ``total`` bytes: "5" is 5 %, "10GiB" is a size."""
    text = str(value).strip()
    match = _SIZE.match(text)
    if not match:
        return 0.0
    number, unit = float(match.group(1)), (match.group(2) or "").upper()
    if not unit:
        return number
    size = number * _UNITS[unit[0]]
    return 100.0 * size / total if total else 0.0


def _disk_url(topology: Topology, host: Host) -> str:
    return f"{weed_url(host, VOLUME)}/status"


def _disk_result(host: Host, disk: dict[str, Any], margin: float) -> CheckResult:
    directory = str(disk.get("dir") or "?")
    total = int(disk.get("all") or 0)
    free = float(disk.get("percent_free") or 0.0)
    floor = min_free(host.var("seaweedfs_volume_min_free_space"), total)
    detail = f"{directory}: {free:.1f} % free ({int(disk.get('free') or 0) / 2**30:.1f} GiB)"
    limit = f"-minFreeSpace {floor:.1f} %"
    unit = UNITS[VOLUME]
    if free <= floor:
        return CheckResult(
            "volume disk",
            COMPONENT,
            False,
            f"{detail}, at {limit}: {unit} has made its volumes read-only",
            fix=f"Free space in {directory} on {host.name} or add disks; {_ROOM_FIX}",
            host=host.name,
        )
    low = free < floor + margin
    return CheckResult(
        "volume disk",
        COMPONENT,
        True,
        f"{detail}, {limit}" + (f": within {margin:.0f} points of read-only" if low else ""),
        fix=f"Free space in {directory} on {host.name} or add disks before it turns read-only."
        if low
        else "",
        host=host.name,
        warning=low,
    )


@host_check("volume disk", COMPONENT, group=VOLUME, endpoint=_disk_url)
def volume_disk(topology: Topology, host: Host, ctx: CheckContext) -> list[CheckResult]:
    """Each volume directory is above ``-minFreeSpace`` (FAIL at it: its volumes are read-only;
    WARN within ``seaweedfs_volume_disk_warn_margin`` points of it)."""
    url = _disk_url(topology, host)
    try:
        with http_session() as session:
            body = session.get(url, timeout=ctx.http_timeout).json()
    except (requests.RequestException, ValueError) as exc:
        detail = http_error(exc) if isinstance(exc, requests.RequestException) else "not JSON"
        return [
            CheckResult(
                "volume disk",
                COMPONENT,
                False,
                f"no disk status from {url}: {detail}",
                fix="Fix the volume server first (storagectl verify --component seaweedfs).",
                host=host.name,
            )
        ]
    margin = float(host.var("seaweedfs_volume_disk_warn_margin"))
    disks = body.get("DiskStatuses") if isinstance(body, dict) else None
    return [_disk_result(host, disk, margin) for disk in disks or [] if isinstance(disk, dict)]


def _share_result(
    name: str,
    host: Host,
    share: float,
    detail: str,
    *,
    limits: tuple[str, str],
    refused: str,
    fix: str,
) -> CheckResult:
    """OK, WARN from the percentage in role default ``limits[0]``, FAIL from ``limits[1]``."""
    warn, fail = (float(host.var(limit)) for limit in limits)
    if share >= fail:
        return CheckResult(
            name,
            COMPONENT,
            False,
            f"{detail}, at or above {fail:.0f} %: {refused}",
            fix=fix,
            host=host.name,
        )
    low = share >= warn
    return CheckResult(
        name,
        COMPONENT,
        True,
        detail + (f", above {warn:.0f} %" if low else ""),
        fix=fix if low else "",
        host=host.name,
        warning=low,
    )


# --- Redis memory ------------------------------------------------------------------------------


@host_check("redis memory", COMPONENT, group=REDIS)
def redis_memory(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
    """Redis's used memory against ``maxmemory``: with ``noeviction`` a full Redis refuses
    writes and the JuiceFS file system turns read-only."""
    import redis

    client = connect(host, redis_port(host), ctx)
    try:
        info = client.info("memory")
    except redis.RedisError as exc:
        return CheckResult(
            "redis memory",
            COMPONENT,
            False,
            f"no INFO memory: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            fix=redis_fix(host, "see storagectl verify --component redis"),
            host=host.name,
        )
    finally:
        client.close()
    used = int(info.get("used_memory") or 0)
    limit = int(info.get("maxmemory") or 0) or int(info.get("total_system_memory") or 0)
    share = 100.0 * used / limit if limit else 0.0
    return _share_result(
        "redis memory",
        host,
        share,
        f"{used / 2**20:.0f} MiB used of {limit / 2**20:.0f} MiB ({share:.0f} %)",
        limits=("redis_memory_warn_percent", "redis_memory_fail_percent"),
        refused="metadata writes are about to be refused",
        fix=(
            f"Raise redis_maxmemory (and the host's memory) on {host.name}, or remove data from "
            "the JuiceFS volume (and empty its trash): at maxmemory, noeviction refuses every "
            "write."
        ),
    )


# --- PostgreSQL disk ---------------------------------------------------------------------------


def parse_df(output: str) -> tuple[int, int] | None:
    """(size, available) bytes from ``df -P -B1 PATH`` (its last line), or None."""
    lines = [line.split() for line in output.strip().splitlines()]
    if len(lines) < 2 or len(lines[-1]) < 4:
        return None
    try:
        return int(lines[-1][1]), int(lines[-1][3])
    except ValueError:
        return None


@host_check("postgres disk", COMPONENT, group=POSTGRES)
def postgres_disk(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
    """How full the file system of ``patroni_data_dir`` is, read with ``df`` over ssh."""
    data_dir = str(host.var("patroni_data_dir"))
    fix_ssh = f"Check that this machine reaches {host.name} over ssh as Ansible does."
    try:
        result = remote.run(host, "df", "-P", "-B1", data_dir, timeout=ctx.timeout, check=False)
    except remote.RemoteError as exc:
        return CheckResult("postgres disk", COMPONENT, False, str(exc), fix=fix_ssh, host=host.name)
    sizes = parse_df(result.stdout) if result.returncode == 0 else None
    if sizes is None or sizes[0] == 0:
        detail = (result.stderr.strip().splitlines() or ["no answer"])[-1]
        return CheckResult(
            "postgres disk",
            COMPONENT,
            False,
            f"df {data_dir}: {detail}",
            fix=fix_ssh if result.returncode == 255 else f"Is {data_dir} there on {host.name}?",
            host=host.name,
        )
    size, available = sizes
    used = 100.0 * (size - available) / size
    return _share_result(
        "postgres disk",
        host,
        used,
        f"{data_dir}: {used:.0f} % used, {available / 2**30:.1f} GiB free",
        limits=("patroni_disk_warn_percent", "patroni_disk_fail_percent"),
        refused="PostgreSQL stops when it cannot write WAL",
        fix=(
            f"Grow the file system of {data_dir} on {host.name}, or free space there (old WAL is "
            "kept for a replica that is gone or a failing archive_command: see patronictl list)."
        ),
    )


CHECKS = [volume_slots, writable_volumes, volume_disk, redis_memory, postgres_disk]
