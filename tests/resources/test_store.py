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


# ---------------------------------------------------------------- bulk paths (both dialects)
def _cursor_statements(store: MarketStore) -> list[int]:
    """Parameter sets per statement SQLAlchemy sends to the DB-API cursor (executemany counts each row)."""
    calls: list[int] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        calls.append(len(parameters) if executemany else 1)

    sa.event.listen(store.engine, "before_cursor_execute", before)
    return calls


def test_pg_batch_is_a_few_statements_not_one_per_row(store: MarketStore) -> None:
    if store.dialect != "postgresql":
        pytest.skip("SQLite's executemany is an in-process C loop; the round-trip count matters for a server")
    calls = _cursor_statements(store)
    raw = candles(1000)
    raw.loc[[3, 500], "high"] = 0.0  # two rejects
    res = validate_ohlcv(raw)
    wr = store.write_batch("ohlcv", "BTC", "synthetic", res.clean, res.rejects, coverage=(0, 1000 * HOUR_MS))
    assert (wr.written, wr.rejected) == (998, 2)
    assert sum(calls) <= 4, calls  # rows + rejects + coverage: one statement each, whatever the row count
    assert store.stats("ohlcv", "BTC")["rows"] == 998 and len(store.rejects("ohlcv", "BTC")) == 2


def test_repeated_ts_in_one_batch_last_wins(store: MarketStore) -> None:
    df = candles(10)
    again = df.iloc[[2, 7]].assign(close=500.0, high=501.0)
    wr = store.write_batch("ohlcv", "BTC", "synthetic", pd.concat([df, again], ignore_index=True))
    assert wr.written == 10
    got = store.load("ohlcv", "BTC")
    assert len(got) == 10 and store.duplicate_keys("ohlcv", "BTC") == 0
    assert got.loc[got["ts"].isin([2 * HOUR_MS, 7 * HOUR_MS]), "close"].tolist() == [500.0, 500.0]


def test_mixed_text_values_in_one_batch(store: MarketStore) -> None:
    n = 50
    oi = pd.DataFrame(
        {"ts": np.arange(n, dtype=np.int64) * HOUR_MS, "value": np.arange(n) * 1.5, "unit": ["usd", "base"] * 25}
    )
    store.write_batch("open_interest", "ETH", "ccxt:binanceusdm", oi)
    got = store.load("open_interest", "ETH")
    assert got["unit"].tolist() == ["usd", "base"] * 25
    assert got["value"].tolist() == oi["value"].tolist()
    assert set(got["source"]) == {"ccxt:binanceusdm"}


def test_many_rejects_in_one_batch(store: MarketStore) -> None:
    raw = candles(400)
    raw.loc[raw.index % 2 == 0, "volume"] = -1.0
    res = validate_ohlcv(raw)
    wr = store.write_batch("ohlcv", "BTC", "synthetic", res.clean, res.rejects, coverage=(0, 400 * HOUR_MS))
    assert (wr.written, wr.rejected) == (200, 200)
    rej = store.rejects("ohlcv", "BTC")
    assert rej["ts"].astype("int64").tolist() == [t * HOUR_MS for t in range(0, 400, 2)]
    assert set(rej["reason"]) == {"volume_negative"} and set(rej["source"]) == {"synthetic"}
    assert '"volume": -1.0' in rej["payload"].iloc[0]


def test_values_roundtrip_exactly(store: MarketStore) -> None:
    rng = np.random.default_rng(4)
    close = rng.lognormal(3, 2, 500)
    df = pd.DataFrame(
        {
            "ts": np.arange(500, dtype=np.int64) * HOUR_MS + 1_704_067_200_000,
            "open": close * 0.999,
            "high": close * 1.01,
            "low": close * 0.98,
            "close": close,
            "volume": rng.uniform(0, 1e12, 500),
        }
    )
    store.write_batch("ohlcv", "BTC", "synthetic", df)
    got = store.load("ohlcv", "BTC")
    pd.testing.assert_frame_equal(got.drop(columns="source"), df)  # bit-exact floats, int64 ts


def test_load_frame_types(store: MarketStore) -> None:
    store.write_batch("ohlcv", "BTC", "synthetic", candles(3))
    store.write_batch("funding", "BTC", "synthetic", pd.DataFrame({"ts": [0], "rate": [0.0001]}))
    store.write_batch("open_interest", "BTC", "synthetic", pd.DataFrame({"ts": [0], "value": [1.0], "unit": ["usd"]}))
    for kind, cols in {
        "ohlcv": ["ts", "open", "high", "low", "close", "volume", "source"],
        "funding": ["ts", "rate", "source"],
        "open_interest": ["ts", "value", "unit", "source"],
    }.items():
        for coin in ("BTC", "NONE"):  # stored and empty
            got = store.load(kind, coin)
            assert list(got.columns) == cols and isinstance(got.index, pd.RangeIndex)
            assert got["ts"].dtype == np.int64
            for c in cols[1:]:
                if c in ("source", "unit"):
                    assert not pd.api.types.is_numeric_dtype(got[c])
                else:
                    assert got[c].dtype == np.float64, (kind, c)
    assert store.load_ts("ohlcv", "BTC", HOUR_MS) == [HOUR_MS, 2 * HOUR_MS]


def test_pg_failed_first_batch_then_writes_work(store: MarketStore) -> None:
    """The first batch of a session creates the staging table; if it rolls back, the next batch still works."""
    if store.dialect != "postgresql":
        pytest.skip("PostgreSQL staging tables")
    with pytest.raises(sa.exc.DataError):
        store.write_batch("ohlcv", "X" * 20, "synthetic", candles(5), coverage=(0, 5 * HOUR_MS))  # VARCHAR(16)
    store.write_batch("ohlcv", "BTC", "synthetic", candles(5), coverage=(0, 5 * HOUR_MS))
    assert store.stats("ohlcv", "BTC")["rows"] == 5
    assert store.coins() == ["BTC"] and store.coverage("ohlcv", "X" * 20, "synthetic") == []


# ---------------------------------------------------------------- bad store inputs: one clear StoreError
def _one_line_store_error(excinfo: pytest.ExceptionInfo[StoreError]) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


@pytest.mark.parametrize("create", [True, False])
def test_text_file_is_not_a_sqlite_database(tmp_path: Path, create: bool) -> None:
    f = tmp_path / "notes.db"
    f.write_text("ts,open\n1,2\n")
    with pytest.raises(StoreError) as ei:
        MarketStore(f"sqlite:///{f}", create=create)
    assert _one_line_store_error(ei).startswith(f"not a SQLite database: {f} ")
    assert f.read_text() == "ts,open\n1,2\n"  # untouched


def _real_store_file(tmp_path: Path) -> tuple[Path, bytes]:
    import sqlite3

    db = tmp_path / "good.db"
    s = MarketStore(f"sqlite:///{db}")
    s.write_batch("ohlcv", "BTC", "synthetic", candles(3000))
    s.dispose()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return db, db.read_bytes()


@pytest.mark.parametrize("cut", [60, 4096, "half"])
def test_truncated_database_is_a_named_error(tmp_path: Path, cut: int | str) -> None:
    _, data = _real_store_file(tmp_path)
    bad = tmp_path / "truncated.db"
    bad.write_bytes(data[: len(data) // 2 if cut == "half" else int(cut)])
    for create in (True, False):
        with pytest.raises(StoreError) as ei:
            MarketStore(f"sqlite:///{bad}", create=create)
        assert _one_line_store_error(ei).startswith(f"not a SQLite database: {bad}")


def test_corrupt_pages_found_later_are_a_named_error(tmp_path: Path) -> None:
    db, data = _real_store_file(tmp_path)
    page = 4096
    db.write_bytes(data[: 3 * page] + b"\xff" * (len(data) - 3 * page))  # header and schema intact
    s = MarketStore(f"sqlite:///{db}")
    with pytest.raises(StoreError, match="not a SQLite database") as ei:
        s.load("ohlcv", "BTC")
    _one_line_store_error(ei)
    with pytest.raises(StoreError, match="not a SQLite database"):
        s.stats("ohlcv", "BTC")
    s.dispose()


def test_directory_is_not_a_sqlite_database(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a SQLite database: .* is a directory"):
        MarketStore(f"sqlite:///{tmp_path}")


@pytest.mark.parametrize(
    "url, scheme",
    [
        ("mysql+nope://u:secret@h/db", "mysql+nope"),
        ("foo://x", "foo"),
        ("mysql://u:secret@h:3306/db", "mysql"),
        ("postgres://u:secret@h/db", "postgres"),
    ],
)
def test_unknown_scheme_names_it_and_what_is_supported(url: str, scheme: str) -> None:
    with pytest.raises(StoreError) as ei:
        MarketStore(url)
    msg = _one_line_store_error(ei)
    assert f"unsupported database URL scheme '{scheme}'" in msg
    assert "sqlite" in msg and "postgresql" in msg and "secret" not in msg


def test_unknown_or_missing_driver_is_a_named_error() -> None:
    with pytest.raises(StoreError) as ei:
        MarketStore("postgresql+nope://u:secret@h/db")
    msg = _one_line_store_error(ei)
    assert "unknown database driver 'postgresql+nope'" in msg and "secret" not in msg
    with pytest.raises(StoreError) as ei:
        MarketStore("postgresql+asyncpg://u:secret@h/db")  # not installed
    msg = _one_line_store_error(ei)
    assert "not installed" in msg and "secret" not in msg


def test_unreachable_server_is_a_named_error() -> None:
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreError) as ei:
        MarketStore(f"postgresql+psycopg2://u:secret@127.0.0.1:{port}/db?connect_timeout=5")
    msg = _one_line_store_error(ei)
    assert msg.startswith("cannot open market store") and "secret" not in msg and "***" in msg


def test_create_false_on_missing_path_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "not" / "there" / "trading.db"
    with pytest.raises(StoreError) as ei:
        MarketStore(f"sqlite:///{target}", create=False)
    assert _one_line_store_error(ei).startswith(f"no market store at {target}")
    assert not (tmp_path / "not").exists()


def test_create_false_needs_the_store_tables(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(StoreError, match="no market store at"):
        MarketStore(f"sqlite:///{empty}", create=False)
    assert empty.stat().st_size == 0


def test_create_false_opens_an_existing_store(store: MarketStore) -> None:
    store.write_batch("ohlcv", "BTC", "synthetic", candles(4))
    ro = MarketStore(store.url, create=False)
    assert ro.stats("ohlcv", "BTC")["rows"] == 4 and ro.dialect == store.dialect
    ro.dispose()


def test_plain_postgresql_url_uses_the_installed_driver(pg_url: str) -> None:
    bare = sa.engine.make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    s = MarketStore(bare, create=False)  # SQLAlchemy 2.1 would pick psycopg 3, which may not be installed
    assert s.engine.dialect.driver in ("psycopg", "psycopg2") and isinstance(s.coins(), list)
    s.dispose()


def test_opening_never_touches_the_sqlite_file_outside_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Closing any descriptor of a SQLite file drops every POSIX lock this process holds on it (SQLite's
    own included), which lets another process checkpoint and reset a WAL still being written: a resumed
    backfill then silently loses its rows. So the store must never open() the database file itself."""
    import builtins
    import os

    db = tmp_path / "live.db"
    writer = MarketStore(f"sqlite:///{db}")
    writer.write_batch("ohlcv", "BTC", "synthetic", candles(5))
    real_open, real_os_open = builtins.open, os.open

    def guard(file, *a, **k):  # noqa: ANN001, ANN002, ANN003
        if str(file).startswith(str(db)):
            raise AssertionError(f"opened {file} outside SQLite")
        return real_open(file, *a, **k)

    def os_guard(file, *a, **k):  # noqa: ANN001, ANN002, ANN003
        if str(file).startswith(str(db)):
            raise AssertionError(f"os.open({file}) outside SQLite")
        return real_os_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", guard)
    monkeypatch.setattr(os, "open", os_guard)
    for create in (True, False):
        s = MarketStore(f"sqlite:///{db}", create=create)
        assert s.stats("ohlcv", "BTC")["rows"] == 5 and len(s.load("ohlcv", "BTC")) == 5
        s.dispose()
    writer.dispose()


def test_bulk_columns_keep_their_types(store: MarketStore) -> None:
    """OI `value` is a float column (store_meta also has a text column named `value`)."""
    from resources.store import _columns, oi_table

    oi = pd.DataFrame({"ts": [0, HOUR_MS], "value": [0.1 + 0.2, 1e300], "unit": ["usd", "base"]})
    cols = _columns(oi_table, oi, ["ts", "value", "unit"])
    assert cols["ts"].dtype == np.int64 and cols["value"].dtype == np.float64 and cols["unit"] == ["usd", "base"]
    store.write_batch("open_interest", "BTC", "synthetic", oi)
    assert store.load("open_interest", "BTC")["value"].tolist() == [0.1 + 0.2, 1e300]
