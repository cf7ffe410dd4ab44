"""Run a shell command on an inventory host the way Ansible reaches it.

Checks and benchmarks that must look at a host from the inside (a FUSE mount, ``systemctl``,
``juicefs status``) use this: ``ssh`` with the host's ``ansible_host``, ``ansible_port``,
``ansible_user``, ``ansible_ssh_private_key_file``, ``ansible_ssh_common_args`` and
``ansible_ssh_extra_args``; a host with ``ansible_connection: local`` runs the command here, with
``sh -c``. A non-root ``ansible_user`` with ``ansible_become`` runs it through ``sudo -n``.

Secrets never go on a command line (visible in ``ps`` on both ends): hand them over in ``input``
(the remote command's stdin) or let the remote command read them from a file on the host.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from storagectl.inventory import Host

__all__ = ["SSH_OPTIONS", "RemoteError", "is_local", "run", "run_shell", "shell_argv", "ssh_argv"]

#: Options every ssh call gets, before the inventory's ``ansible_ssh_common_args``.
SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR")


class RemoteError(Exception):
    """A command on a host could not run, gave no answer in time, or (when checked) failed."""


def is_local(host: Host) -> bool:
    """Whether Ansible reaches ``host`` with the ``local`` connection (no ssh)."""
    return str(host.var("ansible_connection", default="") or "") == "local"


def _become(host: Host, script: str) -> str:
    user = str(host.var("ansible_user", default="") or "")
    if user and user != "root" and bool(host.var("ansible_become", default=False)):
        return f"sudo -n sh -c {shlex.quote(script)}"
    return script


def shell_argv(host: Host, script: str) -> list[str]:
    """The command line running the shell ``script`` on ``host`` (ssh, or ``sh -c`` locally)."""
    script = _become(host, script)
    if is_local(host):
        return ["sh", "-c", script]
    address = str(host.var("ansible_host", default=host.name))
    user = host.var("ansible_user", default=None)
    port = host.var("ansible_port", default=None)
    key = host.var("ansible_ssh_private_key_file", default=None)
    argv = ["ssh", *SSH_OPTIONS]
    if key:
        argv += ["-i", str(Path(str(key)).expanduser())]
    if port:
        argv += ["-p", str(port)]
    for name in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        argv += shlex.split(str(host.var(name, default="") or ""))
    argv.append(f"{user}@{address}" if user else address)
    argv.append(script)  # ssh hands the remote shell one string
    return argv


def ssh_argv(host: Host, command: Sequence[str]) -> list[str]:
    """The command line running ``command`` (an argv, quoted for the remote shell) on ``host``."""
    return shell_argv(host, shlex.join(command))


def run_shell(
    host: Host,
    script: str,
    *,
    timeout: float = 60.0,
    check: bool = False,
    input: str | None = None,
    what: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run the shell ``script`` on ``host``; raise RemoteError when it gives no answer within
    ``timeout`` seconds or, with ``check``, exits non-zero. ``what`` names it in messages
    (default: the script itself)."""
    label = what or script
    try:
        process = subprocess.Popen(
            shell_argv(host, script),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # so a timeout can kill everything it started
        )
    except OSError as exc:
        raise RemoteError(f"{host.name}: cannot run `{label}`: {exc.strerror or exc}") from None
    try:
        stdout, stderr = process.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        # A child stuck in the kernel (a hung FUSE mount) may hold the pipes open: do not wait
        # for it beyond a moment.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.communicate(timeout=1)
        raise RemoteError(f"{host.name}: `{label}` gave no answer in {timeout:g} s") from None
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if check and result.returncode != 0:
        why = (result.stderr or result.stdout).strip().splitlines()
        raise RemoteError(
            f"{host.name}: `{label}` exited {result.returncode}{': ' + why[-1] if why else ''}"
        )
    return result


def run(
    host: Host, *command: str, timeout: float = 60.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` (an argv) on ``host``; see :func:`run_shell`."""
    return run_shell(host, shlex.join(command), timeout=timeout, check=check)
