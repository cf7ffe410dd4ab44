#!/usr/bin/env bash
# Set up this machine, boot the local lab, deploy the platform onto it and verify it.
#   scripts/lab-deploy.sh [dev|ha]      (as root)
# The lab stays up afterwards: `.venv/bin/storagectl lab down` removes it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
topology="${1:-dev}"

bash scripts/setup.sh
export PATH="$here/.venv/bin:$PATH"
storagectl lab up --topology "$topology"
storagectl deploy -i inventories/lab
storagectl verify -i inventories/lab
