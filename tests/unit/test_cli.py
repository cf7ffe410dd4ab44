"""The command line: argument parsing, exit codes, and verify end to end on a real SeaweedFS."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

import pytest

from storagectl import __version__, cli
from storagectl.exitcodes import RC

if TYPE_CHECKING:
    from support.weed import WeedServer

MakeInventory = Callable[..., Path]


@pytest.fixture(autouse=True)
def no_lab_inventory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point the default inventory somewhere absent, whatever the lab is doing meanwhile."""
    absent = tmp_path / "no-lab-inventory"
    monkeypatch.setattr(cli, "LAB_INVENTORY", absent)
    return absent


def test_exit_codes_are_stable() -> None:
    assert {rc.name: rc.value for rc in RC} == {
        "OK": 0,
        "CHECKS_FAILED": 1,
        "ANSIBLE_FAILED": 2,
        "INVALID_INVENTORY": 3,
        "LAB_ERROR": 4,
        "USAGE": 64,
        "INTERNAL_ERROR": 70,
        "INTERRUPTED": 130,
    }


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == RC.OK
    assert capsys.readouterr().out.strip() == f"storagectl {__version__}"


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify", "--help"]) == RC.OK
    out = capsys.readouterr().out
    assert "Ansible arguments" in out
    assert "--junit" in out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["verify", "--format", "xml"],
        ["verify", "--timeout", "0"],
        ["verify", "--bogus"],
        ["lab"],
        ["lab", "up", "--storage-hosts", "0"],
    ],
)
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == RC.USAGE
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_usage_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify", "--bogus"]) == RC.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("storagectl: error: unrecognized arguments: --bogus")


def test_shared_ansible_arguments() -> None:
    args = cli.build_parser().parse_args(
        [
            "deploy",
            "-i",
            "inv/a",
            "--inventory",
            "inv/b",
            "-l",
            "web",
            "-t",
            "seaweedfs_install",
            "-e",
            "a=1",
            "--extra-vars",
            "@vars.yml",
            "--check",
            "--diff",
            "-vvv",
            "--vault-password-file",
            "pw",
            "--skip-tags",
            "slow",
        ]
    )
    assert args.inventory == ["inv/a", "inv/b"]
    assert (args.limit, args.tags, args.skip_tags) == ("web", "seaweedfs_install", "slow")
    assert args.extra_vars == ["a=1", "@vars.yml"]
    assert (args.check, args.diff, args.verbose) == (True, True, 3)
    assert args.vault_password_file == "pw"
    assert args.handler is cli.cmd_deploy
    verify = cli.build_parser().parse_args(["verify", "-C", "-D", "-v"])
    assert (verify.check, verify.diff, verify.verbose, verify.format) == (True, True, 1, "table")
    assert verify.timeout == 20.0


def test_no_inventory_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify"]) == RC.USAGE
    assert "no inventory: pass -i INVENTORY" in capsys.readouterr().err
    assert cli.main(["deploy"]) == RC.USAGE


def test_missing_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "absent")
    assert cli.main(["verify", "-i", missing]) == RC.INVALID_INVENTORY
    assert cli.main(["deploy", "-i", missing]) == RC.INVALID_INVENTORY
    err = capsys.readouterr().err
    assert err.splitlines() == [f"storagectl: error: inventory {missing} does not exist"] * 2


def test_unparseable_inventory_in_json_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("all:\n  hosts: [\n")
    assert cli.main(["verify", "-i", str(bad), "--format", "json"]) == RC.INVALID_INVENTORY
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["ok"] is False
    assert "cannot parse" in document["error"]
    assert document["checks"] == []
    assert "Traceback" not in captured.err


def test_inventory_without_components(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    lonely:\n")
    assert cli.main(["verify", "-i", str(inv)]) == RC.INVALID_INVENTORY
    assert "no check applies" in capsys.readouterr().err


def test_unknown_component(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify", "-i", str(tmp_path), "--component", "nope"]) == RC.USAGE
    assert "unknown component" in capsys.readouterr().err


def test_unknown_lab_topology(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["lab", "up", "--topology", "galaxy"]) == RC.USAGE
    assert "unknown lab topology 'galaxy'" in capsys.readouterr().err


def test_verify_passes_on_a_healthy_cluster(
    weed_inventory: MakeInventory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "reports" / "verify.xml"
    argv = ["verify", "-i", str(weed_inventory()), "--junit", str(junit), "--timeout", "10"]
    assert cli.main(argv) == RC.OK
    out = capsys.readouterr().out
    assert out.startswith("== seaweedfs ==")
    last = re.fullmatch(
        r"(\d+) passed( \(\d+ with warnings\))?, 0 failed in \d+\.\d s \(slowest: [a-z0-9 ]+ "
        r"(node1|cluster|http://\S+/|placement \d+) \d+\.\d s\)",
        out.splitlines()[-1],
    )
    assert last, out.splitlines()[-1]
    assert "== capacity ==" in out  # the capacity checks apply to masters with volume servers
    root = ET.fromstring(junit.read_bytes())  # noqa: S314 - our own file, just written
    assert (root.get("tests"), root.get("failures")) == (last.group(1), "0")


def test_verify_json(weed_inventory: MakeInventory, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify", "-i", str(weed_inventory()), "--format", "json"]) == RC.OK
    document = json.loads(capsys.readouterr().out)  # stdout is exactly one JSON document
    assert document["ok"] is True
    assert document["summary"]["passed"] == len(document["checks"]) > 8
    # Every check has its duration; the run's wall time is close to the slowest check's.
    assert all(isinstance(c["duration"], float) for c in document["checks"])
    assert document["summary"]["wall"] >= document["summary"]["duration"] > 0
    assert {c["name"] for c in document["checks"]} >= {"master leader", "s3 round trip"}
    # No JuiceFS client and no RustFS host in this inventory: nothing to say about them.
    assert document["storage"] == {
        "juicefs_mounted": None,
        "rustfs_healthy": None,
        "juicefs_volume": None,
    }


def test_verify_failure_exit_code_and_fix(
    weed_inventory: MakeInventory, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = weed_inventory(host_vars={"seaweedfs_s3_secret_key": "wrong"})
    assert cli.main(["verify", "-i", str(inventory)]) == RC.CHECKS_FAILED
    out = capsys.readouterr().out
    assert "FAIL    s3 round trip" in out
    assert "fix: The gateway rejected the configured keys" in out
    assert re.match(r"\d+ passed( \(\d+ with warnings\))?, 1 failed in ", out.splitlines()[-1])


def test_verify_honours_extra_vars_and_limit(
    weed: WeedServer, weed_inventory: MakeInventory, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = weed_inventory(
        host_vars={"seaweedfs_s3_secret_key": "wrong"},
        extra_hosts={"ghost": (["seaweedfs_volume"], {"ansible_host": "127.0.0.2"})},
    )
    fixed = f"seaweedfs_s3_secret_key={weed.secret_key}"
    argv = ["verify", "-i", str(inventory), "-e", fixed, "-l", "node1", "--format", "json"]
    assert cli.main(argv) == RC.OK  # -e fixes the key, -l leaves the ghost volume out
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is True
    assert "ghost" not in {c["host"] for c in document["checks"]}
