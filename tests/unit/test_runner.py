"""The runner drives a real ansible-playbook (local connection) through ansible-runner."""

from __future__ import annotations

import io
import json
import os
import re
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from storagectl.runner import PlaybookRunner, RunnerError, RunResult, _Progress

PLAYBOOK = [
    {
        "name": "Demo play",
        "hosts": "all",
        "gather_facts": False,
        "roles": [{"role": "demo"}],
        "tasks": [
            {
                "name": "Write the marker",
                "ansible.builtin.copy": {"content": "{{ marker_text }}\n", "dest": "{{ marker }}"},
                "when": "inventory_hostname == 'h1'",
                "tags": ["write"],
            },
            {
                "name": "Fail on purpose",
                "ansible.builtin.fail": {"msg": "boom on {{ inventory_hostname }}"},
                "when": "inventory_hostname in (fail_on | default([]))",
            },
            {
                "name": "Skipped by tag",
                "ansible.builtin.debug": {"msg": "tagged"},
                "tags": ["other"],
            },
        ],
    }
]


@dataclass
class Run:
    result: RunResult
    output: str


@dataclass
class Runs:
    project: Path
    artifacts: Path
    marker: Path
    marker_text: str
    success: Run
    failure: Run


def _run(runner_project: Path, artifacts: Path, *, quiet: bool = False, **kwargs: object) -> Run:
    out = io.StringIO()
    runner = PlaybookRunner(
        project_dir=runner_project,
        artifacts_dir=artifacts,
        ansible_config=None,
        rotate_artifacts=1,
        quiet=quiet,
        out=out,
    )
    result = runner.run("play.yml", inventories=[runner_project / "hosts.yml"], **kwargs)  # type: ignore[arg-type]
    return Run(result, out.getvalue())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    project = tmp_path_factory.mktemp("runner")
    (project / "play.yml").write_text(yaml.safe_dump(PLAYBOOK, sort_keys=False))
    role_tasks = project / "roles" / "demo" / "tasks"
    role_tasks.mkdir(parents=True)
    (role_tasks / "main.yml").write_text(
        yaml.safe_dump(
            [{"name": "Say hello", "ansible.builtin.debug": {"msg": "hello"}, "changed_when": True}]
        )
    )
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (project / "hosts.yml").write_text(
        yaml.safe_dump({"all": {"hosts": {"h1": local, "h2": local}}})
    )
    artifacts = project / ".storagectl" / "artifacts"
    marker = project / "marker.txt"
    extra = [f"marker={marker}", "marker_text='hello world'"]
    success = _run(project, artifacts, extra_vars=extra, skip_tags="other")
    marker_text = marker.read_text()
    marker.unlink()
    # A failing run in check mode: nothing may be written, h2 fails.
    failure = _run(
        project,
        artifacts,
        extra_vars=[*extra, '{"fail_on": ["h2"]}'],
        limit="h1,h2",
        check=True,
        diff=True,
    )
    return Runs(project, artifacts, marker, marker_text, success, failure)


def test_successful_run(runs: Runs) -> None:
    result = runs.success.result
    assert result.ok
    assert (result.status, result.rc) == ("successful", 0)
    assert set(result.stats) == {"h1", "h2"}
    assert result.stats["h1"]["changed"] == 2  # role task + marker
    assert result.stats["h2"]["skipped"] == 2
    assert result.failures == []


def test_progress_lines_carry_elapsed_seconds(runs: Runs) -> None:
    lines = runs.success.output.splitlines()
    stamped = [line for line in lines if re.match(r"^\[\s*\d+\.\ds\] ", line)]
    texts = [line.split("] ", 1)[1] for line in stamped]
    assert texts[0] == "PLAY Demo play"
    assert "TASK demo : Say hello" in texts
    assert "TASK Write the marker" in texts
    assert "  h1 changed" in texts
    assert "  h2 skipped" in texts
    assert "TASK Skipped by tag" not in texts  # --skip-tags other
    assert "SUMMARY" in lines
    assert any(
        re.match(r"^\s+h1\s+ok=2 changed=2 failed=0 unreachable=0 skipped=1$", x) for x in lines
    )
    assert "Run successful." in runs.success.output


def test_extra_vars_reach_the_playbook(runs: Runs) -> None:
    assert runs.marker_text == "hello world\n"  # written by the runs, with -e values


def test_check_mode_changes_nothing(runs: Runs) -> None:
    assert not runs.marker.exists()
    command = (runs.failure.result.artifact_dir / "reproduce.sh").read_text()
    assert "--check" in command
    assert "--diff" in command


def test_quiet_prints_nothing() -> None:
    out = io.StringIO()
    progress = _Progress(out, quiet=True, verbosity=0)
    progress({"event": "playbook_on_play_start", "event_data": {"play": "P"}})
    progress({"event": "runner_on_failed", "event_data": {"host": "h", "res": {"msg": "x"}}})
    assert out.getvalue() == ""
    assert progress.failures[0].message == "x"  # failures are still recorded


def test_failed_run_reports_the_failing_task(runs: Runs) -> None:
    result = runs.failure.result
    assert not result.ok
    assert (result.status, result.rc) == ("failed", 2)
    assert result.stats["h2"]["failed"] == 1
    assert [(f.host, f.task, f.message) for f in result.failures] == [
        ("h2", "Fail on purpose", "boom on h2")
    ]
    output = runs.failure.output
    assert "  h2 failed: boom on h2" in output
    assert "FAILED h2 | Fail on purpose: boom on h2" in output
    assert f"Artifacts: {result.artifact_dir}" in output
    assert f"Reproduce: {result.artifact_dir / 'reproduce.sh'}" in output


def test_artifacts_are_kept_rotated_and_reproducible(runs: Runs) -> None:
    artifact_dir = runs.failure.result.artifact_dir
    assert artifact_dir.parent == runs.artifacts
    assert re.fullmatch(r"\d{8}-\d{6}-\d{3}", artifact_dir.name)
    assert (artifact_dir / "stdout").is_file()
    # rotate_artifacts=1 dropped the successful run's artifacts.
    assert [p.name for p in runs.artifacts.iterdir()] == [artifact_dir.name]
    script = artifact_dir / "reproduce.sh"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert f"{Path(sys.executable).parent}/ansible-playbook" in text or "ansible-playbook" in text
    assert str(runs.project / "play.yml") in text
    # The env of the run is never written to the private data dir, nor kept in the artifacts.
    assert not (runs.artifacts.parent / "runner" / "env").exists()
    command = json.loads((artifact_dir / "command").read_text())
    assert "env" not in command
    assert command["command"][0].endswith("ansible-playbook")


def test_envvars_use_this_environment_and_the_project_config(tmp_path: Path) -> None:
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\n")
    env = PlaybookRunner(project_dir=tmp_path, ansible_config=config).envvars()
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert env["ANSIBLE_CONFIG"] == os.environ.get("ANSIBLE_CONFIG", str(config))


def test_host_key_checking_stays_on_unless_configured_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ansible-runner would turn it off: deploy checks host keys as ansible-playbook does."""
    monkeypatch.delenv("ANSIBLE_HOST_KEY_CHECKING", raising=False)
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\nforks = 5\n")
    assert (
        PlaybookRunner(project_dir=tmp_path, ansible_config=config).envvars()[
            "ANSIBLE_HOST_KEY_CHECKING"
        ]
        == "True"
    )
    config.write_text("[defaults]\nhost_key_checking = False\n")
    assert (
        PlaybookRunner(project_dir=tmp_path, ansible_config=config).envvars()[
            "ANSIBLE_HOST_KEY_CHECKING"
        ]
        == "False"
    )
    monkeypatch.setenv("ANSIBLE_HOST_KEY_CHECKING", "false")
    env = PlaybookRunner(project_dir=tmp_path, ansible_config=config).envvars()
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "false"


def test_ansible_variables_pass_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSIBLE_FORKS", "7")
    monkeypatch.setenv("NOT_ANSIBLE", "x")
    env = PlaybookRunner(project_dir=tmp_path, ansible_config=None).envvars()
    assert env["ANSIBLE_FORKS"] == "7"
    assert "NOT_ANSIBLE" not in env


def test_cmdline() -> None:
    assert PlaybookRunner.cmdline(
        tags="a,b", extra_vars=["x=1", "@f.yml"], check=True, diff=True, vault_password_file="v"
    ) == [
        "--extra-vars",
        "x=1",
        "--extra-vars",
        "@f.yml",
        "--tags",
        "a,b",
        "--check",
        "--diff",
        "--vault-password-file",
        "v",
    ]


def test_missing_playbook(tmp_path: Path) -> None:
    with pytest.raises(RunnerError, match="does not exist"):
        PlaybookRunner(project_dir=tmp_path, artifacts_dir=tmp_path / "a").run("absent.yml")


def test_cancel_stops_the_playbook(tmp_path: Path) -> None:
    (tmp_path / "slow.yml").write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Slow play",
                    "hosts": "all",
                    "gather_facts": False,
                    "tasks": [
                        # The module's own process outlives a cancel (as with Ctrl-C on
                        # ansible-playbook), so it must end soon by itself.
                        {
                            "name": "Sleep",
                            "ansible.builtin.command": "sleep 6",
                            "changed_when": False,
                        }
                    ],
                }
            ]
        )
    )
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"h1": local}}}))
    out = io.StringIO()
    runner = PlaybookRunner(
        project_dir=tmp_path, artifacts_dir=tmp_path / "artifacts", ansible_config=None, out=out
    )

    task_started: list[float] = []

    def cancel_when_sleeping(event: Mapping[str, Any]) -> None:
        if event.get("event") == "playbook_on_task_start":
            task_started.append(time.monotonic())
            threading.Timer(0.5, runner.cancel).start()

    result = runner.run(
        "slow.yml", inventories=[tmp_path / "hosts.yml"], event_callback=cancel_when_sleeping
    )
    assert time.monotonic() - task_started[0] < 5  # SIGINT ended the run before the sleep did
    assert result.status == "canceled"
    assert not result.ok
    assert "Run canceled" in out.getvalue()
    time.sleep(0.5)
    leftovers = [
        p.name
        for p in Path("/proc").iterdir()
        if p.name.isdigit()
        and _cmdline(p).startswith(sys.executable.encode())
        and str(tmp_path).encode() in _cmdline(p)
    ]
    assert leftovers == [], "ansible-playbook processes survived the cancel"


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return b""
