"""Which Redis the role makes the master (roles/redis/tasks/decide_master.yml), fed made-up
answers of the Sentinels and of ``INFO replication keyspace``: never a choice that discards
another server's keys without comparing."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.common import run_playbook

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "redis"
HOSTS = ("r1", "r2", "r3")
ADDRESS = {"r1": "10.0.0.1:6379", "r2": "10.0.0.2:6379", "r3": "10.0.0.3:6379"}

pytestmark = pytest.mark.skipif(
    shutil.which("ansible-playbook") is None, reason="needs ansible-playbook"
)


def info(role: str, replid: str, offset: int, keys: int = 0, replicas: int = 0) -> str:
    """The parts of ``INFO replication keyspace`` the decision reads."""
    lines = ["# Replication", f"role:{role}", f"connected_slaves:{replicas}"]
    lines += [f"master_replid:{replid}", "master_replid2:" + "0" * 40]
    lines += [f"master_repl_offset:{offset}", "", "# Keyspace"]
    if keys:
        lines.append(f"db1:keys={keys},expires=0,avg_ttl=0")
    return "\n".join(lines)


def decide(tmp_path: Path, answers: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """Run the decision over r1..r3 with ``answers`` (host -> sentinel/info); return the master
    chosen ('' for none) and why."""
    hosts = {}
    for name in HOSTS:
        said = answers.get(name, {})
        sentinel = said.get("sentinel")
        hosts[name] = {
            "__redis_self": ADDRESS[name],
            "__redis_sentinel_says": {"stdout_lines": sentinel.split(":") if sentinel else []},
            "__redis_replication_info": {"stdout": said.get("info", "")},
        }
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "redis_sentinel_enabled": True,
                "redis_port": 6379,
                "redis_sentinel_port": 26379,
            },
            "children": {"redis": {"hosts": hosts}},
        }
    }
    out = tmp_path / "decision.json"
    play = [
        {
            "name": "Decide",
            "hosts": "redis",
            "gather_facts": False,
            "vars_files": [str(ROLE / "vars" / "main.yml")],
            "tasks": [
                {
                    "name": "Decide which Redis is the master",
                    "ansible.builtin.include_tasks": str(ROLE / "tasks" / "decide_master.yml"),
                },
                {
                    "name": "Write the decision",
                    "ansible.builtin.copy": {
                        "content": "{{ {'master': __redis_master, 'why': __redis_master_why}"
                        " | to_json }}",
                        "dest": str(out),
                        "mode": "0600",
                    },
                    "run_once": True,
                },
            ],
        }
    ]
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    result = run_playbook(
        "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml"), cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    decision = json.loads(out.read_text())
    return decision["master"], decision["why"]


A = "a" * 40
B = "b" * 40


def test_the_sentinels_decide(tmp_path: Path) -> None:
    said = {h: {"sentinel": "10.0.0.2:6379", "info": info("master", A, 5, keys=3)} for h in HOSTS}
    said["r2"]["info"] = info("slave", A, 1, keys=1)  # the Sentinels, not the keys, decide
    assert decide(tmp_path, said)[0] == "r2"


def test_sentinels_that_disagree_stop_the_run(tmp_path: Path) -> None:
    said = {"r1": {"sentinel": "10.0.0.2:6379"}, "r2": {"sentinel": "10.0.0.3:6379"}}
    master, why = decide(tmp_path, said)
    assert master == ""
    assert "disagree" in why


def test_the_master_with_replicas(tmp_path: Path) -> None:
    said = {
        "r1": {"info": info("slave", A, 90, keys=5)},
        "r3": {"info": info("master", A, 100, keys=5, replicas=1)},
    }
    assert decide(tmp_path, said) == ("r3", "")


def test_a_new_cluster_starts_on_the_first_host(tmp_path: Path) -> None:
    said = {h: {"info": info("master", h * 20, 0)} for h in HOSTS}
    assert decide(tmp_path, said) == ("r1", "")
    assert decide(tmp_path, {}) == ("r1", "")  # nothing answers: nothing installed yet


def test_the_only_server_with_keys(tmp_path: Path) -> None:
    said = {
        "r1": {"info": info("master", A, 0)},
        "r2": {"info": info("master", B, 700, keys=12)},
        "r3": {"info": info("master", "c" * 40, 0)},
    }
    assert decide(tmp_path, said) == ("r2", "")


def test_replicas_of_a_lost_master_the_furthest_wins(tmp_path: Path) -> None:
    said = {
        "r2": {"info": info("slave", A, 100, keys=40)},
        "r3": {"info": info("slave", A, 250, keys=41)},
    }
    assert decide(tmp_path, said) == ("r3", "")


def test_different_histories_with_keys_stop_the_run(tmp_path: Path) -> None:
    said = {
        "r1": {"info": info("master", A, 500, keys=10)},
        "r2": {"info": info("master", B, 900, keys=3)},
    }
    master, why = decide(tmp_path, said)
    assert master == ""
    assert "different replication histories" in why
    assert "r1 (master, 10 keys, replication id aaaaaaaa, offset 500)" in why
    assert "r2 (master, 3 keys, replication id bbbbbbbb, offset 900)" in why
