"""The inventory loader sees what ansible-playbook would: precedence, defaults, templating."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret

from storagectl.inventory import Host, InventoryError, Topology, VariableError, load_topology


def _write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root with two roles' defaults and the top-level group_vars of the real one."""
    root = tmp_path / "project"
    _write(
        root / "roles" / "alpha" / "defaults" / "main.yml",
        {
            "seaweedfs_master_port": 9333,
            "seaweedfs_filer_port": 8888,
            "layered": "role alpha",
            "only_in_role": "from role",
        },
    )
    # beta sorts after alpha: its defaults win over alpha's, both stay under inventory vars.
    _write(
        root / "roles" / "beta" / "defaults" / "main" / "ports.yml",
        {"seaweedfs_s3_port": 8333, "layered": "role beta"},
    )
    _write(
        root / "group_vars" / "all" / "main.yml",
        {"storage_address": "{{ ansible_host | default(inventory_hostname) }}"},
    )
    return root


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    inv = tmp_path / "inv"
    _write(
        inv / "hosts.yml",
        {
            "all": {
                "children": {
                    "seaweedfs_master": {
                        "hosts": {
                            "m1": {"ansible_host": "10.0.0.1"},
                            "m2": {"ansible_host": "10.0.0.2", "layered": "host m2"},
                            "m3": None,
                        }
                    },
                    "seaweedfs_filer": {"hosts": {"f1": {"ansible_host": "10.0.1.1"}}},
                }
            }
        },
    )
    _write(inv / "group_vars" / "all.yml", {"layered": "inventory all", "site": "lab"})
    _write(
        inv / "group_vars" / "seaweedfs_master" / "main.yml",
        {"layered": "inventory masters", "seaweedfs_master_port": 19333},
    )
    _write(inv / "host_vars" / "m3.yml", {"storage_address": "192.168.7.3"})
    return inv


def _load(inventory: Path, project: Path, **kwargs: object) -> Topology:
    return load_topology([inventory], basedir=project, **kwargs)  # type: ignore[arg-type]


def test_hosts_and_groups_in_inventory_order(inventory: Path, project: Path) -> None:
    topology = _load(inventory, project)
    assert [h.name for h in topology.group("seaweedfs_master")] == ["m1", "m2", "m3"]
    assert [h.name for h in topology.group("seaweedfs_filer")] == ["f1"]
    assert topology.group("no_such_group") == []
    assert topology.hosts["m1"].groups == ("seaweedfs_master",)
    assert isinstance(topology.hosts["f1"], Host)
    assert topology.sources == [inventory.resolve()]


def test_precedence_role_defaults_under_group_vars_under_host_vars(
    inventory: Path, project: Path
) -> None:
    hosts = _load(inventory, project).hosts
    assert hosts["m1"].var("layered") == "inventory masters"  # group beats all beats roles
    assert hosts["m2"].var("layered") == "host m2"  # host var beats group var
    assert hosts["f1"].var("layered") == "inventory all"  # group_vars/all beats role defaults
    assert hosts["f1"].var("only_in_role") == "from role"  # role default when nothing else
    assert hosts["m1"].var("seaweedfs_master_port") == 19333
    assert hosts["f1"].var("seaweedfs_master_port") == 9333
    assert hosts["f1"].var("seaweedfs_s3_port") == 8333  # from a defaults/main/ directory


def test_later_role_defaults_override_earlier_ones(tmp_path: Path, project: Path) -> None:
    inv = tmp_path / "bare.yml"
    _write(inv, {"all": {"hosts": {"h": None}}})
    assert load_topology([inv], basedir=project).hosts["h"].var("layered") == "role beta"


def test_extra_vars_override_everything(inventory: Path, project: Path, tmp_path: Path) -> None:
    extra_file = tmp_path / "extra.yml"
    _write(extra_file, {"site": "from file"})
    topology = _load(
        inventory,
        project,
        extra_vars=["layered=cli", '{"seaweedfs_filer_port": 9999}', f"@{extra_file}"],
    )
    assert topology.hosts["m2"].var("layered") == "cli"
    assert topology.hosts["f1"].var("seaweedfs_filer_port") == 9999
    assert topology.hosts["m1"].var("site") == "from file"


def test_storage_address_is_templated_from_project_group_vars(
    inventory: Path, project: Path
) -> None:
    hosts = _load(inventory, project).hosts
    assert hosts["m1"].address == "10.0.0.1"
    assert hosts["m3"].address == "192.168.7.3"  # host_vars override the fallback
    assert type(hosts["m1"].address) is str  # plain str, not Ansible's tagged subclass


def test_storage_address_falls_back_to_inventory_hostname(tmp_path: Path, project: Path) -> None:
    inv = tmp_path / "inv.yml"
    _write(inv, {"all": {"hosts": {"node-a.example": None}}})
    assert load_topology([inv], basedir=project).hosts["node-a.example"].address == "node-a.example"


def test_values_are_templated_lazily(inventory: Path, project: Path) -> None:
    _write(
        inventory / "group_vars" / "seaweedfs_filer.yml",
        {
            "needs_facts": "{{ ansible_default_ipv4.address }}",
            "derived": "{{ storage_address }}:{{ seaweedfs_filer_port }}",
            "with_groups": "{{ groups['seaweedfs_master'] | length }}",
            "via_hostvars": "{{ hostvars['m1']['ansible_host'] }}",
        },
    )
    f1 = _load(inventory, project).hosts["f1"]
    assert f1.var("derived") == "10.0.1.1:8888"
    assert f1.var("with_groups") == 3  # ansible-core 2.19 templates to native types
    assert f1.var("via_hostvars") == "10.0.0.1"
    with pytest.raises(VariableError, match="needs_facts"):
        f1.var("needs_facts")
    assert f1.var("derived") == "10.0.1.1:8888"  # one bad variable does not poison the others


def test_undefined_variable(inventory: Path, project: Path) -> None:
    m1 = _load(inventory, project).hosts["m1"]
    assert m1.var("nope", default=None) is None
    assert m1.var("nope", default=7) == 7
    with pytest.raises(VariableError, match="m1: variable nope is not defined"):
        m1.var("nope")


def test_limit_narrows_targets_not_groups(inventory: Path, project: Path) -> None:
    topology = _load(inventory, project, limit="m2,f1")
    assert [h.name for h in topology.targets("seaweedfs_master")] == ["m2"]
    assert len(topology.group("seaweedfs_master")) == 3
    with pytest.raises(InventoryError, match="matches no host"):
        _load(inventory, project, limit="nothing-like-this")


def test_missing_inventory(tmp_path: Path, project: Path) -> None:
    with pytest.raises(InventoryError, match="does not exist"):
        load_topology([tmp_path / "absent"], basedir=project)
    with pytest.raises(InventoryError, match="no inventory"):
        load_topology([], basedir=project)


def test_unparseable_inventory(tmp_path: Path, project: Path) -> None:
    bad = tmp_path / "bad"
    _write(bad / "hosts.yml", "all:\n  hosts: [\n")
    with pytest.raises(InventoryError, match=r"cannot parse .*hosts.yml"):
        load_topology([bad], basedir=project)


def test_inventory_without_hosts(tmp_path: Path, project: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InventoryError, match="defines no hosts"):
        load_topology([empty], basedir=project)


def test_broken_role_defaults(inventory: Path, project: Path) -> None:
    _write(project / "roles" / "gamma" / "defaults" / "main.yml", "- just\n- a list\n")
    with pytest.raises(InventoryError, match="gamma"):
        _load(inventory, project)


def test_vault_values(inventory: Path, project: Path, tmp_path: Path) -> None:
    password = tmp_path / "vault-pass"
    password.write_text("correct horse\n")
    cipher = VaultLib([("default", VaultSecret(b"correct horse"))]).encrypt("s3cr3t").decode()
    indented = "".join(f"  {line}\n" for line in cipher.splitlines())
    (inventory / "group_vars" / "seaweedfs_filer.yml").write_text(
        f"seaweedfs_s3_secret_key: !vault |\n{indented}plain: visible\n"
    )
    topology = _load(inventory, project, vault_password_file=password)
    assert topology.hosts["f1"].var("seaweedfs_s3_secret_key") == "s3cr3t"

    without = _load(inventory, project)
    assert without.hosts["f1"].var("plain") == "visible"
    with pytest.raises(VariableError, match="seaweedfs_s3_secret_key"):
        without.hosts["f1"].var("seaweedfs_s3_secret_key")

    with pytest.raises(InventoryError, match="vault password file"):
        _load(inventory, project, vault_password_file=tmp_path / "missing")


def test_topology_var_reads_cluster_wide_values(inventory: Path, project: Path) -> None:
    topology = _load(inventory, project)
    assert topology.var("site") == "lab"
    assert topology.var("absent", default="x") == "x"
    with pytest.raises(VariableError):
        topology.var("absent")


def test_real_project_defaults(tmp_path: Path) -> None:
    """Against the real project root: its group_vars and role defaults supply the contract."""
    inv = tmp_path / "hosts.yml"
    _write(
        inv,
        {
            "all": {
                "children": {"seaweedfs_master": {"hosts": {"m1": {"ansible_host": "10.9.8.7"}}}}
            }
        },
    )
    m1 = load_topology([inv]).hosts["m1"]
    assert m1.address == "10.9.8.7"
    assert m1.var("seaweedfs_master_port") == 9333
    assert m1.var("seaweedfs_volume_port") == 8080
    assert m1.var("seaweedfs_filer_port") == 8888
    assert m1.var("seaweedfs_s3_port") == 8333
    # Group names are literal: the roles define no <group>_group override.
    assert m1.var("seaweedfs_master_group", default=None) is None
