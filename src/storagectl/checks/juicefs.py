"""JuiceFS checks: every client has its mounts up, a file written on one client reads back
byte-identical on another, and the metadata engine lists the volume and a session per mount.

What the juicefs role deploys (its contract with these checks): every host of the
``juicefs_client`` group mounts volume ``juicefs_volume_name``
("storagectl") at ``juicefs_mountpoint`` ("/data") with the systemd unit
``juicefs-<juicefs_mount_name>`` (``juicefs-data``), and each ``juicefs_subdir_mounts`` item
``{name, subdir, mountpoint}`` with ``juicefs-<name>``. Metadata lives in Redis database
``juicefs_meta_db`` (2) on the first host of the ``redis`` group (``redis_port``; a Sentinel URL
when ``redis_sentinel_enabled``); the Redis password is in the 0600 environment file of the mount
unit (``<juicefs_config_dir>/<juicefs_mount_name>.env``: ``META_PASSWORD=...``), never on a
command line.

These probes must run on the clients (a FUSE mount is only visible there): they go through
:mod:`storagectl.remote` (ssh as Ansible connects, or locally for ``ansible_connection: local``)
and every remote command is bounded with ``timeout``, because a mount whose metadata engine is
gone blocks instead of failing. JuiceFS 1.4 behaviour relied on (verified with the binary): a
mount's root has inode 1 and ``fuse.juicefs`` in ``/proc/mounts``; ``juicefs status META-URL``
prints ``{"Setting": {"Name", ...}, "Sessions": [{"HostName", "IPAddrs", "MountPoint", ...}]}``
on stdout and keeps retrying (no answer) while Redis is down.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storagectl import remote
from storagectl.checks.base import CheckContext, CheckResult, cluster_check, host_check
from storagectl.checks.redis import (
    REDIS,
    REDIS_UNIT,
    metadata_host,
    sentinel_enabled,
)
from storagectl.endpoints import EndpointError, juicefs_meta_url
from storagectl.inventory import Host, Topology
from storagectl.inventory.groups import JUICEFS_CLIENT as CLIENT

COMPONENT = "juicefs"

VERIFY_DIR = ".storagectl-verify"
FSTYPE = "fuse.juicefs"
PAYLOAD_BYTES = 64 * 1024
VISIBLE_WITHIN = 5.0
#: ``juicefs`` is installed in /usr/local/bin, which a non-login ssh shell may not have on PATH.
PATH_PREFIX = 'PATH="/usr/local/bin:$PATH"'


def _var(host: Host, name: str) -> Any:
    return host.var(name)


@dataclass(frozen=True)
class Mount:
    """One JuiceFS mount of a client and its systemd unit."""

    unit: str
    mountpoint: str
    subdir: str = ""


def unit_for(host: Host) -> str:
    """The unit of the main mount of ``host``: ``juicefs-<juicefs_mount_name>`` (``juicefs-data``
    for ``/data``)."""
    return f"juicefs-{_var(host, 'juicefs_mount_name')}"


def mounts_of(host: Host) -> list[Mount]:
    """The main mount, then every ``juicefs_subdir_mounts`` item, of ``host``."""
    found = [Mount(unit_for(host), str(_var(host, "juicefs_mountpoint")))]
    for item in _var(host, "juicefs_subdir_mounts") or []:
        found.append(
            Mount(f"juicefs-{item['name']}", str(item["mountpoint"]), str(item.get("subdir") or ""))
        )
    return found


def env_file(host: Host) -> str:
    """The main mount's environment file holding ``META_PASSWORD``
    (``<juicefs_config_dir>/<juicefs_mount_name>.env``)."""
    return f"{_var(host, 'juicefs_config_dir')}/{_var(host, 'juicefs_mount_name')}.env"


def meta_url(topology: Topology, host: Host) -> str:
    """The metadata URL the clients mount, without the password (it comes from META_PASSWORD)."""
    try:
        return juicefs_meta_url(topology, host)
    except EndpointError as exc:
        raise ValueError(str(exc)) from None


def redis_hint(topology: Topology) -> str:
    """Where to look when the metadata engine may be the cause."""
    if sentinel_enabled(topology):
        hosts = ", ".join(h.name for h in topology.group(REDIS))
        return (
            f"check Redis and its Sentinels on {hosts} (the JuiceFS metadata engine: "
            f"systemctl status {REDIS_UNIT} redis-sentinel; storagectl verify --component redis)"
        )
    first = metadata_host(topology)
    where = f" on {first.name}" if first is not None else ""
    return (
        f"check Redis{where} (the JuiceFS metadata engine: systemctl status {REDIS_UNIT}; "
        "storagectl verify --component redis)"
    )


def _sentence(text: str) -> str:
    return f"{text[0].upper()}{text[1:]}." if text else text


def _step_timeout(ctx: CheckContext, share: float = 0.4) -> float:
    return max(2.0, ctx.timeout * share)


def _bounded(seconds: float, script: str) -> str:
    """``script`` run by ``sh`` under ``timeout`` (exit 124 when it overran)."""
    return f"timeout -k 1 {seconds:g} sh -c {shlex.quote(script)}"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# --- 1. every client has its mounts up ---------------------------------------------------------


def _mount_script(mounts: Sequence[Mount], seconds: float) -> str:
    lines = []
    for mount in mounts:
        unit = shlex.quote(f"{mount.unit}.service")
        mp = shlex.quote(mount.mountpoint)
        lines += [
            f'printf "unit %s %s %s\\n" {unit} "$(systemctl is-active {unit} 2>/dev/null)" '
            f'"$(systemctl is-enabled {unit} 2>/dev/null)"',
            f"i=$(timeout -k 1 {seconds:g} stat -c %i -- {mp} 2>/dev/null)",
            f'printf "inode %s %s %s\\n" {unit} "$?" "$i"',
            f"t=$(awk -v mp={mp} '$2 == mp {{t = $3}} END {{print t}}' /proc/mounts)",
            f'printf "fstype %s %s\\n" {unit} "$t"',
        ]
    return "\n".join(lines)


def parse_mount_state(output: str) -> dict[str, dict[str, str]]:
    """``unit.service`` -> {active, enabled, inode_rc, inode, fstype} from the mount script."""
    state: dict[str, dict[str, str]] = {}
    for line in output.splitlines():
        kind, _, rest = line.partition(" ")
        unit, _, values = rest.partition(" ")
        fields = values.split(" ")
        entry = state.setdefault(unit, {})
        if kind == "unit":
            entry["active"] = fields[0] if fields else ""
            entry["enabled"] = fields[1] if len(fields) > 1 else ""
        elif kind == "inode":
            entry["inode_rc"] = fields[0] if fields else ""
            entry["inode"] = fields[1] if len(fields) > 1 else ""
        elif kind == "fstype":
            entry["fstype"] = fields[0] if fields else ""
    return state


def mount_problems(
    host: Host, mount: Mount, state: dict[str, str], seconds: float, redis: str
) -> list[tuple[str, str]]:
    """(problem, fix) pairs for one mount of ``host``."""
    unit = f"{mount.unit}.service"
    journal = f"journalctl -u {mount.unit} -n 100 on {host.name}"
    problems = []
    active = state.get("active") or "unknown"
    if active != "active":
        problems.append(
            (
                f"{unit} is {active}",
                f"systemctl start {mount.unit} on {host.name}; read {journal}; if it cannot "
                f"reach its metadata, {redis}.",
            )
        )
    enabled = state.get("enabled") or "unknown"
    if enabled != "enabled":
        problems.append(
            (
                f"{unit} is {enabled}, not enabled (no mount after a reboot)",
                f"systemctl enable {mount.unit} on {host.name} (rerun deploy).",
            )
        )
    rc, inode = state.get("inode_rc", ""), state.get("inode", "")
    if rc == "124":
        problems.append(
            (
                f"stat {mount.mountpoint} gave no answer in {seconds:g} s (the mount hangs)",
                f"JuiceFS cannot reach its metadata engine: {redis}; then read {journal}.",
            )
        )
    elif rc != "0":
        problems.append(
            (
                f"stat {mount.mountpoint} failed (exit {rc or '?'})",
                f"Start {mount.unit} on {host.name} (read {journal}); if the mount reports "
                f"I/O errors, {redis}.",
            )
        )
    elif inode != "1":
        problems.append(
            (
                f"{mount.mountpoint} has inode {inode or '?'}, not 1: not a JuiceFS mount root",
                f"Nothing is mounted there: systemctl restart {mount.unit} on {host.name} and "
                f"read {journal}.",
            )
        )
    fstype = state.get("fstype") or "none"
    if fstype != FSTYPE:
        problems.append(
            (
                f"/proc/mounts shows {fstype} at {mount.mountpoint}, not {FSTYPE}",
                f"systemctl restart {mount.unit} on {host.name}; read {journal}.",
            )
        )
    return problems


def _client_endpoint(topology: Topology, host: Host) -> str:
    return f"{host.name}:{_var(host, 'juicefs_mountpoint')!s}"


@host_check("juicefs mount", COMPONENT, group=CLIENT, endpoint=_client_endpoint)
def juicefs_mount(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
    """Every mount unit of the client is active and enabled; its mountpoint is a JuiceFS root
    (inode 1, ``fuse.juicefs`` in /proc/mounts)."""
    mounts = mounts_of(host)
    seconds = _step_timeout(ctx)
    try:
        result = remote.run_shell(
            host,
            _mount_script(mounts, seconds),
            timeout=seconds + 5,
            what="mount state probe",
        )
    except remote.RemoteError as exc:
        return CheckResult(
            "juicefs mount",
            COMPONENT,
            False,
            str(exc),
            fix=f"Check that this machine reaches {host.name} over ssh as Ansible does.",
        )
    if result.returncode == 255 and not remote.is_local(host):
        return CheckResult(
            "juicefs mount",
            COMPONENT,
            False,
            f"ssh failed: {_last_line(result.stderr)}",
            fix=f"Check that this machine reaches {host.name} over ssh as Ansible does.",
        )
    state = parse_mount_state(result.stdout)
    redis = redis_hint(topology)
    problems: list[str] = []
    fixes: list[str] = []
    for mount in mounts:
        for problem, fix in mount_problems(
            host, mount, state.get(f"{mount.unit}.service", {}), seconds, redis
        ):
            problems.append(problem)
            if fix not in fixes:
                fixes.append(fix)
    listed = ", ".join(f"{m.mountpoint} ({m.unit})" for m in mounts)
    if problems:
        return CheckResult("juicefs mount", COMPONENT, False, "; ".join(problems), " ".join(fixes))
    return CheckResult(
        "juicefs mount",
        COMPONENT,
        True,
        f"{listed}: active, enabled, inode 1, {FSTYPE}",
    )


# --- 2. a file written on one client reads back on another -------------------------------------


def _verify_path(host: Host, name: str) -> str:
    return f"{str(_var(host, 'juicefs_mountpoint')).rstrip('/')}/{VERIFY_DIR}/{name}"


def _data_fix(topology: Topology, host: Host, what: str) -> str:
    unit = unit_for(host)
    backend = str(topology.var("juicefs_backend"))
    storage = {
        "rustfs": "RustFS (storagectl verify --component rustfs)",
        "seaweedfs": "the SeaweedFS S3 gateway (storagectl verify --component seaweedfs)",
    }.get(backend, "the external object storage")
    return (
        f"{what[0].upper()}{what[1:]}: {redis_hint(topology)}; check the mount on {host.name} "
        f"(journalctl -u {unit} -n 100) and its object storage, {storage}."
    )


def _fail(name: str, detail: str, fix: str, endpoint: str = "") -> CheckResult:
    return CheckResult(name, COMPONENT, False, detail, fix=fix, endpoint=endpoint)


@cluster_check("juicefs shared data", COMPONENT, requires=(CLIENT,))
def juicefs_shared_data(topology: Topology, ctx: CheckContext) -> CheckResult:
    """A random file written on one client's mount reads back byte-identical (sha256) on
    another client within a few seconds, which then deletes it."""
    clients = topology.group(CLIENT)
    writer = clients[0]
    reader = clients[1] if len(clients) > 1 else writer
    name = f"{uuid.uuid4().hex}.bin"
    written = _verify_path(writer, name)
    seconds = _step_timeout(ctx, 0.25)
    mountpoint = str(_var(writer, "juicefs_mountpoint"))
    endpoint = (
        f"{writer.name}:{mountpoint} -> {reader.name}:{_var(reader, 'juicefs_mountpoint')}"
        if reader is not writer
        else f"{writer.name}:{mountpoint}"
    )
    write = 'mkdir -p "$(dirname "$1")" && head -c "$2" /dev/urandom > "$1" && sha256sum "$1"'
    try:
        result = remote.run_shell(
            writer,
            f"{_bounded(seconds, write)} sh {shlex.quote(written)} {PAYLOAD_BYTES}",
            timeout=seconds + 2,
            what=f"write {written}",
        )
    except remote.RemoteError as exc:
        return _fail("juicefs shared data", str(exc), _data_fix(topology, writer, "no write"))
    if result.returncode != 0:
        why = "no answer in time" if result.returncode == 124 else _last_line(result.stderr)
        return _fail(
            "juicefs shared data",
            f"writing {written} on {writer.name} failed: {why or f'exit {result.returncode}'}",
            _data_fix(topology, writer, "the mount cannot write"),
            endpoint,
        )
    expected = result.stdout.split(" ", 1)[0].strip()
    try:
        got, deleted = _read_back_and_delete(reader, _verify_path(reader, name), expected)
    except remote.RemoteError as exc:
        got, deleted = f"error: {exc}", False
    size = f"{PAYLOAD_BYTES // 1024} KiB"
    if got != expected:
        _remove_quietly(writer, written, seconds)  # the reader did not see it: clean up here
        shown = got if got.startswith("error") else f"sha256 {got[:12] or 'none'}"
        return _fail(
            "juicefs shared data",
            f"{size} written on {writer.name} (sha256 {expected[:12]}) read on {reader.name} "
            f"within {VISIBLE_WITHIN:g} s: {shown} ({written})",
            _data_fix(topology, reader, "the clients do not see the same data"),
            endpoint,
        )
    if not deleted:
        _remove_quietly(writer, written, seconds)
        return _fail(
            "juicefs shared data",
            f"read back identical on {reader.name} but deleting {name} there failed",
            _data_fix(topology, reader, "the mount cannot delete"),
            endpoint,
        )
    on = f"on {reader.name}" if reader is not writer else "on the same client (only one client)"
    return CheckResult(
        "juicefs shared data",
        COMPONENT,
        True,
        f"{size} written on {writer.name}, read back identical (sha256) {on}; deleted",
        endpoint=endpoint,
    )


def _read_back_and_delete(host: Host, path: str, expected: str) -> tuple[str, bool]:
    """``(sha256, deleted)``: the sha256 of ``path`` on ``host`` once it equals ``expected`` (or
    the last one seen after VISIBLE_WITHIN seconds: the reader's attribute cache may lag by a
    second), and whether ``host`` then deleted the file. One ssh session for both."""
    tries = int(VISIBLE_WITHIN / 0.1)
    script = (
        'i=0; while :; do h=$(sha256sum "$1" 2>/dev/null | cut -d" " -f1); '
        '[ "$h" = "$2" ] && break; i=$((i + 1)); [ "$i" -ge "$3" ] && break; sleep 0.1; done; '
        'echo "$h"; [ "$h" = "$2" ] && rm -f "$1" && echo deleted; true'
    )
    result = remote.run_shell(
        host,
        f"{_bounded(VISIBLE_WITHIN + 3, script)} sh {shlex.quote(path)} {expected} {tries}",
        timeout=VISIBLE_WITHIN + 8,
        what=f"read {path}",
    )
    if result.returncode == 124:
        return "error: the read gave no answer in time", False
    lines = result.stdout.split()
    return (lines[0] if lines else ""), lines[1:2] == ["deleted"]


def _remove_quietly(host: Host, path: str, seconds: float) -> None:
    """Best effort: remove the verify file ``path`` on ``host`` (a failed check's leftover)."""
    with contextlib.suppress(remote.RemoteError):
        remote.run_shell(
            host,
            _bounded(seconds, f"rm -f {shlex.quote(path)}"),
            timeout=seconds + 2,
            what=f"rm {path}",
        )


# --- 3. the metadata engine lists the volume and every mount's session --------------------------


def parse_status(output: str) -> dict[str, Any]:
    """The JSON document of ``juicefs status`` (``ValueError`` when it is not one)."""
    start = output.find("{")
    if start < 0:
        raise ValueError("no JSON in the output of juicefs status")
    body = json.loads(output[start:])
    if not isinstance(body, dict) or not isinstance(body.get("Setting"), dict):
        raise ValueError("not a juicefs status document (no Setting)")
    return body


def _host_names(host: Host) -> set[str]:
    names = {host.name, host.name.split(".")[0]}
    if remote.is_local(host):
        names |= {socket.gethostname(), socket.gethostname().split(".")[0]}
    return names


def session_of(sessions: Sequence[dict[str, Any]], host: Host, mountpoint: str) -> Any:
    """The session of ``host``'s mount at ``mountpoint``: same mountpoint, and the session's
    HostName is the host's name or its IPAddrs hold the host's address (None when absent)."""
    addresses = {host.address, str(host.var("ansible_host", default=host.name))}
    for session in sessions:
        if str(session.get("MountPoint") or "").rstrip("/") != mountpoint.rstrip("/"):
            continue
        named = str(session.get("HostName") or "") in _host_names(host)
        ips = {str(a) for a in session.get("IPAddrs") or []}
        if named or addresses & ips:
            return session
    return None


def status_problems(
    topology: Topology, body: dict[str, Any], clients: Sequence[Host]
) -> list[tuple[str, str]]:
    """(problem, fix) pairs: a wrong volume name, a client mount without a session."""
    problems = []
    expected = str(_var(clients[0], "juicefs_volume_name"))
    name = str(body["Setting"].get("Name") or "")
    if name != expected:
        problems.append(
            (
                f"the metadata engine holds volume {name or '?'}, not {expected}",
                f"Set juicefs_volume_name to {name} or point juicefs_meta_db at the database "
                f"of {expected} (one Redis database per volume).",
            )
        )
    sessions = [s for s in body.get("Sessions") or [] if isinstance(s, dict)]
    for host in clients:
        for mount in mounts_of(host):
            if session_of(sessions, host, mount.mountpoint) is None:
                problems.append(
                    (
                        f"no session of {host.name}:{mount.mountpoint}",
                        f"The mount on {host.name} is not connected to the volume: systemctl "
                        f"status {mount.unit}; journalctl -u {mount.unit} -n 100.",
                    )
                )
    return problems


def _status_endpoint(topology: Topology) -> str:
    try:
        return meta_url(topology, topology.group(CLIENT)[0])
    except (ValueError, IndexError):
        return "cluster"


def _status_failure(
    topology: Topology,
    runner: Host,
    result: Any,
    *,
    seconds: float,
    env: str,
    url: str,
) -> CheckResult | None:
    """The failed result for a ``juicefs status`` run that did not exit 0 (None when it did)."""
    redis = redis_hint(topology)
    if result.returncode == 124:
        return _fail(
            "juicefs status",
            f"juicefs status on {runner.name} gave no answer in {seconds:g} s",
            f"JuiceFS cannot reach its metadata engine: {redis}.",
            url,
        )
    if result.returncode == 3:
        return _fail(
            "juicefs status",
            f"{runner.name}: {_last_line(result.stderr)}",
            f"Rerun deploy: the juicefs role writes {env} (0600, META_PASSWORD).",
            url,
        )
    if result.returncode != 0:
        return _fail(
            "juicefs status",
            f"juicefs status on {runner.name} exited {result.returncode}: "
            f"{_last_line(result.stderr) or _last_line(result.stdout)}",
            f"The metadata engine refused or is unreachable: {redis}; check META_PASSWORD in "
            f"{env} against redis_password.",
            url,
        )
    return None


@cluster_check("juicefs status", COMPONENT, requires=(CLIENT, REDIS))
def juicefs_status(topology: Topology, ctx: CheckContext) -> CheckResult:
    """``juicefs status`` (run on a client, META_PASSWORD from the mount's 0600 environment
    file) names the expected volume and lists a session for every client mount."""
    clients = topology.group(CLIENT)
    runner = clients[0]
    url = meta_url(topology, runner)
    env = env_file(runner)
    seconds = _step_timeout(ctx, 0.5)
    script = (
        f"[ -r {shlex.quote(env)} ] || {{ echo 'cannot read {env}' >&2; exit 3; }}; "
        f"set -a; . {shlex.quote(env)}; set +a; {PATH_PREFIX}; "
        f"exec timeout -k 1 {seconds:g} juicefs status {shlex.quote(url)}"
    )
    try:
        result = remote.run_shell(runner, script, timeout=seconds + 5, what="juicefs status")
    except remote.RemoteError as exc:
        return _fail("juicefs status", str(exc), _sentence(redis_hint(topology)), url)
    failed = _status_failure(topology, runner, result, seconds=seconds, env=env, url=url)
    if failed is not None:
        return failed
    redis = redis_hint(topology)
    try:
        body = parse_status(result.stdout)
    except ValueError as exc:
        return _fail(
            "juicefs status", f"juicefs status on {runner.name}: {exc}", _sentence(redis), url
        )
    found = status_problems(topology, body, clients)
    if found:
        fixes = list(dict.fromkeys(fix for _, fix in found))
        return _fail("juicefs status", "; ".join(p for p, _ in found), " ".join(fixes), url)
    sessions = len(body.get("Sessions") or [])
    return CheckResult(
        "juicefs status",
        COMPONENT,
        True,
        f"volume {body['Setting'].get('Name')} ({body['Setting'].get('Storage', '?')}), "
        f"{sessions} session(s), every client mount listed",
        endpoint=url,
    )


CHECKS = [juicefs_mount, juicefs_shared_data, juicefs_status]
