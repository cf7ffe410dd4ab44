"""The inventory as Ansible loads it, and the topology model the checks are written against."""

from storagectl.inventory.loader import (
    MISSING,
    Host,
    InventoryError,
    Topology,
    VariableError,
    load_topology,
)

__all__ = ["MISSING", "Host", "InventoryError", "Topology", "VariableError", "load_topology"]
