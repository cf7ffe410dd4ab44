"""The lab's machines: podman containers booting systemd, reachable over SSH."""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storagectl.lab.errors import LabError
from storagectl.lab.network import LABEL, NETWORK
from storagectl.lab.proc import HEARTBEAT_SECONDS, Progress, elapsed, run
from storagectl.lab.topology import MachineSpec

RUNTIME = ["podman", "--runtime", "runc"]
LABEL_PREFIX = "storagectl.lab."
#: Limits each machine gets (podman needs them explicit), capped at what the host allows.
ULIMITS: dict[str, int] = {"nofile": 65536, "nproc": 65536}
RLIMITS: dict[str, int] = {"nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC}
FUSE = Path("/dev/fuse")
PID_MAX = Path("/proc/sys/kernel/pid_max")
BOOT_TIMEOUT = 90.0
POLL_SECONDS = 1.0
READY_STATES = ("running", "degraded")
SSH_OPTIONS = (
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "BatchMode=yes",
    "-o", "ConnectTimeout=5",
    "-o", "LogLevel=ERROR",
)  # fmt: skip


@dataclass(frozen=True)
class Container:
    """A lab container as podman reports it."""

    name: str
    state: str  # podman's: running, exited, created, ...
    labels: dict[str, str]

    @property
    def machine(self) -> str:
        """The machine (host) name: the container name without its ``storagectl-`` prefix."""
        return self.name.removeprefix("storagectl-")

    @property
    def running(self) -> bool:
        """Whether the container runs."""
        return self.state == "running"


def containers() -> list[Container]:
    """Every container labelled as the lab's, running or not."""
    out = run(["podman", "ps", "-a", "--filter", f"label={LABEL}", "--format", "json"]).stdout
    return [_container(item) for item in json.loads(out or "[]")]


def _container(item: dict[str, Any]) -> Container:
    """A ``Container`` from one entry of ``podman ps --format json``."""
    names = item.get("Names") or [item.get("Id", "?")[:12]]
    return Container(
        name=str(names[0]), state=str(item.get("State", "")), labels=item.get("Labels") or {}
    )


def run_command(
    spec: MachineSpec,
    *,
    image: str,
    public_key: Path,
    labels: dict[str, str],
    peers: list[MachineSpec],
) -> list[str]:
    """The ``podman run`` command line that creates and boots ``spec``'s container."""
    cmd = [*RUNTIME, "run", "-d", "--privileged", "--systemd=always"]
    for name, value in ulimits().items():
        cmd += ["--ulimit", f"{name}={value}:{value}"]
    cmd += ["--network", NETWORK, "--ip", spec.address]
    cmd += ["--hostname", spec.name, "--name", spec.container, "--label", LABEL]
    for key, value in {**labels, "address": spec.address}.items():
        cmd += ["--label", f"{LABEL_PREFIX}{key}={value}"]
    cmd += ["-v", f"{public_key.resolve()}:/root/.ssh/authorized_keys:ro"]
    if FUSE.exists():
        cmd += ["-v", f"{FUSE}:{FUSE}"]
    for peer in peers:
        if peer.name != spec.name:
            cmd += ["--add-host", f"{peer.name}:{peer.address}"]
    return [*cmd, image]


def ulimits() -> dict[str, int]:
    """``ULIMITS``, each capped at what a container can get on this host.

    A container cannot get more than its creator's hard limit unless the creator holds
    CAP_SYS_RESOURCE, so try to raise ours first and settle for what the host allows; podman
    also lowers its own process limit to ``kernel.pid_max``.
    """
    limits = {}
    for name, wanted in ULIMITS.items():
        kind = RLIMITS[name]
        soft, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY and hard < wanted:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(kind, (soft, wanted))
            hard = resource.getrlimit(kind)[1]
        cap = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if name == "nproc":
            cap = min(cap, pid_max())
        limits[name] = cap
    return limits


def pid_max() -> int:
    """The kernel's ``pid_max`` (the most processes a container can have)."""
    try:
        return int(PID_MAX.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return ULIMITS["nproc"]


def start_machines(
    specs: list[MachineSpec],
    *,
    image: str,
    public_key: Path,
    labels: dict[str, str],
    progress: Progress,
) -> None:
    """Create missing containers and start stopped ones; leave running ones alone."""
    existing = {c.name: c for c in containers()}
    for spec in specs:
        found = existing.get(spec.container)
        if found is None:
            create_machine(spec, image=image, public_key=public_key, labels=labels, peers=specs)
            progress(f"    {spec.name} ({spec.address}): created")
        elif not found.running:
            run([*RUNTIME, "start", spec.container])
            progress(f"    {spec.name} ({spec.address}): started (was {found.state})")
        else:
            progress(f"    {spec.name} ({spec.address}): running")


def create_machine(
    spec: MachineSpec,
    *,
    image: str,
    public_key: Path,
    labels: dict[str, str],
    peers: list[MachineSpec],
) -> None:
    """``podman run`` the machine; if that fails, remove the container it may have left."""
    try:
        run(run_command(spec, image=image, public_key=public_key, labels=labels, peers=peers))
    except LabError:
        run(["podman", "rm", "--force", "--ignore", spec.container], check=False)
        raise


def remove_containers(progress: Progress) -> list[str]:
    """Remove every lab container (stopping it first); return their names."""
    names = [c.name for c in containers()]
    if names:
        run(["podman", "rm", "--force", "--time", "10", *names], timeout=300)
        for name in names:
            progress(f"    removed container {name}")
    return names


def system_state(spec: MachineSpec) -> str:
    """What ``systemctl is-system-running`` answers inside the machine."""
    result = probe(["podman", "exec", spec.container, "systemctl", "is-system-running"])
    if result is None:
        return "no answer within 20 s"
    return result.stdout.strip() or f"unreachable ({result.stderr.strip()[:80]})"


def failed_units(spec: MachineSpec) -> list[str]:
    """The units systemd reports as failed inside the machine."""
    result = probe(
        ["podman", "exec", spec.container, "systemctl", "--failed", "--plain", "--no-legend"]
    )
    lines = result.stdout.splitlines() if result else []
    return [line.split()[0] for line in lines if line.strip()]


def probe(args: list[str], timeout: float = 20.0) -> subprocess.CompletedProcess[str] | None:
    """Run a readiness probe; None when it did not answer within ``timeout``."""
    try:
        return run(args, check=False, timeout=timeout)
    except LabError:
        return None


def host_keys(spec: MachineSpec) -> list[str]:
    """The machine's SSH host public keys (``TYPE BASE64``), read inside it through podman."""
    result = run(
        ["podman", "exec", spec.container, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"],
        timeout=30,
    )
    keys = [" ".join(line.split()[:2]) for line in result.stdout.splitlines() if line.strip()]
    if not keys:
        raise LabError(f"{spec.name}: no SSH host key in /etc/ssh of {spec.container}")
    return keys


def known_hosts(specs: list[MachineSpec]) -> str:
    """A known_hosts file for the machines: each address with each of its host keys."""
    return "".join(f"{spec.address} {key}\n" for spec in specs for key in host_keys(spec))


def ssh_command(key: Path, address: str, *command: str) -> list[str]:
    """An ssh command line that runs ``command`` as root on ``address`` with the lab key."""
    return ["ssh", "-i", str(key), *SSH_OPTIONS, f"root@{address}", *command]


def ssh_works(key: Path, address: str) -> bool:
    """Whether SSH with the lab key runs ``true`` on ``address``."""
    result = probe(ssh_command(key, address, "true"), timeout=15)
    return result is not None and result.returncode == 0


def wait_ready(
    specs: list[MachineSpec], *, key: Path, progress: Progress, timeout: float = BOOT_TIMEOUT
) -> None:
    """Wait (bounded) until every machine has booted and accepts the key over SSH."""
    start = time.monotonic()
    pending = {spec.name: spec for spec in specs}
    booted: set[str] = set()
    last: dict[str, str] = {}
    beat = start
    for _ in range(int(timeout / POLL_SECONDS) + 1):
        for spec in list(pending.values()):
            if _ready(spec, key=key, booted=booted, last=last, progress=progress, start=start):
                del pending[spec.name]
        if not pending or time.monotonic() - start > timeout:
            break
        if time.monotonic() - beat >= HEARTBEAT_SECONDS:
            beat = time.monotonic()
            waiting = ", ".join(f"{name}: {last.get(name, '?')}" for name in pending)
            progress(f"    ... {elapsed(start)}: waiting for {waiting}")
        time.sleep(POLL_SECONDS)
    if pending:
        states = ", ".join(f"{name}: {last.get(name, '?')}" for name in pending)
        raise LabError(
            f"Machines not ready after {elapsed(start)} ({states}): see `podman logs "
            f"storagectl-{next(iter(pending))}`, then run `storagectl lab up` again."
        )


def _ready(
    spec: MachineSpec,
    *,
    key: Path,
    booted: set[str],
    last: dict[str, str],
    progress: Progress,
    start: float,
) -> bool:
    """One readiness probe of ``spec``: systemd finished booting, then SSH answers."""
    if spec.name not in booted:
        state = system_state(spec)
        last[spec.name] = state
        if state not in READY_STATES:
            return False
        booted.add(spec.name)
        detail = ""
        if state == "degraded":
            detail = f" (failed units: {', '.join(failed_units(spec)) or 'none listed'})"
        progress(f"    {spec.name}: systemd {state} after {elapsed(start)}{detail}")
    if not ssh_works(key, spec.address):
        last[spec.name] = "booted, ssh not answering yet"
        return False
    progress(f"    {spec.name}: ssh ok after {elapsed(start)}")
    return True
