"""Dagster layer: definitions load, raw assets materialize per coin x day, checks catch planted problems."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from cryptoalgo_assets.definitions import build_definitions
from cryptoalgo_assets.defs import market_data
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS, parse_date_ms
from resources.dagster_resources import MarketSourceResource, MarketStoreResource
from resources.store import MarketStore
from tests.fakes import funding_frame, hourly_ohlcv
from tests.fakes.fake_binance import FakeBinance
from tests.fakes.fake_coinbase import FakeCoinbase

REPO = Path(__file__).resolve().parents[2]
DAY0 = parse_date_ms("2024-01-01")


@pytest.fixture
def exchanges() -> Iterator[tuple[FakeCoinbase, FakeBinance, pd.DataFrame]]:
    ohlcv = hourly_ohlcv(DAY0, 24 * 10, seed=3, price=40000.0)
    spot = ohlcv.assign(close=ohlcv["close"] * 1.0005)  # a USDT market a few bps away
    fund = funding_frame(DAY0, 30)
    with FakeCoinbase({"BTC-USD": ohlcv}) as cb, FakeBinance(
        spot={"BTC/USDT": spot}, perp={"BTC/USDT:USDT": spot}, funding={"BTC/USDT:USDT": fund}
    ) as bn:
        yield cb, bn, ohlcv


def _materialize(assets: list, key: str, source: str, db: str, cb: FakeCoinbase, bn: FakeBinance):
    return dg.materialize(
        assets,
        partition_key=key,
        resources={
            "market_store": MarketStoreResource(db_url=db),
            "market_source": MarketSourceResource(source=source, coinbase_url=cb.url, ccxt_url=bn.url),
            "project": build_definitions().resources["project"],
        },
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _checks(res) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in res.get_asset_check_evaluations()}


def test_definitions_validate_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "cryptoalgo_assets.definitions"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_one_coin_day_partition_materializes_from_auto_source(tmp_path: Path, exchanges) -> None:
    cb, bn, ohlcv = exchanges
    db = f"sqlite:///{tmp_path / 'm.db'}"
    res = _materialize([market_data.ohlcv, market_data.funding], "BTC|2024-01-02", "auto", db, cb, bn)
    assert res.success
    store = MarketStore(db)
    got = store.load("ohlcv", "BTC")
    want = ohlcv[(ohlcv.ts >= DAY0 + DAY_MS) & (ohlcv.ts < DAY0 + 2 * DAY_MS)].reset_index(drop=True)
    assert got["ts"].tolist() == want["ts"].tolist()
    np.testing.assert_allclose(got["close"], want["close"])
    assert set(got["source"]) == {"coinbase"}
    assert store.stats("funding", "BTC")["rows"] == 3
    checks = _checks(res)
    for name in ("no_duplicate_keys", "hourly_continuity", "ohlc_invariants", "funding_plausible"):
        assert checks[name].passed, name
    rec = checks["source_reconciliation"]
    assert rec.passed and rec.metadata["BTC.overlap"].value > 0
    mats = res.asset_materializations_for_node("ohlcv")
    assert mats and "summary" in mats[0].metadata


def test_rerun_fetches_only_what_is_missing(tmp_path: Path, exchanges) -> None:
    cb, bn, _ = exchanges
    db = f"sqlite:///{tmp_path / 'm.db'}"
    assert _materialize([market_data.ohlcv], "BTC|2024-01-02", "coinbase", db, cb, bn).success
    first = cb.count("/candles")
    assert first >= 1
    assert _materialize([market_data.ohlcv], "BTC|2024-01-02", "coinbase", db, cb, bn).success
    assert cb.count("/candles") == first  # nothing re-fetched
    assert MarketStore(db).stats("ohlcv", "BTC")["rows"] == 24


def test_checks_catch_gap_bad_candle_and_divergent_source(tmp_path: Path) -> None:
    ohlcv = hourly_ohlcv(DAY0, 24 * 3, seed=5, price=100.0)
    broken = ohlcv.drop(index=range(30, 56)).reset_index(drop=True)  # 26-hour gap on day 2
    broken.loc[5, "high"] = broken.loc[5, "low"] - 1.0  # high < low
    spot = ohlcv.assign(close=ohlcv["close"] * 1.05)  # 5 % away: reconciliation must flag it
    with FakeCoinbase({"BTC-USD": broken}) as cb, FakeBinance(
        spot={"BTC/USDT": spot}, perp={"BTC/USDT:USDT": spot}, funding={"BTC/USDT:USDT": funding_frame(DAY0, 9)}
    ) as bn:
        db = f"sqlite:///{tmp_path / 'm.db'}"
        res = dg.materialize(
            [market_data.ohlcv],
            instance=dg.DagsterInstance.ephemeral(),
            tags={
                "dagster/asset_partition_range_start": "BTC|2024-01-01",
                "dagster/asset_partition_range_end": "BTC|2024-01-03",
            },
            resources={
                "market_store": MarketStoreResource(db_url=db),
                "market_source": MarketSourceResource(source="auto", coinbase_url=cb.url, ccxt_url=bn.url),
                "project": build_definitions().resources["project"],
            },
            raise_on_error=False,
        )
    checks = _checks(res)
    cont = checks["hourly_continuity"]
    assert not cont.passed and cont.severity == dg.AssetCheckSeverity.ERROR
    assert cont.metadata["BTC.largest_gap_hours"].value == 26
    inv = checks["ohlc_invariants"]
    assert not inv.passed and inv.metadata["BTC.rejected_rows"].value == 1
    assert not checks["source_reconciliation"].passed
    store = MarketStore(db)
    rej = store.rejects("ohlcv", "BTC")
    assert len(rej) == 1 and "high_below_low" in rej.loc[0, "reason"]
    assert store.stats("ohlcv", "BTC")["rows"] == 72 - 26 - 1


def test_windows_by_coin_merges_contiguous_days() -> None:
    keys = ["BTC|2024-01-01", "BTC|2024-01-02", "BTC|2024-01-05", "ETH|2024-01-01"]
    w = market_data.windows_by_coin(keys)
    assert w["BTC"] == [(DAY0, DAY0 + 2 * DAY_MS), (DAY0 + 4 * DAY_MS, DAY0 + 5 * DAY_MS)]
    assert w["ETH"] == [(DAY0, DAY0 + DAY_MS)]


def test_dagster_cli_partition_range_backfill(tmp_path: Path, exchanges) -> None:
    """`dagster asset materialize --partition-range` on the real CLI, against the loopback Coinbase fake."""
    cb, bn, ohlcv = exchanges
    db = tmp_path / "cli.db"
    env = {
        **__import__("os").environ,
        "TRADER_DB_PATH": str(db),
        "CRYPTOALGO_SOURCE": "coinbase",
        "CRYPTOALGO_COINBASE_URL": cb.url,
    }
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "cryptoalgo_assets.definitions",
         "--select", "ohlcv", "--partition-range", "BTC|2024-01-03...BTC|2024-01-05"],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = MarketStore(f"sqlite:///{db}").load("ohlcv", "BTC")
    assert got["ts"].min() == DAY0 + 2 * DAY_MS and got["ts"].max() == DAY0 + 5 * DAY_MS - HOUR_MS
    assert len(got) == 72


def test_daily_schedule_targets_previous_day_for_every_coin() -> None:
    defs = build_definitions()
    sched = defs.resolve_schedule_def("daily_market_data_schedule")
    ctx = dg.build_schedule_context(
        scheduled_execution_time=pd.Timestamp("2024-03-10 00:20", tz="UTC").to_pydatetime(),
        repository_def=defs.get_repository_def(),
    )
    reqs = sched.evaluate_tick(ctx).run_requests
    assert sorted(r.partition_key for r in reqs) == sorted(
        f"{c}|2024-03-09" for c in ("BTC", "ETH", "SOL", "XRP", "DOGE")
    )
