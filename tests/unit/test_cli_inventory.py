"""`storagectl inventory check`, and `storagectl deploy` refusing a bad inventory before Ansible.

The inventories are loaded against the real project (its group_vars and role defaults), as the
command does; no host is contacted and no playbook runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from storagectl import cli, runner
from storagectl.exitcodes import RC

SECRET = "cli-test-secret-never-shown"
KEYS = {"seaweedfs_s3_access_key": "CLITESTAK01", "seaweedfs_s3_secret_key": SECRET}


@pytest.fixture(autouse=True)
def no_lab_inventory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point the default inventory somewhere absent, whatever the lab is doing meanwhile."""
    absent = tmp_path / "no-lab-inventory"
    monkeypatch.setattr(cli, "LAB_INVENTORY", absent)
    return absent


def _inventory(
    tmp_path: Path, racks: tuple[str, ...] = ("rack1", "rack2", "rack1"), **extra: Any
) -> Path:
    """Storage hosts s1.. (master, volume, filer) on ``racks``, plus an edge S3 gateway."""
    storage = {f"s{i}": {"seaweedfs_rack": rack} for i, rack in enumerate(racks, start=1)}
    document = {
        "all": {
            "vars": {**KEYS, **extra},
            "hosts": {**storage, "edge": {}},
            "children": {
                "seaweedfs_master": {"hosts": dict.fromkeys(storage)},
                "seaweedfs_volume": {"hosts": dict.fromkeys(storage)},
                "seaweedfs_filer": {"hosts": dict.fromkeys(storage)},
                "seaweedfs_s3": {"hosts": {"edge": None}},
            },
        }
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(document))
    return path


class _NoRunner:
    """Stands in for PlaybookRunner: deploy must not get as far as starting Ansible."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("deploy started Ansible with an invalid inventory")


def test_good_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["inventory", "check", "-i", str(_inventory(tmp_path))]) == RC.OK
    captured = capsys.readouterr()
    assert captured.out == (
        "inventory OK: 4 hosts (seaweedfs_master 3, seaweedfs_volume 3, seaweedfs_filer 3, "
        "seaweedfs_s3 1)\n"
        # Two servers of 100 slots on one rack hold 100 pairs: 16 growth batches of 6 for 001.
        "volume slots: 16 collections (the default one and each S3 bucket) can grow once at "
        "placement 001\n"
    )
    assert captured.err == ""


def test_problems_are_printed_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = _inventory(tmp_path, racks=("rack1", "rack2"), seaweedfs_s3_access_key="x")
    assert cli.main(["inventory", "check", "-i", str(inventory)]) == RC.INVALID_INVENTORY
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[seaweedfs_master]: group seaweedfs_master has 2 hosts")
    assert lines[1].startswith('seaweedfs_default_replica_placement: "001" keeps 1 copy')
    assert lines[2].startswith("edge: seaweedfs_s3_access_key: is shorter than 3 characters.")
    assert all(". Fix: " in line for line in lines[:3])
    assert lines[3:] == ["3 problems: fix the inventory before deploying"]


def test_extra_vars_are_applied(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = str(_inventory(tmp_path, racks=("rack1",) * 3))
    assert cli.main(["inventory", "check", "-i", inventory]) == RC.OK
    argv = ["inventory", "check", "-i", inventory, "-e", "seaweedfs_default_replica_placement=010"]
    assert cli.main(argv) == RC.INVALID_INVENTORY
    assert "racks: dc1/rack1 = [s1, s2, s3]" in capsys.readouterr().out


def test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _inventory(tmp_path)
    assert cli.main(["inventory", "check", "-i", str(good), "--format", "json"]) == RC.OK
    assert json.loads(capsys.readouterr().out) == {
        "ok": True,
        "problems": [],
        "collections": {"placement": "001", "growable": 16},
    }

    bad = _inventory(tmp_path, seaweedfs_s3_secret_key="")
    argv = ["inventory", "check", "-i", str(bad), "--format", "json"]
    assert cli.main(argv) == RC.INVALID_INVENTORY
    document = json.loads(capsys.readouterr().out)  # stdout is exactly one JSON document
    assert document["ok"] is False
    assert document["problems"] == [
        {
            "host": "edge",
            "variable": "seaweedfs_s3_secret_key",
            "message": "is not set",
            "fix": document["problems"][0]["fix"],
        }
    ]
    assert "Ansible Vault" in document["problems"][0]["fix"]


def test_secrets_never_appear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runner, "PlaybookRunner", _NoRunner)
    inventory = str(_inventory(tmp_path, racks=("rack1", "rack2")))  # two masters: a problem
    short = ["-e", "seaweedfs_s3_secret_key=Zq9#x"]
    for argv in (
        ["inventory", "check", "-i", inventory],
        ["inventory", "check", "-i", inventory, "--format", "json"],
        ["deploy", "-i", inventory],
    ):
        assert cli.main(argv) == RC.INVALID_INVENTORY
        assert cli.main([*argv, *short]) == RC.INVALID_INVENTORY
    captured = capsys.readouterr()
    assert "seaweedfs_s3_secret_key: is shorter than 8 characters" in captured.out
    assert "seaweedfs_s3_secret_key: is shorter than 8 characters" in captured.err
    for value in (SECRET, KEYS["seaweedfs_s3_access_key"], "Zq9#x"):
        assert value not in captured.out + captured.err


def test_unloadable_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "absent")
    assert cli.main(["inventory", "check", "-i", missing]) == RC.INVALID_INVENTORY
    assert capsys.readouterr().err == f"storagectl: error: inventory {missing} does not exist\n"
    argv = ["inventory", "check", "-i", missing, "--format", "json"]
    assert cli.main(argv) == RC.INVALID_INVENTORY
    document = json.loads(capsys.readouterr().out)
    assert document == {
        "ok": False,
        "error": f"inventory {missing} does not exist",
        "problems": [],
    }


@pytest.mark.parametrize(
    "argv",
    [["inventory"], ["inventory", "check"], ["inventory", "check", "--format", "xml"]],
)
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == RC.USAGE
    assert "Traceback" not in capsys.readouterr().err


def test_check_shares_the_ansible_arguments() -> None:
    args = cli.build_parser().parse_args(
        ["inventory", "check", "-i", "a", "-i", "b", "-e", "x=1", "--vault-password-file", "pw"]
    )
    assert (args.inventory, args.extra_vars, args.vault_password_file) == (
        ["a", "b"],
        ["x=1"],
        "pw",
    )
    assert (args.format, args.handler) == ("text", cli.cmd_inventory_check)


def test_deploy_refuses_an_invalid_inventory_before_ansible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runner, "PlaybookRunner", _NoRunner)
    inventory = _inventory(tmp_path, racks=("rack1", "rack2"))
    assert cli.main(["deploy", "-i", str(inventory)]) == RC.INVALID_INVENTORY
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = captured.err.splitlines()
    assert errors[0].startswith("storagectl: error: [seaweedfs_master]: group seaweedfs_master")
    assert errors[-1] == "storagectl: error: 2 inventory problems: nothing was deployed"


def test_deploy_runs_ansible_on_a_valid_inventory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    class FakeRunner:
        def run(self, playbook: Path, **kwargs: Any) -> runner.RunResult:
            calls.append({"playbook": playbook, **kwargs})
            return runner.RunResult(status="successful", rc=0, stats={}, artifact_dir=tmp_path)

    monkeypatch.setattr(runner, "PlaybookRunner", FakeRunner)
    inventory = str(_inventory(tmp_path))
    assert cli.main(["deploy", "-i", inventory, "-e", "a=1"]) == RC.OK
    assert len(calls) == 1
    assert (calls[0]["inventories"], calls[0]["extra_vars"]) == ([inventory], ["a=1"])
