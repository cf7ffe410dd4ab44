#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a Debian machine, as root:
#   lint (ruff, yamllint, ansible-lint production profile), playbook syntax, unit tests,
#   then the lab: molecule's default (dev) and ha scenarios (create, converge, idempotence,
#   verify, destroy; ha also injects faults and scales out)
#   and the lab's own end-to-end tests. Every lab machine is removed on exit.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

bash scripts/setup.sh
export PATH="$here/.venv/bin:$PATH"
trap 'storagectl lab down >/dev/null 2>&1 || true' EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "ruff"
ruff check src tests molecule plugins benchmarks
ruff format --check src tests molecule plugins benchmarks
step "yamllint"
yamllint --strict .
step "ansible-lint (production profile)"
ansible-lint
step "ansible-playbook --syntax-check"
ansible-playbook --syntax-check -i localhost, site.yml
step "unit tests"
pytest tests/unit -q
step "molecule test -s default (dev lab)"
molecule test -s default
step "molecule test -s ha (ha lab: converge, idempotence, verify, faults, scale-out)"
molecule test -s ha
step "lab end-to-end tests"
pytest tests/e2e -q -m lab
