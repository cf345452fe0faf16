#!/usr/bin/env bash
# The main job: a node with a software TPM proves its state to a local KBS and receives a secret.
# Installs what is missing, then runs e2e/main-job.ts. Pass --once to stop after the release.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node --import tsx e2e/main-job.ts "$@"
