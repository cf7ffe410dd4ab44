"""The lab's podman network (a bridge with NAT) and the check that nothing of it is left."""

from __future__ import annotations

import ipaddress
import json
import shutil
from typing import Any

from storagectl.lab.errors import LabError
from storagectl.lab.proc import Progress, run, succeeds
from storagectl.lab.topology import SUBNET

NETWORK = "storagectl-lab"
LABEL = "storagectl.lab=1"
LABEL_KEY, LABEL_VALUE = LABEL.split("=")


def network_info(name: str = NETWORK) -> dict[str, Any] | None:
    """``podman network inspect`` of ``name``, or None when it does not exist."""
    if not succeeds(["podman", "network", "exists", name]):
        return None
    data = json.loads(run(["podman", "network", "inspect", name]).stdout)
    return data[0] if isinstance(data, list) and data else None


def bridge_name(info: dict[str, Any] | None) -> str | None:
    """The host bridge interface behind a podman network."""
    return str(info.get("network_interface") or "") or None if info else None


def routes() -> list[dict[str, Any]]:
    """The host's main routing table (``ip -j route show``)."""
    return list(json.loads(run(["ip", "-j", "route", "show"]).stdout or "[]"))


def overlapping_routes(
    table: list[dict[str, Any]], subnet: ipaddress.IPv4Network, own_dev: str | None
) -> list[str]:
    """Routes of ``table`` whose destination overlaps ``subnet``, except default routes
    and those through ``own_dev`` (the lab's own bridge)."""
    found = []
    for route in table:
        dst = str(route.get("dst", ""))
        if dst in ("", "default") or (own_dev and route.get("dev") == own_dev):
            continue
        try:
            net = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if net.version == subnet.version and net.overlaps(subnet):
            found.append(f"{dst} dev {route.get('dev', '?')}")
    return found


def ensure_network(progress: Progress) -> dict[str, Any]:
    """Create the lab network unless it exists (refusing a subnet clash); return its info."""
    info = network_info()
    if info is not None:
        check_ours(info)
        progress(f"==> network {NETWORK} ({SUBNET}): exists")
        return info
    clash = overlapping_routes(routes(), SUBNET, None)
    if clash:
        raise LabError(
            f"The lab subnet {SUBNET} overlaps the host route {clash[0]}: "
            "remove that route or network, then run `storagectl lab up` again."
        )
    run(["podman", "network", "create", NETWORK, "--subnet", str(SUBNET), "--label", LABEL])
    progress(f"==> network {NETWORK} ({SUBNET}): created")
    created = network_info()
    if created is None:
        raise LabError(f"podman did not create network {NETWORK}: check `podman network ls`.")
    return created


def check_ours(info: dict[str, Any]) -> None:
    """Refuse a network of the lab's name that the lab did not create."""
    labels = info.get("labels") or {}
    subnets = [s.get("subnet") for s in info.get("subnets") or []]
    if labels.get(LABEL_KEY) != LABEL_VALUE or str(SUBNET) not in subnets:
        raise LabError(
            f"A podman network named {NETWORK} exists that the lab did not create: "
            f"remove it with `podman network rm {NETWORK}` and run again."
        )


def lab_networks() -> list[str]:
    """Names of the podman networks labelled as the lab's."""
    result = run(["podman", "network", "ls", "--filter", f"label={LABEL}", "--format", "{{.Name}}"])
    return [line for line in result.stdout.split() if line]


def remove_networks(progress: Progress) -> list[str]:
    """Remove the lab's networks; return the bridges they used."""
    bridges = []
    for name in lab_networks():
        bridge = bridge_name(network_info(name))
        run(["podman", "network", "rm", "--force", name])
        progress(f"    removed network {name}")
        if bridge:
            bridges.append(bridge)
            delete_bridge(bridge)
    return bridges


# What podman's CNI firewall plugin adds to the filter table the first time any container starts.
CNI_JUMP = [
    "FORWARD",
    "-m",
    "comment",
    "--comment",
    "CNI firewall plugin rules",
    "-j",
    "CNI-FORWARD",
]
CNI_STOCK_RULES = {
    "CNI-FORWARD": [
        "-N CNI-FORWARD",
        '-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN',
    ],
    "CNI-ADMIN": ["-N CNI-ADMIN"],
}


def remove_cni_chains(progress: Progress) -> None:
    """Remove the CNI plugin's FORWARD chains once no container is left on the host.

    podman creates them on the first container start (the lab's) and keeps them empty of lab
    rules afterwards; they are removed only when they hold nothing but their stock rules and no
    container of anyone exists, and podman recreates them whenever a container starts again.
    """
    if shutil.which("iptables") is None or run(["podman", "ps", "-aq"], check=False).stdout.strip():
        return
    for chain, stock in CNI_STOCK_RULES.items():
        listing = run(["iptables", "-S", chain], check=False)
        if listing.returncode != 0:
            return  # absent already (or iptables cannot list it): nothing to remove
        if listing.stdout.strip().splitlines() != stock:
            return  # someone else's rules live there: leave the chains alone
    run(["iptables", "-D", *CNI_JUMP], check=False)
    for chain in CNI_STOCK_RULES:
        run(["iptables", "-F", chain], check=False)
    for chain in CNI_STOCK_RULES:
        run(["iptables", "-X", chain], check=False)
    progress("    removed podman's empty CNI-FORWARD/CNI-ADMIN chains")


def delete_bridge(bridge: str) -> None:
    """Delete the lab's bridge if podman left it (CNI keeps bridges after the last container)."""
    if succeeds(["ip", "link", "show", "dev", bridge]):
        run(["ip", "link", "delete", "dev", bridge])


def leftovers(bridges: list[str]) -> list[str]:
    """What of the lab is still on the host: interfaces, addresses, routes, iptables rules."""
    found = [f"interface {b}" for b in bridges if succeeds(["ip", "link", "show", "dev", b])]
    found += [f"veth {n} on {m}" for n, m in veths() if m in bridges]
    found += [f"address {a}" for a in addresses_in_subnet()]
    found += [f"route {r}" for r in overlapping_routes(routes(), SUBNET, None)]
    found += [f"iptables rule: {r}" for r in iptables_rules_mentioning(SUBNET)]
    return found


def veths() -> list[tuple[str, str]]:
    """(name, master) of every veth interface on the host."""
    links = json.loads(run(["ip", "-j", "link", "show", "type", "veth"]).stdout or "[]")
    return [(str(link.get("ifname")), str(link.get("master", ""))) for link in links]


def addresses_in_subnet() -> list[str]:
    """Host addresses inside the lab subnet (``interface address``)."""
    found = []
    for link in json.loads(run(["ip", "-j", "addr", "show"]).stdout or "[]"):
        for addr in link.get("addr_info", []):
            if addr.get("family") != "inet":
                continue
            if ipaddress.ip_address(addr["local"]) in SUBNET:
                found.append(f"{link.get('ifname')} {addr['local']}")
    return found


def iptables_rules_mentioning(subnet: ipaddress.IPv4Network) -> list[str]:
    """iptables rules (all tables) whose text names an address of ``subnet``."""
    if shutil.which("iptables-save") is None:
        return []
    prefix = ".".join(str(subnet.network_address).split(".")[:3]) + "."
    dump = run(["iptables-save"], check=False).stdout
    return [line for line in dump.splitlines() if prefix in line and not line.startswith("#")]
