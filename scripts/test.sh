#!/usr/bin/env bash
# Quick start 2/2: set up (virtualenv + pinned install) and run the test suite.
# PostgreSQL store tests run when CRYPTOALGO_TEST_PG_URL names a reachable server (CI sets it); else they skip.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
