"""The redis, rustfs and juicefs roles' files, rendered by Ansible on localhost into a temporary
directory (role defaults as inventory ``all`` vars, vars/main.yml as ``vars_files``) and checked
with the tools the roles use: ``systemd-analyze verify`` for the units (skipped when this machine
has none) and the role's own redis-server check for redis.conf (skipped without redis-server).

No RustFS binary exists here: its unit is verified exactly as the role does without one, where
the only allowed finding is that the ExecStart binary is missing.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.common import run_playbook

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "roles"
ANALYZE = shutil.which("systemd-analyze")
SECRETS = {
    "redis_password": "NeverPrintRedis0",
    "rustfs_access_key": "RUSTFSKEY01",
    "rustfs_secret_key": "NeverPrintRustfs0",
    "seaweedfs_s3_access_key": "SWKEY01",
    "seaweedfs_s3_secret_key": "NeverPrintSeaweed0",
}

pytestmark = pytest.mark.skipif(
    shutil.which("ansible-playbook") is None, reason="no ansible-playbook"
)


def _defaults(*roles: str) -> dict[str, Any]:
    """The roles' defaults, and the units' sandboxing every inventory gets (group_vars/all)."""
    shared = yaml.safe_load((ROOT / "group_vars" / "all" / "main.yml").read_text())
    merged: dict[str, Any] = {"storage_unit_hardening": shared["storage_unit_hardening"]}
    for role in roles:
        merged |= yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())
    return merged


def _render(
    tmp: Path, host_vars: dict[str, dict[str, Any]], *, sentinel: bool = False
) -> dict[str, str]:
    """Render the files on hosts r1 (redis; with ``sentinel`` also r2 and r3), o1/o2 (rustfs)
    and c1 (juicefs_client); r1's sentinel.conf as if r1 were the master."""
    out = tmp / "out"
    out.mkdir()
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    redis_hosts = {"r1": host_vars.get("r1", {})}
    if sentinel:
        redis_hosts |= {
            "r2": {"storage_address": "10.0.0.6"},
            "r3": {"storage_address": "10.0.0.8"},
        }
    inventory = {
        "all": {
            "vars": {
                **_defaults("redis", "rustfs", "juicefs"),
                **SECRETS,
                **local,
                "redis_sentinel_enabled": sentinel,
            },
            "children": {
                "redis": {"hosts": redis_hosts},
                "rustfs": {"hosts": {n: v for n, v in host_vars.items() if n.startswith("o")}},
                "juicefs_client": {"hosts": {"c1": host_vars.get("c1", {})}},
            },
        }
    }
    for name in ("r1", "c1"):
        inventory["all"]["children"]["redis" if name == "r1" else "juicefs_client"]["hosts"][
            name
        ].setdefault("storage_address", "10.0.0.5" if name == "r1" else "10.0.0.7")
    playbook = f"""\
- name: Render redis.conf
  hosts: redis
  gather_facts: false
  vars_files: [{ROLES}/redis/vars/main.yml]
  tasks:
    - name: Render redis.conf
      ansible.builtin.template:
        src: {ROLES}/redis/templates/etc/redis/redis.conf.j2
        dest: "{out}/redis.conf"
        mode: "0600"
      when: inventory_hostname == 'r1'
    - name: Render sentinel.conf
      ansible.builtin.template:
        src: {ROLES}/redis/templates/etc/redis/sentinel.conf.j2
        dest: "{out}/sentinel.conf"
        mode: "0600"
      vars:
        __redis_master_address: "10.0.0.5:6379"
      when: inventory_hostname == 'r1' and redis_sentinel_enabled
    - name: Render the drop-in
      ansible.builtin.template:
        src: {ROLES}/redis/templates/etc/systemd/system/redis-server.service.d/storagectl.conf.j2
        dest: "{out}/redis-server-dropin.conf"
        mode: "0600"
      when: inventory_hostname == 'r1'
- name: Render the RustFS files
  hosts: rustfs
  gather_facts: false
  vars_files: [{ROLES}/rustfs/vars/main.yml]
  tasks:
    - name: Render the environment file
      ansible.builtin.template:
        src: {ROLES}/rustfs/templates/etc/default/rustfs.j2
        dest: "{out}/{{{{ inventory_hostname }}}}.env"
        mode: "0600"
    - name: Render the unit
      ansible.builtin.template:
        src: {ROLES}/rustfs/templates/etc/systemd/system/rustfs.service.j2
        dest: "{out}/{{{{ inventory_hostname }}}}/rustfs.service"
        mode: "0600"
      when: inventory_hostname == 'o1'
- name: Render the JuiceFS units
  hosts: juicefs_client
  gather_facts: false
  vars_files: [{ROLES}/juicefs/vars/main.yml]
  tasks:
    - name: Render each unit
      ansible.builtin.template:
        src: {ROLES}/juicefs/templates/etc/systemd/system/juicefs.service.j2
        dest: "{out}/juicefs-{{{{ __juicefs_mount.name }}}}.service"
        mode: "0600"
      loop: "{{{{ __juicefs_mounts }}}}"
      loop_control:
        loop_var: __juicefs_mount
    - name: Render the environment file of the main mount
      ansible.builtin.template:
        src: {ROLES}/juicefs/templates/etc/juicefs/mount.env.j2
        dest: "{out}/data.env"
        mode: "0600"
      vars:
        __juicefs_mount: "{{{{ __juicefs_mounts[0] }}}}"
"""
    (out / "o1").mkdir()
    (tmp / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp / "render.yml").write_text(playbook)
    result = run_playbook("-i", str(tmp / "hosts.yml"), str(tmp / "render.yml"), cwd=tmp)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    juicefs = shutil.which("juicefs") or str(Path(sys.prefix) / "bin" / "juicefs")
    return _render(
        tmp_path_factory.mktemp("fs_roles"),
        {
            "r1": {},
            "o1": {"storage_address": "10.0.0.11"},
            "o2": {"storage_address": "10.0.0.12"},
            "c1": {
                "juicefs_binary_link": juicefs,
                "juicefs_subdir_mounts": [
                    {"name": "agent-a", "subdir": "/sandboxes/agent-a", "mountpoint": "/home/a"}
                ],
            },
        },
    )


def test_redis_conf_is_protected_and_persistent(rendered: dict[str, str]) -> None:
    conf = rendered["redis.conf"].splitlines()
    for line in (
        "bind 10.0.0.5 127.0.0.1",
        "port 6379",
        "protected-mode yes",
        "requirepass NeverPrintRedis0",
        "maxmemory-policy noeviction",
        "appendonly yes",
        "save 3600 1",
    ):
        assert line in conf


@pytest.mark.skipif(not Path("/usr/bin/redis-server").is_file(), reason="no redis-server")
def test_redis_conf_passes_the_roles_check(rendered: dict[str, str], tmp_path: Path) -> None:
    conf = tmp_path / "redis.conf"
    conf.write_text(rendered["redis.conf"])
    check = yaml.safe_load((ROLES / "redis" / "vars" / "main.yml").read_text())["__redis_validate"]
    command = check.replace("{{ __redis_binary }}", "/usr/bin/redis-server").replace(" %s", "")
    # Split as Ansible's validate= does (shlex, no shell), then the file name appended.
    argv = [*shlex.split(command), str(conf)]
    assert subprocess.run(argv, check=False, timeout=30).returncode == 0
    conf.write_text(rendered["redis.conf"] + "bogus-directive yes\n")
    argv = [*shlex.split(command), str(conf)]
    assert subprocess.run(argv, check=False, timeout=30).returncode != 0


def test_rustfs_env_lists_every_host_and_binds_the_console_locally(
    rendered: dict[str, str],
) -> None:
    env = dict(line.split("=", 1) for line in rendered["o1.env"].splitlines() if "=" in line[:40])
    assert env["RUSTFS_ACCESS_KEY"] == "RUSTFSKEY01"
    assert env["RUSTFS_ADDRESS"] == "10.0.0.11:9000"
    assert env["RUSTFS_CONSOLE_ADDRESS"] == "127.0.0.1:9001"
    volumes = env["RUSTFS_VOLUMES"].strip('"').split(" ")
    assert volumes[0] == "http://10.0.0.11:9000/var/lib/rustfs/vol1"
    assert volumes[-1] == "http://10.0.0.12:9000/var/lib/rustfs/vol4"
    assert len(volumes) == 8
    assert (
        rendered["o2.env"].replace("10.0.0.12:9000\n", "10.0.0.11:9000\n") == rendered["o1.env"]
    ), "RUSTFS_VOLUMES must be identical on every host"


@pytest.fixture(scope="module")
def rendered_sentinel(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _render(tmp_path_factory.mktemp("fs_roles_sentinel"), {"c1": {}}, sentinel=True)


def test_sentinel_files(rendered_sentinel: dict[str, str], rendered: dict[str, str]) -> None:
    conf = rendered_sentinel["redis.conf"].splitlines()
    assert "masterauth NeverPrintRedis0" in conf
    assert not [line for line in conf if line.startswith(("replicaof", "slaveof"))]
    assert "masterauth NeverPrintRedis0" not in rendered["redis.conf"].splitlines()
    sentinel = rendered_sentinel["sentinel.conf"].splitlines()
    for line in (
        "port 26379",
        "bind 10.0.0.5 127.0.0.1",
        "requirepass NeverPrintRedis0",
        "sentinel monitor storagectl 10.0.0.5 6379 2",
        "sentinel auth-pass storagectl NeverPrintRedis0",
        "sentinel down-after-milliseconds storagectl 5000",
    ):
        assert line in sentinel
    assert "ReadOnlyPaths=/etc/redis/redis.conf" in rendered_sentinel["redis-server-dropin.conf"]
    unit = rendered_sentinel["juicefs-data.service"]
    assert "redis://storagectl,10.0.0.5,10.0.0.6,10.0.0.8:26379/2 /data" in unit
    assert "NeverPrint" not in unit
    assert "SENTINEL_PASSWORD=NeverPrintRedis0" in rendered_sentinel["data.env"]
    assert "SENTINEL_PASSWORD" not in rendered["data.env"]


def test_juicefs_units_have_no_password_and_the_contract_names(rendered: dict[str, str]) -> None:
    main = rendered["juicefs-data.service"]
    assert "redis://10.0.0.5:6379/2 /data" in main
    assert "NeverPrint" not in main
    assert "EnvironmentFile=/etc/juicefs/data.env" in main
    assert "--subdir /sandboxes/agent-a" in rendered["juicefs-agent-a.service"]
    assert "PrivateDevices=" not in main
    assert "TimeoutStopSec=60" in main


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, "verify", str(unit)], capture_output=True, text=True, check=False, timeout=60
    )


@pytest.mark.skipif(ANALYZE is None, reason="no systemd-analyze on this machine")
@pytest.mark.parametrize("name", ["juicefs-data.service", "juicefs-agent-a.service"])
def test_juicefs_units_pass_systemd_analyze(
    rendered: dict[str, str], tmp_path: Path, name: str
) -> None:
    unit = tmp_path / name
    unit.write_text(rendered[name])
    result = _verify(unit)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(ANALYZE is None, reason="no systemd-analyze on this machine")
def test_rustfs_unit_passes_systemd_analyze_but_for_the_missing_binary(
    rendered: dict[str, str], tmp_path: Path
) -> None:
    unit = tmp_path / "rustfs.service"
    unit.write_text(rendered["o1/rustfs.service"])
    result = _verify(unit)
    allowed = "Command /usr/local/bin/rustfs is not executable: No such file or directory"
    findings = [line for line in result.stderr.splitlines() if allowed not in line]
    assert findings == [], result.stderr
