"""Ansible action ``storagectl_inventory_check``: storagectl's inventory rules inside a run.

It runs on the controller only (no connection, no module), once: it builds the same Topology
``storagectl inventory check`` loads, from the run's own untemplated host variables (inventory,
group_vars/host_vars, extra vars) with every role's defaults layered under them, and checks it
with :func:`storagectl.inventory.validate.validate`. It fails with one line per problem, each
naming the host, the variable and the fix, and never a secret's value. It takes no arguments::

    - name: Check the inventory
      storagectl_inventory_check:
      run_once: true
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# storagectl comes from the environment when it is installed (the project's venv), else from
# the project's src/ beside this plugin.
if importlib.util.find_spec("storagectl") is None:
    sys.path.insert(0, str(PROJECT_ROOT / "src"))

from storagectl.inventory.loader import InventoryError, topology_from_vars  # noqa: E402
from storagectl.inventory.validate import validate  # noqa: E402


class ActionModule(ActionBase):
    """Validate the whole inventory against storagectl's rules; changes nothing."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(
        self, tmp: str | None = None, task_vars: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        result["changed"] = False
        if self._task.args:
            result.update(failed=True, msg="storagectl_inventory_check takes no arguments")
            return result
        task_vars = task_vars or {}
        hostvars = task_vars["hostvars"]
        groups = {str(g): [str(h) for h in hosts] for g, hosts in task_vars["groups"].items()}
        # raw_get: each host's merged variables, untemplated, as the CLI's loader has them
        # (without the hostvars magic variable, added back so templates may use it).
        raw = {str(name): {**hostvars.raw_get(name), "hostvars": hostvars} for name in hostvars}

        try:
            topology = topology_from_vars(
                self._loader, raw, groups, roles_dir=PROJECT_ROOT / "roles"
            )
            problems = validate(topology)
        except InventoryError as exc:
            result.update(failed=True, msg=f"cannot check the inventory: {exc}")
            return result
        if problems:
            lines = [str(p) for p in problems]
            result.update(failed=True, msg="\n".join(lines))
        else:
            result["msg"] = f"inventory OK: {len(topology.hosts)} hosts"
        return result
