"""What the CLI benchmarks share: a fresh DAGSTER_HOME + data dir in a temporary directory, and timed runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def fresh_env(prefix: str) -> tuple[Path, dict[str, str], list[str]]:
    """(temporary dir, environment with its own DAGSTER_HOME and TRADER_DATA_DIR, the cryptoalgo command)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    home, data = tmp / "dagster_home", tmp / "data"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "TRADER_DATA_DIR": str(data), "PYTHONWARNINGS": "ignore"}
    env.pop("TRADER_DB_URL", None)
    env.pop("TRADER_DB_PATH", None)
    return tmp, env, [sys.executable, "-m", "cryptoalgo_assets.cli"]


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    return time.perf_counter() - t0, done
