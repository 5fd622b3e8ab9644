"""Replay source: reads the ../shared/data/real layout (skipped when absent) and synthetic fixtures."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from cryptoalgo_core.config import load_coins, load_sources
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS
from resources.ingest import DUPLICATE_CONFLICT, SourceSet, ingest_dataset, split_duplicate_ts
from resources.sources.base import FatalSourceError, UnsupportedDataError
from resources.sources.replay import ReplaySource
from resources.store import MarketStore
from tests.fakes import hourly_ohlcv

T0 = 1_704_067_200_000  # 2024-01-01T00:00Z


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
    import dagster as dg

    from cryptoalgo_assets.defs import market_data
    from resources.dagster_resources import MarketSourceResource, MarketStoreResource, ProjectConfigResource

    src = ReplaySource(real_data_dir)
    end = (src.now_ms() // DAY_MS) * DAY_MS
    start = end - 10 * DAY_MS
    db = f"sqlite:///{tmp_path / 'real.db'}"
    from cryptoalgo_core.timeutil import quarter_key

    first, last = quarter_key(start), quarter_key(end - 1)
    window = {"start": pd.Timestamp(start, unit="ms").strftime("%Y-%m-%d"),
              "end": pd.Timestamp(end, unit="ms").strftime("%Y-%m-%d")}
    res = dg.materialize(
        [market_data.market_data],
        selection=["ohlcv", "funding"],
        instance=dg.DagsterInstance.ephemeral(),
        tags={"dagster/asset_partition_range_start": f"BTC|{first}",
              "dagster/asset_partition_range_end": f"DOGE|{last}"},
        run_config={"ops": {"market_data": {"config": window}}},
        resources={
            "market_store": MarketStoreResource(db_url=db),
            "market_source": MarketSourceResource(source="replay", replay_dir=str(real_data_dir)),
            "project": ProjectConfigResource(),
        },
    )
    assert res.success
    store = MarketStore(db)
    for coin in ("BTC", "ETH", "SOL", "XRP", "DOGE"):
        got = store.load("ohlcv", coin)
        want = src.fetch_ohlcv(coin, start, end)
        assert got["ts"].tolist() == want["ts"].tolist()
        assert (got["close"].to_numpy() == want["close"].to_numpy()).all()
        assert len(store.load("funding", coin)) == len(src.fetch_funding(coin, start, end)) == 30
    evals = res.get_asset_check_evaluations()
    cont = [e for e in evals if e.check_name == "hourly_continuity"]
    assert cont and all(e.passed for e in cont) and {e.partition.split("|")[0] for e in cont} == {
        "BTC", "ETH", "SOL", "XRP", "DOGE"}
    assert all(e.passed for e in evals if e.check_name == "funding_plausible")


# ---------------------------------------------------------------- file formats (read with polars)
def test_csv_gz_and_parquet_give_the_same_contract_frames(tmp_path: Path) -> None:
    df = hourly_ohlcv(T0, 48, seed=4)
    df["volume"] = np.arange(48)  # an all-integer column is still float64 (the frame contract)
    oi = pd.DataFrame({"ts": df["ts"], "open_interest": np.arange(48) * 1e6, "bar_date": "2024-01-01"})
    frames = {}
    for ext in (".csv", ".csv.gz", ".parquet"):
        root = tmp_path / ext.strip(".").replace(".", "_")
        (root / "ohlcv_1h").mkdir(parents=True)
        (root / "open_interest").mkdir()
        for sub, frame in (("ohlcv_1h", df), ("open_interest", oi)):
            path = root / sub / f"BTC{ext}"
            if ext == ".parquet":
                frame.to_parquet(path, index=False)
            elif ext == ".csv.gz":
                with gzip.open(path, "wt") as fh:
                    frame.to_csv(fh, index=False)
            else:
                frame.to_csv(path, index=False)
        src = ReplaySource(root)
        frames[ext] = (src.fetch_ohlcv("BTC", 0, 2**62), src.fetch_open_interest("BTC", 0, 2**62))
    want = df.astype({"volume": "float64"})
    for ohlcv, oi_got in frames.values():
        pd.testing.assert_frame_equal(ohlcv, want)
        assert ohlcv["ts"].dtype == np.int64 and (ohlcv.dtypes.iloc[1:] == np.float64).all()
        assert oi_got["value"].dtype == np.float64 and oi_got["unit"].tolist() == ["usd"] * 48
        pd.testing.assert_frame_equal(oi_got, frames[".csv"][1])


def test_missing_markers_and_text_in_numbers_read_like_before(tmp_path: Path) -> None:
    (tmp_path / "ohlcv_1h").mkdir()
    (tmp_path / "ohlcv_1h" / "BTC.csv").write_text(
        "ts,open,high,low,close,volume\n"
        f"{T0},1,2,0.5,1.5,NaN\n"
        f"{T0 + HOUR_MS},1,2,0.5,,3\n"
        f"{T0 + 2 * HOUR_MS},1,2,0.5,1.5,abc\n"
    )
    got = ReplaySource(tmp_path).fetch_ohlcv("BTC", 0, 2**62)
    assert got["ts"].tolist() == [T0, T0 + HOUR_MS, T0 + 2 * HOUR_MS]
    assert np.isnan(got.loc[1, "close"]) and got["open"].dtype == np.float64
    assert pd.isna(got.loc[0, "volume"]) and got.loc[2, "volume"] == "abc"  # text stays text: rejected later


def test_non_numeric_ts_is_a_named_error(tmp_path: Path) -> None:
    (tmp_path / "ohlcv_1h").mkdir()
    (tmp_path / "ohlcv_1h" / "BTC.csv").write_text("ts,open,high,low,close,volume\nsoon,1,2,0.5,1.5,1\n,1,2,0.5,1.5,1\n")
    with pytest.raises(FatalSourceError, match="2 non-numeric 'ts' values"):
        ReplaySource(tmp_path).fetch_ohlcv("BTC", 0, 10)


def test_replay_returns_duplicates_as_recorded(tmp_path: Path) -> None:
    (tmp_path / "ohlcv_1h").mkdir()
    (tmp_path / "funding").mkdir()
    pd.DataFrame({"ts": [T0, T0 + HOUR_MS]}).assign(open=1.0, high=2.0, low=0.5, close=1.5, volume=1.0).to_csv(
        tmp_path / "ohlcv_1h" / "BTC.csv", index=False
    )
    pd.DataFrame({"ts": [T0 + 8 * HOUR_MS, T0, T0], "rate": [0.3, 0.1, 0.2]}).to_csv(
        tmp_path / "funding" / "BTC.csv", index=False
    )
    got = ReplaySource(tmp_path).fetch_funding("BTC", 0, 2**62)
    assert got["ts"].tolist() == [T0, T0, T0 + 8 * HOUR_MS] and got["rate"].tolist() == [0.1, 0.2, 0.3]


# ---------------------------------------------------------------- duplicate timestamps -> rejects
def test_split_duplicate_ts_rules() -> None:
    f = pd.DataFrame(
        {
            "ts": [1, 2, 2, 3, 3, 4, 4, 4, 5, 5],
            "rate": [0.1, 0.2, 0.2, 0.3, 0.31, np.nan, np.nan, np.nan, np.nan, 0.5],
            "extra": list("abcdefghij"),  # not a dataset column: ignored for the comparison
        }
    )
    out = split_duplicate_ts("funding", f)
    assert out.frame["ts"].tolist() == [1, 2, 4]  # 2 and 4 collapse (NaN equals NaN), 3 and 5 disagree
    assert out.frame["extra"].tolist() == ["a", "c", "h"]  # the last of identical rows is kept
    assert out.collapsed == 3
    assert out.rejects["ts"].tolist() == [3, 5] and set(out.rejects["reason"]) == {DUPLICATE_CONFLICT}
    assert json.loads(out.rejects["payload"].iloc[0]) == {"ts": 3, "versions": [{"rate": 0.3}, {"rate": 0.31}]}
    assert json.loads(out.rejects["payload"].iloc[1])["versions"] == [{"rate": None}, {"rate": 0.5}]
    clean = pd.DataFrame({"ts": [1, 2], "rate": [0.1, 0.2]})
    same = split_duplicate_ts("funding", clean)
    assert same.frame is clean and same.rejects.empty and same.collapsed == 0


def _replay_with_duplicates(root: Path) -> pd.DataFrame:
    """48 candles; ts #5 repeated identically, #10 with another close, #20 three times (one differs);
    funding with one conflicting settlement."""
    (root / "ohlcv_1h").mkdir(parents=True)
    (root / "funding").mkdir()
    df = hourly_ohlcv(T0, 48, seed=8)
    extra = pd.concat(
        [
            df.iloc[[5]],
            df.iloc[[10]].assign(close=df.loc[10, "close"] * 1.01, high=df.loc[10, "high"] * 1.02),
            df.iloc[[20]],
            df.iloc[[20]].assign(volume=df.loc[20, "volume"] + 1),
        ]
    )
    pd.concat([df, extra]).sample(frac=1.0, random_state=3).to_csv(root / "ohlcv_1h" / "BTC.csv", index=False)
    fund = pd.DataFrame({"ts": [T0 + i * 8 * HOUR_MS for i in range(6)], "rate": 0.0001})
    fund = pd.concat([fund, pd.DataFrame({"ts": [T0 + 16 * HOUR_MS], "rate": [0.0005]})])
    with gzip.open(root / "funding" / "BTC.csv.gz", "wt") as fh:
        fund.to_csv(fh, index=False)
    return df


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'replay.db'}"
    url = request.getfixturevalue("pg_url")
    s = MarketStore(url)
    with s.engine.begin() as conn:
        for t in ("ohlcv", "funding", "open_interest", "rejects", "fetch_coverage", "store_meta"):
            conn.execute(sa.text(f"DELETE FROM {t}"))
    s.dispose()
    return url


def test_conflicting_duplicates_are_rejected_not_last_row_wins(tmp_path: Path, store_url: str) -> None:
    df = _replay_with_duplicates(tmp_path / "rec")
    sources = SourceSet("replay", load_sources(), replay_dir=str(tmp_path / "rec"))
    store = MarketStore(store_url)
    spec = load_coins()["BTC"]
    start, end = T0, T0 + 2 * DAY_MS
    rep = ingest_dataset("ohlcv", spec, sources, store, start, end, 0.01)
    assert (rep.rows_written, rep.rejected, rep.duplicates_collapsed) == (46, 2, 1)

    clean = store.load("ohlcv", "BTC")
    want = df[~df.index.isin([10, 20])].reset_index(drop=True)
    assert clean["ts"].tolist() == want["ts"].tolist()  # ts #10 and #20: no value picked
    pd.testing.assert_frame_equal(clean[list(df.columns)], want)
    assert store.duplicate_keys("ohlcv", "BTC") == 0

    rej = store.rejects("ohlcv", "BTC")
    assert rej["ts"].astype("int64").tolist() == [int(df.loc[10, "ts"]), int(df.loc[20, "ts"])]
    assert rej["reason"].tolist() == [DUPLICATE_CONFLICT] * 2 and set(rej["source"]) == {"replay"}
    p10, p20 = (json.loads(p) for p in rej["payload"])
    assert sorted(v["close"] for v in p10["versions"]) == sorted([df.loc[10, "close"], df.loc[10, "close"] * 1.01])
    assert len(p20["versions"]) == 3 and {v["volume"] for v in p20["versions"]} == {
        df.loc[20, "volume"],
        df.loc[20, "volume"] + 1,
    }

    frep = ingest_dataset("funding", spec, sources, store, start, end, 0.01)
    assert (frep.rows_written, frep.rejected) == (5, 1)
    assert T0 + 16 * HOUR_MS not in store.load("funding", "BTC")["ts"].tolist()
    frej = store.rejects("funding", "BTC")
    assert frej["ts"].astype("int64").tolist() == [T0 + 16 * HOUR_MS]
    assert json.loads(frej["payload"].iloc[0])["versions"] == [{"rate": 0.0001}, {"rate": 0.0005}]

    again = ingest_dataset("ohlcv", spec, sources, store, start, end, 0.01)  # a re-run fetches nothing
    assert again.pages == 0 and len(store.rejects()) == 3 and store.stats("ohlcv", "BTC")["rows"] == 46
    store.dispose()
