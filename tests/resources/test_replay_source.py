"""Replay source: reads the ../shared/data/real layout (skipped when absent) and synthetic fixtures."""

from __future__ import annotations

import gzip
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from cryptoalgo_assets.defs import market_data
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS
from resources.dagster_resources import MarketSourceResource, MarketStoreResource, ProjectConfigResource
from resources.sources.base import FatalSourceError, UnsupportedDataError
from resources.sources.replay import ReplaySource
from resources.store import MarketStore
from tests.fakes import hourly_ohlcv


def _write_replay(root: Path) -> pd.DataFrame:
    (root / "ohlcv_1h").mkdir(parents=True)
    (root / "funding").mkdir()
    df = hourly_ohlcv(1_704_067_200_000, 72, seed=2)
    with gzip.open(root / "ohlcv_1h" / "BTC.csv.gz", "wt") as f:
        df.to_csv(f, index=False)
    pd.DataFrame({"ts": [1_704_067_200_000 + i * 8 * HOUR_MS for i in range(9)], "rate": 0.0001}).to_csv(
        root / "funding" / "BTC.csv", index=False
    )
    return df


def test_replay_reads_layout_and_windows(tmp_path: Path) -> None:
    df = _write_replay(tmp_path)
    src = ReplaySource(tmp_path)
    assert src.now_ms() == int(df["ts"].max()) + HOUR_MS
    w = src.fetch_ohlcv("BTC", int(df["ts"][10]), int(df["ts"][20]))
    assert w["ts"].tolist() == df["ts"][10:20].tolist()
    assert len(src.fetch_funding("BTC", 0, 2**62)) == 9
    with pytest.raises(UnsupportedDataError, match="no open_interest file for BTC"):
        src.fetch_open_interest("BTC", 0, 2**62)
    with pytest.raises(FatalSourceError, match="no file for ETH"):
        src.fetch_ohlcv("ETH", 0, 2**62)


def test_replay_errors_are_named(tmp_path: Path) -> None:
    with pytest.raises(FatalSourceError, match="directory does not exist"):
        ReplaySource(tmp_path / "missing")
    (tmp_path / "ohlcv_1h").mkdir()
    (tmp_path / "ohlcv_1h" / "BTC.csv").write_text("time,open\n1,2\n")
    with pytest.raises(FatalSourceError, match="no 'ts' column"):
        ReplaySource(tmp_path).fetch_ohlcv("BTC", 0, 10)


def test_replay_of_real_data_through_dagster(tmp_path: Path, real_data_dir: Path) -> None:
    """Ten days of all five real coins, through the asset graph; compare with the files row by row."""
    src = ReplaySource(real_data_dir)
    end = (src.now_ms() // DAY_MS) * DAY_MS
    start = end - 10 * DAY_MS
    db = f"sqlite:///{tmp_path / 'real.db'}"
    first = pd.Timestamp(start, unit="ms").strftime("%Y-%m-%d")
    last = pd.Timestamp(end - 1, unit="ms").strftime("%Y-%m-%d")
    for coin in ("BTC", "ETH", "SOL", "XRP", "DOGE"):
        res = dg.materialize(
            [market_data.ohlcv, market_data.funding],
            instance=dg.DagsterInstance.ephemeral(),
            tags={"dagster/asset_partition_range_start": f"{coin}|{first}",
                  "dagster/asset_partition_range_end": f"{coin}|{last}"},
            resources={
                "market_store": MarketStoreResource(db_url=db),
                "market_source": MarketSourceResource(source="replay", replay_dir=str(real_data_dir)),
                "project": ProjectConfigResource(),
            },
        )
        assert res.success
        store = MarketStore(db)
        got = store.load("ohlcv", coin)
        want = src.fetch_ohlcv(coin, start, end)
        assert got["ts"].tolist() == want["ts"].tolist()
        assert (got["close"].to_numpy() == want["close"].to_numpy()).all()
        assert len(store.load("funding", coin)) == len(src.fetch_funding(coin, start, end)) == 30
        checks = {e.check_name: e for e in res.get_asset_check_evaluations()}
        assert checks["hourly_continuity"].passed and checks["funding_plausible"].passed
