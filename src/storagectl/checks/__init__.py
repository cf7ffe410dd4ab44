"""Checks, one module per component; the registry finds them by module.

A component plugs in by adding a module to this package that defines ``COMPONENT`` (its name,
e.g. ``"postgres"``) and ``CHECKS`` (a list of :class:`~storagectl.checks.base.Check`, in the
order they should be reported). Nothing else needs to change: :func:`registry` imports every
module of the package except ``base`` and ``transfer`` (the checks' HTTP/S3 toolbox).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from functools import cache

from storagectl.checks.base import (
    DEFAULT_TIMEOUT,
    Check,
    CheckContext,
    CheckResult,
    cluster_check,
    host_check,
    run_checks,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "Check",
    "CheckContext",
    "CheckResult",
    "all_checks",
    "cluster_check",
    "host_check",
    "registry",
    "run_checks",
]

_NOT_CHECK_MODULES = frozenset({"base", "transfer"})
#: Reported after every component: capacity reads what the components' servers report.
_LAST = ("capacity",)


@cache
def registry() -> dict[str, list[Check]]:
    """Component name -> its checks, from every check module of this package (sorted by name,
    capacity last)."""
    found: dict[str, list[Check]] = {}
    modules = pkgutil.iter_modules(__path__)
    for module_info in sorted(modules, key=lambda m: (m.name in _LAST, m.name)):
        if module_info.name in _NOT_CHECK_MODULES or module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        component = getattr(module, "COMPONENT", module_info.name)
        found.setdefault(component, []).extend(getattr(module, "CHECKS", []))
    return found


def all_checks(components: Iterable[str] | None = None) -> list[Check]:
    """The checks of ``components`` (all registered components when ``None``).

    Raises ``KeyError`` naming an unknown component.
    """
    known = registry()
    names = list(known) if components is None else list(components)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(f"unknown component(s): {', '.join(unknown)} (known: {', '.join(known)})")
    return [check for name in names for check in known[name]]
