"""Running the lab's commands: argument lists only, bounded in time, with progress lines."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from storagectl.lab.errors import LabError

Progress = Callable[[str], None]

HEARTBEAT_SECONDS = 15.0


def run(
    args: Sequence[str], *, check: bool = True, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` and capture its output; with ``check`` a failure becomes a ``LabError``."""
    try:
        result = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise LabError(
            f"`{' '.join(args)}` did not finish within {timeout:.0f} s: "
            "check the host's load and run the command again."
        ) from err
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        last = detail[-1] if detail else f"exit status {result.returncode}"
        raise LabError(f"`{' '.join(args)}` failed ({last}): fix that and run the command again.")
    return result


def succeeds(args: Sequence[str], *, timeout: float = 30.0) -> bool:
    """Whether ``args`` exits 0 (a timeout counts as failure)."""
    try:
        return run(args, check=False, timeout=timeout).returncode == 0
    except LabError:
        return False


def elapsed(start: float) -> str:
    """Seconds since ``start`` (a ``time.monotonic()`` value), formatted for a progress line."""
    return f"{time.monotonic() - start:.1f} s"


@contextmanager
def step(progress: Progress, what: str) -> Iterator[None]:
    """Print ``what`` when a step starts and its wall time when it ends."""
    start = time.monotonic()
    progress(f"==> {what}")
    yield
    progress(f"    {what}: done in {elapsed(start)}")


def last_line(log: Path) -> str:
    """The last non-empty line of ``log`` (shortened), or an empty string."""
    try:
        with log.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 4096))
            tail = handle.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][:120] if lines else ""


def watch(
    procs: Sequence[subprocess.Popen[bytes]],
    *,
    log: Path,
    progress: Progress,
    timeout: float,
) -> None:
    """Wait for ``procs`` (writing to ``log``), printing a heartbeat every ~15 s.

    Kills them all and raises ``LabError`` past ``timeout`` seconds or when any fails.
    """
    start = time.monotonic()
    deadline = start + timeout
    try:
        for _ in range(int(timeout // HEARTBEAT_SECONDS) + 2):
            if all(proc.poll() is not None for proc in procs) or time.monotonic() >= deadline:
                break
            try:
                procs[-1].wait(
                    timeout=min(HEARTBEAT_SECONDS, max(0.1, deadline - time.monotonic()))
                )
            except subprocess.TimeoutExpired:
                progress(f"    ... {elapsed(start)}: {last_line(log)}")
    except BaseException:  # Ctrl-C: never leave a child writing into what the caller removes
        _kill(procs)
        raise
    _finish(procs, log=log, start=start)


def _kill(procs: Sequence[subprocess.Popen[bytes]]) -> bool:
    """Stop those of ``procs`` still running, with their children, and reap them all.

    The processes run in sessions of their own (see ``spawn``), so their process group holds
    their children too (debootstrap's dpkg). Returns whether any was still running.
    """
    running = [proc for proc in procs if proc.poll() is None]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
        try:
            for proc in running:
                proc.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            continue
    for proc in procs:
        proc.wait(timeout=30)
    return bool(running)


def spawn(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start ``args`` in a session of its own, so ``watch`` can stop it and its children."""
    return subprocess.Popen(list(args), start_new_session=True, **kwargs)


def _finish(procs: Sequence[subprocess.Popen[bytes]], *, log: Path, start: float) -> None:
    """Kill what still runs after the wait, then turn any failure into a ``LabError``."""
    if _kill(procs):
        raise LabError(
            f"`{_name(procs)}` was stopped after {elapsed(start)}: see {log}, then run again."
        )
    for proc in procs:
        if proc.returncode != 0:
            raise LabError(
                f"`{_name([proc])}` failed ({last_line(log) or proc.returncode}): "
                f"see {log}, then run the command again."
            )


def _name(procs: Sequence[subprocess.Popen[bytes]]) -> str:
    """A short display name for a pipeline of processes."""
    return " | ".join(" ".join(str(a) for a in list(p.args)[:2]) for p in procs)  # type: ignore[arg-type]
