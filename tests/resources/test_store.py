"""Market store: idempotent transactional upserts, rejects, coverage, family guard — SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from cryptoalgo_core.market.validate import validate_ohlcv
from cryptoalgo_core.timeutil import HOUR_MS
from resources.store import MarketStore, StoreError, default_db_url, redact_url


def candles(n: int, start: int = 0) -> pd.DataFrame:
    ts = start + np.arange(n, dtype=np.int64) * HOUR_MS
    close = 100 + np.arange(n, dtype=float)
    return pd.DataFrame(
        {"ts": ts, "open": close - 0.5, "high": close + 1, "low": close - 1, "close": close, "volume": 10.0}
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MarketStore:
    if request.param == "sqlite":
        s = MarketStore(f"sqlite:///{tmp_path / 'm.db'}")
    else:
        base = request.getfixturevalue("pg_url")
        s = MarketStore(base)
        # isolate per test: clean tables
        with s.engine.begin() as conn:
            for t in ("ohlcv", "funding", "open_interest", "rejects", "fetch_coverage", "store_meta"):
                conn.execute(sa.text(f"DELETE FROM {t}"))
    yield s
    s.dispose()


def test_upsert_is_idempotent_and_updates(store: MarketStore) -> None:
    df = candles(100)
    store.write_batch("ohlcv", "BTC", "synthetic", df, coverage=(0, 100 * HOUR_MS))
    store.write_batch("ohlcv", "BTC", "synthetic", df, coverage=(0, 100 * HOUR_MS))
    assert store.stats("ohlcv", "BTC")["rows"] == 100
    assert store.duplicate_keys("ohlcv", "BTC") == 0
    changed = df.iloc[[5]].assign(close=999.0, high=1000.0)
    store.write_batch("ohlcv", "BTC", "synthetic", changed)
    got = store.load("ohlcv", "BTC")
    assert len(got) == 100
    assert got.loc[got["ts"] == 5 * HOUR_MS, "close"].item() == 999.0
    pd.testing.assert_frame_equal(
        got[["ts", "open", "low", "volume"]], df[["ts", "open", "low", "volume"]], check_dtype=False
    )


def test_window_load_and_coins(store: MarketStore) -> None:
    store.write_batch("ohlcv", "BTC", "synthetic", candles(48))
    store.write_batch("ohlcv", "ETH", "synthetic", candles(24))
    assert store.coins() == ["BTC", "ETH"]
    w = store.load("ohlcv", "BTC", 10 * HOUR_MS, 20 * HOUR_MS)
    assert w["ts"].tolist() == [t * HOUR_MS for t in range(10, 20)]
    assert store.load("ohlcv", "SOL").empty


def test_rejects_recorded_once_with_reason(store: MarketStore) -> None:
    raw = candles(5)
    raw.loc[2, "high"] = raw.loc[2, "low"] - 1  # high < low
    res = validate_ohlcv(raw)
    for _ in range(2):
        store.write_batch("ohlcv", "BTC", "synthetic", res.clean, res.rejects, coverage=(0, 5 * HOUR_MS))
    rej = store.rejects("ohlcv", "BTC")
    assert len(rej) == 1
    assert "high_below_low" in rej.loc[0, "reason"]
    assert store.stats("ohlcv", "BTC")["rows"] == 4
    assert store.count_rejects("ohlcv", "BTC", 0, 5 * HOUR_MS) == 1


def test_batch_is_transactional(store: MarketStore) -> None:
    good = candles(10)
    bad = candles(3, start=10 * HOUR_MS)
    bad["open"] = pd.Series([None] * 3, dtype=object)  # NOT NULL violation after 10 good rows
    batch = pd.concat([good, bad], ignore_index=True)
    with pytest.raises(sa.exc.IntegrityError):
        store.write_batch("ohlcv", "BTC", "synthetic", batch, coverage=(0, 13 * HOUR_MS))
    assert store.stats("ohlcv", "BTC")["rows"] == 0  # nothing partial
    assert store.coverage("ohlcv", "BTC", "synthetic") == []


def test_missing_windows_follow_coverage(store: MarketStore) -> None:
    store.write_batch("ohlcv", "BTC", "synthetic", candles(10), coverage=(0, 10 * HOUR_MS))
    store.write_batch("ohlcv", "BTC", "synthetic", candles(5, 20 * HOUR_MS), coverage=(20 * HOUR_MS, 25 * HOUR_MS))
    assert store.missing_windows("ohlcv", "BTC", "synthetic", 0, 30 * HOUR_MS) == [
        (10 * HOUR_MS, 20 * HOUR_MS),
        (25 * HOUR_MS, 30 * HOUR_MS),
    ]
    # a different family has fetched nothing
    assert store.missing_windows("ohlcv", "BTC", "coinbase", 0, 30 * HOUR_MS) == [(0, 30 * HOUR_MS)]


def test_source_family_guard(store: MarketStore) -> None:
    store.claim_family("synthetic")
    store.claim_family("synthetic")
    with pytest.raises(StoreError, match="holds synthetic data"):
        store.claim_family("coinbase")
    assert store.source_family() == "synthetic"


def test_funding_and_oi_roundtrip(store: MarketStore) -> None:
    f = pd.DataFrame({"ts": [0, 8 * HOUR_MS], "rate": [0.0001, -0.0002]})
    store.write_batch("funding", "ETH", "replay", f)
    oi = pd.DataFrame({"ts": [0, 24 * HOUR_MS], "value": [1e9, 1.1e9], "unit": ["usd", "usd"]})
    store.write_batch("open_interest", "ETH", "replay", oi)
    assert store.load("funding", "ETH")["rate"].tolist() == [0.0001, -0.0002]
    got = store.load("open_interest", "ETH")
    assert got["unit"].tolist() == ["usd", "usd"] and got["value"].tolist() == [1e9, 1.1e9]


def test_unwritable_path_is_a_named_error(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        import os

        if os.access(ro, os.W_OK):  # running as root: permissions are not enforced
            pytest.skip("running as root: directory permissions are not enforced")
        with pytest.raises(StoreError, match="not writable"):
            MarketStore(f"sqlite:///{ro / 'x.db'}")
    finally:
        ro.chmod(0o700)


def test_file_in_place_of_directory_is_a_named_error(tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(StoreError, match="cannot create the directory"):
        MarketStore(f"sqlite:///{f / 'sub' / 'x.db'}")


def test_bad_url_is_a_named_error() -> None:
    with pytest.raises(StoreError, match="not a valid database URL"):
        MarketStore("::not a url::" + uuid.uuid4().hex)


def test_default_url_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRADER_DATA_DIR", str(tmp_path / "dd"))
    assert default_db_url() == f"sqlite:///{(tmp_path / 'dd' / 'trading.db').resolve()}"
    monkeypatch.setenv("TRADER_DB_PATH", str(tmp_path / "x.db"))
    assert default_db_url().endswith("x.db")
    assert default_db_url(str(tmp_path / "y.db")).endswith("y.db")
    assert default_db_url("postgresql://u:secret@h/db") == "postgresql://u:secret@h/db"
    assert "secret" not in redact_url("postgresql://u:secret@h/db")


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    s = MarketStore(f"sqlite:///{tmp_path / 'w.db'}")
    with s.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
