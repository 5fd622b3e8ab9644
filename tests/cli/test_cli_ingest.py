"""The `cryptoalgo` CLI: bad input exits non-zero with a named problem and writes nothing; a backfill killed
with SIGKILL mid-way and resumed ends identical to the server's data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cryptoalgo_assets.cli import main
from cryptoalgo_core.timeutil import HOUR_MS, parse_date_ms
from resources.store import MarketStore
from tests.fakes import hourly_ohlcv
from tests.fakes.fake_coinbase import FakeCoinbase

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--coins", "BTC,NOPE"], "unknown coin(s) ['NOPE']"),
        (["--source", "bitmex"], "Invalid value for '--source'"),
        (["--source", "replay", "--replay-dir", "/nonexistent/replay"], "replay directory does not exist"),
        (["--source", "replay"], "--source replay needs --replay-dir"),
        (["--start", "2024-13-01"], "not a UTC date"),
        (["--start", "2024-02-01", "--end", "2024-01-01"], "must be after --start"),
        (["--start", "2010-01-01", "--end", "2010-02-01"], "before calendar_start"),
    ],
)
def test_bad_input_exits_nonzero_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    db = tmp_path / "sub" / "x.db"
    res = _run(["ingest", "--db-path", str(db), "--no-progress", *args])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert not db.exists()  # every input is validated before the store is opened


def test_malformed_config_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    for f in ("sources.yaml", "gates.yaml", "synthetic.yaml"):
        src = REPO / "config" / f
        if src.exists():
            (cfg / f).write_text(src.read_text())
    (cfg / "coins.yaml").write_text("coins:\n  BTC: {symbols: {coinbase: BTC-USD}\n")  # unclosed brace
    monkeypatch.setenv("CRYPTOALGO_CONFIG_DIR", str(cfg))
    res = _run(["ingest", "--db-path", str(tmp_path / "x.db"), "--no-progress"])
    assert res.exit_code == 2
    assert "coins.yaml: malformed YAML" in res.output
    assert not (tmp_path / "x.db").exists()
    (cfg / "gates.yaml").write_text("market_data:\n  gap_warn_hours: 5\n  gap_error_hours: 2\n")
    (cfg / "coins.yaml").write_text((REPO / "config" / "coins.yaml").read_text())
    res = _run(["ingest", "--db-path", str(tmp_path / "x.db"), "--no-progress"])
    assert res.exit_code == 2 and "gap_warn_hours" in res.output


def test_unwritable_db_path_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    res = _run(["ingest", "--db-path", str(blocker / "x.db"), "--no-progress", "--source", "synthetic"])
    assert res.exit_code == 2
    assert "cannot create the directory" in res.output


def test_mixing_source_families_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    MarketStore(f"sqlite:///{db}").claim_family("synthetic")
    res = _run(["ingest", "--db-path", str(db), "--source", "coinbase", "--no-progress"])
    assert res.exit_code == 2 and "holds synthetic data" in res.output


def test_sigkill_mid_backfill_then_resume_equals_clean_run(tmp_path: Path) -> None:
    start = parse_date_ms("2024-01-01")
    days = 60
    data = hourly_ohlcv(start, days * 24, seed=11, price=30000.0)
    env = {
        **os.environ,
        "TRADER_DB_PATH": str(tmp_path / "k.db"),
        "DAGSTER_HOME": os.environ["DAGSTER_HOME"],
    }
    cmd = [
        sys.executable, "-m", "cryptoalgo_assets.cli", "ingest", "--source", "coinbase", "--coins", "BTC",
        "--start", "2024-01-01", "--end", "2024-03-01", "--no-progress",
    ]
    with FakeCoinbase({"BTC-USD": data}) as cb:
        cb.latency_s = 0.4  # ~5 pages of 300 candles: a window to kill the run in
        env["CRYPTOALGO_COINBASE_URL"] = cb.url
        proc = subprocess.Popen([*cmd, "--coinbase-url", cb.url], env=env, cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        db = tmp_path / "k.db"
        deadline = time.monotonic() + 120
        killed_at = None
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    n = MarketStore(f"sqlite:///{db}").stats("ohlcv", "BTC")["rows"]
                except Exception:  # noqa: BLE001 - the file may be mid-creation; poll again
                    n = 0
                if n >= 300:
                    proc.send_signal(signal.SIGKILL)
                    killed_at = n
                    break
            time.sleep(0.05)
        proc.wait(timeout=30)
        assert killed_at is not None and killed_at < days * 24, "run finished before it could be killed"
        cb.latency_s = 0.0
        requests_before = cb.count("/candles")
        done = subprocess.run([*cmd, "--coinbase-url", cb.url], env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        resumed_requests = cb.count("/candles") - requests_before
    store = MarketStore(f"sqlite:///{tmp_path / 'k.db'}")
    got = store.load("ohlcv", "BTC")
    assert store.duplicate_keys("ohlcv", "BTC") == 0
    assert got["ts"].tolist() == data["ts"].tolist()  # zero missing hours, zero duplicates
    assert (got[["open", "high", "low", "close", "volume"]].to_numpy() == data[
        ["open", "high", "low", "close", "volume"]].to_numpy()).all()
    assert resumed_requests < days * 24 / 300  # the resume fetched only what was missing
    assert got["ts"].diff().dropna().eq(HOUR_MS).all()


def test_day_ranges_skip_materialized_but_rerun_last_day() -> None:
    from cryptoalgo_assets.cli import day_ranges_to_run

    days = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
    done = {"BTC|2024-01-01", "BTC|2024-01-02", "BTC|2024-01-04", "BTC|2024-01-05", "ETH|2024-01-03"}
    assert day_ranges_to_run(days, done, "BTC") == [("2024-01-03", "2024-01-03"), ("2024-01-05", "2024-01-05")]
    assert day_ranges_to_run(days, set(), "ETH") == [("2024-01-01", "2024-01-05")]


def test_demo_runs_through_the_dagster_instance(tmp_path: Path) -> None:
    import dagster as dg

    db = tmp_path / "demo.db"
    res = _run(["demo", "--days", "300", "--db-path", str(db), "--no-progress", "--workers", "2"])
    assert res.exit_code == 0, res.output
    assert "data QA" in res.output and "edge decomposition" in res.output
    for coin in ("BTC", "ETH", "SOL", "XRP", "DOGE"):
        assert coin in res.output
    store = MarketStore(f"sqlite:///{db}")
    assert store.coins() == ["BTC", "DOGE", "ETH", "SOL", "XRP"]
    assert all(store.stats("ohlcv", c)["rows"] == 300 * 24 for c in store.coins())
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"cryptoalgo/command": "ingest"}))
    assert len(runs) == 5 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    assert len(instance.get_materialized_partitions(dg.AssetKey("ohlcv"))) == 5 * 300
    assert instance.get_materialized_partitions(dg.AssetKey("data_qa")) == set(store.coins())
    assert instance.get_materialized_partitions(dg.AssetKey("backtest")) == set(store.coins())
    data = Path(os.environ["TRADER_DATA_DIR"])
    assert (data / "qa" / "summary.csv").exists()
    assert all((data / "runs" / "default" / c / "diagnostics.json").exists() for c in store.coins())
    # a second demo only re-runs each coin's last day and fetches nothing new
    res = _run(["demo", "--days", "300", "--db-path", str(db), "--no-progress", "--workers", "2"])
    assert res.exit_code == 0
    assert all(store.stats("ohlcv", c)["rows"] == 300 * 24 for c in store.coins())


def test_database_password_never_printed() -> None:
    res = _run(["ingest", "--db-path", "postgresql+psycopg2://trader:s3cret-pw@127.0.0.1:1/nowhere", "--no-progress",
                "--source", "synthetic"])
    assert res.exit_code == 2
    assert "cannot open market store" in res.output
    assert "s3cret-pw" not in res.output
