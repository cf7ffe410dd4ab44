"""``storagectl``: deploy the storage platform with Ansible and prove that it works.

One subcommand per verb, one shared group of Ansible arguments, named exit codes
(:class:`storagectl.exitcodes.RC`)::

    storagectl deploy [-i INV]... [-l LIMIT] [-t TAGS] [-e VARS]... [--check] [--diff] [-v]
    storagectl verify [-i INV]... [-l LIMIT] [-e VARS]... [--format table|json] [--junit FILE]
                      [--timeout SECONDS]
    storagectl inventory check [-i INV]... [-e VARS]... [--format text|json]
    storagectl aegis-config [-i INV]... [-e VARS]... [--format yaml|json]
    storagectl lab up [--topology dev|ha] [--storage-hosts N]
    storagectl lab status [--format table|json]
    storagectl lab down

Without ``-i``, ``deploy``, ``verify``, ``inventory check`` and ``aegis-config`` use
``inventories/lab`` when it exists. ``deploy`` applies the ``inventory check`` rules before it
starts Ansible. Every ``--format json`` prints one JSON document alone on stdout. Errors are one
line on stderr and an exit code; never a traceback.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from storagectl import __version__
from storagectl.exitcodes import RC
from storagectl.paths import LAB_INVENTORY, PROJECT_ROOT, SITE_PLAYBOOK

if TYPE_CHECKING:
    from storagectl.inventory import Topology

__all__ = ["CommandError", "UsageError", "build_parser", "main"]

PROG = "storagectl"


class CommandError(Exception):
    """A command cannot go on: ``main`` prints ``str(err)`` on stderr and exits with ``rc``."""

    def __init__(self, message: str, rc: RC) -> None:
        super().__init__(message)
        self.rc = rc


class UsageError(CommandError):
    """A bad command line; ``main`` prints it and exits with :attr:`RC.USAGE`."""

    def __init__(self, message: str) -> None:
        super().__init__(message, RC.USAGE)


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of exiting with status 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _ansible_arguments() -> argparse.ArgumentParser:
    """The Ansible arguments every inventory-driven subcommand shares (kolla-ansible style)."""
    parent = _Parser(add_help=False)
    group = parent.add_argument_group("Ansible arguments")
    group.add_argument(
        "-i",
        "--inventory",
        action="append",
        default=[],
        metavar="INVENTORY",
        help="inventory file or directory; repeatable (default: inventories/lab if it exists)",
    )
    group.add_argument("-l", "--limit", metavar="PATTERN", help="limit to hosts matching PATTERN")
    group.add_argument("-t", "--tags", metavar="TAGS", help="only run plays and tasks tagged TAGS")
    group.add_argument(
        "-e",
        "--extra-vars",
        action="append",
        default=[],
        metavar="VARS",
        help="key=value, YAML/JSON or @file, as for ansible-playbook; repeatable",
    )
    group.add_argument(
        "-C", "--check", action="store_true", help="dry run: report what would change"
    )
    group.add_argument("-D", "--diff", action="store_true", help="show the changes made to files")
    group.add_argument(
        "-v", "--verbose", action="count", default=0, help="more output (repeat for more)"
    )
    group.add_argument(
        "--vault-password-file",
        metavar="FILE",
        help="Ansible Vault password file (default: $ANSIBLE_VAULT_PASSWORD_FILE)",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The complete ``storagectl`` argument parser."""
    parser = _Parser(
        prog=PROG,
        description="Deploy and verify a highly available SeaweedFS storage platform.",
        epilog="Exit codes: "
        + ", ".join(f"{rc.value} {rc.name}" for rc in RC)
        + f". Project: {PROJECT_ROOT}",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    ansible = _ansible_arguments()

    deploy = commands.add_parser(
        "deploy",
        parents=[ansible],
        help="run site.yml against the inventory",
        description="Run site.yml through ansible-runner with live progress.",
    )
    deploy.add_argument("--skip-tags", metavar="TAGS", help="skip plays and tasks tagged TAGS")
    deploy.set_defaults(handler=cmd_deploy)

    verify = commands.add_parser(
        "verify",
        parents=[ansible],
        help="probe every component of the inventory and report",
        description=(
            "Derive every endpoint from the inventory, probe them concurrently and report. "
            "Exits 1 when a check fails. --limit narrows per-host probes; cluster-wide checks "
            "(leader agreement) always look at the whole group. --tags, --check and --diff "
            "do not apply."
        ),
    )
    verify.add_argument(
        "--format", choices=("table", "json"), default="table", help="output format"
    )
    verify.add_argument("--junit", metavar="FILE", type=Path, help="also write JUnit XML to FILE")
    verify.add_argument(
        "--timeout",
        type=_positive_float,
        default=20.0,
        metavar="SECONDS",
        help=(
            "hard wall-clock limit of each check on each host; one that overruns is reported "
            "as FAIL 'timed out after N s' with its endpoint (default: 20)"
        ),
    )
    verify.add_argument(
        "--component",
        action="append",
        default=[],
        metavar="NAME",
        help="only check this component (repeatable; default: all)",
    )
    verify.set_defaults(handler=cmd_verify)

    inventory = commands.add_parser("inventory", help="inspect the inventory")
    inventory_commands = inventory.add_subparsers(
        dest="inventory_command", metavar="COMMAND", parser_class=_Parser
    )
    inventory_check = inventory_commands.add_parser(
        "check",
        parents=[ansible],
        help="check the inventory against the deployment rules",
        description=(
            "Load the inventory as ansible-playbook would and check the rules deploy enforces "
            "(groups, odd master count, replica placement, volume slots, S3 keys, ports). "
            "Contacts no host. Exits 3 when a rule is broken. --limit, --tags, --check and "
            "--diff do not apply: the whole inventory is checked."
        ),
    )
    inventory_check.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format"
    )
    inventory_check.set_defaults(handler=cmd_inventory_check)
    inventory.set_defaults(handler=_needs_subcommand(inventory))

    aegis = commands.add_parser(
        "aegis-config",
        parents=[ansible],
        help="print the spec.storage block of an AEGIS node configuration",
        description=(
            "Print the storage endpoints an AEGIS node needs (spec.storage: filer_url, "
            "s3_endpoint, s3_region), derived from the inventory alone: the HAProxy load "
            "balancers (first haproxy host), or storage_filer_url / storage_s3_endpoint when the "
            "inventory sets them (a VIP or DNS name). Without haproxy hosts, the first filer "
            "and S3 gateway, said on stderr. Contacts no host. --limit, --tags, --check and "
            "--diff do not apply."
        ),
    )
    aegis.add_argument("--format", choices=("yaml", "json"), default="yaml", help="output format")
    aegis.set_defaults(handler=cmd_aegis_config)

    lab = commands.add_parser("lab", help="the local throwaway lab (machines with systemd+SSH)")
    lab_commands = lab.add_subparsers(dest="lab_command", metavar="COMMAND", parser_class=_Parser)
    lab_up = lab_commands.add_parser("up", help="boot the lab and write inventories/lab")
    lab_up.add_argument("--topology", default="dev", help="lab topology: dev or ha (default: dev)")
    lab_up.add_argument(
        "--storage-hosts",
        type=_positive_int,
        default=3,
        metavar="N",
        help="number of storage hosts (default: 3)",
    )
    lab_up.set_defaults(handler=cmd_lab_up)
    lab_status = lab_commands.add_parser("status", help="list the lab machines")
    lab_status.add_argument("--format", choices=("table", "json"), default="table")
    lab_status.set_defaults(handler=cmd_lab_status)
    lab_down = lab_commands.add_parser("down", help="remove every lab machine, network and rule")
    lab_down.set_defaults(handler=cmd_lab_down)
    lab.set_defaults(handler=_needs_subcommand(lab))
    return parser


def _needs_subcommand(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return RC.USAGE

    return handler


def _err(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()


def _inventories(args: argparse.Namespace) -> list[str]:
    """``-i`` values, else the lab inventory when it exists, else a usage error."""
    if args.inventory:
        return list(args.inventory)
    if LAB_INVENTORY.exists():
        return [str(LAB_INVENTORY)]
    raise UsageError(
        f"no inventory: pass -i INVENTORY ({LAB_INVENTORY} does not exist; "
        "`storagectl lab up` creates it)"
    )


# --- deploy --------------------------------------------------------------------------------


def _load_topology(args: argparse.Namespace, inventories: list[str]) -> Topology:
    """Load the inventory with the shared Ansible arguments; print its warnings on stderr."""
    from storagectl.inventory import load_topology

    topology = load_topology(
        inventories,
        limit=args.limit,
        extra_vars=args.extra_vars,
        vault_password_file=args.vault_password_file,
    )
    for warning in topology.warnings:
        sys.stderr.write(f"{PROG}: warning: {warning}\n")
    return topology


def cmd_deploy(args: argparse.Namespace) -> int:
    """Load and check the inventory (fail fast if broken), then run site.yml through the runner."""
    from storagectl.inventory import InventoryError
    from storagectl.inventory.validate import validate
    from storagectl.runner import PlaybookRunner, RunnerError

    inventories = _inventories(args)
    try:
        problems = validate(_load_topology(args, inventories))
    except InventoryError as exc:
        _err(str(exc))
        return RC.INVALID_INVENTORY
    if problems:
        for problem in problems:
            _err(str(problem))
        _err(f"{_count(len(problems), 'inventory problem')}: nothing was deployed")
        return RC.INVALID_INVENTORY
    runner = PlaybookRunner()
    try:
        result = runner.run(
            SITE_PLAYBOOK,
            inventories=inventories,
            limit=args.limit,
            tags=args.tags,
            skip_tags=args.skip_tags,
            extra_vars=args.extra_vars,
            check=args.check,
            diff=args.diff,
            verbosity=args.verbose,
            vault_password_file=args.vault_password_file,
        )
    except RunnerError as exc:
        _err(str(exc))
        return RC.ANSIBLE_FAILED
    if result.status == "canceled":
        return RC.INTERRUPTED
    return RC.OK if result.ok else RC.ANSIBLE_FAILED


# --- verify --------------------------------------------------------------------------------


def _verify_error(args: argparse.Namespace, message: str, code: RC) -> int:
    _err(message)
    if args.format == "json":
        document = {
            "ok": False,
            "error": message,
            "summary": {
                "total": 0,
                "passed": 0,
                "failed": 0,
                "duration": 0.0,
                "wall": 0.0,
                "components": {},
            },
            "checks": [],
            "storage": {"juicefs_mounted": None, "rustfs_healthy": None, "juicefs_volume": None},
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    return code


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: importing the check modules and Ansible creates
    hundreds of thousands of objects and no garbage worth a collection, and the full collections
    they trigger are time before the first check starts."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def cmd_verify(args: argparse.Namespace) -> int:
    """Load the topology, run every applicable check, print the report."""
    from storagectl import report
    from storagectl.checks import all_checks, run_checks
    from storagectl.inventory import InventoryError

    inventories = _inventories(args)
    with _collector_paused():
        try:
            checks = all_checks(args.component or None)
        except KeyError as exc:
            raise UsageError(str(exc.args[0])) from None
        try:
            topology = _load_topology(args, inventories)
        except InventoryError as exc:
            return _verify_error(args, str(exc), RC.INVALID_INVENTORY)
    start = time.monotonic()
    results = run_checks(topology, checks, timeout=args.timeout)
    elapsed = time.monotonic() - start
    if not results:
        return _verify_error(
            args,
            "no check applies: the inventory has no host in any group storagectl verifies "
            f"(components: {', '.join(sorted({c.component for c in checks}))})",
            RC.INVALID_INVENTORY,
        )
    storage = report.storage_block(topology, results)
    report.print_report(results, args.format, storage=storage, elapsed=elapsed)
    if args.junit:
        try:
            report.write_junit(results, args.junit)
        except OSError as exc:
            _err(f"cannot write JUnit file {args.junit}: {exc.strerror or exc}")
            return RC.USAGE
    return RC.OK if all(r.ok for r in results) else RC.CHECKS_FAILED


# --- inventory check -------------------------------------------------------------------------


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def cmd_inventory_check(args: argparse.Namespace) -> int:
    """Check the inventory against the rules deploy enforces; print OK or every problem."""
    from dataclasses import asdict

    from storagectl.inventory import InventoryError, groups
    from storagectl.inventory.validate import collections_held, validate

    inventories = _inventories(args)
    try:
        topology = _load_topology(args, inventories)
        problems = validate(topology)
        held = None if problems else collections_held(topology)
    except InventoryError as exc:
        _err(str(exc))
        if args.format == "json":
            document = {"ok": False, "error": str(exc), "problems": []}
            sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return RC.INVALID_INVENTORY
    if args.format == "json":
        document = {"ok": not problems, "problems": [asdict(p) for p in problems]}
        if held:
            document["collections"] = {"placement": held[0], "growable": held[1]}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    elif problems:
        for problem in problems:
            _progress(str(problem))
        _progress(f"{_count(len(problems), 'problem')}: fix the inventory before deploying")
    else:
        summary = groups.summary(topology)
        _progress(
            f"inventory OK: {_count(len(topology.hosts), 'host')}"
            + (f" ({summary})" if summary else "")
        )
        if held:
            _progress(
                f"volume slots: {_count(held[1], 'collection')} (the default one and each S3 "
                f"bucket) can grow once at placement {held[0]}"
            )
    return RC.INVALID_INVENTORY if problems else RC.OK


# --- aegis-config --------------------------------------------------------------------------


def cmd_aegis_config(args: argparse.Namespace) -> int:
    """Print the ``spec.storage`` block an AEGIS node configuration needs."""
    import yaml

    from storagectl import endpoints
    from storagectl.inventory import InventoryError

    inventories = _inventories(args)
    try:
        topology = _load_topology(args, inventories)
        filer, s3 = endpoints.filer_url(topology), endpoints.s3_endpoint(topology)
        region = endpoints.s3_region(topology)
    except InventoryError as exc:
        _err(str(exc))
        return RC.INVALID_INVENTORY
    except endpoints.EndpointError as exc:
        _err(str(exc))
        return RC.INVALID_INVENTORY
    for note in (filer.note, s3.note):
        if note:
            sys.stderr.write(f"{PROG}: note: {note}\n")
    storage = {"filer_url": filer.url, "s3_endpoint": s3.url, "s3_region": region}
    document = {"spec": {"storage": storage}}
    if args.format == "json":
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(document, sort_keys=False, default_flow_style=False))
    sys.stdout.flush()
    return RC.OK


# --- lab -----------------------------------------------------------------------------------


def _lab() -> Any:
    """The lab package, imported only when a lab command runs."""
    try:
        from storagectl import lab
    except ImportError as exc:
        raise CommandError(f"the lab is not available: {exc}", RC.LAB_ERROR) from exc
    return lab


def _progress(line: str) -> None:
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def cmd_lab_up(args: argparse.Namespace) -> int:
    """Boot the lab machines and write inventories/lab."""
    lab = _lab()
    if args.topology not in lab.TOPOLOGIES:
        raise UsageError(
            f"unknown lab topology {args.topology!r} (choose from: {', '.join(lab.TOPOLOGIES)})"
        )
    try:
        inventory = lab.up(
            topology=args.topology, storage_hosts=args.storage_hosts, progress=_progress
        )
    except lab.LabError as exc:
        _err(str(exc))
        return RC.LAB_ERROR
    _progress(f"Lab is up. Inventory: {inventory}")
    _progress("Next: storagectl deploy && storagectl verify")
    return RC.OK


def cmd_lab_status(args: argparse.Namespace) -> int:
    """List the lab machines: name, address, state, groups."""
    lab = _lab()
    try:
        machines = list(lab.status())
    except lab.LabError as exc:
        _err(str(exc))
        return RC.LAB_ERROR
    rows = [
        {
            "name": str(m.name),
            "address": str(m.address or ""),
            "state": str(m.state),
            "groups": [str(g) for g in (m.groups or [])],
        }
        for m in machines
    ]
    if args.format == "json":
        sys.stdout.write(json.dumps({"machines": rows}, indent=2) + "\n")
        return RC.OK
    if not rows:
        _progress("No lab machines. Start them with `storagectl lab up`.")
        return RC.OK
    table = [("NAME", "ADDRESS", "STATE", "GROUPS")] + [
        (r["name"], r["address"] or "-", r["state"], ",".join(r["groups"]) or "-") for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        cells = [row[i].ljust(widths[i]) for i in range(3)]
        _progress("  ".join([*cells, row[3]]))
    return RC.OK


def cmd_lab_down(args: argparse.Namespace) -> int:
    """Remove every lab machine, network and rule."""
    lab = _lab()
    try:
        lab.down(progress=_progress)
    except lab.LabError as exc:
        _err(str(exc))
        return RC.LAB_ERROR
    _progress("Lab removed.")
    return RC.OK


# --- entry point ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``storagectl`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
        if handler is None:
            parser.print_help(sys.stderr)
            return RC.USAGE
        return int(handler(args))
    except CommandError as exc:
        _err(str(exc))
        return exc.rc
    except SystemExit as exc:  # --help and --version exit through argparse
        return exc.code if isinstance(exc.code, int) else RC.OK
    except KeyboardInterrupt:
        _err("interrupted")
        return RC.INTERRUPTED
    except Exception as exc:
        if os.environ.get("STORAGECTL_DEBUG"):
            raise
        _err(f"unexpected {type(exc).__name__}: {exc} (STORAGECTL_DEBUG=1 shows the traceback)")
        return RC.INTERNAL_ERROR


def run() -> NoReturn:
    """The ``storagectl`` console script: :func:`main`, then exit with its code."""
    code = main()
    # The process ends here and the OS frees its memory: freezing the collector spares the
    # interpreter's final collection, which walks every object Ansible and botocore created (about
    # 0.35 s of a 2 s verify, measured). Atexit handlers (Ansible's temporary files) still run.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
