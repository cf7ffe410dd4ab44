"""The production sample inventory (inventories/prod), broken variants of it, and aegis-config.

Inventories are loaded against the real project (group_vars, role defaults) as the commands do;
no host is contacted and no playbook runs.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret

from storagectl import cli, runner
from storagectl.exitcodes import RC
from storagectl.inventory.values import ALLOW_PLAIN_VAULT
from storagectl.paths import PROJECT_ROOT, SITE_PLAYBOOK

PROD = PROJECT_ROOT / "inventories" / "prod"


@pytest.fixture(autouse=True)
def no_lab_inventory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point the default inventory somewhere absent, whatever the lab is doing meanwhile."""
    absent = tmp_path / "no-lab-inventory"
    monkeypatch.setattr(cli, "LAB_INVENTORY", absent)
    return absent


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _dump(path: Path, data: dict[str, Any]) -> None:
    path.write_text("---\n" + yaml.safe_dump(data, sort_keys=False))


def _copy(tmp_path: Path, *, encrypt_with: Path | None = None) -> Path:
    """The sample with its placeholders replaced by test secrets (as an operator would), its
    vault file encrypted with the password in ``encrypt_with``, or else left in clear with the
    demo override the unencrypted-vault rule asks for."""
    target = tmp_path / "prod"
    shutil.copytree(PROD, target)
    vault = target / "group_vars" / "all" / "vault.yml"
    _dump(vault, {name: f"test-{name[6:].replace('_', '-')}-0123456789" for name in _load(vault)})
    if encrypt_with is None:
        _dump(target / "group_vars" / "all" / "demo.yml", {ALLOW_PLAIN_VAULT: True})
    else:
        secret = VaultSecret(encrypt_with.read_bytes().strip())
        vault.write_bytes(VaultLib([("default", secret)]).encrypt(vault.read_text()))
    return target


# --- the sample as shipped -----------------------------------------------------------------------


def test_prod_sample_refuses_its_placeholders(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["inventory", "check", "-i", str(PROD)]) == RC.INVALID_INVENTORY
    lines = capsys.readouterr().out.splitlines()
    secrets = _load(PROD / "group_vars" / "all" / "secrets.yml")
    placeholders = [line for line in lines if "placeholder of the sample inventory" in line]
    assert len(placeholders) == len(secrets)
    assert all(line.split(":")[0] in secrets for line in placeholders)
    assert not any("CHANGE-ME" in line for line in lines)  # values are never printed


def test_prod_inventory_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["inventory", "check", "-i", str(_copy(tmp_path))]) == RC.OK
    captured = capsys.readouterr()
    assert captured.out.startswith("inventory OK: 21 hosts (seaweedfs_master 3, ")
    assert "redis 3, rustfs 1" in captured.out
    assert captured.err == ""


def test_prod_inventory_with_an_encrypted_vault_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    password = tmp_path / "vault-password"
    password.write_text("correct horse battery staple\n")
    inventory = _copy(tmp_path, encrypt_with=password)
    args = ["inventory", "check", "-i", str(inventory), "--vault-password-file", str(password)]
    assert cli.main(args) == RC.OK
    assert capsys.readouterr().out.startswith("inventory OK: 21 hosts")


def test_prod_inventory_with_a_vault_in_clear_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = _copy(tmp_path)
    (inventory / "group_vars" / "all" / "demo.yml").unlink()
    assert cli.main(["inventory", "check", "-i", str(inventory)]) == RC.INVALID_INVENTORY
    out = capsys.readouterr().out
    vault = inventory / "group_vars" / "all" / "vault.yml"
    assert f"{vault}: is a vault file that is not encrypted" in out
    assert f"ansible-vault encrypt {vault}" in out
    assert "1 problem" in out


def test_prod_vault_holds_only_placeholders() -> None:
    vault = PROD / "group_vars" / "all" / "vault.yml"
    assert "ansible-vault encrypt inventories/prod/group_vars/all/vault.yml" in vault.read_text()
    values = _load(vault)
    assert values
    assert all(str(v).startswith("CHANGE-ME-") for v in values.values())
    # Every secret name maps to its vault_ twin.
    secrets = _load(PROD / "group_vars" / "all" / "secrets.yml")
    assert {f"vault_{name}" for name in secrets} == set(values)
    assert all(value == f"{{{{ vault_{name} }}}}" for name, value in secrets.items())


def test_deploy_prod_runs_site_yml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`storagectl deploy -i inventories/prod` = `ansible-playbook site.yml -i inventories/prod`."""
    calls: list[dict[str, Any]] = []
    real = runner.PlaybookRunner

    class FakeRunner:
        def run(self, playbook: Path, **kwargs: Any) -> runner.RunResult:
            calls.append({"playbook": playbook, **kwargs})
            return runner.RunResult(status="successful", rc=0, stats={}, artifact_dir=tmp_path)

    monkeypatch.setattr(runner, "PlaybookRunner", FakeRunner)
    prod = _copy(tmp_path)
    assert cli.main(["deploy", "-i", str(prod)]) == RC.OK
    (call,) = calls
    assert call["playbook"] == SITE_PLAYBOOK
    assert call["inventories"] == [str(prod)]
    assert (call["limit"], call["verbosity"]) == (None, 0)
    options = {k: call[k] for k in ("tags", "skip_tags", "extra_vars", "check", "diff")}
    # Nothing beyond what was asked: the command line is plain `ansible-playbook site.yml -i`.
    assert real.cmdline(**options, vault_password_file=call["vault_password_file"]) == []


# --- broken variants: each refused with the host or group, the variable and the fix -------------

Breaker = Callable[[Path], None]


def _edit(relative: str, change: Callable[[dict[str, Any]], None]) -> Breaker:
    def breaker(inventory: Path) -> None:
        path = inventory / relative
        data = _load(path)
        change(data)
        _dump(path, data)

    return breaker


def _children(data: dict[str, Any]) -> dict[str, Any]:
    children: dict[str, Any] = data["all"]["children"]
    return children


def _even_masters(data: dict[str, Any]) -> None:
    _children(data)["seaweedfs_master"]["hosts"]["master-4"] = {"ansible_host": "10.0.10.14"}


def _one_rack(data: dict[str, Any]) -> None:
    for host in _children(data)["seaweedfs_volume"]["hosts"].values():
        host["seaweedfs_rack"] = "rack-a"


def _haproxy_on_a_filer(data: dict[str, Any]) -> None:
    _children(data)["haproxy"]["hosts"]["filer-1"] = None


def _even_etcd(data: dict[str, Any]) -> None:
    _children(data)["etcd"]["hosts"]["db-4"] = {"ansible_host": "10.0.10.54"}


def _two_redis(data: dict[str, Any]) -> None:
    del _children(data)["redis"]["hosts"]["redis-3"]


def _without(name: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        del data[name]

    return change


def _both(*breakers: Breaker) -> Breaker:
    def breaker(inventory: Path) -> None:
        for each in breakers:
            each(inventory)

    return breaker


BROKEN: dict[str, tuple[Breaker, list[str]]] = {
    "even masters": (
        _edit("hosts.yml", _even_masters),
        ["[seaweedfs_master]:", "4 hosts", "master-4", "odd number", "Fix: add or remove"],
    ),
    "010 placement on one rack": (
        _both(
            _edit("hosts.yml", _one_rack),
            _edit(
                "group_vars/all/main.yml",
                lambda d: d.update(seaweedfs_default_replica_placement="010"),
            ),
        ),
        ["seaweedfs_default_replica_placement:", '"010"', "dc1/rack-a = [volume-a1", "Fix: set "],
    ),
    "missing patroni_replication_password": (
        _edit("group_vars/all/secrets.yml", _without("patroni_replication_password")),
        ["db-1: patroni_replication_password: is not set", "Fix: set patroni_replication_pa"],
    ),
    "haproxy on a filer host": (
        _edit("hosts.yml", _haproxy_on_a_filer),
        ["filer-1: haproxy_filer_port: port 8888 is used by both", "Fix: change haproxy_filer"],
    ),
    "even etcd count": (
        _edit("hosts.yml", _even_etcd),
        ["[etcd]: group etcd has 4 hosts", "db-4", "Fix: put 3 or 5 hosts in group etcd"],
    ),
    "sentinel on two redis hosts": (
        _edit("hosts.yml", _two_redis),
        ["redis-1: redis_sentinel_enabled: is true, but group redis has 2 host(s)", "Fix: add"],
    ),
    "missing redis_password": (
        _edit("group_vars/all/secrets.yml", _without("redis_password")),
        ["redis-1: redis_password: is not set", "Fix: set redis_password"],
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_prod_variants_are_refused(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    breaker, expected = BROKEN[case]
    inventory = _copy(tmp_path)
    breaker(inventory)
    assert cli.main(["inventory", "check", "-i", str(inventory)]) == RC.INVALID_INVENTORY
    out = capsys.readouterr().out
    for fragment in expected:
        assert fragment in out, f"{case}: {fragment!r} not in:\n{out}"
    assert "CHANGE-ME" not in out  # secrets (placeholders here) are never printed
    argv = ["inventory", "check", "-i", str(inventory), "--format", "json"]
    assert cli.main(argv) == RC.INVALID_INVENTORY
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is False
    assert all(p["variable"] and p["fix"] for p in document["problems"])


def test_unresolvable_vault_reference_is_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = _copy(tmp_path)
    _edit("group_vars/all/vault.yml", _without("vault_redis_password"))(inventory)
    assert cli.main(["inventory", "check", "-i", str(inventory)]) == RC.INVALID_INVENTORY
    out = capsys.readouterr().out
    assert "redis-1: redis_password: cannot be resolved" in out
    assert "vaulted value needs the vault password" in out


# --- aegis-config ----------------------------------------------------------------------------


def test_aegis_config_yaml_from_prod(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["aegis-config", "-i", str(PROD)]) == RC.OK
    captured = capsys.readouterr()
    assert captured.out == (
        "spec:\n"
        "  storage:\n"
        "    filer_url: http://10.0.10.41:8888\n"
        "    s3_endpoint: http://10.0.10.41:8333\n"
        "    s3_region: us-east-1\n"
    )
    assert captured.err == ""


def _small_inventory(
    tmp_path: Path, *, haproxy: bool, lb_bind: str = "192.0.2.9", **extra: Any
) -> Path:
    children: dict[str, Any] = {
        "seaweedfs_master": {"hosts": {"s1": None}},
        "seaweedfs_volume": {"hosts": {"s1": None}},
        "seaweedfs_filer": {"hosts": {"s1": None, "s2": None}},
        "seaweedfs_s3": {"hosts": {"s2": None}},
    }
    if haproxy:
        children["haproxy"] = {"hosts": {"lb": {"haproxy_bind_address": lb_bind}}}
    document = {
        "all": {
            "vars": extra,
            "hosts": {
                "s1": {"ansible_host": "192.0.2.1"},
                "s2": {"ansible_host": "192.0.2.2", "storage_address": "198.51.100.2"},
                "lb": {"ansible_host": "192.0.2.3"},
            },
            "children": children,
        }
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_aegis_config_json_alone_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = _small_inventory(tmp_path, haproxy=True, haproxy_s3_port=9333)
    argv = ["aegis-config", "-i", str(inventory), "--format", "json"]
    assert cli.main(argv) == RC.OK
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {
        "spec": {
            "storage": {
                "filer_url": "http://192.0.2.9:8888",
                "s3_endpoint": "http://192.0.2.9:9333",
                "s3_region": "us-east-1",
            }
        }
    }
    assert captured.err == ""


@pytest.mark.parametrize("bind", ["*", "0.0.0.0", "::", "[::]", ""])  # noqa: S104 - inventory
def test_aegis_config_wildcard_bind_gives_the_storage_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bind: str
) -> None:
    """HAProxy binding every interface is reached on its host's storage address, never on the
    wildcard itself (``http://0.0.0.0:8888`` is no address an AEGIS node can use)."""
    inventory = _small_inventory(tmp_path, haproxy=True, lb_bind=bind)
    assert cli.main(["aegis-config", "-i", str(inventory), "--format", "json"]) == RC.OK
    storage = json.loads(capsys.readouterr().out)["spec"]["storage"]
    assert storage["filer_url"] == "http://192.0.2.3:8888"
    assert storage["s3_endpoint"] == "http://192.0.2.3:8333"


def test_aegis_config_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = _small_inventory(
        tmp_path,
        haproxy=True,
        storage_filer_url="http://storage.example:8888/",
        storage_s3_endpoint="https://s3.example",
        seaweedfs_s3_region="eu-west-1",
    )
    assert cli.main(["aegis-config", "-i", str(inventory), "--format", "json"]) == RC.OK
    storage = json.loads(capsys.readouterr().out)["spec"]["storage"]
    assert storage == {
        "filer_url": "http://storage.example:8888",
        "s3_endpoint": "https://s3.example",
        "s3_region": "eu-west-1",
    }
    argv = ["aegis-config", "-i", str(inventory), "-e", "storage_s3_endpoint=http://vip:8333"]
    assert cli.main(argv) == RC.OK
    assert "s3_endpoint: http://vip:8333\n" in capsys.readouterr().out


def test_aegis_config_without_haproxy_falls_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = _small_inventory(tmp_path, haproxy=False)
    assert cli.main(["aegis-config", "-i", str(inventory), "--format", "json"]) == RC.OK
    captured = capsys.readouterr()
    assert json.loads(captured.out)["spec"]["storage"] == {
        "filer_url": "http://192.0.2.1:8888",
        "s3_endpoint": "http://198.51.100.2:8333",
        "s3_region": "us-east-1",
    }
    notes = captured.err.splitlines()
    assert len(notes) == 2
    assert notes[0].startswith("storagectl: note: no haproxy host: filer URL is the first")
    assert "(s1) directly" in notes[0]
    assert "(s2) directly" in notes[1]


def test_aegis_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "absent")
    assert cli.main(["aegis-config", "-i", missing, "--format", "json"]) == RC.INVALID_INVENTORY
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"storagectl: error: inventory {missing} does not exist\n"
    assert cli.main(["aegis-config"]) == RC.USAGE
    assert "no inventory: pass -i INVENTORY" in capsys.readouterr().err
    assert cli.main(["aegis-config", "-i", missing, "--format", "xml"]) == RC.USAGE


def test_aegis_config_shares_the_ansible_arguments() -> None:
    args = cli.build_parser().parse_args(
        ["aegis-config", "-i", "a", "-e", "x=1", "--vault-password-file", "pw"]
    )
    assert (args.inventory, args.extra_vars, args.vault_password_file) == (["a"], ["x=1"], "pw")
    assert (args.format, args.handler) == ("yaml", cli.cmd_aegis_config)


def test_every_inventory_command_shares_one_set_of_ansible_arguments() -> None:
    shared = ("inventory", "limit", "tags", "extra_vars", "check", "diff", "vault_password_file")
    parser = cli.build_parser()
    for argv in (["deploy"], ["verify"], ["inventory", "check"], ["aegis-config"]):
        args = vars(parser.parse_args(argv))
        assert all(name in args for name in shared), argv
