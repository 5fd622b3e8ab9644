"""Market-data stage through Dagster: coin x quarter partitions from loopback exchanges, per-partition metadata and
checks (a failing BTC check stays on BTC), data versions, schedules that honour include_oi."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from cryptoalgo_assets.defs import market_data
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS, parse_date_ms
from resources.dagster_resources import MarketSourceResource, MarketStoreResource, ProjectConfigResource
from resources.store import MarketStore
from tests.fakes import funding_frame, hourly_ohlcv
from tests.fakes.fake_binance import FakeBinance
from tests.fakes.fake_coinbase import FakeCoinbase

JAN = parse_date_ms("2024-01-01")
MAR = parse_date_ms("2024-03-01")  # the fixtures span March (Q1) and April (Q2)
APR = parse_date_ms("2024-04-01")


def _resources(db: str, source: str, cb: FakeCoinbase, bn: FakeBinance | None = None) -> dict:
    return {
        "market_store": MarketStoreResource(db_url=db),
        "market_source": MarketSourceResource(source=source, coinbase_url=cb.url, ccxt_url=bn.url if bn else ""),
        "project": ProjectConfigResource(),
    }


def _run(instance: dg.DagsterInstance, db: str, source: str, cb: FakeCoinbase, start: str, end: str,
         bn: FakeBinance | None = None, kinds: tuple[str, ...] = ("ohlcv",),
         window: tuple[str, str] = ("2024-03-01", "2024-05-01")) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [market_data.market_data],
        selection=list(kinds),
        instance=instance,
        resources=_resources(db, source, cb, bn),
        tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end},
        run_config={"ops": {"market_data": {"config": {"start": window[0], "end": window[1]}}}},
        raise_on_error=False,
    )


@pytest.fixture
def two_coins() -> Iterator[tuple[FakeCoinbase, pd.DataFrame, pd.DataFrame]]:
    btc = hourly_ohlcv(MAR, 24 * 61, seed=3, price=40000.0)  # March (Q1) + April (Q2)
    eth = hourly_ohlcv(MAR, 24 * 61, seed=4, price=2000.0)
    broken = btc.drop(index=range(24 * 40, 24 * 40 + 30)).reset_index(drop=True)  # a 30-hour gap in April
    with FakeCoinbase({"BTC-USD": broken, "ETH-USD": eth}) as cb:
        yield cb, broken, eth


def _check_status(instance: dg.DagsterInstance, asset: str, check: str) -> dict[str, str]:
    key = dg.AssetCheckKey(dg.AssetKey(asset), check)
    return {i.partition_key: i.latest_execution_status.value
            for i in instance.event_log_storage.get_asset_check_partition_info([key]) if i.is_current}


def test_one_run_materializes_every_partition_with_its_own_metadata(tmp_path: Path, two_coins) -> None:
    cb, btc, eth = two_coins
    db = f"sqlite:///{tmp_path / 'm.db'}"
    instance = dg.DagsterInstance.ephemeral()
    res = _run(instance, db, "coinbase", cb, "BTC|2024-01-01", "ETH|2024-04-01")
    assert res.success
    assert instance.get_materialized_partitions(dg.AssetKey("ohlcv")) == {
        "BTC|2024-01-01", "BTC|2024-04-01", "ETH|2024-01-01", "ETH|2024-04-01"}
    mats = {m.partition: m for m in res.asset_materializations_for_node("market_data")}
    assert mats["BTC|2024-01-01"].metadata["rows"].value == 31 * 24  # March: only this partition's rows
    assert mats["BTC|2024-04-01"].metadata["rows"].value == 30 * 24 - 30
    assert mats["BTC|2024-04-01"].metadata["largest_gap_hours"].value == 30
    assert mats["ETH|2024-01-01"].metadata["gaps"].value == 0
    store = MarketStore(db)
    assert store.load("ohlcv", "BTC")["ts"].tolist() == btc["ts"].tolist()
    np.testing.assert_allclose(store.load("ohlcv", "ETH")["close"], eth["close"])


def test_failing_btc_check_stays_on_btc_when_eth_passes_later(tmp_path: Path, two_coins) -> None:
    cb, _btc, _eth = two_coins
    db = f"sqlite:///{tmp_path / 'm.db'}"
    instance = dg.DagsterInstance.ephemeral()
    assert _run(instance, db, "coinbase", cb, "BTC|2024-01-01", "ETH|2024-04-01").success
    assert _run(instance, db, "coinbase", cb, "ETH|2024-01-01", "ETH|2024-04-01").success  # ETH again, passes
    status = _check_status(instance, "ohlcv", "hourly_continuity")
    assert status["BTC|2024-04-01"] == "FAILED"
    assert status["BTC|2024-01-01"] == "SUCCEEDED"
    assert status["ETH|2024-01-01"] == status["ETH|2024-04-01"] == "SUCCEEDED"


def test_data_version_changes_only_when_the_rows_change(tmp_path: Path, two_coins) -> None:
    cb, _btc, _eth = two_coins
    db = f"sqlite:///{tmp_path / 'm.db'}"
    instance = dg.DagsterInstance.ephemeral()

    def versions(res: dg.ExecuteInProcessResult) -> dict[str, str]:
        return {m.partition: m.tags["dagster/data_version"] for m in res.asset_materializations_for_node("market_data")}

    first = versions(_run(instance, db, "coinbase", cb, "BTC|2024-01-01", "BTC|2024-04-01"))
    again = versions(_run(instance, db, "coinbase", cb, "BTC|2024-01-01", "BTC|2024-04-01"))
    assert first == again
    store = MarketStore(db)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE ohlcv SET close = close * 1.01 WHERE coin='BTC' AND ts = ?", (MAR + 5 * HOUR_MS,))
    changed = versions(_run(instance, db, "coinbase", cb, "BTC|2024-01-01", "BTC|2024-04-01"))
    assert changed["BTC|2024-01-01"] != first["BTC|2024-01-01"]
    assert changed["BTC|2024-04-01"] == first["BTC|2024-04-01"]


def test_rerun_fetches_only_what_is_missing(tmp_path: Path, two_coins) -> None:
    cb, _btc, _eth = two_coins
    db = f"sqlite:///{tmp_path / 'm.db'}"
    instance = dg.DagsterInstance.ephemeral()
    assert _run(instance, db, "coinbase", cb, "BTC|2024-01-01", "BTC|2024-01-01").success
    first = cb.count("/candles")
    assert first >= 1
    assert _run(instance, db, "coinbase", cb, "BTC|2024-01-01", "BTC|2024-01-01").success
    assert cb.count("/candles") == first


def test_checks_catch_bad_candle_and_divergent_source(tmp_path: Path) -> None:
    ohlcv = hourly_ohlcv(JAN, 24 * 3, seed=5, price=100.0)
    bad = ohlcv.copy()
    bad.loc[5, "high"] = bad.loc[5, "low"] - 1.0  # high < low
    spot = ohlcv.assign(close=ohlcv["close"] * 1.05)  # 5 % away: reconciliation must flag it
    with FakeCoinbase({"BTC-USD": bad}) as cb, FakeBinance(
        spot={"BTC/USDT": spot}, perp={"BTC/USDT:USDT": spot}, funding={"BTC/USDT:USDT": funding_frame(JAN, 9)}
    ) as bn:
        db = f"sqlite:///{tmp_path / 'm.db'}"
        instance = dg.DagsterInstance.ephemeral()
        res = _run(instance, db, "auto", cb, "BTC|2024-01-01", "BTC|2024-01-01", bn, kinds=("ohlcv", "funding"),
                   window=("2024-01-01", "2024-01-04"))
    assert res.success
    checks = {(e.asset_key.to_user_string(), e.check_name): e for e in res.get_asset_check_evaluations()}
    inv = checks[("ohlcv", "ohlc_invariants")]
    assert not inv.passed and inv.severity == dg.AssetCheckSeverity.WARN and inv.partition == "BTC|2024-01-01"
    assert inv.metadata["rejected_rows"].value == 1
    assert not checks[("ohlcv", "source_reconciliation")].passed
    assert checks[("funding", "funding_plausible")].passed
    store = MarketStore(db)
    rej = store.rejects("ohlcv", "BTC")
    assert len(rej) == 1 and "high_below_low" in rej.loc[0, "reason"]


def test_schedules_target_the_quarter_of_every_coin_and_honour_include_oi(tmp_path: Path, monkeypatch) -> None:
    from cryptoalgo_assets.definitions import build_definitions

    repo = Path(__file__).resolve().parents[2] / "config"
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    for f in repo.glob("*.yaml"):
        (cfg / f.name).write_text(f.read_text())
    monkeypatch.setenv("CRYPTOALGO_CONFIG_DIR", str(cfg))
    defs = build_definitions()

    def tick(include_oi: bool) -> dg.RunRequest:
        text = (repo / "sources.yaml").read_text().replace("include_oi: false", f"include_oi: {str(include_oi).lower()}")
        (cfg / "sources.yaml").write_text(text)
        sched = defs.resolve_schedule_def("daily_market_data_schedule")
        ctx = dg.build_schedule_context(
            scheduled_execution_time=pd.Timestamp("2024-04-01 00:20", tz="UTC").to_pydatetime())
        reqs = sched.evaluate_tick(ctx).run_requests
        assert reqs is not None and len(reqs) == 1
        return reqs[0]

    off, on = tick(False), tick(True)
    assert off.tags["dagster/asset_partition_range_start"] == "BTC|2024-01-01"  # the previous day's quarter
    assert off.tags["dagster/asset_partition_range_end"] == "DOGE|2024-01-01"
    assert {k.to_user_string() for k in off.asset_selection} == {"ohlcv", "funding"}
    assert {k.to_user_string() for k in on.asset_selection} == {"ohlcv", "funding", "open_interest"}


def test_quarter_helpers() -> None:
    from partitions import quarter_bounds, quarter_key, quarter_partitions, quarters_between

    assert quarter_key(APR - 1) == "2024-01-01" and quarter_key(APR) == "2024-04-01"
    assert quarter_key(parse_date_ms("2024-12-31")) == "2024-10-01"
    assert quarter_bounds("2024-10-01") == (parse_date_ms("2024-10-01"), parse_date_ms("2025-01-01"))
    assert quarters_between(JAN + DAY_MS, APR + 1) == ["2024-01-01", "2024-04-01"]
    assert quarters_between(JAN, APR) == ["2024-01-01"]
    with pytest.raises(ValueError, match="first day of a calendar quarter"):
        quarter_bounds("2024-02-01")
    keys = quarter_partitions().get_partition_keys()
    assert keys[:2] == ["2020-01-01", "2020-04-01"] and all(quarter_bounds(k) for k in keys)
