"""SeaweedFS replica placement: what ``XYZ`` means, where a volume server sits, what a layout of
volume servers can hold, and how a volume's copies break a placement.

Used by the inventory rules (can the racks hold the placement?) and by verify (does a written
file have the copies the placement promises?), so both agree on one reading:

* A placement is three digits ``XYZ``: one copy in each of X other data centers, one in each of
  Y other racks of the main data center, and Z more on distinct servers of the main rack;
  ``X+Y+Z+1`` copies in all (SeaweedFS ``ReplicaPlacement.GetCopyCount``).
* A volume server sits where ``-dataCenter``/``-rack`` put it: ``seaweedfs_data_center`` and
  ``seaweedfs_rack`` (role defaults ``dc1``/``rack1``); an empty label is SeaweedFS's own
  ``DefaultDataCenter``/``DefaultRack``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storagectl.inventory import Host

VARIABLE = "seaweedfs_default_replica_placement"
_DIGITS = re.compile(r"[0-9]{3}")

#: What weed calls a server started with an empty -dataCenter / -rack.
UNLABELLED_DC = "DefaultDataCenter"
UNLABELLED_RACK = "DefaultRack"


def digits(value: Any) -> tuple[int, int, int] | None:
    """``(X, Y, Z)`` of a placement ``"XYZ"``; None when ``value`` is not three digits."""
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value[0]), int(value[1]), int(value[2])
    return None


def copy_count(placement: str) -> int:
    """How many copies SeaweedFS keeps of a volume of placement ``XYZ``: X+Y+Z+1."""
    return sum(int(c) for c in placement) + 1


#: The variable (seaweedfs_master role default) that the masters' master.toml
#: [master.volume_growth] is rendered from: ``{copy_1: 7, copy_2: 6, copy_3: 3, copy_other: 1}``.
GROWTH_VARIABLE = "seaweedfs_master_volume_growth"


def growth_batch(placement: str, growth: Mapping[str, Any]) -> int:
    """How many volumes of placement ``XYZ`` the master creates in one growth, by its copy count
    (``growth``: the [master.volume_growth] settings, GROWTH_VARIABLE)."""
    count = copy_count(placement)
    key = f"copy_{count}" if count <= 3 else "copy_other"
    return int(growth.get(key, growth.get("copy_other", 1)))


def copies(n: int) -> str:
    """``1 copy``, ``2 copies``."""
    return f"{n} cop{'y' if n == 1 else 'ies'}"


def needs(placement: str) -> str:
    """What placement ``XYZ`` needs of the volume servers, in words."""
    x, y, z = (int(c) for c in placement)
    wanted = []
    if x:
        wanted.append(f"{x + 1} data centers")
    if y:
        wanted.append(f"{y + 1} racks in one data center")
    if z:
        wanted.append(f"{z + 1} servers in one rack")
    return ", ".join(wanted) or "a single server"


def location(host: Host) -> tuple[str, str]:
    """``(data center, rack)`` volume server ``host`` registers in."""
    dc = str(host.var("seaweedfs_data_center") or "") or UNLABELLED_DC
    rack = str(host.var("seaweedfs_rack") or "") or UNLABELLED_RACK
    return dc, rack


Layout = dict[str, dict[str, list[str]]]
"""Volume server names by data center, then rack."""


def layout(volumes: Iterable[Host]) -> Layout:
    """Where the volume servers sit: data center -> rack -> host names (inventory order)."""
    found: Layout = {}
    for host in volumes:
        dc, rack = location(host)
        found.setdefault(dc, {}).setdefault(rack, []).append(host.name)
    return found


def _show_dcs(where: Layout) -> str:
    shown = [
        f"{dc} = [{', '.join(sorted(h for r in racks.values() for h in r))}]"
        for dc, racks in where.items()
    ]
    return "data centers: " + ", ".join(shown)


def _show_racks(where: Layout) -> str:
    shown = [
        f"{dc}/{rack} = [{', '.join(hosts)}]"
        for dc, racks in where.items()
        for rack, hosts in racks.items()
    ]
    return "racks: " + ", ".join(shown)


def unsatisfiable(placement: str, where: Layout) -> list[tuple[str, str]]:
    """Why volume servers laid out as ``where`` cannot hold placement ``XYZ``: ``(what, fix)``
    pairs, empty when they can."""
    x, y, z = (int(c) for c in placement)
    found: list[tuple[str, str]] = []
    if len(where) < x + 1:
        found.append(
            (
                f'"{placement}" keeps {copies(x)} in other data centers, so the volume servers '
                f"must span at least {x + 1} data centers; the inventory has {_show_dcs(where)}",
                f"set seaweedfs_data_center so that volume servers are in at least {x + 1} data "
                f"centers, or lower the first digit of {VARIABLE}",
            )
        )
    wide_dcs = [racks for racks in where.values() if len(racks) >= y + 1]
    if not wide_dcs:
        found.append(
            (
                f'"{placement}" keeps {copies(y)} on other racks of the same data center, so one '
                f"data center needs volume servers on at least {y + 1} racks; the inventory has "
                f"{_show_racks(where)}",
                f"set seaweedfs_rack so that the volume servers of one data center are on at "
                f"least {y + 1} racks, or lower the middle digit of {VARIABLE}",
            )
        )
    elif not any(len(hosts) >= z + 1 for racks in wide_dcs for hosts in racks.values()):
        of = f" of a data center with at least {y + 1} racks" if y else ""
        found.append(
            (
                f'"{placement}" keeps {copies(z)} on other servers of the same rack, so a rack{of} '
                f"needs at least {z + 1} volume servers; the inventory has {_show_racks(where)}",
                f"put at least {z + 1} volume servers in one rack (same seaweedfs_data_center and "
                f"seaweedfs_rack), or lower the last digit of {VARIABLE}",
            )
        )
    return found


@dataclass
class Slots:
    """Free volume slots of one volume server, where it sits."""

    dc: str
    rack: str
    server: str
    free: int


def _take(servers: list[Slots], n: int) -> list[Slots] | None:
    """The ``n`` servers with the most free slots (each with at least one), or None."""
    chosen = sorted((s for s in servers if s.free > 0), key=lambda s: -s.free)[:n]
    return chosen if len(chosen) == n else None


def _one_volume(placement: str, servers: list[Slots]) -> list[Slots] | None:
    """Servers for one more volume of placement ``XYZ`` (the roomiest that fit), or None."""
    x, y, z = (int(c) for c in placement)
    by_dc: dict[str, dict[str, list[Slots]]] = {}
    for slot in servers:
        by_dc.setdefault(slot.dc, {}).setdefault(slot.rack, []).append(slot)
    for dc in sorted(by_dc, key=lambda d: -sum(s.free for r in by_dc[d].values() for s in r)):
        racks = by_dc[dc]
        for rack in sorted(racks, key=lambda r: -sum(s.free for s in racks[r])):
            main = _take(racks[rack], z + 1)
            if main is None:
                continue
            others = [_take(racks[r], 1) for r in racks if r != rack]
            other_racks = sorted((o[0] for o in others if o), key=lambda s: -s.free)[:y]
            far = [_take([s for r in by_dc[d].values() for s in r], 1) for d in by_dc if d != dc]
            other_dcs = sorted((f[0] for f in far if f), key=lambda s: -s.free)[:x]
            if len(other_racks) == y and len(other_dcs) == x:
                return main + other_racks + other_dcs
    return None


def placeable(placement: str, servers: Sequence[Slots], *, at_most: int) -> int:
    """How many more volumes of placement ``XYZ`` the free slots hold (up to ``at_most``): a
    greedy estimate that fills the roomiest servers first, as the master prefers free ones."""
    left = [Slots(s.dc, s.rack, s.server, s.free) for s in servers]
    count = 0
    while count < at_most:
        chosen = _one_volume(placement, left)
        if chosen is None:
            break
        for slot in chosen:
            slot.free -= 1
        count += 1
    return count


@dataclass(frozen=True)
class VolumeCopy:
    """Where one copy of a volume sits: the server's ``ip:port``, inventory name, DC and rack."""

    url: str
    name: str
    dc: str
    rack: str

    def __str__(self) -> str:
        return f"{self.name} ({self.dc}/{self.rack})"


def spread_problem(placement: str, found: Sequence[VolumeCopy]) -> tuple[str, str] | None:
    """How the copies of one volume break placement ``XYZ``: ``(kind, text)`` with kind
    ``count`` (wrong number of copies or servers) or ``spread`` (wrong data centers, racks or
    servers per rack); None when they honour it.

    Levels are checked from the data centers down and the first one that is wrong is reported:
    the levels below it only restate it.
    """
    x, y, z = (int(c) for c in placement)
    servers = {c.url for c in found}
    want = copy_count(placement)
    if len(servers) != len(found):
        return "count", f"{len(found)} copies on only {len(servers)} distinct server(s)"
    if len(found) != want:
        return "count", f"{copies(len(found))}, placement {placement} wants {want}"
    dcs = Counter(c.dc for c in found)
    if len(dcs) != x + 1:
        return "spread", (
            f"copies in {len(dcs)} data center(s) ({', '.join(sorted(dcs))}), "
            f"placement {placement} wants {x + 1}"
        )
    main_dc = dcs.most_common(1)[0][0]
    racks = Counter(c.rack for c in found if c.dc == main_dc)
    if len(racks) != y + 1:
        return "spread", (
            f"copies in {len(racks)} rack(s) of {main_dc} ({', '.join(sorted(racks))}), "
            f"placement {placement} wants {y + 1}"
        )
    main_rack, in_rack = racks.most_common(1)[0]
    if in_rack != z + 1:
        return "spread", (
            f"{copies(in_rack)} in {main_dc}/{main_rack}, placement {placement} wants {z + 1}"
        )
    return None
