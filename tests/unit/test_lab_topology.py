"""Unit tests of the lab's topology, inventory and bookkeeping: no root, no podman."""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from storagectl.inventory import load_topology
from storagectl.inventory.validate import validate
from storagectl.lab import TOPOLOGIES, LabError, image, machines, network, prereq, state
from storagectl.lab import topology as topo
from storagectl.lab.inventory import lab_vars, ssh_common_args, write_inventory
from storagectl.lab.lifecycle import check_compatible

ROOT = "/checkout"


def names(specs: list[topo.MachineSpec]) -> list[str]:
    """The machine names of ``specs``."""
    return [s.name for s in specs]


# --- topology -------------------------------------------------------------------------------


def test_topologies_are_dev_and_ha() -> None:
    assert TOPOLOGIES == ("dev", "ha")
    assert set(topo.TOPOLOGY_GROUPS) == set(TOPOLOGIES) == set(topo.TOPOLOGY_VARS)


def test_group_table_only_names_known_groups() -> None:
    for kinds in topo.TOPOLOGY_GROUPS.values():
        for groups in kinds.values():
            assert set(groups) <= set(topo.GROUPS)


def test_dev_is_one_host_in_the_seaweedfs_groups() -> None:
    (dev,) = topo.machines("dev", storage_hosts=7)  # dev ignores the storage host count
    assert (dev.name, dev.address, dev.container) == (
        "lab-dev-1",
        "10.213.0.11",
        "storagectl-lab-dev-1",
    )
    assert set(dev.groups) == {
        "seaweedfs_master",
        "seaweedfs_volume",
        "seaweedfs_filer",
        "seaweedfs_s3",
    }


CORE_GROUPS = {
    "seaweedfs_master",
    "seaweedfs_volume",
    "seaweedfs_filer",
    "seaweedfs_s3",
    "etcd",
    "postgres",
    "redis",
}


def test_ha_has_three_core_hosts_and_two_edge_hosts() -> None:
    assert (topo.CORE_HOSTS, topo.EDGE_HOSTS) == (3, 2)
    specs = topo.machines("ha", 3)
    assert names(specs) == ["lab-ha-1", "lab-ha-2", "lab-ha-3", "lab-edge-1", "lab-edge-2"]
    assert [s.address for s in specs] == [
        "10.213.0.11",
        "10.213.0.12",
        "10.213.0.13",
        "10.213.0.101",
        "10.213.0.102",
    ]
    assert [s.kind for s in specs] == ["storage"] * 3 + ["edge"] * 2
    for spec in specs[:3]:  # Redis under Sentinel on every core host
        assert set(spec.groups) == CORE_GROUPS
    for spec in specs[3:]:
        # No S3 gateway on the edge: HAProxy's S3 frontend holds its port there.
        assert set(spec.groups) == {"haproxy", "juicefs_client"}


def test_ha_storage_hosts_past_the_core_only_hold_volumes() -> None:
    specs = topo.machines("ha", 5)
    assert names(specs) == [
        "lab-ha-1",
        "lab-ha-2",
        "lab-ha-3",
        "lab-ha-4",
        "lab-ha-5",
        "lab-edge-1",
        "lab-edge-2",
    ]
    volume = [s for s in specs if s.kind == "volume"]
    assert names(volume) == ["lab-ha-4", "lab-ha-5"]
    assert [s.address for s in volume] == ["10.213.0.14", "10.213.0.15"]
    assert all(s.groups == ("seaweedfs_volume",) for s in volume)
    members = topo.group_members(specs)
    assert members["seaweedfs_master"] == ["lab-ha-1", "lab-ha-2", "lab-ha-3"]
    assert members["seaweedfs_volume"] == [f"lab-ha-{i}" for i in range(1, 6)]
    assert members["seaweedfs_s3"] == ["lab-ha-1", "lab-ha-2", "lab-ha-3"]
    assert members["haproxy"] == ["lab-edge-1", "lab-edge-2"]


def test_every_kind_takes_its_groups_from_the_table() -> None:
    for name, kinds in topo.TOPOLOGY_GROUPS.items():
        for spec in topo.machines(name, 5):
            assert spec.groups == kinds[spec.kind]


def test_ha_racks_alternate() -> None:
    specs = topo.machines("ha", 5)
    assert [s.rack for s in specs if s.kind in ("storage", "volume")] == [
        "rack1",
        "rack2",
        "rack1",
        "rack2",
        "rack1",
    ]


def test_every_address_is_unique_and_in_the_lab_subnet() -> None:
    specs = topo.machines("ha", topo.MAX_STORAGE_HOSTS)
    addresses = [ipaddress.ip_address(s.address) for s in specs]
    assert len(set(addresses)) == len(addresses)
    assert all(a in topo.SUBNET for a in addresses)
    assert str(topo.SUBNET[1]) not in {s.address for s in specs}  # the bridge's gateway


@pytest.mark.parametrize(("name", "count"), [("ha", 2), ("ha", 0), ("ha", 90), ("prod", 3)])
def test_bad_topologies_are_refused(name: str, count: int) -> None:
    with pytest.raises(LabError):
        topo.machines(name, count)


def test_group_members_lists_every_group_even_empty_ones() -> None:
    members = topo.group_members(topo.machines("dev"))
    assert list(members) == list(topo.GROUPS)
    assert members["etcd"] == []
    assert members["seaweedfs_master"] == ["lab-dev-1"]


# --- inventory ------------------------------------------------------------------------------


@pytest.fixture
def lab_secrets() -> dict[str, str]:
    """Fixed lab secrets (S3 keys, database passwords) for inventory tests."""
    return {
        "seaweedfs_s3_access_key": "A" * 20,
        "seaweedfs_s3_secret_key": "b" * 40,
        "rustfs_access_key": "C" * 20,
        "rustfs_secret_key": "d" * 40,
        **{name: name.replace("_", "") for name in state.PASSWORD_NAMES},
    }


def read_yaml(path: Path) -> dict:
    """Parse a YAML file."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_ha_inventory(tmp_path: Path, lab_secrets: dict[str, str]) -> None:
    inv = tmp_path / "inventories" / "lab"
    key = tmp_path / "id_ed25519"
    specs = topo.machines("ha", 3)
    assert write_inventory(inv, topology="ha", specs=specs, key=key, s3_secrets=lab_secrets) == inv

    hosts = read_yaml(inv / "hosts.yml")["all"]
    assert hosts["vars"] == {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(key.resolve()),
        "ansible_ssh_common_args": ssh_common_args(tmp_path / "known_hosts"),
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    ssh_args = hosts["vars"]["ansible_ssh_common_args"]
    assert "StrictHostKeyChecking=yes" in ssh_args
    assert f"UserKnownHostsFile={tmp_path / 'known_hosts'}" in ssh_args
    assert hosts["hosts"]["lab-ha-2"] == {
        "ansible_host": "10.213.0.12",
        "storage_address": "10.213.0.12",
        "seaweedfs_data_center": "dc1",
        "seaweedfs_rack": "rack2",
    }
    assert list(hosts["children"]) == list(topo.GROUPS)
    assert hosts["children"]["rustfs"] == {}
    assert list(hosts["children"]["etcd"]["hosts"]) == ["lab-ha-1", "lab-ha-2", "lab-ha-3"]
    assert list(hosts["children"]["haproxy"]["hosts"]) == ["lab-edge-1", "lab-edge-2"]
    assert list(hosts["children"]["seaweedfs_s3"]["hosts"]) == ["lab-ha-1", "lab-ha-2", "lab-ha-3"]

    lab = read_yaml(inv / "group_vars" / "all" / "lab.yml")
    assert lab["seaweedfs_default_replica_placement"] == "001"
    assert lab["seaweedfs_filer_store"] == "postgres2"
    assert lab["seaweedfs_binary_source"] == "controller"
    assert (lab["seaweedfs_volume_size_limit_mb"], lab["seaweedfs_volume_max"]) == (64, 50)
    assert (inv / "group_vars" / "all" / "lab.yml").read_text().startswith("# Generated by")

    secrets_file = inv / "group_vars" / "all" / "secrets.yml"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert read_yaml(secrets_file) == lab_secrets


def test_dev_inventory_overwrites_the_previous_one(
    tmp_path: Path, lab_secrets: dict[str, str]
) -> None:
    inv = tmp_path / "lab"
    key = tmp_path / "k"
    write_inventory(inv, topology="ha", specs=topo.machines("ha"), key=key, s3_secrets=lab_secrets)
    (inv / "stray.yml").write_text("x: 1\n")
    write_inventory(
        inv, topology="dev", specs=topo.machines("dev"), key=key, s3_secrets=lab_secrets
    )
    assert not (inv / "stray.yml").exists()
    assert list(read_yaml(inv / "hosts.yml")["all"]["hosts"]) == ["lab-dev-1"]
    dev = read_yaml(inv / "group_vars/all/lab.yml")
    assert dev["seaweedfs_default_replica_placement"] == "000"
    assert dev["seaweedfs_filer_store"] == "leveldb2"
    assert topo.group_members(topo.machines("dev"))["postgres"] == []


def test_ansible_reads_the_inventory(tmp_path: Path, lab_secrets: dict[str, str]) -> None:
    tool = Path(sys.executable).parent / "ansible-inventory"
    if not tool.exists():
        pytest.skip("ansible-inventory is not installed next to this Python")
    inv = tmp_path / "lab"
    write_inventory(
        inv, topology="ha", specs=topo.machines("ha"), key=tmp_path / "k", s3_secrets=lab_secrets
    )
    out = subprocess.run(
        [str(tool), "-i", str(inv), "--list"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        timeout=120,
    ).stdout
    listing = json.loads(out)
    assert sorted(listing["seaweedfs_master"]["hosts"]) == ["lab-ha-1", "lab-ha-2", "lab-ha-3"]
    edge = listing["_meta"]["hostvars"]["lab-edge-1"]
    assert edge["ansible_host"] == "10.213.0.101"
    assert edge["seaweedfs_s3_access_key"] == "A" * 20
    assert edge["seaweedfs_default_replica_placement"] == "001"


@pytest.mark.parametrize("count", [3, 4])
def test_ha_inventory_passes_the_deployment_rules(
    tmp_path: Path, lab_secrets: dict[str, str], count: int
) -> None:
    inv = tmp_path / "lab"
    specs = topo.machines("ha", count)
    write_inventory(inv, topology="ha", specs=specs, key=tmp_path / "k", s3_secrets=lab_secrets)
    topology = load_topology([inv])
    assert [str(p) for p in validate(topology)] == []
    assert [h.name for h in topology.group("seaweedfs_volume")] == [
        f"lab-ha-{i}" for i in range(1, count + 1)
    ]


def test_controller_binaries_are_absolute_paths() -> None:
    values = lab_vars("dev")
    for name in ("seaweedfs_controller_binary", "juicefs_controller_binary"):
        assert Path(values[name]).is_absolute()


# --- state: key, secrets, state.json --------------------------------------------------------


def test_secrets_are_generated_once(tmp_path: Path) -> None:
    first = state.ensure_secrets(tmp_path / ".lab")
    assert re.fullmatch(r"[A-Z0-9]{20}", first["seaweedfs_s3_access_key"])
    assert re.fullmatch(r"[A-Za-z0-9]{40}", first["seaweedfs_s3_secret_key"])
    # Alphanumeric: the filer's postgres2 connection string is not quoted.
    for name in state.PASSWORD_NAMES:
        assert re.fullmatch(r"[A-Za-z0-9]{32}", first[name]), name
    assert len(set(first.values())) == len(first)
    assert state.ensure_secrets(tmp_path / ".lab") == first
    assert stat.S_IMODE((tmp_path / ".lab" / "secrets.yml").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / ".lab").stat().st_mode) == 0o700


def test_secrets_of_an_older_lab_are_kept_and_completed(tmp_path: Path) -> None:
    old = {"seaweedfs_s3_access_key": "OLDACCESSKEY", "seaweedfs_s3_secret_key": "old-secret-key"}
    state.write_private(tmp_path / state.SECRETS_FILE, yaml.safe_dump(old))
    secrets = state.ensure_secrets(tmp_path)
    assert set(secrets) == set(state.SECRET_NAMES)
    assert {name: secrets[name] for name in old} == old
    assert read_yaml(tmp_path / state.SECRETS_FILE) == secrets
    assert state.ensure_secrets(tmp_path) == secrets


def test_state_round_trip(tmp_path: Path) -> None:
    assert state.read_state(tmp_path) is None
    state.write_state(tmp_path, {"topology": "dev", "storage_hosts": 1})
    assert state.read_state(tmp_path) == {"topology": "dev", "storage_hosts": 1}


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
def test_key_is_generated_once(tmp_path: Path) -> None:
    key = state.ensure_key(tmp_path)
    first = key.read_bytes()
    assert key.with_name("id_ed25519.pub").read_text().startswith("ssh-ed25519 ")
    assert state.ensure_key(tmp_path).read_bytes() == first


# --- refusing to mix labs -------------------------------------------------------------------


def container(name: str, root: str = ROOT) -> machines.Container:
    """A fake lab container."""
    return machines.Container(name=name, state="running", labels={"storagectl.lab.root": root})


def compatible(
    recorded: dict | None, existing: list[machines.Container], name: str, n: int
) -> None:
    """Run ``check_compatible`` for topology ``name`` with ``n`` storage hosts."""
    count = topo.storage_count(name, n)
    check_compatible(
        recorded,
        existing,
        topology_name=name,
        storage_hosts=count,
        specs=topo.machines(name, n),
        project_root=ROOT,
    )


def test_same_topology_is_reused() -> None:
    compatible(
        {"topology": "dev", "storage_hosts": 1}, [container("storagectl-lab-dev-1")], "dev", 3
    )
    compatible(None, [], "ha", 3)


def test_other_topology_is_refused_with_the_fix() -> None:
    with pytest.raises(LabError, match="not ha with 3 storage hosts: run `storagectl lab down`"):
        compatible({"topology": "dev", "storage_hosts": 1}, [], "ha", 3)
    with pytest.raises(LabError, match="storagectl lab down"):
        compatible({"topology": "ha", "storage_hosts": 3}, [], "dev", 1)


def test_growing_the_ha_lab_is_allowed() -> None:
    running = [container(f"storagectl-{s.name}") for s in topo.machines("ha", 3)]
    compatible({"topology": "ha", "storage_hosts": 3}, running, "ha", 4)
    compatible({"topology": "ha", "storage_hosts": 3}, running, "ha", 3)


def test_shrinking_the_ha_lab_is_refused() -> None:
    running = [container(f"storagectl-{s.name}") for s in topo.machines("ha", 4)]
    refused = (
        "up as ha with 4 storage hosts, not ha with 3 storage hosts: run `storagectl lab down`"
    )
    with pytest.raises(LabError, match=refused):
        compatible({"topology": "ha", "storage_hosts": 4}, running, "ha", 3)
    with pytest.raises(LabError, match="lab-ha-4 does not belong"):
        compatible(None, running, "ha", 3)  # no state.json: the extra machine still refuses


def test_foreign_machines_are_refused() -> None:
    with pytest.raises(LabError, match="lab-ha-1"):
        compatible(None, [container("storagectl-lab-ha-1")], "dev", 1)
    with pytest.raises(LabError, match="/elsewhere"):
        compatible(None, [container("storagectl-lab-dev-1", root="/elsewhere")], "dev", 1)


# --- network --------------------------------------------------------------------------------


def test_overlapping_routes() -> None:
    table = [
        {"dst": "default", "dev": "eth0"},
        {"dst": "192.0.2.0/24", "dev": "eth0"},
        {"dst": "10.213.0.0/24", "dev": "cni-podman1"},
        {"dst": "10.0.0.0/8", "dev": "tun0"},
        {"dst": "10.213.0.77", "dev": "wg0"},
    ]
    found = network.overlapping_routes(table, topo.SUBNET, own_dev="cni-podman1")
    assert found == ["10.0.0.0/8 dev tun0", "10.213.0.77 dev wg0"]
    assert network.overlapping_routes(table[:2], topo.SUBNET, None) == []


# --- prerequisites --------------------------------------------------------------------------


def test_not_root_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prereq.os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="run as root"):
        prereq.check_prerequisites()


def test_missing_tools_name_the_setup_script(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prereq.os, "geteuid", lambda: 0)
    monkeypatch.setattr(prereq.shutil, "which", lambda tool: None if tool == "runc" else "/x")
    with pytest.raises(LabError, match=r"runc.*scripts/setup\.sh"):
        prereq.check_prerequisites()


# --- image and machine command lines --------------------------------------------------------


def test_debootstrap_command() -> None:
    cmd = image.debootstrap_command(Path("/srv/root"))
    assert cmd[:2] == ["debootstrap", "--variant=minbase"]
    assert "openssh-server" in cmd[2]
    assert "systemd-sysv" in cmd[2]
    assert cmd[-3:] == ["bookworm", "/srv/root", "http://deb.debian.org/debian"]


def test_prepare_rootfs(tmp_path: Path) -> None:
    (tmp_path / "etc" / "ssh").mkdir(parents=True)
    (tmp_path / "etc" / "ssh" / "ssh_host_ed25519_key").write_text("shared")
    (tmp_path / "root").mkdir()
    (tmp_path / "var" / "lib" / "dbus").mkdir(parents=True)
    (tmp_path / "var" / "lib" / "dbus" / "machine-id").write_text("0" * 32)
    for _ in range(2):  # idempotent
        image.prepare_rootfs(tmp_path)
    assert stat.S_IMODE((tmp_path / "root" / ".ssh").stat().st_mode) == 0o700
    system = tmp_path / "etc" / "systemd" / "system"
    assert (system / "multi-user.target.wants" / "ssh.service").is_symlink()
    assert str((system / "apt-daily.timer").readlink()) == "/dev/null"
    assert not (tmp_path / "etc" / "ssh" / "ssh_host_ed25519_key").exists()
    assert (tmp_path / "etc" / "machine-id").read_text() == ""
    assert str((tmp_path / "var/lib/dbus/machine-id").readlink()) == "/etc/machine-id"


def test_run_command() -> None:
    specs = topo.machines("ha", 3)
    cmd = machines.run_command(
        specs[1],
        image="localhost/storagectl-lab:bookworm",
        public_key=Path("/k.pub"),
        labels={"topology": "ha"},
        peers=specs,
    )
    assert cmd[:4] == ["podman", "--runtime", "runc", "run"]
    for flag in ("--privileged", "--systemd=always"):
        assert flag in cmd
    joined = " ".join(cmd)
    assert "--network storagectl-lab --ip 10.213.0.12" in joined
    assert "--hostname lab-ha-2 --name storagectl-lab-ha-2" in joined
    assert "--label storagectl.lab=1" in joined
    assert "/k.pub:/root/.ssh/authorized_keys:ro" in joined
    assert "--add-host lab-ha-1:10.213.0.11" in joined
    assert "--add-host lab-ha-2:" not in joined
    assert cmd.count("--ulimit") == 2
    assert cmd[-1] == "localhost/storagectl-lab:bookworm"


def test_ulimits_never_exceed_what_is_wanted() -> None:
    limits = machines.ulimits()
    assert set(limits) == {"nofile", "nproc"}
    assert all(0 < limits[k] <= machines.ULIMITS[k] for k in limits)


# --- the shared filesystem: Redis, RustFS (only with a binary), JuiceFS ----------------------


def test_ha_lab_has_no_rustfs_and_juicefs_on_seaweedfs_by_default() -> None:
    specs = topo.machines("ha", 3)
    members = topo.group_members(specs)
    assert members["rustfs"] == []
    assert members["redis"] == ["lab-ha-1", "lab-ha-2", "lab-ha-3"]
    assert members["juicefs_client"] == ["lab-edge-1", "lab-edge-2"]
    values = lab_vars("ha")
    assert values["juicefs_backend"] == "seaweedfs"
    assert values["redis_sentinel_enabled"] is True
    assert values["juicefs_binary_source"] == "controller"
    assert "rustfs_controller_binary" not in values


def test_ha_lab_runs_rustfs_on_the_first_edge_host_with_a_binary(tmp_path: Path) -> None:
    binary = tmp_path / "rustfs"
    binary.write_text("")
    specs = topo.machines("ha", 3, rustfs=True)
    assert topo.group_members(specs)["rustfs"] == [topo.RUSTFS_HOST] == ["lab-edge-1"]
    values = lab_vars("ha", str(binary))
    assert values["rustfs_binary_source"] == "controller"
    assert values["rustfs_controller_binary"] == str(binary.resolve())
    assert values["juicefs_backend"] == "rustfs"


def test_dev_lab_ignores_the_rustfs_binary(tmp_path: Path) -> None:
    specs = topo.machines("dev", 1, rustfs=True)
    assert topo.group_members(specs)["rustfs"] == []
    assert topo.group_members(specs)["juicefs_client"] == []
    assert "juicefs_backend" not in lab_vars("dev", str(tmp_path / "rustfs"))


def test_lab_secrets_cover_redis_and_rustfs(tmp_path: Path) -> None:
    secrets = state.ensure_secrets(tmp_path / ".lab")
    assert re.fullmatch(r"[A-Za-z0-9]{32}", secrets["redis_password"])
    assert re.fullmatch(r"[A-Z0-9]{20}", secrets["rustfs_access_key"])
    assert re.fullmatch(r"[A-Za-z0-9]{40}", secrets["rustfs_secret_key"])


def test_ha_inventory_with_rustfs_passes_the_deployment_rules(
    tmp_path: Path, lab_secrets: dict[str, str]
) -> None:
    inv = tmp_path / "lab"
    binary = tmp_path / "rustfs"
    binary.write_text("")
    specs = topo.machines("ha", 3, rustfs=True)
    write_inventory(
        inv,
        topology="ha",
        specs=specs,
        key=tmp_path / "k",
        s3_secrets=lab_secrets,
        rustfs_binary=str(binary),
    )
    topology = load_topology([inv])
    assert [str(p) for p in validate(topology)] == []
    assert [h.name for h in topology.group("rustfs")] == ["lab-edge-1"]


def test_known_hosts_records_every_key_of_every_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    specs = topo.machines("ha", 3)[:2]
    asked: list[list[str]] = []

    def fake_run(args: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        asked.append(args)
        name = args[2]
        out = f"ssh-ed25519 AAAA{name} root@x\necdsa-sha2-nistp256 BBBB{name} root@x\n"
        return subprocess.CompletedProcess(args, 0, stdout=out, stderr="")

    monkeypatch.setattr(machines, "run", fake_run)
    text = machines.known_hosts(specs)
    assert text.splitlines() == [
        f"{specs[0].address} ssh-ed25519 AAAA{specs[0].container}",
        f"{specs[0].address} ecdsa-sha2-nistp256 BBBB{specs[0].container}",
        f"{specs[1].address} ssh-ed25519 AAAA{specs[1].container}",
        f"{specs[1].address} ecdsa-sha2-nistp256 BBBB{specs[1].container}",
    ]
    # read inside each machine, not over the network
    assert [a[:3] for a in asked] == [["podman", "exec", s.container] for s in specs]

    def no_keys(args: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 0, stdout="", stderr="")

    monkeypatch.setattr(machines, "run", no_keys)
    with pytest.raises(LabError, match="no SSH host key"):
        machines.known_hosts(specs)
