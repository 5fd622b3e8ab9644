#!/usr/bin/env bash
# Build the benchmark-only venv .venv-bench (Python 3.11) for benchmarks/bench_backtest.py.
#
#     bash benchmarks/setup_bench.sh            # creates/updates ./.venv-bench
#     .venv-bench/bin/python benchmarks/bench_backtest.py
#
# Why a separate venv: vectorbt is a comparison target, not a project dependency (pyproject.toml and
# constraints.txt stay untouched). Both engines must run in the SAME process for a fair timing, so this venv holds
# the project (editable, at the exact constraints.txt pins) AND vectorbt.
#
# Version pinning (checked with `pip download vectorbt==1.2.0` metadata and a throwaway-venv install):
#   vectorbt 1.2.0 requires numpy>=2.4.6, pandas>=3.0.3,<4, numba>=0.66 (+ scipy, scikit-learn, requests, pytz,
#   tqdm, mypy_extensions). constraints.txt pins numpy 2.4.6, pandas 3.1.1, numba 0.68.1 / llvmlite 0.50.0,
#   scipy 1.17.1, scikit-learn 1.9.1: all inside vectorbt's ranges, so NOTHING is re-pinned; the bench venv runs
#   cryptoalgo_core on exactly the versions of the project venv. vectorbt's extra requirements (matplotlib,
#   plotly, ipywidgets, dateparser, ...) are pinned in benchmarks/requirements-bench.txt.
#   Not installed: the optional `vectorbt[rust]` accelerator (vectorbt-rust); vectorbt's engine="auto" then uses
#   its numba engine, which is what the benchmark measures.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV_BENCH:-$ROOT/.venv-bench}"
PY="${PYTHON:-python3.11}"

cd "$ROOT"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# project (editable) + bench requirements in ONE resolve, every shared package held at the project's pin
"$VENV/bin/python" -m pip install --quiet -c constraints.txt -e . -r benchmarks/requirements-bench.txt
"$VENV/bin/python" - <<'EOF'
import numba, numpy, pandas, vectorbt

import cryptoalgo_core.backtest.engine  # noqa: F401

print(f"bench venv ok: vectorbt {vectorbt.__version__}, numpy {numpy.__version__}, pandas {pandas.__version__}, "
      f"numba {numba.__version__}")
EOF
