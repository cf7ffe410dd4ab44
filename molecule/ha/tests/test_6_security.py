"""Secrets, SSH host keys and sandboxed units.

No secret on a command line or in an artifact: a whole deploy at -vvv is run while every lab
host and the controller list their processes' command lines (``ps -eww -o args``) every 50 ms;
no secret of the inventory may appear in any sample, in the deploy's output or in any file of
the run's artifacts.

The deploy runs with Ansible's plain linear strategy: it puts a task's ``environment:`` on the
remote command line and in the controller's ssh command line, so a secret passed that way is
caught here (Mitogen, the default strategy, would hide it in its own channel).

A host whose SSH key is not the one recorded in the lab's known_hosts is refused.

Every daemon unit is sandboxed: `systemd-analyze security` on the lab hosts holds each at 5.0
or less, the JuiceFS mounts at 7.0 or less (tests/unit/test_unit_hardening.py scores the
rendered files, RustFS's too, without a lab).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import yaml

from conftest import BOUND, INVENTORY, Lab, run_local
from storagectl.inventory.values import ALL_SECRETS
from storagectl.paths import ARTIFACTS_DIR

#: Sampling period and the most samples a host takes (a bound on the loop: 3000 x 50 ms).
PERIOD = 0.05
MAX_SAMPLES = 3000
SAMPLES = "/root/storagectl-ps-samples.txt"
STOP = "/root/storagectl-ps-stop"
# A bounded loop on each lab host; it ends at MAX_SAMPLES or when STOP appears.
SAMPLER = (
    f"rm -f {STOP} {SAMPLES}; i=0; "
    f"while [ $i -lt {MAX_SAMPLES} ] && [ ! -e {STOP} ]; do "
    f"ps -eww -o args >> {SAMPLES}; i=$((i+1)); sleep {PERIOD}; done"
)


def _secrets(lab: Lab) -> dict[str, str]:
    """Every secret the inventory sets (name -> value), at least 6 characters long."""
    names = (*ALL_SECRETS, "haproxy_stats_password")
    found = {name: str(lab.topology.var(name, "")) for name in names}
    return {name: value for name, value in found.items() if len(value) >= 6}


def _leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value in text]


class _ControllerSampler(threading.Thread):
    """``ps -eww -o args`` on the controller every PERIOD seconds until stopped (bounded)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set() and len(self.samples) < MAX_SAMPLES:
            ps = ["ps", "-eww", "-o", "args"]
            out = subprocess.run(ps, capture_output=True, text=True, check=False)
            self.samples.append(out.stdout)
            time.sleep(PERIOD)


def test_no_secret_on_a_command_line_or_in_an_artifact(lab: Lab) -> None:
    secrets = _secrets(lab)
    assert {"redis_password", "seaweedfs_filer_db_password", "seaweedfs_s3_secret_key"} <= set(
        secrets
    ), f"the lab inventory should set these secrets: {sorted(secrets)}"
    hosts = list(lab.topology.hosts)
    for name in hosts:
        started = lab.run(name, f"nohup sh -c '{SAMPLER}' >/dev/null 2>&1 &")
        assert started.rc == 0, f"sampler on {name}: {started.stderr}"
    controller = _ControllerSampler()
    controller.start()
    before = set(ARTIFACTS_DIR.iterdir()) if ARTIFACTS_DIR.is_dir() else set()
    try:
        deploy = run_local(
            "env", "ANSIBLE_STRATEGY=linear", "storagectl", "deploy", "-i", str(INVENTORY), "-vvv"
        )
    finally:
        controller.done.set()
        controller.join(BOUND)
        for name in hosts:
            lab.run(name, f"touch {STOP}")
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]

    problems: list[str] = []
    for name in hosts:
        samples = lab.run(name, f"sleep 0.2; cat {SAMPLES}; rm -f {SAMPLES} {STOP}").stdout
        count = samples.count("COMMAND")
        assert count >= 20, f"{name}: only {count} process listings were taken"
        problems += [f"ps on {name}: {leak}" for leak in _leaks(samples, secrets)]
    assert len(controller.samples) >= 20, "the controller's process listings did not run"
    listed = "".join(controller.samples)
    problems += [f"ps on the controller: {leak}" for leak in _leaks(listed, secrets)]
    output = deploy.stdout + deploy.stderr
    problems += [f"deploy output: {leak}" for leak in _leaks(output, secrets)]

    runs = sorted(set(ARTIFACTS_DIR.iterdir()) - before)
    assert runs, f"the deploy left no artifacts under {ARTIFACTS_DIR}"
    files = [path for run in runs for path in run.rglob("*") if path.is_file()]
    assert files, f"{runs[-1]} holds no file"
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        problems += [f"{path.relative_to(ARTIFACTS_DIR)}: {leak}" for leak in _leaks(text, secrets)]
    assert not problems, "secrets seen:\n" + "\n".join(sorted(set(problems)))


def test_a_host_whose_key_changed_is_refused(lab: Lab, tmp_path: Path) -> None:
    """The lab's hosts are checked against the lab's known_hosts like production hosts: with a
    wrong key recorded for one host, a deploy to it stops before changing anything."""
    target = lab.topology.group("haproxy")[-1]
    inventory = tmp_path / "inventory"
    shutil.copytree(INVENTORY, inventory)
    hosts_file = inventory / "hosts.yml"
    document = yaml.safe_load(hosts_file.read_text(encoding="utf-8"))
    common = document["all"]["vars"]["ansible_ssh_common_args"]
    recorded = Path(re.search(r"UserKnownHostsFile=(\S+)", common)[1])
    # Another machine's keys under this host's address: what a spoofed host would present.
    impostor = tmp_path / "id_impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True)
    wrong = impostor.with_suffix(".pub").read_text(encoding="utf-8").split()[:2]
    lines = [
        line
        for line in recorded.read_text(encoding="utf-8").splitlines()
        if line.split()[0] != target.address
    ]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("\n".join([*lines, f"{target.address} {' '.join(wrong)}"]) + "\n")
    document["all"]["vars"]["ansible_ssh_common_args"] = common.replace(
        str(recorded), str(known_hosts)
    )
    hosts_file.write_text(yaml.safe_dump(document), encoding="utf-8")
    before = lab.run(target.name, "stat -c %Y /etc/haproxy/haproxy.cfg").stdout

    deploy = run_local("storagectl", "deploy", "-i", str(inventory), "-l", target.name)
    output = deploy.stdout + deploy.stderr
    assert deploy.returncode != 0, output[-3000:]
    assert target.name in output
    assert re.search(r"host key|Host key verification failed", output, re.IGNORECASE), output[
        -3000:
    ]
    assert lab.run(target.name, "stat -c %Y /etc/haproxy/haproxy.cfg").stdout == before


#: Units held to a bar by `systemd-analyze security` (their overall exposure, 0 to 10).
HARDENED = ("seaweedfs-*", "etcd", "patroni", "haproxy", "redis-server", "redis-sentinel")
BAR = 5.0
#: A FUSE mount must be made in the host's mount namespace: no ProtectSystem and the like.
JUICEFS_BAR = 7.0
EXPOSURE = re.compile(r"Overall exposure level for (?P<unit>\S+): (?P<score>[0-9.]+)")


def test_every_daemon_unit_is_sandboxed(lab: Lab) -> None:
    """`systemd-analyze security` of every daemon on every lab host, held to the bars."""
    scores: dict[str, float] = {}
    for name in lab.topology.hosts:
        patterns = " ".join(f"'{p}.service'" for p in (*HARDENED, "juicefs-*"))
        listed = lab.run(name, f"systemctl list-units --plain --no-legend {patterns}").stdout
        units = [line.split()[0] for line in listed.splitlines() if line.strip()]
        for unit in units:
            out = lab.run(name, f"systemd-analyze security --no-pager {unit}").stdout
            found = EXPOSURE.search(out)
            assert found, f"{name} {unit}: {out[-500:]}"
            scores[f"{name} {unit}"] = float(found["score"])
    print("\n".join(f"{key}: {value}" for key, value in sorted(scores.items())))
    assert any("juicefs-" in key for key in scores), scores
    assert any("etcd" in key for key in scores), scores
    over = {
        key: value
        for key, value in scores.items()
        if value > (JUICEFS_BAR if " juicefs-" in key else BAR)
    }
    assert not over, f"units above the bar: {over}"
