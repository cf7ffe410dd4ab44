"""The haproxy role's haproxy.cfg: rendered by Ansible for 2 filers + 2 S3 gateways + 3 PostgreSQL
members, accepted by the real ``haproxy -c``, and laid out as the HAProxy checks expect (backend
and server names).

One ``ansible-playbook`` run on localhost runs the role's preflight and renders the template for
three HAProxy hosts, each a variant of the settings; the role defaults sit in the inventory's
``all`` vars (under the host vars, as role defaults are) and vars/main.yml in ``vars_files``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from storagectl.checks import haproxy as checks
from support.common import run_playbook

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "haproxy"
HAPROXY = "/usr/sbin/haproxy"

FILERS = {"filer1": "10.0.0.21", "filer2": "10.0.0.22"}
GATEWAYS = {"s3gw1": "10.0.0.31", "s3gw2": "10.0.0.32"}
MEMBERS = {"pg1": "10.0.0.41", "pg2": "10.0.0.42", "pg3": "10.0.0.43"}
EXTRA = """\
listen extra_tcp
    mode tcp
    bind 10.0.0.12:7000
    server other 10.0.0.51:7000 check"""

pytestmark = [
    pytest.mark.skipif(
        not Path(HAPROXY).is_file(), reason=f"no {HAPROXY} (apt-get install haproxy)"
    ),
    pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="no ansible-playbook"),
]


def _inventory(out: Path) -> dict[str, Any]:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    return {
        "all": {
            "vars": {**defaults, **local, "out": str(out)},
            "children": {
                "haproxy": {
                    "hosts": {
                        # Everything at its default.
                        "lb1": {"storage_address": "10.0.0.11"},
                        # Stats auth, a wildcard bind, an extra section, a renamed port.
                        "lb2": {
                            "storage_address": "10.0.0.12",
                            "haproxy_bind_address": "*",
                            "haproxy_stats_user": "admin",
                            "haproxy_stats_password": "s3cr3t pass",
                            "haproxy_extra_sections": [EXTRA],
                            "haproxy_s3_port": 9333,
                        },
                        # Filers only.
                        "lb3": {
                            "storage_address": "10.0.0.13",
                            "haproxy_seaweedfs_s3_enabled": False,
                            "haproxy_postgres_enabled": False,
                        },
                    }
                },
                "seaweedfs_filer": {
                    "hosts": {
                        "filer1": {"storage_address": FILERS["filer1"]},
                        # A filer on a non-default port: its gRPC port follows (+ 10000).
                        "filer2": {
                            "storage_address": FILERS["filer2"],
                            "seaweedfs_filer_port": 8889,
                        },
                    }
                },
                "seaweedfs_s3": {
                    "hosts": {name: {"storage_address": addr} for name, addr in GATEWAYS.items()}
                },
                "postgres": {
                    "hosts": {
                        "pg1": {"storage_address": MEMBERS["pg1"]},
                        # A member on other ports: its server and its check follow.
                        "pg2": {
                            "storage_address": MEMBERS["pg2"],
                            "postgresql_port": 5433,
                            "patroni_restapi_port": 8009,
                        },
                        "pg3": {"storage_address": MEMBERS["pg3"]},
                    }
                },
            },
        }
    }


PLAYBOOK = f"""\
- name: Render the haproxy role's haproxy.cfg
  hosts: haproxy
  gather_facts: false
  vars_files: [{ROLE}/vars/main.yml]
  tasks:
    - name: Run the role's preflight
      ansible.builtin.import_tasks: {ROLE}/tasks/preflight.yml
    - name: Render the template
      ansible.builtin.template:
        src: {ROLE}/templates/haproxy.cfg.j2
        dest: "{{{{ out }}}}/{{{{ inventory_hostname }}}}.cfg"
        mode: "0600"
"""


def _run(tmp: Path, inventory: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    (tmp / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp / "render.yml").write_text(PLAYBOOK)
    return run_playbook("-i", str(tmp / "hosts.yml"), str(tmp / "render.yml"), cwd=tmp, timeout=120)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("haproxy_role")
    out = tmp / "out"
    out.mkdir()
    result = _run(tmp, _inventory(out))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return {p.stem: p.read_text() for p in sorted(out.glob("*.cfg"))}


def _sections(text: str) -> dict[str, list[str]]:
    """``"<keyword> <name>"`` -> the section's lines, stripped, comments dropped."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            current = sections.setdefault(line.strip(), [])
        else:
            current.append(line.strip())
    return sections


def _servers(section: list[str]) -> dict[str, str]:
    """Server name -> the rest of its line."""
    return {
        parts[1]: parts[2]
        for parts in (line.split(None, 2) for line in section if line.startswith("server "))
    }


@pytest.mark.parametrize("host", ["lb1", "lb2", "lb3"])
def test_haproxy_accepts_the_file_without_a_warning(rendered: dict[str, str], host: str) -> None:
    # Runs as root here, as the validate= of the role does: chroot, user/group haproxy and the
    # Debian stats socket must all pass. -dW turns any warning into a failure.
    check = subprocess.run(
        [HAPROXY, "-c", "-dW", "-f", "/dev/stdin"],
        input=rendered[host],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert check.returncode == 0, f"{host}:\n{check.stdout}{check.stderr}\n{rendered[host]}"


def test_backends_and_servers_match_the_checks(rendered: dict[str, str]) -> None:
    sections = _sections(rendered["lb1"])
    backends = {name.split()[1] for name in sections if name.startswith("backend ")}
    assert backends == set(checks.BACKENDS)
    members = {checks.FILER: FILERS, checks.S3: GATEWAYS}
    for backend, group in checks.BACKENDS.items():
        servers = _servers(sections[f"backend {backend}"])
        assert list(servers) == list(members[group]), backend
        assert all(re.search(r"\bcheck\b", rest) for rest in servers.values()), servers


def test_server_addresses_ports_and_health_checks(rendered: dict[str, str]) -> None:
    sections = _sections(rendered["lb1"])
    http = _servers(sections["backend seaweedfs_filer_http"])
    grpc = _servers(sections["backend seaweedfs_filer_grpc"])
    s3 = _servers(sections["backend seaweedfs_s3"])
    assert http == {"filer1": "10.0.0.21:8888 check", "filer2": "10.0.0.22:8889 check"}
    assert grpc["filer1"].startswith("10.0.0.21:18888 check port 8888")
    assert grpc["filer2"].startswith("10.0.0.22:18889 check port 8889")
    assert s3 == {"s3gw1": "10.0.0.31:8333 check", "s3gw2": "10.0.0.32:8333 check"}
    for backend in checks.BACKENDS:
        lines = sections[f"backend {backend}"]
        assert "option httpchk GET /healthz" in lines
        assert "http-check expect status 200" in lines
    assert "mode tcp" in sections["backend seaweedfs_filer_grpc"]
    assert "default-server inter 2s fall 3 rise 2" in sections["defaults"]
    assert "option redispatch" in sections["defaults"]


def test_frontends_and_stats_listener(rendered: dict[str, str]) -> None:
    sections = _sections(rendered["lb1"])
    binds = {n: [ln for ln in s if ln.startswith("bind ")] for n, s in sections.items()}
    assert binds["frontend seaweedfs_filer_http_in"] == ["bind 10.0.0.11:8888"]
    assert binds["frontend seaweedfs_filer_grpc_in"] == ["bind 10.0.0.11:18888"]
    assert binds["frontend seaweedfs_s3_in"] == ["bind 10.0.0.11:8333"]
    assert binds["listen stats"] == ["bind 10.0.0.11:8404"]
    assert "stats uri /stats" in sections["listen stats"]
    assert not any(ln.startswith("stats auth") for ln in sections["listen stats"])
    assert "stats socket /run/haproxy/admin.sock mode 660 level admin" in sections["global"]


def test_variant_with_auth_wildcard_bind_and_extra_section(rendered: dict[str, str]) -> None:
    sections = _sections(rendered["lb2"])
    # The stats listener stays on storage_address whatever the frontends bind to.
    assert "bind 10.0.0.12:8404" in sections["listen stats"]
    assert "bind *:9333" in sections["frontend seaweedfs_s3_in"]
    assert "stats auth 'admin:s3cr3t pass'" in sections["listen stats"]
    assert "bind 10.0.0.12:7000" in sections["listen extra_tcp"]
    assert "bind *:5000" in sections["listen postgres_rw"]


def test_s3_and_postgres_can_be_turned_off(rendered: dict[str, str]) -> None:
    sections = _sections(rendered["lb3"])
    assert "backend seaweedfs_s3" not in sections
    assert "frontend seaweedfs_s3_in" not in sections
    assert "backend seaweedfs_filer_http" in sections
    assert not [name for name in sections if "postgres" in name]


@pytest.mark.parametrize(
    ("listener", "port", "check"),
    [("postgres_rw", 5000, "/primary"), ("postgres_ro", 5001, "/replica")],
)
def test_postgres_listeners(rendered: dict[str, str], listener: str, port: int, check: str) -> None:
    lines = _sections(rendered["lb1"])[f"listen {listener}"]
    assert "mode tcp" in lines
    assert f"bind 10.0.0.11:{port}" in lines
    # Patroni's REST API: 200 only on the leader-lock holder (/primary) or a running replica.
    assert f"option httpchk OPTIONS {check}" in lines
    assert "http-check expect status 200" in lines
    assert "default-server inter 1s fall 3 rise 1 on-marked-down shutdown-sessions" in lines
    assert "timeout check 2s" in lines
    # Pooled database sessions stay idle for minutes: not the HTTP timeouts of the defaults.
    assert "timeout client 30m" in lines
    assert "timeout server 30m" in lines
    assert _servers(lines) == {
        "pg1": "10.0.0.41:5432 check port 8008",
        "pg2": "10.0.0.42:5433 check port 8009",
        "pg3": "10.0.0.43:5432 check port 8008",
    }


def test_preflight_refuses_postgres_listeners_without_members(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    inventory = _inventory(out)
    del inventory["all"]["children"]["postgres"]
    inventory["all"]["children"]["haproxy"]["hosts"]["lb1"]["haproxy_postgres_enabled"] = True
    result = _run(tmp_path, inventory)
    assert result.returncode != 0
    assert "haproxy_postgres_enabled is true, but group" in result.stdout
    assert "group 'postgres' has no hosts" in result.stdout
    assert not (out / "lb1.cfg").exists()


def test_postgres_listeners_follow_the_postgres_group(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    inventory = _inventory(out)
    del inventory["all"]["children"]["postgres"]
    result = _run(tmp_path, inventory)
    assert result.returncode == 0, result.stdout[-4000:]
    text = (out / "lb1.cfg").read_text()
    assert "listen postgres_rw" not in text
    assert "listen postgres_ro" not in text


def test_preflight_refuses_missing_s3_gateways(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    inventory = _inventory(out)
    del inventory["all"]["children"]["seaweedfs_s3"]
    del inventory["all"]["children"]["haproxy"]["hosts"]["lb3"]
    result = _run(tmp_path, inventory)
    assert result.returncode != 0
    assert "haproxy_seaweedfs_s3_enabled: false" in result.stdout
    assert "group 'seaweedfs_s3' has no hosts" in result.stdout
    assert not list(out.glob("*.cfg"))
