"""The only door to ansible-runner: run a playbook, show live progress, keep the artifacts.

Every Ansible run of storagectl goes through :class:`PlaybookRunner`:

* artifacts of each run land in ``ARTIFACTS_DIR/<ident>`` (``ident`` is a timestamp), the
  oldest are rotated away; ``reproduce.sh`` beside them re-runs the same command by hand;
* ansible-playbook comes from this Python environment (its ``bin`` is put first on PATH) and
  reads the project's ``ansible.cfg``; the caller's ``ANSIBLE_*`` variables pass through;
* ansible-runner prints nothing itself: an ``event_handler`` prints one line per play, per task
  and per host result, each prefixed with the seconds elapsed, and a per-host summary at the
  end; on failure, the failing tasks with their messages and the artifact directory;
* Ctrl-C cancels the run through ``cancel_callback`` (the playbook is stopped, not orphaned).
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import ansible_runner

from storagectl.paths import ANSIBLE_CFG, ARTIFACTS_DIR, PROJECT_ROOT, SITE_PLAYBOOK

__all__ = ["PlaybookRunner", "RunResult", "RunnerError", "TaskFailure"]

STAT_KEYS = ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")
# ansible-runner's stats names -> the names printed by ansible-playbook's recap.
_RUNNER_STATS = {
    "ok": "ok",
    "changed": "changed",
    "failures": "failed",
    "dark": "unreachable",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}
DEFAULT_ROTATE_ARTIFACTS = 30
# Seconds ansible-playbook gets to stop after SIGINT before ansible-runner SIGKILLs it.
CANCEL_GRACE_SECONDS = 10.0
# How often ansible-runner polls cancel_callback (its default, 5 s, makes Ctrl-C feel stuck).
POLL_SECONDS = 0.5


class RunnerError(Exception):
    """ansible-playbook could not be started (bad arguments, missing executable...)."""


@dataclass(frozen=True)
class TaskFailure:
    """A task that failed (or a host that became unreachable) during a run."""

    host: str
    task: str
    message: str
    unreachable: bool = False


@dataclass
class RunResult:
    """The outcome of one run: ansible-runner's ``status`` (successful, failed, timeout,
    canceled), the ansible-playbook ``rc``, per-host ``stats`` and where the artifacts are."""

    status: str
    rc: int
    stats: dict[str, dict[str, int]]
    artifact_dir: Path
    failures: list[TaskFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the playbook ran to completion without a failed task or unreachable host."""
        return self.status == "successful" and self.rc == 0


def _host_stats(raw: Mapping[str, Any] | None) -> dict[str, dict[str, int]]:
    """ansible-runner's ``stats`` ({counter: {host: n}}) -> {host: {counter: n}}."""
    per_host: dict[str, dict[str, int]] = {}
    for runner_key, name in _RUNNER_STATS.items():
        for host, count in ((raw or {}).get(runner_key) or {}).items():
            per_host.setdefault(host, dict.fromkeys(STAT_KEYS, 0))[name] = int(count)
    for host in (raw or {}).get("processed") or {}:
        per_host.setdefault(host, dict.fromkeys(STAT_KEYS, 0))
    return dict(sorted(per_host.items()))


def _result_message(res: Mapping[str, Any]) -> str:
    """The most useful one-line explanation in a task result."""
    for key in ("msg", "censored", "stderr", "reason", "module_stderr", "stdout"):
        value = res.get(key)
        if value:
            text = str(value).strip()
            if text:
                return text.splitlines()[0] if key != "msg" else " ".join(text.split())
    results = res.get("results")
    if isinstance(results, list):
        for item in results:
            if isinstance(item, Mapping) and item.get("failed"):
                return _result_message(item)
    return "failed (no message; see the artifacts)"


def _ansible_children() -> list[int]:
    """PIDs of this process's ansible-playbook children (read from /proc; Linux only)."""
    me = os.getpid()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # Fields after the parenthesised command name: state, ppid, ...
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != me:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError, IndexError):
            continue
        if b"ansible-playbook" in cmdline:
            found.append(int(entry.name))
    return found


class _Progress:
    """Turns ansible-runner events into progress lines and records failures."""

    def __init__(self, out: TextIO, *, quiet: bool, verbosity: int) -> None:
        self.out = out
        self.quiet = quiet
        self.verbosity = verbosity
        self.start = time.monotonic()
        self.failures: list[TaskFailure] = []
        self.current_task = ""

    def emit(self, text: str) -> None:
        if self.quiet:
            return
        elapsed = time.monotonic() - self.start
        self.out.write(f"[{elapsed:6.1f}s] {text}\n")
        self.out.flush()

    @staticmethod
    def _task_label(data: Mapping[str, Any]) -> str:
        task = str(data.get("task") or data.get("name") or "").strip()
        role = str(data.get("role") or "").strip()
        return f"{role} : {task}" if role and not task.startswith(f"{role} :") else task

    def __call__(self, event: Mapping[str, Any]) -> bool:
        kind = str(event.get("event", ""))
        data: Mapping[str, Any] = event.get("event_data") or {}
        if kind == "playbook_on_play_start":
            self.emit(f"PLAY {data.get('play') or data.get('name') or data.get('play_pattern')}")
        elif kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            self.current_task = self._task_label(data)
            prefix = "HANDLER" if kind == "playbook_on_handler_task_start" else "TASK"
            self.emit(f"{prefix} {self.current_task}")
        elif kind == "playbook_on_no_hosts_matched":
            self.emit("  no hosts matched")
        elif kind.startswith("runner_on_") and kind != "runner_on_start":
            self._host_result(kind.removeprefix("runner_on_"), data, event)
        return True  # keep every event in the artifacts

    def _host_result(self, outcome: str, data: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        host = str(data.get("host") or data.get("remote_addr") or "?")
        res: Mapping[str, Any] = data.get("res") or {}
        task = self._task_label(data) or self.current_task
        if outcome == "ok":
            word = "changed" if res.get("changed") else "ok"
        elif outcome == "failed" and data.get("ignore_errors"):
            word = "failed (ignored)"
        elif outcome in ("failed", "unreachable", "skipped"):
            word = outcome
        else:  # async_poll, async_ok, ... are intermediate
            return
        line = f"  {host} {word}"
        if word in ("failed", "unreachable"):
            message = _result_message(res)
            self.failures.append(
                TaskFailure(host, task, message, unreachable=word == "unreachable")
            )
            line = f"{line}: {message}"
        self.emit(line)
        if self.verbosity and not self.quiet and event.get("stdout"):
            for text in str(event["stdout"]).splitlines():
                self.out.write(f"           {text}\n")


def _scrub_command_artifact(artifact_dir: Path) -> None:
    """Drop the environment from ansible-runner's ``command`` artifact.

    ansible-runner records the whole process environment there: the operator's shell variables,
    tokens included. The command line and working directory stay (``reproduce.sh`` has them too).
    """
    path = artifact_dir / "command"
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(document, dict) and "env" in document:
        document.pop("env")
        path.write_text(json.dumps(document))


class PlaybookRunner:
    """Runs playbooks through ansible-runner with the project's configuration.

    ``out`` receives progress and summaries (stdout by default); ``quiet`` silences both, for
    callers that print machine-readable output themselves.
    """

    def __init__(
        self,
        *,
        project_dir: str | Path = PROJECT_ROOT,
        artifacts_dir: str | Path = ARTIFACTS_DIR,
        ansible_config: str | Path | None = ANSIBLE_CFG,
        rotate_artifacts: int = DEFAULT_ROTATE_ARTIFACTS,
        quiet: bool = False,
        out: TextIO | None = None,
    ) -> None:
        self.project_dir = Path(project_dir)
        self.artifacts_dir = Path(artifacts_dir)
        self.ansible_config = Path(ansible_config) if ansible_config else None
        self.rotate_artifacts = rotate_artifacts
        self.quiet = quiet
        self.out = out or sys.stdout
        self._cancel = threading.Event()
        self._kill_after: float | None = None

    # --- environment and command ---------------------------------------------------------

    def envvars(self) -> dict[str, str]:
        """Environment of ansible-playbook: the project's ansible.cfg, this environment's bin
        first on PATH, and every ``ANSIBLE_*`` variable of the caller (which wins)."""
        env: dict[str, str] = {}
        if self.ansible_config and self.ansible_config.is_file():
            env["ANSIBLE_CONFIG"] = str(self.ansible_config)
        env.update({k: v for k, v in os.environ.items() if k.startswith("ANSIBLE_")})
        # ansible-runner turns SSH host-key checking off unless told: tell it what
        # ansible-playbook would do (the caller's variable, else ansible.cfg, else on).
        env.setdefault("ANSIBLE_HOST_KEY_CHECKING", str(self._host_key_checking()))
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join(p for p in (bin_dir, os.environ.get("PATH", "")) if p)
        return env

    def _host_key_checking(self) -> bool:
        """``host_key_checking`` of the ansible.cfg in use (Ansible's default: on)."""
        config = configparser.ConfigParser()
        if self.ansible_config and self.ansible_config.is_file():
            config.read(self.ansible_config)
        return config.getboolean("defaults", "host_key_checking", fallback=True)

    @staticmethod
    def cmdline(
        *,
        tags: str | None = None,
        skip_tags: str | None = None,
        extra_vars: Sequence[str] = (),
        check: bool = False,
        diff: bool = False,
        vault_password_file: str | Path | None = None,
    ) -> list[str]:
        """The ansible-playbook options ansible-runner has no parameter for."""
        args: list[str] = []
        for value in extra_vars:
            args += ["--extra-vars", value]
        if tags:
            args += ["--tags", tags]
        if skip_tags:
            args += ["--skip-tags", skip_tags]
        if check:
            args.append("--check")
        if diff:
            args.append("--diff")
        if vault_password_file:
            args += ["--vault-password-file", str(vault_password_file)]
        return args

    @staticmethod
    def new_ident() -> str:
        """A sortable timestamp naming the run's artifact directory."""
        now = datetime.now().astimezone()
        return f"{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}"

    # --- Ctrl-C --------------------------------------------------------------------------

    def cancel(self) -> None:
        """Ask the running playbook to stop (safe from any thread or a signal handler)."""
        self._cancel.set()

    def _cancel_requested(self) -> bool:
        """ansible-runner's cancel_callback: interrupt first, kill only after a grace period.

        ansible-runner cancels by SIGKILLing the process group of ansible-playbook, but
        ansible-core 2.19 workers call setsid() and would survive it, still running their
        task. So ansible-playbook first gets SIGINT (what Ctrl-C in a terminal sends), which
        makes it stop its workers and exit; the SIGKILL follows only if it has not exited
        within CANCEL_GRACE_SECONDS.
        """
        if not self._cancel.is_set():
            return False
        now = time.monotonic()
        if self._kill_after is None:
            self._kill_after = now + CANCEL_GRACE_SECONDS
            for pid in _ansible_children():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGINT)
        return now >= self._kill_after

    @contextmanager
    def _sigint_cancels(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            if self._cancel.is_set():
                self._kill_after = 0.0  # a second Ctrl-C: do not wait for a clean stop
                return
            if not self.quiet:
                self.out.write("\nInterrupted: stopping ansible-playbook (Ctrl-C again to kill)\n")
                self.out.flush()
            self.cancel()

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    # --- the run -------------------------------------------------------------------------

    def run(
        self,
        playbook: str | Path = SITE_PLAYBOOK,
        *,
        inventories: Sequence[str | Path] = (),
        limit: str | None = None,
        tags: str | None = None,
        skip_tags: str | None = None,
        extra_vars: Sequence[str] = (),
        check: bool = False,
        diff: bool = False,
        verbosity: int = 0,
        vault_password_file: str | Path | None = None,
        forks: int | None = None,
        event_callback: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> RunResult:
        """Run ``playbook`` and return its result; raises :class:`RunnerError` if it cannot
        start. ``event_callback`` also receives every raw ansible-runner event."""
        playbook_path = Path(playbook)
        if not playbook_path.is_absolute():
            playbook_path = self.project_dir / playbook_path
        if not playbook_path.is_file():
            raise RunnerError(f"playbook {playbook_path} does not exist")
        self._cancel.clear()
        self._kill_after = None
        progress = _Progress(self.out, quiet=self.quiet, verbosity=verbosity)
        ident = self.new_ident()
        args = self.cmdline(
            tags=tags,
            skip_tags=skip_tags,
            extra_vars=extra_vars,
            check=check,
            diff=diff,
            vault_password_file=vault_password_file,
        )

        def on_event(event: Mapping[str, Any]) -> bool:
            if event_callback is not None:
                event_callback(event)
            return progress(event)

        private_data_dir = self.artifacts_dir.parent / "runner"
        private_data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {
            "private_data_dir": str(private_data_dir),
            "artifact_dir": str(self.artifacts_dir),
            "project_dir": str(self.project_dir),
            "ident": ident,
            "rotate_artifacts": self.rotate_artifacts,
            "playbook": str(playbook_path),
            "inventory": [str(Path(i).expanduser().resolve()) for i in inventories] or None,
            "envvars": self.envvars(),
            "cmdline": shlex.join(args) if args else None,
            "limit": limit or None,
            "verbosity": verbosity or None,
            "forks": forks,
            "quiet": True,
            "suppress_env_files": True,  # never write the env (vault file, secrets) to disk
            "fact_cache_type": "jsonfile",
            "event_handler": on_event,
            "cancel_callback": self._cancel_requested,
            "settings": {"pexpect_timeout": POLL_SECONDS},
        }
        try:
            with self._sigint_cancels():
                runner = ansible_runner.run(**{k: v for k, v in kwargs.items() if v is not None})
        except Exception as exc:  # ansible-runner raises several unrelated types
            raise RunnerError(f"cannot run ansible-playbook: {exc}") from exc

        artifact_dir = Path(runner.config.artifact_dir)
        status = str(runner.status)
        if self._cancel.is_set() and status != "successful":
            status = "canceled"  # ansible-playbook exited on our SIGINT before any SIGKILL
        result = RunResult(
            status=status,
            rc=int(runner.rc if runner.rc is not None else -1),
            stats=_host_stats(runner.stats),
            artifact_dir=artifact_dir,
            failures=progress.failures,
        )
        _scrub_command_artifact(artifact_dir)
        self._write_reproduce(artifact_dir, list(getattr(runner.config, "command", []) or []))
        if not self.quiet:
            self.print_summary(result)
        return result

    def _write_reproduce(self, artifact_dir: Path, command: list[str]) -> None:
        """``reproduce.sh``: the same ansible-playbook command, runnable by hand (mode 0700)."""
        if not command or not artifact_dir.is_dir():
            return
        env = self.envvars()
        lines = [
            "#!/bin/sh",
            "# Re-run this storagectl run by hand: same playbook, inventory and options.",
            f"cd {shlex.quote(str(self.project_dir))} || exit 1",
            f"PATH={shlex.quote(env['PATH'])}; export PATH",
        ]
        if "ANSIBLE_CONFIG" in env:
            lines.append(
                f"ANSIBLE_CONFIG={shlex.quote(env['ANSIBLE_CONFIG'])}; export ANSIBLE_CONFIG"
            )
        lines.append(f"exec {shlex.join(command)}")
        script = artifact_dir / "reproduce.sh"
        script.write_text("\n".join(lines) + "\n", encoding="utf-8")
        script.chmod(0o700)

    def print_summary(self, result: RunResult) -> None:
        """The per-host recap, then, on failure, what failed and where the artifacts are."""
        out = self.out
        if result.stats:
            width = max(len(h) for h in result.stats)
            out.write("\nSUMMARY\n")
            for host, counts in result.stats.items():
                cells = " ".join(f"{k}={counts[k]}" for k in STAT_KEYS[:5])
                out.write(f"  {host.ljust(width)}  {cells}\n")
        if result.ok:
            out.write(f"\nRun successful. Artifacts: {result.artifact_dir}\n")
        else:
            out.write(f"\nRun {result.status} (ansible-playbook rc={result.rc}).\n")
            for failure in result.failures:
                what = "UNREACHABLE" if failure.unreachable else "FAILED"
                out.write(f"  {what} {failure.host} | {failure.task}: {failure.message}\n")
            out.write(f"Artifacts: {result.artifact_dir}\n")
            reproduce = result.artifact_dir / "reproduce.sh"
            if reproduce.is_file():
                out.write(f"Reproduce: {reproduce}\n")
        out.flush()
