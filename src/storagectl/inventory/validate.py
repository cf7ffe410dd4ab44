"""Inventory rules, checked before any host is touched.

:func:`validate` reads a :class:`~storagectl.inventory.loader.Topology` and returns the
:class:`Problem` list; an empty list means the inventory can be deployed. The rules only read
variables: no network, no host contact. They are written once, here, and run from three places:
``storagectl inventory check``, ``storagectl deploy`` (before Ansible starts) and, inside any
``ansible-playbook`` run, the ``storagectl_inventory_check`` action plugin of
``playbooks/validate-inventory.yml``.

Every problem names the host (when there is one), the variable and the fix. Secrets are checked
for presence and length only: a message never quotes the value of a key or password.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from storagectl import placement
from storagectl.inventory import values
from storagectl.inventory.loader import MISSING, Host, Topology, VariableError
from storagectl.inventory.problem import Problem

__all__ = ["PORTS", "RULES", "Port", "Problem", "Service", "validate"]

PLACEMENT = placement.VARIABLE


# Variables whose values never appear in a message, not even in a templating error.
_SECRET = re.compile(r"secret|password|passwd|token|access_key|private_key", re.IGNORECASE)


class _UnresolvedError(Exception):
    """A variable a rule needs cannot be resolved; :func:`validate` turns it into a Problem."""

    def __init__(self, host: str | None, variable: str, reason: str) -> None:
        super().__init__(reason)
        self.host = host
        self.variable = variable
        self.reason = reason

    def problem(self) -> Problem:
        marker = f"cannot resolve {self.variable}: "
        if marker not in self.reason:
            return Problem(
                self.host,
                self.variable,
                "is not defined",
                "define it in the inventory (group_vars or host_vars)",
            )
        detail = self.reason.split(marker, 1)[1]
        shown = "" if _SECRET.search(self.variable) else f": {detail}"
        return Problem(
            self.host,
            self.variable,
            f"cannot be resolved{shown}",
            "fix its value; a template may only use inventory variables (no facts exist before "
            "the run), and a vaulted value needs the vault password",
        )


def _var(host: Host, name: str, default: Any = MISSING) -> Any:
    try:
        return host.var(name, default)
    except VariableError as exc:
        raise _UnresolvedError(host.name, name, str(exc)) from None


def _group(topology: Topology, name: str) -> tuple[str, list[Host]]:
    """A group's name and its hosts (the playbooks target the groups by these names)."""
    return name, topology.group(name)


def _names(hosts: Iterable[Host | str]) -> str:
    return ", ".join(h if isinstance(h, str) else h.name for h in hosts)


def _whole_number(value: Any) -> int | None:
    """``value`` as an int (``-e`` gives strings), None when it is not a whole number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


# --- groups ----------------------------------------------------------------------------------


def check_groups(topology: Topology) -> Iterator[Problem]:
    """Masters and volume servers exist; S3 gateways have filers to talk to."""
    for logical, what in (("seaweedfs_master", "master"), ("seaweedfs_volume", "volume server")):
        name, hosts = _group(topology, logical)
        if not hosts:
            yield Problem(
                None,
                f"[{name}]",
                f"group {name} has no hosts: SeaweedFS needs at least one {what}",
                f"put at least one host in group {name}",
            )
    filers_group, filers = _group(topology, "seaweedfs_filer")
    _, gateways = _group(topology, "seaweedfs_s3")
    if gateways and not filers:
        yield Problem(
            None,
            f"[{filers_group}]",
            f"group {filers_group} has no hosts, but the S3 gateways ({_names(gateways)}) store "
            "everything through a filer",
            f"put at least one host in group {filers_group}, or remove the S3 gateways",
        )


def check_master_count(topology: Topology) -> Iterator[Problem]:
    """Raft needs an odd number of masters; weed master exits on an even count."""
    name, masters = _group(topology, "seaweedfs_master")
    if masters and len(masters) % 2 == 0:
        yield Problem(
            None,
            f"[{name}]",
            f"group {name} has {len(masters)} hosts ({_names(masters)}): Raft needs an odd "
            "number of masters (1, 3 or 5) and weed master refuses to start with an even count",
            f"add or remove one host in group {name}",
        )


# --- replica placement -------------------------------------------------------------------------


def _placement_value(topology: Topology) -> Any:
    """The placement the masters get (-defaultReplication); MISSING when there is no master."""
    _, masters = _group(topology, "seaweedfs_master")
    return _var(masters[0], PLACEMENT) if masters else MISSING


def check_replica_placement(topology: Topology) -> Iterator[Problem]:
    """The placement is three digits XYZ and the volume servers' labels can satisfy it."""
    value = _placement_value(topology)
    if value is MISSING:
        return
    if placement.digits(value) is None:
        if isinstance(value, int) and not isinstance(value, bool):
            message = (
                f"is the number {value}, not three digits: YAML reads an unquoted 001 as 1 "
                "and 010 as 8"
            )
        else:
            message = f"is {value!r}, not three digits XYZ"
        yield Problem(
            None,
            PLACEMENT,
            message,
            'write it as a quoted string of three digits, e.g. "001" (two copies on two servers '
            'of one rack) or "000" (one copy)',
        )
        return
    _, volumes = _group(topology, "seaweedfs_volume")
    if not volumes:
        return
    for host in volumes:  # an unresolvable label is reported with its host and variable
        _var(host, "seaweedfs_data_center")
        _var(host, "seaweedfs_rack")
    for message, fix in placement.unsatisfiable(value, placement.layout(volumes)):
        yield Problem(None, PLACEMENT, message, fix)


# --- volume slots --------------------------------------------------------------------------


def check_volume_slots(topology: Topology) -> Iterator[Problem]:
    """Enough volume slots for the default collection and one S3 bucket to grow once."""
    digits = placement.digits(_placement_value(topology))
    _, volumes = _group(topology, "seaweedfs_volume")
    growth_settings = topology.var(placement.GROWTH_VARIABLE, default=None)
    if digits is None or not volumes or not values.valid_growth(growth_settings):
        return  # check_replica_placement, check_groups and check_volume_growth report these
    wanted = "".join(str(d) for d in digits)
    copies = placement.copy_count(wanted)
    growth = placement.growth_batch(wanted, growth_settings)
    needed = growth * copies * 2
    total, counted, valid = 0, [], True
    for host in volumes:
        value = _var(host, "seaweedfs_volume_max")
        slots = _whole_number(value)
        dirs = _var(host, "seaweedfs_volume_dirs")
        if slots is None or slots < 0:
            valid = False
            yield Problem(
                host.name,
                "seaweedfs_volume_max",
                f"is {value!r}, not a whole number of volume slots per directory",
                "set it to disk size / seaweedfs_volume_size_limit_mb (0 lets weed work it out "
                "from the free space)",
            )
        if not isinstance(dirs, list) or not dirs:
            valid = False
            yield Problem(
                host.name,
                "seaweedfs_volume_dirs",
                "is not a non-empty list of directories",
                "list the data directories, one per disk, e.g. [/srv/seaweedfs/disk1]",
            )
        if not valid:
            continue
        if slots == 0:
            return  # weed sizes this server from its free space: nothing to count beforehand
        total += slots * len(dirs)
        counted.append(f"{host.name} {slots} x {len(dirs)} dir{'s' if len(dirs) > 1 else ''}")
    if valid and total < needed:
        yield Problem(
            None,
            "seaweedfs_volume_max",
            f"the volume servers have {total} volume slots ({', '.join(counted)}), but placement "
            f'"{wanted}" stores {placement.copies(copies)} of each volume and SeaweedFS grows a '
            f"collection {growth} volumes at a time: the default collection and one S3 bucket "
            f"need {growth} x {copies} x 2 = {needed}",
            f"raise seaweedfs_volume_max (every further bucket takes {growth * copies} more "
            "slots; size it as disk size / seaweedfs_volume_size_limit_mb), or add volume "
            "servers or data directories",
        )


def collections_held(topology: Topology) -> tuple[str, int] | None:
    """``(placement, N)``: how many collections (the default one and each S3 bucket) the
    inventory's volume slots let grow once at the masters' placement; None when weed sizes the
    servers from their free space (``seaweedfs_volume_max: 0``) or there is nothing to count.
    Meant for an inventory that passed :func:`validate`."""
    value = _placement_value(topology)
    _, volumes = _group(topology, "seaweedfs_volume")
    growth = topology.var(placement.GROWTH_VARIABLE, default=None)
    if placement.digits(value) is None or not volumes or not values.valid_growth(growth):
        return None
    slots = []
    for host in volumes:
        per_dir = _whole_number(_var(host, "seaweedfs_volume_max"))
        if not per_dir:
            return None
        dc, rack = placement.location(host)
        free = per_dir * len(_var(host, "seaweedfs_volume_dirs"))
        slots.append(placement.Slots(dc, rack, host.name, free))
    batch = placement.growth_batch(str(value), growth)
    return str(value), placement.placeable(str(value), slots, at_most=100_000) // batch


# --- S3 credentials --------------------------------------------------------------------------

_S3_KEYS = (("seaweedfs_s3_access_key", 3), ("seaweedfs_s3_secret_key", 8))


def check_s3_credentials(topology: Topology) -> Iterator[Problem]:
    """Every S3 gateway has its keys. Only their presence and length are ever reported."""
    _, gateways = _group(topology, "seaweedfs_s3")
    for host in gateways:
        for name, minimum in _S3_KEYS:
            value = _var(host, name, None)
            if value is None or str(value) == "":
                message = "is not set"
            elif len(str(value)) < minimum:
                message = f"is shorter than {minimum} characters"
            else:
                continue
            yield Problem(
                host.name,
                name,
                message,
                f"set {name} (at least {minimum} characters) for the S3 gateways in the "
                "inventory's group_vars, in Ansible Vault in production; it has no default "
                "because a gateway without credentials accepts any key",
            )


# --- PostgreSQL HA (etcd, Patroni) and the filers' postgres2 store ----------------------------

PATRONI_SECRETS = (
    "patroni_superuser_password",
    "patroni_replication_password",
    "patroni_rewind_password",
)
FILER_STORE = "seaweedfs_filer_store"
FILER_DB_PASSWORD = "seaweedfs_filer_db_password"  # noqa: S105 - a variable name, not a password
STORES = ("leveldb2", "postgres2")
DB_SECRET_MINIMUM = 8
# Connections of max_connections the filers' pools may not take: PostgreSQL's
# superuser_reserved_connections (3), plus 10 for Patroni's own sessions, pg_rewind and
# administrators.
CONNECTION_RESERVE = 13
# The filer's connection string is not quoted, and systemd's EnvironmentFile hands the password
# over: no whitespace, quotes, backslash, $ or backtick.
_DSN_UNSAFE = re.compile(r"[\s'\"\\$`]")


# What the filers and the PostgreSQL hosts must agree on, with the role defaults.
_FILER_DB_SHARED: dict[str, Any] = {
    "seaweedfs_filer_db_name": MISSING,  # role default
    "seaweedfs_filer_db_user": MISSING,  # role default
    FILER_DB_PASSWORD: None,  # a secret: no default
}


def _secret_message(value: Any, minimum: int) -> str | None:
    """What is wrong with a secret's value (never the value itself), or None."""
    if value is None or str(value) == "":
        return "is not set"
    if len(str(value)) < minimum:
        return f"is shorter than {minimum} characters"
    return None


def _explicit(topology: Topology, host: Host, name: str) -> bool:
    """Whether the inventory (or -e) sets ``name`` for ``host``, rather than a role default."""
    return topology.sets(host, name)


def check_etcd(topology: Topology) -> Iterator[Problem]:
    """etcd has an odd number of members, at least 3; PostgreSQL hosts need it."""
    etcd_group, members = _group(topology, "etcd")
    postgres_group, postgres = _group(topology, "postgres")
    if members and (len(members) < 3 or len(members) % 2 == 0):
        yield Problem(
            None,
            f"[{etcd_group}]",
            f"group {etcd_group} has {len(members)} host{'s' if len(members) > 1 else ''} "
            f"({_names(members)}): etcd needs an odd number of members, at least 3 (3 keep "
            "quorum through the loss of one member, 5 through two)",
            f"put 3 or 5 hosts in group {etcd_group} (the PostgreSQL hosts may carry them)",
        )
    elif postgres and not members:
        yield Problem(
            None,
            f"[{etcd_group}]",
            f"group {postgres_group} has hosts ({_names(postgres)}), but group {etcd_group} has "
            "none: Patroni keeps its leader lock in etcd",
            f"put 3 hosts in group {etcd_group} (the PostgreSQL hosts may carry them)",
        )


def check_patroni_secrets(topology: Topology) -> Iterator[Problem]:
    """Every PostgreSQL host has the superuser, replication and rewind passwords."""
    _, postgres = _group(topology, "postgres")
    for host in postgres:
        for name in PATRONI_SECRETS:
            message = _secret_message(_var(host, name, None), DB_SECRET_MINIMUM)
            if message:
                yield Problem(
                    host.name,
                    name,
                    message,
                    f"set {name} (at least {DB_SECRET_MINIMUM} characters) for the PostgreSQL "
                    "hosts in the inventory's group_vars, in Ansible Vault in production; it has "
                    "no default because a database cluster must not start with a known password",
                )


def _filer_stores(topology: Topology) -> tuple[dict[str, str], list[Problem]]:
    """Each filer's store by host name, and the Problems of filers naming an unknown store."""
    _, filers = _group(topology, "seaweedfs_filer")
    stores: dict[str, str] = {}
    problems: list[Problem] = []
    for host in filers:
        value = _var(host, FILER_STORE)
        if value in STORES:
            stores[host.name] = value
            continue
        problems.append(
            Problem(
                host.name,
                FILER_STORE,
                f"is {value!r}, not a store the filer role knows",
                "use leveldb2 (embedded in each filer) or postgres2 (the Patroni cluster through "
                "HAProxy, shared by every filer)",
            )
        )
    return stores, problems


def check_filer_store(topology: Topology) -> Iterator[Problem]:
    """postgres2 filers: one store for all, a database to reach, the same credentials everywhere."""
    stores, problems = _filer_stores(topology)
    yield from problems
    shared = [topology.hosts[name] for name, store in stores.items() if store == "postgres2"]
    if not shared:
        return
    embedded = [name for name, store in stores.items() if store != "postgres2"]
    if embedded:
        yield Problem(
            None,
            FILER_STORE,
            f"filers {_names(shared)} use postgres2 but {_names(embedded)} use leveldb2: the "
            "filers of one cluster must share one metadata store",
            f"set {FILER_STORE}: postgres2 for every filer (group_vars/all)",
        )
    postgres_group, postgres = _group(topology, "postgres")
    password_fix = (
        f"set {FILER_DB_PASSWORD} (at least {DB_SECRET_MINIMUM} characters, no spaces, quotes, "
        "backslash, $ or backtick: the filer's connection string is not quoted) in "
        "group_vars/all, in Ansible Vault in production; the filers and the PostgreSQL hosts "
        "both read it"
    )
    for host in shared:
        value = _var(host, FILER_DB_PASSWORD, None)
        message = _secret_message(value, DB_SECRET_MINIMUM)
        if message is None and _DSN_UNSAFE.search(str(value)):
            message = "contains a space, a quote, a backslash, $ or a backtick"
        if message:
            yield Problem(host.name, FILER_DB_PASSWORD, message, password_fix)
        if not postgres and not _explicit(topology, host, "seaweedfs_filer_db_host"):
            yield Problem(
                host.name,
                "seaweedfs_filer_db_host",
                f"{FILER_STORE} is postgres2, but group {postgres_group} has no hosts and "
                "seaweedfs_filer_db_host is not set, so there is no database to connect to",
                f"put the PostgreSQL hosts in group {postgres_group} (and 3 hosts in group "
                "etcd), or point seaweedfs_filer_db_host and seaweedfs_filer_db_port at an "
                "existing PostgreSQL server",
            )
    # The patroni role creates the filers' database and role with the values it sees.
    reference = shared[0]
    for name, default in _FILER_DB_SHARED.items():
        wanted = _var(reference, name, default)
        for host in postgres:
            value = _var(host, name, default)
            if name == FILER_DB_PASSWORD and (value is None or str(value) == ""):
                message = "is not set, but the patroni role creates the filers' role with it"
            elif wanted is None or value is None or str(value) == str(wanted):
                continue
            elif name == FILER_DB_PASSWORD:
                message = f"differs from the one the filers use ({reference.name})"
            else:
                message = f"is {value!r}, but the filers use {wanted!r} ({reference.name})"
            yield Problem(
                host.name,
                name,
                message,
                f"set {name} once in group_vars/all, so the filers and the PostgreSQL hosts "
                "see the same value",
            )


def check_filer_db_connections(topology: Topology) -> Iterator[Problem]:
    """The postgres2 filers' pools fit in max_connections, minus a reserve."""
    stores, _ = _filer_stores(topology)
    shared = [topology.hosts[name] for name, store in stores.items() if store == "postgres2"]
    _, postgres = _group(topology, "postgres")
    if not shared or not postgres:
        return
    value = _var(postgres[0], "patroni_max_connections")
    limit = _whole_number(value)
    if limit is None:
        yield Problem(
            postgres[0].name,
            "patroni_max_connections",
            f"is {value!r}, not a whole number of connections",
            "set it to PostgreSQL's max_connections for every member, e.g. 200",
        )
        return
    total, pools = 0, []
    for host in shared:
        pool_value = _var(host, "seaweedfs_filer_db_max_open")
        pool = _whole_number(pool_value)
        if pool is None or pool < 1:
            yield Problem(
                host.name,
                "seaweedfs_filer_db_max_open",
                f"is {pool_value!r}, not a whole number of connections",
                "set it to the most connections one filer may open, e.g. 20",
            )
            return
        total += pool
        pools.append(f"{host.name} {pool}")
    available = limit - CONNECTION_RESERVE
    if total > available:
        yield Problem(
            None,
            "seaweedfs_filer_db_max_open",
            f"the {len(shared)} postgres2 filers may open {total} connections "
            f"({', '.join(pools)}), but patroni_max_connections is {limit} and "
            f"{CONNECTION_RESERVE} stay reserved (3 for superusers, 10 for Patroni, pg_rewind "
            f"and administrators), leaving {available}",
            f"lower seaweedfs_filer_db_max_open to at most {max(available, 0) // len(shared)}, "
            f"or raise patroni_max_connections to at least {total + CONNECTION_RESERVE} (the "
            "patroni role then restarts PostgreSQL one member at a time, the primary last)",
        )


# --- shared filesystem: Redis, RustFS, JuiceFS -------------------------------------------------

REDIS_PASSWORD = "redis_password"  # noqa: S105 - a variable name, not a password
RUSTFS_KEYS = (("rustfs_access_key", 3), ("rustfs_secret_key", 8))
JUICEFS_BACKENDS = ("rustfs", "seaweedfs", "external")
JUICEFS_VOLUME_NAME = re.compile(r"^[a-z0-9][a-z0-9\-]{1,61}[a-z0-9]$")
# redis_password goes into redis.conf and environment files unquoted.
_REDIS_PASSWORD_SAFE = re.compile(r"^[A-Za-z0-9._~-]+$")


def _redis_password_problems(host: Host, why: str) -> Iterator[Problem]:
    value = _var(host, REDIS_PASSWORD, None)
    message = _secret_message(value, DB_SECRET_MINIMUM)
    if message is None and not _REDIS_PASSWORD_SAFE.match(str(value)):
        message = "contains a character other than letters, digits, '.', '_', '~' or '-'"
    if message:
        yield Problem(
            host.name,
            REDIS_PASSWORD,
            message,
            f"set {REDIS_PASSWORD} (at least {DB_SECRET_MINIMUM} characters: letters, digits, "
            f"'.', '_', '~', '-') in group_vars/all, in Ansible Vault in production; {why}",
        )


def _key_problems(host: Host, keys: Iterable[tuple[str, int]], why: str) -> Iterator[Problem]:
    for name, minimum in keys:
        message = _secret_message(_var(host, name, None), minimum)
        if message:
            yield Problem(
                host.name,
                name,
                message,
                f"set {name} (at least {minimum} characters) in group_vars/all, in Ansible Vault "
                f"in production; {why}",
            )


SENTINEL_ENABLED = "redis_sentinel_enabled"
#: Sentinel settings the Redis hosts and the JuiceFS clients (their metadata URL) must share.
SENTINEL_SHARED = (SENTINEL_ENABLED, "redis_sentinel_port", "redis_sentinel_master_name")
SENTINEL_MINIMUM = 3


def check_redis(topology: Topology) -> Iterator[Problem]:
    """Every Redis host has redis_password (no default: JuiceFS metadata needs a password); one
    Redis host without Sentinel, three or more with it; the Redis hosts and the JuiceFS clients
    agree on the Sentinel settings."""
    redis_group, hosts = _group(topology, "redis")
    for host in hosts:
        yield from _redis_password_problems(host, "Redis must not run without a password")
    if not hosts:
        return
    _, clients = _group(topology, "juicefs_client")
    names = {h.name for h in hosts}
    yield from _sentinel_agreement([*hosts, *(c for c in clients if c.name not in names)])
    first = hosts[0]
    if values.truthy(_var(first, SENTINEL_ENABLED)):
        if len(hosts) < SENTINEL_MINIMUM:
            yield Problem(
                first.name,
                SENTINEL_ENABLED,
                f"is true, but group {redis_group} has {len(hosts)} host(s) "
                f"({_names(hosts)}): Sentinel needs at least {SENTINEL_MINIMUM}, a majority of "
                "which must agree that the master is down",
                f"add hosts to group {redis_group} (3 or 5), or set {SENTINEL_ENABLED}: false "
                "and keep one host",
            )
        return
    # Without Sentinel the group's other hosts would be Redis servers nobody uses: say so rather
    # than deploy them silently.
    for host in hosts[1:]:
        yield Problem(
            host.name,
            redis_group,
            f"group {redis_group} has {len(hosts)} hosts, but without Sentinel JuiceFS uses "
            f"one Redis server ({first.name})",
            f"keep only {first.name} in group {redis_group}, or set {SENTINEL_ENABLED}: true "
            f"(group_vars/all) with {SENTINEL_MINIMUM} or more hosts for automatic failover",
        )


def _sentinel_agreement(hosts: Sequence[Host]) -> Iterator[Problem]:
    """The first host's Sentinel settings are everybody's (the clients build their URL from
    them): a host that differs is named."""
    reference = hosts[0]
    for name in SENTINEL_SHARED:
        expected = _var(reference, name, None)
        for host in hosts[1:]:
            value = _var(host, name, None)
            if str(value) != str(expected):
                yield Problem(
                    host.name,
                    name,
                    f"is {value!r} here but {expected!r} on {reference.name}",
                    f"set {name} once, in group_vars/all: the Redis hosts and the JuiceFS "
                    "clients must agree on it",
                )


def check_rustfs(topology: Topology) -> Iterator[Problem]:
    """Every RustFS host has its root keys (without them RustFS uses rustfsadmin/rustfsadmin)."""
    _, hosts = _group(topology, "rustfs")
    for host in hosts:
        yield from _key_problems(
            host, RUSTFS_KEYS, "without it RustFS starts with rustfsadmin/rustfsadmin"
        )


def _juicefs_backend_problems(topology: Topology, host: Host) -> Iterator[Problem]:
    backend = _var(host, "juicefs_backend")
    if backend not in JUICEFS_BACKENDS:
        yield Problem(
            host.name,
            "juicefs_backend",
            f"is {backend!r}, not a backend the juicefs role knows",
            "use rustfs (the rustfs group), seaweedfs (the SeaweedFS S3 gateways through "
            "HAProxy) or external (juicefs_s3_endpoint)",
        )
        return
    if backend == "rustfs":
        group, rustfs = _group(topology, "rustfs")
        if not rustfs:
            yield Problem(
                host.name,
                "juicefs_backend",
                f"is 'rustfs' (the default), but group {group} has no hosts to store the data",
                f"put the RustFS hosts in group {group}, or set juicefs_backend: seaweedfs (the "
                "SeaweedFS S3 gateways through HAProxy) or external (with juicefs_s3_endpoint)",
            )
        yield from _key_problems(host, RUSTFS_KEYS, "JuiceFS signs its S3 requests with it")
    elif backend == "seaweedfs":
        for logical, what in (("haproxy", "HAProxy's S3 frontend"), ("seaweedfs_s3", "gateway")):
            group, hosts = _group(topology, logical)
            if not hosts:
                yield Problem(
                    host.name,
                    "juicefs_backend",
                    f"is 'seaweedfs', but group {group} has no hosts: JuiceFS reaches the "
                    f"SeaweedFS S3 gateways through HAProxy, and needs a {what}",
                    f"put hosts in group {group}, or choose juicefs_backend rustfs or external",
                )
        yield from _key_problems(host, _S3_KEYS, "JuiceFS signs its S3 requests with it")
    else:
        endpoint = _var(host, "juicefs_s3_endpoint")
        if not re.match(r"^https?://[^/:]+", str(endpoint)):
            yield Problem(
                host.name,
                "juicefs_s3_endpoint",
                f"is {endpoint!r}, not an http(s) URL, but juicefs_backend is 'external'",
                "set juicefs_s3_endpoint to the S3 endpoint, e.g. http://s3.example:9000",
            )
        keys = (("juicefs_s3_access_key", 3), ("juicefs_s3_secret_key", 8))
        yield from _key_problems(host, keys, "JuiceFS signs its S3 requests with it")


def check_juicefs(topology: Topology) -> Iterator[Problem]:
    """JuiceFS clients: a metadata server, its password, a valid volume name and a backend."""
    _, clients = _group(topology, "juicefs_client")
    redis_group, redis = _group(topology, "redis")
    for host in clients:
        if not redis:
            yield Problem(
                host.name,
                f"[{redis_group}]",
                f"group {redis_group} has no hosts, but JuiceFS keeps its metadata in Redis",
                f"put a host in group {redis_group} (its first host is the metadata server)",
            )
        yield from _redis_password_problems(host, "the JuiceFS mounts connect with it")
        name = _var(host, "juicefs_volume_name")
        if not JUICEFS_VOLUME_NAME.match(str(name)):
            yield Problem(
                host.name,
                "juicefs_volume_name",
                f"is {name!r}: JuiceFS volume names match ^[a-z0-9][a-z0-9-]{{1,61}}[a-z0-9]$",
                "use 3 to 63 lower-case letters, digits and '-', not starting or ending with '-'",
            )
        yield from _juicefs_backend_problems(topology, host)


# --- ports -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Port:
    """One listening port of a service, read from ``variable``."""

    variable: str
    grpc: bool = False  # the service also listens on this port + 10000 (SeaweedFS's gRPC)
    optional: bool = False  # 0 turns the listener off (metrics ports)


@dataclass(frozen=True)
class Service:
    """What runs on the hosts of a component group, and the ports it listens on."""

    group: str  # the inventory group whose hosts run it
    label: str
    ports: tuple[Port, ...]
    only_with: str | None = None  # these ports exist only when this logical group has hosts
    enabled_by: str | None = None  # ... and only on hosts where this boolean variable is true


def _metrics(variable: str) -> Port:
    return Port(variable, optional=True)


# One row per service; every port variable has its default in the component's role. When two rows
# clash on one host, the later row's variable is the one to change.
PORTS: tuple[Service, ...] = (
    Service(
        "seaweedfs_master",
        "SeaweedFS master",
        (Port("seaweedfs_master_port", grpc=True), _metrics("seaweedfs_master_metrics_port")),
    ),
    Service(
        "seaweedfs_volume",
        "SeaweedFS volume server",
        (Port("seaweedfs_volume_port", grpc=True), _metrics("seaweedfs_volume_metrics_port")),
    ),
    Service(
        "seaweedfs_filer",
        "SeaweedFS filer",
        (Port("seaweedfs_filer_port", grpc=True), _metrics("seaweedfs_filer_metrics_port")),
    ),
    Service(
        "seaweedfs_s3",
        "SeaweedFS S3 gateway",
        (Port("seaweedfs_s3_port", grpc=True), _metrics("seaweedfs_s3_metrics_port")),
    ),
    Service(
        "haproxy",
        "HAProxy",
        (
            Port("haproxy_filer_port"),
            Port("haproxy_filer_grpc_port"),
            Port("haproxy_s3_port"),
            Port("haproxy_stats_port"),
        ),
    ),
    Service(
        "haproxy",
        "HAProxy",
        (Port("haproxy_postgres_rw_port"), Port("haproxy_postgres_ro_port")),
        only_with="postgres",
    ),
    Service("etcd", "etcd", (Port("etcd_client_port"), Port("etcd_peer_port"))),
    Service(
        "postgres",
        "PostgreSQL (Patroni)",
        (Port("patroni_restapi_port"), Port("postgresql_port")),
    ),
    Service("redis", "Redis", (Port("redis_port"),)),
    Service(
        "redis",
        "Redis Sentinel",
        (Port("redis_sentinel_port"),),
        enabled_by=SENTINEL_ENABLED,
    ),
    Service("rustfs", "RustFS", (Port("rustfs_port"), Port("rustfs_console_port"))),
)


def _host_ports(
    host: Host, services: Iterable[Service]
) -> Iterator[Problem | tuple[int, str, str]]:
    """Each port of ``host`` as (number, variable, description), or the Problem of a bad value."""
    for service in services:
        for port in service.ports:
            value = _var(host, port.variable)
            number = _whole_number(value)
            if number == 0 and port.optional:
                continue
            if number is None or not 1 <= number <= 65535:
                off = ", or 0 to turn it off" if port.optional else ""
                yield Problem(
                    host.name,
                    port.variable,
                    f"is {value!r}, not a TCP port number",
                    f"use a whole number from 1 to 65535{off}",
                )
                continue
            yield number, port.variable, f"{service.label} ({port.variable})"
            if port.grpc:
                if number + 10000 > 65535:
                    yield Problem(
                        host.name,
                        port.variable,
                        f"is {number}, so its gRPC port {number} + 10000 is above 65535",
                        f"use a port from 1 to 55535 for {port.variable}",
                    )
                    continue
                yield (
                    number + 10000,
                    port.variable,
                    f"{service.label} gRPC ({port.variable} + 10000)",
                )


def check_ports(topology: Topology) -> Iterator[Problem]:
    """No two services of one host listen on the same TCP port; every port is 1..65535."""
    members: dict[str, set[str]] = {}
    for logical in {s.group for s in PORTS} | {s.only_with for s in PORTS if s.only_with}:
        members[logical] = {h.name for h in _group(topology, logical)[1]}
    for host in topology.hosts.values():
        services = [
            s
            for s in PORTS
            if host.name in members[s.group]
            and (s.only_with is None or members[s.only_with])
            and (s.enabled_by is None or values.truthy(_var(host, s.enabled_by)))
        ]
        taken: dict[int, str] = {}
        for item in _host_ports(host, services):
            if isinstance(item, Problem):
                yield item
                continue
            number, variable, what = item
            if number not in taken:
                taken[number] = what
                continue
            yield Problem(
                host.name,
                variable,
                f"port {number} is used by both {taken[number]} and {what}",
                f"change {variable} on {host.name} to a free port: two services cannot listen "
                "on the same port of one host",
            )


# --- all rules -------------------------------------------------------------------------------

Rule = Callable[[Topology], Iterable[Problem]]

RULES: tuple[Rule, ...] = (
    values.check_group_names,
    values.check_addresses,
    check_groups,
    check_master_count,
    values.check_volume_growth,
    check_replica_placement,
    check_volume_slots,
    check_s3_credentials,
    check_etcd,
    check_patroni_secrets,
    check_filer_store,
    check_filer_db_connections,
    check_redis,
    check_rustfs,
    check_juicefs,
    check_ports,
    values.check_juicefs_paths,
    values.check_sentinel_quorum,
    values.check_secret_characters,
    values.check_placeholder_secrets,
    values.check_vault_encrypted,
    values.check_rustfs_values,
)


def validate(topology: Topology) -> list[Problem]:
    """Every problem of the inventory, in rule order; an empty list means it can be deployed.

    A variable a rule cannot resolve (undefined, bad template, vault without password) becomes
    a Problem naming the host and the variable, and that rule stops there.
    """
    problems: list[Problem] = []
    for rule in RULES:
        try:
            for problem in rule(topology):
                if problem not in problems:
                    problems.append(problem)
        except _UnresolvedError as exc:
            problem = exc.problem()
            if problem not in problems:
                problems.append(problem)
    return problems
