"""Experiment tracking: every model run records its config, git commit, data fingerprint and artifact hashes
(data/runs/<cohort>/<COIN>/manifest.json), so a result can be traced to exactly what produced it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("cryptoalgo", "dagster", "numpy", "pandas", "xgboost-cpu", "scikit-learn", "numba")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def git_commit() -> str:
    """HEAD of the checkout the code runs from ('-dirty' when tracked files changed); 'unknown' outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            continue
    return out


def run_manifest(
    coin: str,
    cohort: str,
    profile: Any,
    inputs: dict[str, Path],
    artifacts: dict[str, Path],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Inputs are fingerprinted (their hashes identify the data the run saw); artifacts are the run's outputs."""
    return {
        "coin": coin,
        "cohort": cohort,
        "created_at": dt.datetime.now(tz=dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "packages": _versions(),
        "profile": dataclasses.asdict(profile) if dataclasses.is_dataclass(profile) else profile,
        "inputs": {k: {"path": str(p), "sha256": sha256_file(p)} for k, p in inputs.items() if p.exists()},
        "artifacts": {k: {"path": str(p), "sha256": sha256_file(p)} for k, p in artifacts.items() if p.exists()},
        **(extra or {}),
    }
