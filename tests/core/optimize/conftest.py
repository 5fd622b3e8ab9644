"""Shared fixtures of the optimization tests: the study inputs on the embedded synthetic market (built once per
module; see study_worker.py), a baseline study on them, worker subprocesses, a fresh PostgreSQL database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.core.optimize.study_worker import BASELINE_TRIALS, Inputs, build_inputs, make_data

REPO = Path(__file__).resolve().parents[3]
WORKER = Path(__file__).resolve().parent / "study_worker.py"
PG_ENV = "CRYPTOALGO_TEST_PG_URL"


@pytest.fixture(scope="module")
def study_inputs() -> Inputs:
    """ETH on the synthetic market (seed 11, ~330 days), research rows before the quick preset's 30-day holdout."""
    return build_inputs()


@dataclass
class Baseline:
    inputs: Inputs
    data: Any  # StudyData (its fits after the study)
    study: Any
    cache: Any  # PredictionCache backed by cache_dir
    cache_dir: Path
    storage_path: Path
    name: str
    budget: int


@pytest.fixture(scope="module")
def baseline(study_inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """A finished study of BASELINE_TRIALS trials (quick preset) with a disk-backed prediction cache."""
    from cryptoalgo_core.optimize.cache import PredictionCache
    from cryptoalgo_core.optimize.study import open_storage, run_study

    root = tmp_path_factory.mktemp("baseline")
    data = make_data(study_inputs)
    cache = PredictionCache(root / "cache")
    path = root / "study.journal"
    study = run_study(data, study_inputs.preset, BASELINE_TRIALS, open_storage(path), "baseline", cache)
    return Baseline(study_inputs, data, study, cache, root / "cache", path, "baseline", BASELINE_TRIALS)


def worker_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start ``study_worker.py <storage> <name> <budget> <worker_id> <cache_dir>`` (stdout+stderr to a file);
    every worker still alive at teardown is SIGKILLed and reaped."""
    started: list[Worker] = []

    def spawn(storage: str | Path, name: str, budget: int, worker: int, cache_dir: Path, **env: str) -> Worker:
        log = tmp_path / f"worker-{worker}-{len(started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, str(WORKER), str(storage), name, str(budget), str(worker),
                                     str(cache_dir)], cwd=REPO, env=worker_env(**env), stdout=out,
                                    stderr=subprocess.STDOUT)
        w = Worker(proc, log)
        started.append(w)
        return w

    try:
        yield spawn
    finally:
        for w in started:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGKILL)
            try:
                w.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover - a SIGKILLed process is reaped at once
                pass


@pytest.fixture
def optuna_pg_url() -> Iterator[str]:
    """The URL of a fresh PostgreSQL database ``optuna_<uuid>`` on the server of CRYPTOALGO_TEST_PG_URL, dropped
    at the end. Skipped without the variable, failed instead under CRYPTOALGO_REQUIRE_PG=1."""
    base = os.environ.get(PG_ENV)
    require = os.environ.get("CRYPTOALGO_REQUIRE_PG") == "1"
    if not base:
        if require:
            pytest.fail(f"CRYPTOALGO_REQUIRE_PG=1 but {PG_ENV} is not set")
        pytest.skip(f"{PG_ENV} not set: the PostgreSQL study tests are skipped "
                    "(e.g. postgresql+psycopg2://postgres@127.0.0.1:5432/postgres)")
    import sqlalchemy as sa

    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if require:
            pytest.fail(f"PostgreSQL at {PG_ENV} not reachable: {exc.orig}")
        pytest.skip(f"PostgreSQL at {PG_ENV} not reachable: {exc.orig}")
    name = f"optuna_{uuid.uuid4().hex}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
