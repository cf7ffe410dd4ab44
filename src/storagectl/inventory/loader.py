"""Load an Ansible inventory exactly as ``ansible-playbook site.yml`` would see it.

Ansible's own classes do all the parsing (``DataLoader``, ``InventoryManager``,
``VariableManager``, ``Templar``): this module never reads an inventory with a YAML parser of its
own, so inventory plugins, ``group_vars``/``host_vars`` directories, Vault and the variable
precedence rules behave as they do in a run. On top of what an inventory load gives:

* the playbook-adjacent ``group_vars/`` and ``host_vars/`` of the project root are loaded (the
  loader's basedir is the project root, where ``site.yml`` lives);
* every ``roles/*/defaults/main.yml`` is layered *under* the host variables, as the lowest
  precedence, because the checks need the same defaults the roles deploy with (ports,
  names); roles are merged in name order;
* ``-e`` extra vars are layered on top, parsed as ``ansible-playbook -e`` parses them.

Values are templated lazily, one variable at a time, when :meth:`Host.var` asks for them: a host
variable that refers to facts (which do not exist without a run) only fails when it is used.
Nothing here connects to a host.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storagectl.paths import ANSIBLE_CFG, PROJECT_ROOT

if TYPE_CHECKING:
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

__all__ = [
    "MISSING",
    "Host",
    "InventoryError",
    "Topology",
    "VariableError",
    "load_topology",
    "topology_from_vars",
]


class InventoryError(Exception):
    """The inventory is missing, cannot be parsed, or a value it defines cannot be resolved."""


class VariableError(InventoryError):
    """A variable of one host cannot be resolved (undefined, bad template, vault without key)."""


class _Missing:
    """Sentinel type for "no default given" (``None`` is a legitimate default)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def _plain(value: Any) -> Any:
    """Strip Ansible's data tags: tagged str/int/dict/list subclasses become plain builtins."""
    plain: Any = value
    if value is None or type(value) in (bool, int, float, str):
        plain = value
    elif isinstance(value, Mapping):
        plain = {_plain(k): _plain(v) for k, v in value.items()}
    elif isinstance(value, list | tuple | set | frozenset):
        plain = [_plain(v) for v in value]
    else:
        for scalar in (bool, str, int, float):  # bool before int: it is an int subclass
            if isinstance(value, scalar):
                plain = scalar(value)
                break
    return plain


class _Resolver:
    """Templates host variables on demand, one Templar per host, serialised by a lock.

    Ansible's template engine is not documented as thread-safe and checks run in threads, so
    every templating call goes through one lock; results are cached per (host, variable).
    """

    def __init__(self, loader: DataLoader, host_vars: dict[str, dict[str, Any]]) -> None:
        self._loader = loader
        self._host_vars = host_vars
        self._templars: dict[str, Templar] = {}
        self._cache: dict[tuple[str, str], Any] = {}
        self._lock = threading.RLock()

    def resolve(self, host: str, name: str) -> Any:
        """The templated value of ``name`` for ``host``; ``KeyError`` when it is not defined."""
        from ansible.errors import AnsibleError
        from ansible.template import Templar

        with self._lock:
            key = (host, name)
            if key in self._cache:
                return self._cache[key]
            variables = self._host_vars[host]
            if name not in variables:
                raise KeyError(name)
            templar = self._templars.get(host)
            if templar is None:
                templar = Templar(loader=self._loader, variables=variables)
                self._templars[host] = templar
            try:
                value = _plain(templar.template(variables[name]))
            except AnsibleError as exc:
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise VariableError(f"host {host}: cannot resolve {name}: {message}") from exc
            self._cache[key] = value
            return value


@dataclass(frozen=True)
class Host:
    """One inventory host: its name, the groups it belongs to and its (raw) variables.

    ``vars`` holds the merged, *untemplated* variables (role defaults < inventory and
    playbook-adjacent group/host vars < extra vars) plus Ansible's magic variables; use
    :meth:`var` to get a templated value.
    """

    name: str
    groups: tuple[str, ...]
    vars: Mapping[str, Any] = field(repr=False, compare=False)
    _resolver: _Resolver = field(repr=False, compare=False)

    def var(self, name: str, default: Any = MISSING) -> Any:
        """The templated value of variable ``name``.

        Returns ``default`` when the variable is not defined; without a default an undefined
        variable raises :class:`VariableError`, as does a value that cannot be templated.
        """
        try:
            return self._resolver.resolve(self.name, name)
        except KeyError:
            if default is MISSING:
                raise VariableError(f"host {self.name}: variable {name} is not defined") from None
            return default

    def has_var(self, name: str) -> bool:
        """Whether ``name`` is defined for this host (it may still fail to template)."""
        return name in self.vars

    @property
    def address(self) -> str:
        """The storage address services bind to (``storage_address``, else the host name)."""
        return str(self.var("storage_address", default=self.name))

    def in_group(self, group: str) -> bool:
        """Whether the host belongs to ``group`` (directly or through a child group)."""
        return group in self.groups


class Topology:
    """The inventory as the checks see it: hosts, groups, and resolved variables.

    ``groups`` maps every group (``all`` included) to its host names in inventory order, child
    groups' hosts included. ``limit`` (``-l``) narrows :meth:`targets` but not :meth:`group`:
    a check probes only the hosts in scope, yet still knows the whole cluster (how many masters
    there are, for example).
    """

    def __init__(
        self,
        hosts: Mapping[str, Host],
        groups: Mapping[str, Sequence[str]],
        *,
        sources: Sequence[Path] = (),
        in_scope: Iterable[str] | None = None,
        defaults: Mapping[str, Any] | None = None,
        raw_defaults: Mapping[str, Any] | None = None,
        warnings: Sequence[str] = (),
    ) -> None:
        self.hosts: dict[str, Host] = dict(hosts)
        self.groups: dict[str, list[str]] = {g: list(names) for g, names in groups.items()}
        self.sources: list[Path] = list(sources)
        self.in_scope: frozenset[str] = frozenset(self.hosts if in_scope is None else in_scope)
        self.defaults: dict[str, Any] = dict(defaults or {})
        self._raw_defaults: dict[str, Any] = dict(raw_defaults or {})
        self.warnings: list[str] = list(warnings)

    def __repr__(self) -> str:
        return f"Topology(hosts={sorted(self.hosts)!r}, sources={[str(s) for s in self.sources]})"

    def group(self, name: str) -> list[Host]:
        """Hosts of inventory group ``name`` (the real group name), in inventory order."""
        return [self.hosts[h] for h in self.groups.get(name, []) if h in self.hosts]

    def var(self, name: str, default: Any = MISSING) -> Any:
        """A cluster-wide variable: its value on the first inventory host, else the role default.

        Meant for settings that are the same on every host (ports defined in
        ``group_vars/all``); per-host settings should be read with :meth:`Host.var`.
        """
        for host in self.hosts.values():
            if host.has_var(name):
                return host.var(name, default)
        if name in self.defaults:
            return self.defaults[name]
        if default is MISSING:
            raise VariableError(f"variable {name} is not defined in the inventory")
        return default

    def sets(self, host: Host, name: str) -> bool:
        """Whether the inventory (or ``-e``) sets ``name`` for ``host``, not a role default."""
        return host.has_var(name) and host.vars[name] != self._raw_defaults.get(name, MISSING)

    def targets(self, name: str) -> list[Host]:
        """The hosts of group ``name`` that are in scope of ``--limit``."""
        return [h for h in self.group(name) if h.name in self.in_scope]


def _vault_secrets(loader: DataLoader, vault_password_file: str | Path | None) -> None:
    """Give Ansible the vault password file (argument, else ANSIBLE_VAULT_PASSWORD_FILE).

    The loader decrypts vaulted files; ansible-core 2.19 decrypts ``!vault`` values through a
    process-wide ``VaultSecretsContext`` that can be initialised only once, so later loads in the
    same process replace its secrets (the last loaded inventory's password wins).
    """
    from ansible import constants as C  # noqa: N812 - Ansible's own idiom
    from ansible.errors import AnsibleError
    from ansible.parsing.vault import VaultSecretsContext, get_file_vault_secret

    secrets: list[tuple[str, Any]] = []
    path = vault_password_file or C.DEFAULT_VAULT_PASSWORD_FILE
    if path:
        try:
            secret = get_file_vault_secret(filename=str(path), vault_id="default", loader=loader)
            secret.load()
        except AnsibleError as exc:
            raise InventoryError(f"vault password file {path}: {_first_line(exc)}") from exc
        secrets = [("default", secret)]
    loader.set_vault_secrets(secrets)
    current = VaultSecretsContext.current(optional=True)
    if current is None:
        VaultSecretsContext.initialize(VaultSecretsContext(secrets))
    else:
        current.secrets = secrets


def _role_defaults(loader: DataLoader, roles_dir: Path) -> dict[str, Any]:
    """Every role's ``defaults/main.yml`` (or ``defaults/main/``), merged in role-name order."""
    from ansible.errors import AnsibleError
    from ansible.utils.vars import combine_vars

    merged: dict[str, Any] = {}
    if not roles_dir.is_dir():
        return merged
    for role in sorted(p for p in roles_dir.iterdir() if p.is_dir()):
        defaults_dir = role / "defaults"
        if not defaults_dir.is_dir():
            continue
        for found in loader.find_vars_files(str(defaults_dir), "main", allow_dir=True):
            try:
                # Parsed fresh and used once, never modified: Ansible's file cache and its
                # defensive deep copy would only cost time on every verify.
                data = loader.load_from_file(
                    found, cache="none", unsafe=True, trusted_as_template=True
                )
            except AnsibleError as exc:
                raise InventoryError(f"role defaults {found}: {_first_line(exc)}") from exc
            if data is None:
                continue
            if not isinstance(data, Mapping):
                raise InventoryError(f"role defaults {found}: not a mapping of variables")
            merged = combine_vars(merged, data)
    return merged


def _extra_vars(loader: DataLoader, extra_vars: Sequence[str]) -> dict[str, Any]:
    """Parse ``-e`` values the way ``ansible-playbook`` does (key=value, YAML/JSON, @file)."""
    from ansible.errors import AnsibleError
    from ansible.parsing.splitter import parse_kv
    from ansible.utils.vars import combine_vars

    merged: dict[str, Any] = {}
    for option in extra_vars:
        if not option:
            continue
        try:
            if option.startswith("@"):
                data = loader.load_from_file(option[1:], trusted_as_template=True)
            elif option[0] in "/.":
                raise InventoryError(f"extra vars file {option!r}: prepend the file name with '@'")
            elif option[0] in "[{":
                data = loader.load(option)
            else:
                data = parse_kv(option)
        except AnsibleError as exc:
            raise InventoryError(f"extra vars {option!r}: {_first_line(exc)}") from exc
        if not isinstance(data, Mapping):
            raise InventoryError(f"extra vars {option!r}: not a mapping of variables")
        merged = combine_vars(merged, data)
    return merged


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _make_inventory_manager(
    loader: DataLoader, sources: list[str], failures: list[str], warnings: list[str]
) -> InventoryManager:
    """Parse ``sources`` with Ansible's InventoryManager, collecting instead of printing problems.

    Every source file no plugin could parse goes to ``failures`` (with the plugins' reason) and
    Ansible's other warnings go to ``warnings``. Ansible reports both through its ``Display``
    singleton, so its two reporting methods are swapped for collectors while the inventory is
    parsed (loading happens once, before any check thread starts).
    """
    from ansible.inventory.manager import InventoryManager
    from ansible.utils.display import Display

    display = Display()

    class _RecordingInventoryManager(InventoryManager):
        def parse_source(self, source: str, cache: bool = False) -> bool:
            reasons: list[str] = []

            def record(msg: str | None, exception: BaseException, **_: Any) -> None:
                reasons.append(f"{msg or ''} {_first_line(exception)}".strip())

            previous = display.error_as_warning
            display.error_as_warning = record  # type: ignore[method-assign]
            try:
                parsed = bool(super().parse_source(source, cache=cache))
            finally:
                display.error_as_warning = previous  # type: ignore[method-assign]
            if not parsed and not Path(source).is_dir():
                why = reasons[0] if reasons else "no inventory plugin accepted it"
                failures.append(f"cannot parse {source} as an inventory: {why}")
            return parsed

    def warn(msg: str, *_: Any, **__: Any) -> None:
        if not msg.startswith(("Unable to parse", "No inventory was parsed")):
            warnings.append(msg)

    original_warning = display.warning
    display.warning = warn  # type: ignore[method-assign]
    try:
        return _RecordingInventoryManager(loader=loader, sources=sources)
    finally:
        display.warning = original_warning  # type: ignore[method-assign]


def _existing_sources(inventories: Sequence[str | Path]) -> list[Path]:
    if not inventories:
        raise InventoryError("no inventory given")
    sources: list[Path] = []
    for inv in inventories:
        path = Path(inv).expanduser()
        if not path.exists():
            raise InventoryError(f"inventory {inv} does not exist")
        sources.append(path.resolve())
    return sources


def _parse_inventory(loader: DataLoader, sources: list[Path]) -> tuple[InventoryManager, list[str]]:
    """The parsed inventory and Ansible's warnings; InventoryError if a source fails."""
    from ansible.errors import AnsibleError

    failures: list[str] = []
    warnings: list[str] = []
    names = ", ".join(map(str, sources))
    try:
        inventory = _make_inventory_manager(loader, [str(s) for s in sources], failures, warnings)
    except AnsibleError as exc:
        raise InventoryError(f"inventory {names}: {_first_line(exc)}") from exc
    if failures:
        raise InventoryError(failures[0])
    if not inventory.hosts:
        raise InventoryError(f"inventory {names} defines no hosts")
    return inventory, warnings


def _in_scope(inventory: InventoryManager, limit: str | None) -> list[str] | None:
    """Host names matched by ``--limit`` (``None``: no limit, every host is in scope)."""
    from ansible.errors import AnsibleError

    if not limit:
        return None
    try:
        inventory.subset(limit)
        in_scope = [h.name for h in inventory.get_hosts()]
    except AnsibleError as exc:
        raise InventoryError(f"limit {limit!r}: {_first_line(exc)}") from exc
    finally:
        inventory.subset(None)
    if not in_scope:
        raise InventoryError(f"limit {limit!r} matches no host of the inventory")
    return in_scope


def load_topology(
    inventories: Sequence[str | Path],
    *,
    limit: str | None = None,
    extra_vars: Sequence[str] = (),
    vault_password_file: str | Path | None = None,
    basedir: str | Path = PROJECT_ROOT,
    roles_dir: str | Path | None = None,
) -> Topology:
    """Load ``inventories`` as ``ansible-playbook -i ... site.yml`` would, and return the Topology.

    ``basedir`` is the playbook directory (its ``group_vars``/``host_vars`` are loaded) and
    ``roles_dir`` (default ``<basedir>/roles``) supplies the role defaults. ``extra_vars`` are
    ``-e`` values (highest precedence). ``limit`` is an Ansible host pattern that narrows
    :meth:`Topology.targets`. ``vault_password_file`` defaults to Ansible's configured one
    (``ANSIBLE_VAULT_PASSWORD_FILE``). Raises :class:`InventoryError` when an inventory source
    is missing or unparseable, or the inventory has no hosts.
    """
    sources = _existing_sources(inventories)

    # The same configuration as the runs (ansible.cfg of the project) unless the caller chose
    # one. Ansible reads it once, when its constants are first imported, hence the lazy imports.
    if ANSIBLE_CFG.is_file():
        os.environ.setdefault("ANSIBLE_CONFIG", str(ANSIBLE_CFG))

    from ansible.errors import AnsibleError
    from ansible.parsing.dataloader import DataLoader
    from ansible.utils.vars import combine_vars
    from ansible.vars.hostvars import HostVars
    from ansible.vars.manager import VariableManager

    base = Path(basedir).resolve()
    loader = DataLoader()
    loader.set_basedir(str(base))
    _vault_secrets(loader, vault_password_file)
    inventory, warnings = _parse_inventory(loader, sources)

    variable_manager = VariableManager(loader=loader, inventory=inventory)
    HostVars(inventory=inventory, variable_manager=variable_manager, loader=loader)
    extra = _extra_vars(loader, extra_vars)

    raw: dict[str, dict[str, Any]] = {}
    host_groups: dict[str, tuple[str, ...]] = {}
    try:
        for ans_host in inventory.get_hosts(ignore_limits=True, ignore_restrictions=True):
            host_vars = variable_manager.get_vars(host=ans_host, include_hostvars=True)
            raw[ans_host.name] = combine_vars(host_vars, extra)
            host_groups[ans_host.name] = tuple(g.name for g in ans_host.get_groups())
    except AnsibleError as exc:
        raise InventoryError(f"inventory variables: {_first_line(exc)}") from exc

    groups = {
        str(g): [str(h) for h in members] for g, members in inventory.get_groups_dict().items()
    }
    return topology_from_vars(
        loader,
        raw,
        groups,
        roles_dir=Path(roles_dir) if roles_dir else base / "roles",
        host_groups=host_groups,
        sources=sources,
        in_scope=_in_scope(inventory, limit),
        warnings=warnings,
    )


def topology_from_vars(
    loader: DataLoader,
    raw_host_vars: Mapping[str, Mapping[str, Any]],
    groups: Mapping[str, Sequence[str]],
    *,
    roles_dir: str | Path,
    host_groups: Mapping[str, Sequence[str]] | None = None,
    sources: Sequence[Path] = (),
    in_scope: Iterable[str] | None = None,
    warnings: Sequence[str] = (),
) -> Topology:
    """A Topology from variables Ansible has already loaded, with the role defaults under them.

    ``raw_host_vars`` maps each host to its merged, untemplated variables as Ansible's
    ``VariableManager`` returns them (extra vars included); ``groups`` is Ansible's ``groups``
    magic variable. The role defaults of ``roles_dir`` are layered under the host variables,
    exactly as :func:`load_topology` does. ``host_groups`` gives each host's groups; by default
    they are read from ``groups``. This is how the ``storagectl_inventory_check`` action plugin
    builds the same Topology inside a playbook run.
    """
    from ansible.utils.vars import combine_vars

    defaults = _role_defaults(loader, Path(roles_dir))
    raw = {
        name: combine_vars(defaults, dict(variables)) for name, variables in raw_host_vars.items()
    }
    if host_groups is None:
        host_groups = {
            name: [g for g, members in groups.items() if name in members and g != "all"]
            for name in raw
        }
    resolver = _Resolver(loader, raw)
    hosts = {
        name: Host(
            name=name,
            groups=tuple(sorted(g for g in host_groups.get(name, ()) if g != "all")),
            vars=host_vars,
            _resolver=resolver,
        )
        for name, host_vars in raw.items()
    }
    return Topology(
        hosts,
        groups,
        sources=sources,
        in_scope=in_scope,
        defaults={k: _plain(v) for k, v in defaults.items() if not _is_template(v)},
        raw_defaults=defaults,
        warnings=warnings,
    )


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)
