"""The `cryptoalgo` CLI end to end: runs submitted through the instance (origin, job pages), bad input exits 2
with one line and writes nothing, gates exit 3 before anything runs, a killed run worker resumes to the
server's data, Ctrl-C cancels with one line, and two commands on a fresh DAGSTER_HOME both succeed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from cryptoalgo_assets.cli import main
from cryptoalgo_core.timeutil import HOUR_MS, parse_date_ms
from resources.store import MarketStore
from tests.conftest import fill_synthetic_store
from tests.fakes import hourly_ohlcv
from tests.fakes.fake_coinbase import FakeCoinbase

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "cryptoalgo_assets.cli"]


def _run(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def _one_line_error(output: str) -> str:
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    assert "Traceback" not in output, output
    assert len(lines) == 1, output
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--coins", "BTC,NOPE"], "unknown coin(s) ['NOPE']"),
        (["--source", "replay", "--replay-dir", "/nonexistent/replay"], "replay directory does not exist"),
        (["--source", "replay"], "--source replay needs --replay-dir"),
        (["--start", "2024-13-01"], "not a UTC date"),
        (["--start", "2024-02-01", "--end", "2024-01-01"], "must be after --start"),
        (["--start", "2010-01-01", "--end", "2010-02-01"], "before calendar_start"),
        (["--start", "2025-06-01", "--end", "2026-06-01"], "outside the synthetic calendar"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    db = tmp_path / "sub" / "x.db"
    res = _run(["ingest", "--db-path", str(db), "--no-progress", "--source", "synthetic", *args])
    assert res.exit_code == 2, res.output
    assert message in _one_line_error(res.output)
    assert not db.exists()


@pytest.mark.parametrize(("content", "url_prefix", "message"), [
    ("this is not sqlite", "", "not a SQLite database"),
    (None, "mysql+nope://u:pw@h/db", "scheme"),
    (None, "foo://x", "scheme"),
])
def test_bad_store_exits_2(tmp_path: Path, content: str | None, url_prefix: str, message: str) -> None:
    target = url_prefix
    if content is not None:
        f = tmp_path / "corrupt.db"
        f.write_text(content)
        target = str(f)
    res = _run(["ingest", "--db-path", target, "--no-progress", "--source", "synthetic"])
    assert res.exit_code == 2
    assert message in _one_line_error(res.output) and "pw" not in res.output


def test_summary_of_a_missing_store_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "nowhere" / "x.db"
    res = _run(["summary", "--db-path", str(db)])
    assert res.exit_code == 2 and "no market store at" in _one_line_error(res.output)
    assert not db.exists() and not db.parent.exists()


def test_malformed_config_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    for f in (REPO / "config").glob("*.yaml"):
        (cfg / f.name).write_text(f.read_text())
    (cfg / "coins.yaml").write_text("coins:\n  BTC: {symbols: {coinbase: BTC-USD}\n")  # unclosed brace
    monkeypatch.setenv("CRYPTOALGO_CONFIG_DIR", str(cfg))
    res = _run(["ingest", "--db-path", str(tmp_path / "x.db"), "--no-progress"])
    assert res.exit_code == 2 and "coins.yaml: malformed YAML" in res.output
    assert not (tmp_path / "x.db").exists()
    (cfg / "gates.yaml").write_text("market_data:\n  gap_warn_hours: 5\n  gap_error_hours: 2\n")
    (cfg / "coins.yaml").write_text((REPO / "config" / "coins.yaml").read_text())
    res = _run(["ingest", "--db-path", str(tmp_path / "x.db"), "--no-progress"])
    assert res.exit_code == 2 and "gap_warn_hours" in res.output
    # a coin the synthetic market does not define: config validation names it
    (cfg / "gates.yaml").write_text((REPO / "config" / "gates.yaml").read_text())
    (cfg / "coins.yaml").write_text((REPO / "config" / "coins.yaml").read_text()
                                    + "  ADA:\n    symbols: {coinbase: ADA-USD}\n")
    res = _run(["ingest", "--coins", "BTC,ADA", "--db-path", str(tmp_path / "x.db"), "--no-progress",
                "--source", "synthetic"])
    assert res.exit_code == 2 and "['ADA'] have no definition in config/synthetic.yaml" in res.output


def test_mixing_source_families_and_unwritable_paths_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    MarketStore(f"sqlite:///{db}").claim_family("synthetic")
    res = _run(["ingest", "--db-path", str(db), "--source", "coinbase", "--no-progress"])
    assert res.exit_code == 2 and "holds synthetic data" in res.output
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    res = _run(["ingest", "--db-path", str(blocker / "x.db"), "--no-progress", "--source", "synthetic"])
    assert res.exit_code == 2 and "cannot create the directory" in res.output


def test_database_password_never_printed() -> None:
    res = _run(["ingest", "--db-path", "postgresql+psycopg2://trader:s3cret-pw@127.0.0.1:1/nowhere", "--no-progress",
                "--source", "synthetic"])
    assert res.exit_code == 2
    assert "s3cret-pw" not in res.output and "trader:***" in res.output


def _worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        m = re.search(r"pid: (\d+)", e.message or "") or re.search(r"pid: (\d+)", str(e.dagster_event))
        if m:
            return int(m.group(1))
    return None


def test_killed_run_worker_then_resume_equals_the_servers_data(tmp_path: Path) -> None:
    """SIGKILL the run worker mid-backfill: the run is reported failed (exit 1), and the next command resumes
    from the store's committed pages to exactly the server's data, fetching only what was missing."""
    days = 60
    data = hourly_ohlcv(parse_date_ms("2024-01-01"), days * 24, seed=11, price=30000.0)
    db = tmp_path / "k.db"
    cmd = [*CLI, "ingest", "--source", "coinbase", "--coins", "BTC", "--start", "2024-01-01", "--end", "2024-03-01",
           "--no-progress", "--db-path", str(db)]
    with FakeCoinbase({"BTC-USD": data}) as cb:
        cb.latency_s = 0.4  # ~5 pages of 300 candles: a window to kill the run in
        env = {**os.environ, "CRYPTOALGO_COINBASE_URL": cb.url}
        proc = subprocess.Popen([*cmd, "--coinbase-url", cb.url], env=env, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        instance = dg.DagsterInstance.get()
        deadline = time.monotonic() + 180
        killed = None
        while time.monotonic() < deadline and proc.poll() is None and killed is None:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"cryptoalgo/command": "ingest"}), limit=1)
            if runs and db.exists() and MarketStore(f"sqlite:///{db}").stats("ohlcv", "BTC")["rows"] >= 300:
                pid = _worker_pid(instance, runs[0].run_id)
                if pid:
                    os.kill(pid, signal.SIGKILL)
                    killed = runs[0].run_id
            time.sleep(0.05)
        out, errs = proc.communicate(timeout=120)
        assert killed is not None, out + errs
        assert proc.returncode == 1, out + errs
        assert "failed" in errs
        assert instance.get_run_by_id(killed).status == dg.DagsterRunStatus.FAILURE
        rows_after_kill = MarketStore(f"sqlite:///{db}").stats("ohlcv", "BTC")["rows"]
        assert 300 <= rows_after_kill < days * 24
        cb.latency_s = 0.0
        before = cb.count("/candles")
        done = subprocess.run([*cmd, "--coinbase-url", cb.url], env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        resumed_requests = cb.count("/candles") - before
    store = MarketStore(f"sqlite:///{db}")
    got = store.load("ohlcv", "BTC")
    assert got["ts"].tolist() == data["ts"].tolist()  # zero missing hours, zero duplicates
    assert (got[["open", "high", "low", "close", "volume"]].to_numpy()
            == data[["open", "high", "low", "close", "volume"]].to_numpy()).all()
    assert resumed_requests <= (days * 24 - rows_after_kill) // 300 + 2  # only what was missing
    assert got["ts"].diff().dropna().eq(HOUR_MS).all()


def test_ctrl_c_cancels_the_runs_with_one_line(tmp_path: Path) -> None:
    data = hourly_ohlcv(parse_date_ms("2024-01-01"), 60 * 24, seed=12, price=30000.0)
    with FakeCoinbase({"BTC-USD": data}) as cb:
        cb.latency_s = 3.0  # 5 pages: the run is still fetching when Ctrl-C arrives, even on a loaded machine
        proc = subprocess.Popen(
            [*CLI, "ingest", "--source", "coinbase", "--coins", "BTC", "--start", "2024-01-01", "--end", "2024-03-01",
             "--no-progress", "--db-path", str(tmp_path / "c.db"), "--coinbase-url", cb.url],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        instance = dg.DagsterInstance.get()
        deadline = time.monotonic() + 180
        run = None
        while time.monotonic() < deadline and proc.poll() is None:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"cryptoalgo/command": "ingest"}), limit=1)
            if runs and runs[0].status == dg.DagsterRunStatus.STARTED and cb.count("/candles") >= 1:
                run = runs[0]
                break
            time.sleep(0.05)
        assert run is not None
        proc.send_signal(signal.SIGINT)
        out, errs = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + errs
    assert "Traceback" not in errs
    lines = [ln for ln in errs.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted"), errs
    assert instance.get_run_by_id(run.run_id).status in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE)


def test_two_commands_at_once_on_a_fresh_dagster_home(tmp_path: Path) -> None:
    for attempt in range(3):
        home = tmp_path / f"home{attempt}"  # no dagster.yaml yet: the CLI creates the instance
        env = {**os.environ, "DAGSTER_HOME": str(home)}
        procs = [subprocess.Popen([*CLI, "ingest", "--coins", coin, "--backfill-days", "20", "--no-progress",
                                   "--db-path", str(tmp_path / f"two{attempt}.db")],
                                  cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for coin in ("BTC", "ETH")]
        results = [p.communicate(timeout=300) for p in procs]
        for p, (out, errs) in zip(procs, results, strict=True):
            assert p.returncode == 0, f"attempt {attempt}: {out[-1500:]}{errs[-1500:]}"
        os.environ["DAGSTER_HOME"] = str(home)
        instance = dg.DagsterInstance.get()
        assert len(instance.get_runs()) == 2
        assert instance.all_instigator_state() is not None  # the schedule storage is usable


def test_cli_runs_carry_the_code_location_origin(tmp_path: Path) -> None:
    res = _run(["ingest", "--coins", "BTC,ETH", "--backfill-days", "100", "--no-progress", "--db-path",
                str(tmp_path / "o.db")])
    assert res.exit_code == 0, res.output
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs(filters=dg.RunsFilter(job_name="market_data_job"))
    assert len(runs) == 1  # BTC and ETH are adjacent in coins.yaml: one run for the rectangle
    run = runs[0]
    assert run.remote_job_origin is not None
    assert run.remote_job_origin.location_name == "cryptoalgo"
    assert run.tags["dagster/code_location"] == "cryptoalgo"
    assert run.tags["cryptoalgo/command"] == "ingest"
    # partition metadata is per partition, and the checks carry their partition
    mats = instance.fetch_materializations(dg.AssetKey("ohlcv"), limit=100).records
    parts = {m.partition_key: m.asset_materialization.metadata["rows"].value for m in mats}
    assert set(parts) == {f"{c}|{q}" for c in ("BTC", "ETH") for q in ("2025-07-01", "2025-10-01")}
    assert parts["BTC|2025-10-01"] == 92 * 24 and parts["BTC|2025-07-01"] == 8 * 24  # each its own quarter
    # a re-run fetches nothing and launches nothing
    again = _run(["ingest", "--coins", "BTC,ETH", "--backfill-days", "100", "--no-progress", "--db-path",
                  str(tmp_path / "o.db")])
    assert again.exit_code == 0 and "nothing to fetch" in again.output
    assert len(instance.get_runs(filters=dg.RunsFilter(job_name="market_data_job"))) == 1


def test_features_gate_exits_3_naming_coin_and_check(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'g.db'}"
    fill_synthetic_store(db, 200)
    store = MarketStore(db)
    ts = store.load_ts("ohlcv", "SOL")
    cut = ts[len(ts) // 2]
    with store.engine.begin() as conn:  # a 13-hour outage in SOL's history
        conn.exec_driver_sql("DELETE FROM ohlcv WHERE coin='SOL' AND ts >= ? AND ts < ?", (cut, cut + 13 * HOUR_MS))
    n_before = len(dg.DagsterInstance.get().get_runs())
    too_long = _run(["features", "--coins", "ETH", "--db-path", db, "--holdout-days", "190", "--no-progress"])
    assert too_long.exit_code == 2 and "190-day holdout" in _one_line_error(too_long.output), too_long.output
    assert len(dg.DagsterInstance.get().get_runs()) == n_before  # refused before anything ran
    res = _run(["features", "--coins", "ETH,SOL", "--db-path", db, "--holdout-days", "10", "--no-progress"])
    assert res.exit_code == 3, res.output
    assert "SOL: data_qa.qa_gaps" in res.output and "ETH: data_qa" not in res.output
    # training SOL is refused before anything runs (exit 3), ETH trains
    n_runs = len(dg.DagsterInstance.get().get_runs())
    refused = _run(["train", "--coin", "SOL", "--db-path", db, "--no-progress"])
    assert refused.exit_code == 3 and "SOL: qa_gaps" in _one_line_error(refused.output)
    assert len(dg.DagsterInstance.get().get_runs()) == n_runs
    ok = _run(["train", "--coin", "ETH", "--cohort", "cli", "--db-path", db, "--no-progress"])
    assert ok.exit_code == 0, ok.output
    for text in ("edge decomposition", "ETH: exit reasons", "stop_loss", "calibration of P(up first",
                 "regime buckets", "signal funnel", "end"):
        assert text in ok.output
    assert (Path(os.environ["TRADER_DATA_DIR"]) / "runs" / "cli" / "ETH" / "diagnostics.json").exists()
    funnel = ok.output[ok.output.index("signal funnel"):]
    order = [funnel.index(k) for k in ("bars_with_prediction", "entry_rule", "after_vol_filter",
                                       "after_momentum_filter", "after_trend_filter")]
    assert order == sorted(order)  # pipeline order, not alphabetical


@pytest.mark.parametrize("cohort", ["../escape", "/abs", "a/b", ".."])
def test_cohort_may_not_escape_the_data_dir(cohort: str) -> None:
    res = _run(["train", "--coin", "ETH", "--cohort", cohort, "--no-progress"])
    assert res.exit_code == 2 and "cohort" in _one_line_error(res.output)


def test_train_without_dataset_is_a_named_error(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'e.db'}"
    fill_synthetic_store(db, 5, kinds=("ohlcv",))
    res = _run(["train", "--coin", "SOL", "--db-path", db])
    assert res.exit_code == 2 and "no ML dataset for ['SOL']" in res.output


def test_demo_runs_the_graph_through_the_instance(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    res = _run(["demo", "--days", "420", "--trials", "12", "--db-path", str(db), "--no-progress"])
    assert res.exit_code == 0, res.output
    for part in ("data QA", "edge decomposition", "optimization launch", "robustness", "deployment checklist",
                 "portfolio:"):
        assert part in res.output, part
    store = MarketStore(f"sqlite:///{db}")
    assert store.coins() == ["BTC", "DOGE", "ETH", "SOL", "XRP"]
    assert all(store.stats("ohlcv", c)["rows"] == 420 * 24 for c in store.coins())
    instance = dg.DagsterInstance.get()
    for job, n in (("market_data_oi_job", 1), ("research_data_job", 5), ("model_job", 5), ("optimize_job", 5),
                   ("validate_job", 5), ("portfolio_job", 1), ("checklist_job", 1), ("stage_job", 5)):
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=job))
        assert len(runs) == n, job
        assert all(r.remote_job_origin.location_name == "cryptoalgo" for r in runs)
    for job in ("market_data_oi_job", "research_data_job", "model_job", "optimize_job", "checklist_job"):
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=job))
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), job
    assert instance.get_materialized_partitions(dg.AssetKey("data_qa")) == set(store.coins())
    assert instance.get_materialized_partitions(dg.AssetKey("robustness_report")) == set(store.coins())
    data = Path(os.environ["TRADER_DATA_DIR"])
    assert (data / "qa" / "summary.csv").exists()
    cohort = json.loads((data / "checklist.json").read_text())["cohort"]
    assert cohort.startswith("demo-")
    for c in store.coins():
        for name in ("diagnostics.json", "optimized_profile.json", "holdout.json", "robustness.json",
                     "robustness.html"):
            assert (data / "runs" / cohort / c / name).exists(), (c, name)
    # the verdict is the gates': a noise coin never passes on 12 trials of 300 research days
    doc = json.loads((data / "checklist.json").read_text())
    assert {c["coin"]: c["verdict"] for c in doc["coins"]}["BTC"] == "FAIL"
    # staging: only coins the checklist passes get a registry version; BTC records why not
    assert "BTC: not staged: checklist FAIL" in res.output
    assert not (data / "models" / "staging" / "BTC").exists()
    assert oct(os.stat(data / "qa" / "summary.csv").st_mode & 0o777) in ("0o644", "0o664")
