"""The lab's own files in ``LAB_STATE_DIR``: state.json, the SSH key and the S3 secrets."""

from __future__ import annotations

import json
import os
import secrets
import string
from pathlib import Path
from typing import Any

import yaml

from storagectl.lab.errors import LabError
from storagectl.lab.proc import run

STATE_FILE = "state.json"
KEY_FILE = "id_ed25519"
SECRETS_FILE = "secrets.yml"
ACCESS_KEY_ALPHABET = string.ascii_uppercase + string.digits
SECRET_KEY_ALPHABET = string.ascii_letters + string.digits
SECRET_NAMES = ("seaweedfs_s3_access_key", "seaweedfs_s3_secret_key")


def ensure_dir(state_dir: Path) -> Path:
    """Create ``state_dir`` (mode 0700) if needed and return it."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    state_dir.chmod(0o700)
    return state_dir


def read_state(state_dir: Path) -> dict[str, Any] | None:
    """The recorded lab (topology, machines, ...) or None when no lab is recorded."""
    path = state_dir / STATE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LabError(f"{path} is unreadable ({err}): run `storagectl lab down` first.") from err
    return data if isinstance(data, dict) else None


def write_state(state_dir: Path, data: dict[str, Any]) -> None:
    """Record the lab in ``state_dir/state.json``."""
    ensure_dir(state_dir)
    path = state_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def ensure_key(state_dir: Path) -> Path:
    """Generate ``state_dir/id_ed25519`` (no passphrase) once; return the private key's path."""
    ensure_dir(state_dir)
    key = state_dir / KEY_FILE
    pub = key.with_name(KEY_FILE + ".pub")
    if key.is_file() and pub.is_file():
        return key
    for stale in (key, pub):
        stale.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "storagectl-lab", "-f", str(key)])
    pub.chmod(0o644)
    return key


def new_secrets() -> dict[str, str]:
    """Fresh S3 credentials: a 20-character access key and a 40-character secret key."""
    return {
        "seaweedfs_s3_access_key": "".join(secrets.choice(ACCESS_KEY_ALPHABET) for _ in range(20)),
        "seaweedfs_s3_secret_key": "".join(secrets.choice(SECRET_KEY_ALPHABET) for _ in range(40)),
    }


def ensure_secrets(state_dir: Path) -> dict[str, str]:
    """The lab's S3 credentials, generated once and kept in ``state_dir/secrets.yml``."""
    path = ensure_dir(state_dir) / SECRETS_FILE
    if path.is_file():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and set(SECRET_NAMES) <= set(data):
            return {name: str(data[name]) for name in SECRET_NAMES}
    data = new_secrets()
    write_private(path, yaml.safe_dump(data, sort_keys=True))
    return data


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)
