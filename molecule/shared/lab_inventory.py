#!/usr/bin/env python3
"""Inventory script for Molecule: the lab's generated inventory, or none before `lab up`.

Molecule links its inventory sources before the create step has booted the lab, so it cannot
link inventories/lab directly. This script hands Ansible the lab's inventory (hosts, groups and
group_vars, as `ansible-inventory --list` resolves them) whenever it is read.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"
EMPTY = {"_meta": {"hostvars": {}}}


def main() -> int:
    if "--host" in sys.argv:
        print("{}")
        return 0
    if not (LAB / "hosts.yml").is_file():
        print(json.dumps(EMPTY))
        return 0
    tool = Path(sys.executable).parent / "ansible-inventory"
    cmd = [str(tool) if tool.exists() else "ansible-inventory", "-i", str(LAB), "--list"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
