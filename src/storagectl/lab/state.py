"""The lab's own files in ``LAB_STATE_DIR``: state.json, the SSH key and the lab's secrets."""

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
#: Database passwords: letters and digits only, because the filer's postgres2 connection string
#: is not quoted (and neither is systemd's EnvironmentFile line that hands it over).
PASSWORD_NAMES = (
    "patroni_superuser_password",
    "patroni_replication_password",
    "patroni_rewind_password",
    "seaweedfs_filer_db_password",
    "redis_password",
)
PASSWORD_LENGTH = 32
SECRET_NAMES = (
    "seaweedfs_s3_access_key",
    "seaweedfs_s3_secret_key",
    "rustfs_access_key",
    "rustfs_secret_key",
    *PASSWORD_NAMES,
)


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


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_secrets() -> dict[str, str]:
    """Fresh lab secrets: 20-character access keys and 40-character secret keys (SeaweedFS S3,
    RustFS) and a 32-character alphanumeric password per database (PostgreSQL users, Redis)."""
    return {
        "seaweedfs_s3_access_key": _random(ACCESS_KEY_ALPHABET, 20),
        "seaweedfs_s3_secret_key": _random(SECRET_KEY_ALPHABET, 40),
        "rustfs_access_key": _random(ACCESS_KEY_ALPHABET, 20),
        "rustfs_secret_key": _random(SECRET_KEY_ALPHABET, 40),
        **{name: _random(SECRET_KEY_ALPHABET, PASSWORD_LENGTH) for name in PASSWORD_NAMES},
    }


def ensure_secrets(state_dir: Path) -> dict[str, str]:
    """The lab's secrets, generated once and kept in ``state_dir/secrets.yml``.

    Secrets added since the file was written (a lab from an older checkout) are generated and
    added; the ones already there are kept, so a running lab keeps its keys and passwords.
    """
    path = ensure_dir(state_dir) / SECRETS_FILE
    kept: dict[str, str] = {}
    if path.is_file():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            kept = {name: str(data[name]) for name in SECRET_NAMES if data.get(name)}
    if set(kept) == set(SECRET_NAMES):
        return kept
    fresh = new_secrets()
    data = {name: kept.get(name, fresh[name]) for name in SECRET_NAMES}
    write_private(path, yaml.safe_dump(data, sort_keys=True))
    return data


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)
