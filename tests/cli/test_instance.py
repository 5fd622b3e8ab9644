"""The Dagster instance the CLI works in: secrets never reach its storage, and it runs on PostgreSQL as
documented (dagster-postgres pinned with dagster)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "cryptoalgo_assets.cli"]


def _files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for f in root.rglob("*"):
        if f.is_file():
            try:
                if needle in f.read_bytes():
                    hits.append(str(f))
            except OSError:
                continue
    return hits


def test_database_password_is_nowhere_in_the_instance_logs_or_artifacts(pg_url: str, tmp_path: Path) -> None:
    """A market store URL with a password (the server trusts the connection, so any password works): the
    runs succeed, and the password appears in no file of DAGSTER_HOME (runs, event logs, compute logs,
    schedules) nor of the data dir, nor in the command's output."""
    import sqlalchemy as sa

    secret = f"s3cret-{uuid.uuid4().hex[:8]}"
    url = sa.engine.make_url(pg_url).set(password=secret).render_as_string(hide_password=False)
    home = Path(os.environ["DAGSTER_HOME"])
    data = Path(os.environ["TRADER_DATA_DIR"])
    env = {**os.environ, "TRADER_DB_URL": url}
    done = subprocess.run([*CLI, "ingest", "--backfill-days", "40", "--no-progress"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    feats = subprocess.run([*CLI, "features", "--coins", "BTC", "--holdout-days", "2"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
    assert feats.returncode in (0, 3), feats.stderr[-2000:]  # 40 days may not pass QA; it must have run
    assert secret not in done.stdout + done.stderr + feats.stdout + feats.stderr
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs()
    assert runs and all(secret not in str(r.run_config) for r in runs)
    assert _files_containing(home, secret.encode()) == []
    assert _files_containing(data, secret.encode()) == []


def test_a_job_runs_with_the_instance_on_postgresql(dagster_pg_home: tuple[Path, str], tmp_path: Path) -> None:
    """dagster_home/dagster.postgres.yaml.example as documented: the run, its events and the materialized
    partitions live in PostgreSQL (a fresh database on the machine's server)."""
    import sqlalchemy as sa

    home, dagster_url = dagster_pg_home
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_PG_URL": dagster_url}
    done = subprocess.run([*CLI, "ingest", "--coins", "ETH", "--backfill-days", "20", "--no-progress",
                           "--db-path", str(tmp_path / "m.db")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    eng = sa.create_engine(dagster_url)
    with eng.connect() as conn:
        statuses = [r[0] for r in conn.execute(sa.text("SELECT status FROM runs"))]
        n_mat = conn.execute(sa.text(
            "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")).scalar_one()
    eng.dispose()
    assert statuses == ["SUCCESS"]
    assert n_mat >= 2  # ohlcv + funding for ETH's quarter
    assert not (home / "history").exists()  # nothing went to SQLite


def test_no_dagster_noise_on_a_plain_command_and_plain_progress_lines_off_a_tty(tmp_path: Path) -> None:
    done = subprocess.run([*CLI, "ingest", "--coins", "XRP", "--backfill-days", "10", "--db-path",
                           str(tmp_path / "n.db")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout + done.stderr
    for noise in ("BetaWarning", "PreviewWarning", "Warning:", "data version", "dagster - INFO", "dagster - DEBUG",
                  "Traceback"):
        assert noise not in out
    progress = [ln for ln in done.stderr.splitlines() if ln.strip().startswith("XRP")]
    assert progress and progress[-1].split()[1:3] == ["100%", "done"]  # plain lines, no bar redraws
    assert "\x1b[" not in done.stderr  # no terminal control sequences when stderr is not a TTY


def test_pool_slots_of_dead_runs_are_released() -> None:
    """A run worker killed with SIGKILL never frees its pool slot; the next command frees it (else every later
    step of the pool would wait forever), and leaves slots of live runs alone."""
    import dagster as dg

    from cryptoalgo_assets.instance import prepare_instance
    from cryptoalgo_assets.launcher import release_dead_slots

    instance = prepare_instance()
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default("model_training")
    live = instance.create_run_for_job(dg.GraphDefinition("g").to_job(), run_id=str(uuid.uuid4()))
    instance.handle_run_event(live.run_id, dg.DagsterEvent(  # mark it STARTED
        event_type_value="PIPELINE_START", job_name=live.job_name))
    dead = str(uuid.uuid4())  # a run whose record says it ended (or is gone) but whose slot is still claimed
    assert storage.claim_concurrency_slot("model_training", dead, "optimized_profile").is_claimed
    assert storage.claim_concurrency_slot("model_training", live.run_id, "optimized_profile").is_claimed
    assert release_dead_slots(instance) == [dead]
    held = {c.run_id for c in storage.get_concurrency_info("model_training").claimed_slots}
    assert held == {live.run_id}


def test_pools_exist_before_any_run() -> None:
    """The instance is prepared with every pool the assets use: two runs starting together on a fresh
    PostgreSQL instance would both insert the pool's default row, and the loser's transaction aborts."""
    from cryptoalgo_assets.definitions import defs
    from cryptoalgo_assets.instance import POOLS, prepare_instance

    used = {n.pool for a in defs.resolve_asset_graph().assets_defs for n in [a.op] if getattr(n, "pool", None)}
    assert used == set(POOLS)
    instance = prepare_instance()
    assert set(POOLS) <= set(instance.event_log_storage.get_concurrency_keys())
