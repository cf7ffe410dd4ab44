"""Inventory rules about the values an operator types: addresses, group names, mount paths,
secrets' shape and the Sentinel quorum.

Each of these mistakes used to be accepted and to surface later, on a host, or never: two hosts
on one storage address, a wildcard as ``storage_address``, a misspelt group that deploys nothing,
a JuiceFS mount over ``/`` or ``/etc``, a Sentinel quorum no set of Sentinels can reach, a secret
a config file cannot hold. :func:`storagectl.inventory.validate.validate` runs them with the other
rules, before any host is touched.
"""

from __future__ import annotations

import difflib
import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storagectl.endpoints import is_wildcard
from storagectl.inventory import groups as G  # noqa: N812 - the group names, short
from storagectl.inventory.loader import VariableError
from storagectl.inventory.problem import Problem
from storagectl.placement import GROWTH_VARIABLE

if TYPE_CHECKING:
    from storagectl.inventory.loader import Host, Topology

#: Directories a JuiceFS mount must never cover (the system would lose them while mounted).
SYSTEM_DIRS = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib64",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",  # noqa: S108 - a path compared, not used
        "/usr",
        "/var",
        "/var/lib",
        "/var/log",
    }
)

#: Every secret of the platform (no defaults; Vault in production).
ALL_SECRETS = (
    "seaweedfs_s3_access_key",
    "seaweedfs_s3_secret_key",
    "patroni_superuser_password",
    "patroni_replication_password",
    "patroni_rewind_password",
    "seaweedfs_filer_db_password",
    "redis_password",
    "rustfs_access_key",
    "rustfs_secret_key",
    "juicefs_s3_access_key",
    "juicefs_s3_secret_key",
)
#: What the sample inventory's placeholders start with.
PLACEHOLDER = "CHANGE-ME"
#: RustFS's built-in root credentials: anyone can guess them.
RUSTFS_DEFAULT_KEY = "rustfsadmin"

#: Secrets rendered into config and environment files: a quote or a line break breaks the file.
#: (seaweedfs_filer_db_password and redis_password have stricter rules of their own.)
SECRET_VARIABLES = tuple(
    name for name in ALL_SECRETS if name not in ("seaweedfs_filer_db_password", "redis_password")
)
_UNSAFE_IN_FILES = frozenset("\"'\\\n\r\t")


def _platform_hosts(topology: Topology) -> list[Host]:
    """Hosts of any platform group, each once, in inventory order."""
    seen: dict[str, Host] = {}
    for name in G.ALL:
        for host in topology.group(name):
            seen.setdefault(host.name, host)
    return list(seen.values())


def truthy(value: object) -> bool:
    """Ansible's idea of a true boolean variable (true, "yes", "1", ...)."""
    return str(value).strip().lower() in ("true", "yes", "on", "1")


def check_addresses(topology: Topology) -> Iterator[Problem]:
    """Every platform host has its own, concrete storage address."""
    owners: dict[str, str] = {}
    for host in _platform_hosts(topology):
        address = str(host.var("storage_address", default="") or "")
        if is_wildcard(host, address):
            yield Problem(
                host.name,
                "storage_address",
                f"is {address!r}: daemons bind to it and peers dial it, so it must be the "
                "host's own address, not a wildcard",
                f"set storage_address (or ansible_host) of {host.name} to its address on the "
                "storage network",
            )
            continue
        if address in owners:
            yield Problem(
                host.name,
                "storage_address",
                f"is {address}, the address of {owners[address]} too: two hosts cannot share "
                "one storage address (their daemons and cluster membership would collide)",
                f"give {host.name} its own storage_address (or ansible_host)",
            )
        else:
            owners[address] = host.name


def check_group_names(topology: Topology) -> Iterator[Problem]:
    """A group whose name is close to a platform group is a typo: it would deploy nothing."""
    known = set(G.ALL)
    for name, members in topology.groups.items():
        if name in known or name in ("all", "ungrouped") or not members:
            continue
        close = difflib.get_close_matches(name, G.ALL, n=1, cutoff=0.8)
        if close:
            yield Problem(
                None,
                f"[{name}]",
                f"group {name} is not a group the playbooks deploy, but looks like {close[0]}: "
                f"its hosts ({', '.join(members)}) would get nothing",
                f"rename group {name} to {close[0]}",
            )


def _mount_path_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value.startswith("/"):
        return f"is {value!r}, not an absolute path"
    parts = value.split("/")
    if ".." in parts or "." in parts:
        return f"is {value!r}: '.' and '..' are not allowed in a mount path"
    normal = posixpath.normpath(value)
    if normal in SYSTEM_DIRS:
        return f"is {value!r}: mounting over a system directory hides it while mounted"
    return None


def check_juicefs_paths(topology: Topology) -> Iterator[Problem]:
    """Mount points are absolute, not system directories, and subdirectory mounts are a list of
    ``{name, subdir, mountpoint}`` with a clean subdirectory."""
    for host in topology.group(G.JUICEFS_CLIENT):
        main = host.var("juicefs_mountpoint")
        message = _mount_path_problem(main)
        if message:
            yield Problem(
                host.name,
                "juicefs_mountpoint",
                message,
                "set juicefs_mountpoint to an absolute path of its own, e.g. /data",
            )
        subdirs = host.var("juicefs_subdir_mounts")
        if not isinstance(subdirs, list):
            yield Problem(
                host.name,
                "juicefs_subdir_mounts",
                f"is a {type(subdirs).__name__}, not a list of mounts",
                "write it as a list: - {name: agent-a, subdir: /agents/a, mountpoint: /srv/a}",
            )
            continue
        seen = {str(main)}
        for index, item in enumerate(subdirs):
            where = f"juicefs_subdir_mounts[{index}]"
            if not isinstance(item, dict):
                yield Problem(
                    host.name,
                    where,
                    f"is {item!r}, not a mapping with name, subdir and mountpoint",
                    "write each mount as {name: ..., subdir: /..., mountpoint: /...}",
                )
                continue
            mountpoint = item.get("mountpoint")
            message = _mount_path_problem(mountpoint)
            if message is None and str(mountpoint) in seen:
                message = f"mounts {mountpoint} a second time on this host"
            seen.add(str(mountpoint))
            subdir = str(item.get("subdir") or "")
            if message is None and ".." in subdir.split("/"):
                message = f"has subdir {subdir!r}: '..' would leave the volume's tree"
            if message:
                yield Problem(
                    host.name,
                    where,
                    message,
                    "give each subdirectory mount an absolute mountpoint of its own (not a "
                    "system directory) and a subdir inside the volume",
                )


def check_sentinel_quorum(topology: Topology) -> Iterator[Problem]:
    """With Sentinel, the quorum is between 1 and the number of Sentinels."""
    hosts = topology.group(G.REDIS)
    if not hosts or not truthy(hosts[0].var("redis_sentinel_enabled")):
        return
    quorum = hosts[0].var("redis_sentinel_quorum")
    try:
        number = int(quorum)
    except (TypeError, ValueError):
        number = 0
    if not 1 <= number <= len(hosts):
        yield Problem(
            hosts[0].name,
            "redis_sentinel_quorum",
            f"is {quorum!r}, but there are {len(hosts)} Sentinels: no failover could ever be agreed"
            if number > len(hosts)
            else f"is {quorum!r}, not a positive number",
            f"set redis_sentinel_quorum to a majority of the Sentinels ({len(hosts) // 2 + 1}), "
            "or leave it unset",
        )


def _secret_values(topology: Topology, names: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    """``(variable, value)`` of every secret set on a platform host, each variable once."""
    seen: set[str] = set()
    for host in _platform_hosts(topology):
        for name in names:
            if name in seen:
                continue
            try:
                value = host.var(name, default=None)
            except VariableError:
                continue  # the rule that needs it reports it
            if isinstance(value, str):
                seen.add(name)
                yield name, value


def check_placeholder_secrets(topology: Topology) -> Iterator[Problem]:
    """No secret is still a sample placeholder or RustFS's well-known default."""
    for name, value in _secret_values(topology, ALL_SECRETS):
        if value.startswith(PLACEHOLDER):
            yield Problem(
                None,
                name,
                "is still a placeholder of the sample inventory, not a secret",
                f"put a real secret in {name} (in the vault file its value comes from, e.g. "
                "openssl rand -hex 24), then encrypt that file with ansible-vault encrypt",
            )
        elif name.startswith("rustfs_") and value == RUSTFS_DEFAULT_KEY:
            yield Problem(
                None,
                name,
                f"is RustFS's built-in default ({RUSTFS_DEFAULT_KEY}), which anyone can guess",
                f"set {name} to a secret of your own (e.g. openssl rand -hex 24)",
            )


_GROWTH_KEYS = ("copy_1", "copy_2", "copy_3", "copy_other")


def valid_growth(value: object) -> bool:
    """Whether ``value`` is a [master.volume_growth] mapping: copy_1, copy_2, copy_3 and
    copy_other, each a whole number of at least 1."""
    return (
        isinstance(value, dict)
        and set(value) == set(_GROWTH_KEYS)
        and all(str(value[key]).isdigit() and int(value[key]) >= 1 for key in _GROWTH_KEYS)
    )


def check_volume_growth(topology: Topology) -> Iterator[Problem]:
    """The masters' growth batches ([master.volume_growth]) are whole numbers of at least 1."""
    name = GROWTH_VARIABLE
    if not topology.group(G.MASTER):
        return
    value = topology.var(name, default=None)
    if not valid_growth(value):
        yield Problem(
            None,
            name,
            f"is {value!r}, not a mapping of copy_1, copy_2, copy_3 and copy_other to whole "
            "numbers of at least 1",
            "set it like the role default (roles/seaweedfs_master/defaults/main.yml), with the "
            "batch sizes you want",
        )


#: Set true to deploy from a vault file kept unencrypted (a demo), despite the rule below.
ALLOW_PLAIN_VAULT = "storagectl_allow_unencrypted_vault"
VAULT_HEADER = "$ANSIBLE_VAULT;"


def vault_files(sources: list[Path]) -> list[Path]:
    """Files of the inventory named as vault files: ``vault.yml``/``vault.yaml``/``vault``, or
    anything under a ``vault/`` directory, in its group_vars and host_vars."""
    found: list[Path] = []
    for source in sources:
        base = source if source.is_dir() else source.parent
        for kind in ("group_vars", "host_vars"):
            for path in sorted((base / kind).rglob("*")) if (base / kind).is_dir() else []:
                named = path.stem == "vault" or "vault" in path.relative_to(base / kind).parts[:-1]
                if path.is_file() and named and path not in found:
                    found.append(path)
    return found


def check_vault_encrypted(topology: Topology) -> Iterator[Problem]:
    """A vault file of the inventory is encrypted (secrets in clear on disk and in Git are not
    secrets), unless the inventory says it is a demo."""
    if truthy(topology.var(ALLOW_PLAIN_VAULT, default=False)):
        return
    for path in vault_files(topology.sources):
        with path.open("rb") as handle:
            head = handle.read(len(VAULT_HEADER)).decode("ascii", errors="replace")
        if head != VAULT_HEADER:
            yield Problem(
                None,
                str(path),
                "is a vault file that is not encrypted: its secrets are in clear on disk",
                f"run ansible-vault encrypt {path} (and pass --vault-password-file to deploy); "
                f"for a throwaway demo only, set {ALLOW_PLAIN_VAULT}: true",
            )


def check_secret_characters(topology: Topology) -> Iterator[Problem]:
    """Secrets hold no quote, backslash or line break (config and environment files cannot)."""
    for name, value in _secret_values(topology, SECRET_VARIABLES):
        if _UNSAFE_IN_FILES.intersection(value):
            yield Problem(
                None,
                name,
                "contains a quote, a backslash, a tab or a line break, which the config "
                "and environment files it is written to cannot hold",
                f"generate {name} from letters, digits and '.', '_', '~', '-' "
                "(e.g. openssl rand -hex 24)",
            )


_RUSTFS_KEY_CHARACTERS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=._~-"
)


def check_rustfs_values(topology: Topology) -> Iterator[Problem]:
    """What the rustfs role would refuse on the host, refused before any host changes: keys in
    RustFS's character set, a concrete bind address, absolute data directories."""
    for host in topology.group(G.RUSTFS):
        for name in ("rustfs_access_key", "rustfs_secret_key"):
            try:
                value = host.var(name, default=None)
            except VariableError:
                continue  # check_rustfs reports it
            if isinstance(value, str) and not set(value) <= _RUSTFS_KEY_CHARACTERS:
                yield Problem(
                    host.name,
                    name,
                    "contains a character RustFS does not take in a key",
                    f"use letters, digits and + / = . _ ~ - in {name}",
                )
        bind = str(host.var("rustfs_bind_address") or "")
        if is_wildcard(host, bind):
            yield Problem(
                host.name,
                "rustfs_bind_address",
                f"is {bind!r}: RustFS advertises the address it binds to, so it must be one",
                "leave rustfs_bind_address unset (the storage address) or set this host's address",
            )
        dirs = host.var("rustfs_data_dirs")
        if (
            not isinstance(dirs, list)
            or not dirs
            or not all(isinstance(d, str) and d.startswith("/") for d in dirs)
        ):
            yield Problem(
                host.name,
                "rustfs_data_dirs",
                f"is {dirs!r}, not a non-empty list of absolute paths",
                "list RustFS's data directories, one per disk, e.g. [/srv/rustfs/disk1]",
            )
