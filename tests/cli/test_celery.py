"""Scale-out: a two-coin launch whose optimize steps run on two dagster-celery worker processes (broker: the
machine's RabbitMQ; instance: PostgreSQL) chooses the same parameters and produces the same result hashes as the
local launch on the same data."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import fill_synthetic_store

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "cryptoalgo_assets.cli"]


def _broker_up(host: str = "127.0.0.1", port: int = 5672) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def celery_env(dagster_pg_home: tuple[Path, str], tmp_path: Path):  # noqa: ANN201 - a generator fixture
    if not _broker_up():
        if os.environ.get("CRYPTOALGO_REQUIRE_PG") == "1":
            pytest.fail("RabbitMQ is not reachable on 127.0.0.1:5672 (the dagster-celery broker)")
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672: the dagster-celery test needs a broker")
    home, dagster_url = dagster_pg_home
    db = f"sqlite:///{tmp_path / 'store.db'}"
    fill_synthetic_store(db, 200, kinds=("ohlcv", "funding"))
    queue = f"cryptoalgo-test-{uuid.uuid4().hex[:8]}"  # this test's own queue on the shared broker
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_PG_URL": dagster_url, "TRADER_DB_URL": db,
           "TRADER_DATA_DIR": str(tmp_path / "data"), "CRYPTOALGO_CELERY_QUEUE": queue,
           "DAGSTER_CELERY_BROKER_HOST": "127.0.0.1", "PYTHONWARNINGS": "ignore"}
    workers = []
    try:
        for i in range(2):
            log = open(tmp_path / f"worker{i}.log", "w")  # noqa: SIM115 - closed below
            workers.append((subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "dagster_celery.app", "worker", "-Q", queue, "-n",
                 f"w{i}-{queue}@%h", "--concurrency", "1", "--prefetch-multiplier=1", "-l", "INFO"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT), log))
        yield env, tmp_path
    finally:
        for p, _log in workers:
            p.terminate()
        for p, log in workers:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
            log.close()


def _run_errors(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """The failed runs' error events (for the assertion message)."""
    import dagster as dg

    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    monkeypatch.setenv("DAGSTER_PG_URL", env["DAGSTER_PG_URL"])
    instance = dg.DagsterInstance.get()
    out = []
    for r in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE])):
        for e in instance.all_logs(r.run_id):
            d = e.dagster_event
            info = getattr(getattr(d, "event_specific_data", None), "error", None) if d else None
            if info is not None:
                out.append(f"{r.run_id[:8]} {d.event_type_value}: {info.to_string()[-1500:]}")
    instance.dispose()
    return "\n".join(out)


def test_celery_launch_matches_the_local_launch(celery_env, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    env, tmp = celery_env
    common = ["launch", "--coins", "ETH,SOL", "--trials", "6", "--preset", "quick", "--holdout-days", "30",
              "--no-progress"]
    cel = subprocess.run([*CLI, *common, "--cohort", "cel", "--executor", "celery"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=900)
    assert cel.returncode == 0, cel.stdout[-3000:] + cel.stderr[-3000:] + _run_errors(env, monkeypatch)
    loc = subprocess.run([*CLI, *common, "--cohort", "loc"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=900)
    assert loc.returncode == 0, loc.stdout[-3000:] + loc.stderr[-3000:]
    runs = tmp / "data" / "runs"
    for coin in ("ETH", "SOL"):
        a = json.loads((runs / "cel" / coin / "optimized_profile.json").read_text())
        b = json.loads((runs / "loc" / coin / "optimized_profile.json").read_text())
        assert a["params"] == b["params"] and a["result_sha256"] == b["result_sha256"], coin
        ha = json.loads((runs / "cel" / coin / "holdout.json").read_text())
        hb = json.loads((runs / "loc" / coin / "holdout.json").read_text())
        assert ha["result_sha256"] == hb["result_sha256"], coin
    # the celery launch's steps really ran in the workers: each executed optimize tasks, both coins between them
    deadline = time.time() + 30
    logs = ""
    while time.time() < deadline:
        logs = "".join((tmp / f"worker{i}.log").read_text() for i in range(2))
        if logs.count("succeeded in") >= 4:
            break
        time.sleep(0.5)
    assert logs.count("succeeded in") >= 4, logs[-3000:]  # 2 coins x (optimized_profile, holdout_evaluation)
    import dagster as dg

    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    monkeypatch.setenv("DAGSTER_PG_URL", env["DAGSTER_PG_URL"])
    instance = dg.DagsterInstance.get()
    try:
        celery_runs = instance.get_runs(filters=dg.RunsFilter(job_name="optimize_celery_job"))
        assert sorted(r.tags["dagster/partition"] for r in celery_runs) == ["ETH", "SOL"]
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in celery_runs)
    finally:
        instance.dispose()
