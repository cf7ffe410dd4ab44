"""Where the project's files live: the playbooks, roles and the lab's generated state."""

from __future__ import annotations

import os
from pathlib import Path


def _project_root() -> Path:
    """The checkout holding site.yml: $STORAGECTL_HOME, else the tree this package sits in."""
    env = os.environ.get("STORAGECTL_HOME")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "site.yml").is_file() and (parent / "roles").is_dir():
            return parent
    return Path.cwd()


PROJECT_ROOT = _project_root()
SITE_PLAYBOOK = PROJECT_ROOT / "site.yml"
PLAYBOOKS_DIR = PROJECT_ROOT / "playbooks"
ROLES_DIR = PROJECT_ROOT / "roles"
ANSIBLE_CFG = PROJECT_ROOT / "ansible.cfg"
LAB_INVENTORY = PROJECT_ROOT / "inventories" / "lab"
LAB_STATE_DIR = PROJECT_ROOT / ".lab"
ARTIFACTS_DIR = PROJECT_ROOT / ".storagectl" / "artifacts"
