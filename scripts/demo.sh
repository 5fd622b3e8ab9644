#!/usr/bin/env bash
# Quick start 1/2: set up (virtualenv + pinned install) and run the main job on the embedded synthetic market.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/dagster_home}
exec .venv/bin/cryptoalgo demo "$@"
