#!/usr/bin/env python
"""Market-store speed benchmark: SQLite vs PostgreSQL write_batch and load. Prints numbers, never asserts.

    .venv/bin/python benchmarks/bench_store.py [--days 365] [--coins 5] [--pg-url URL] [--skip-pg] [--repeat 3]

Data: `coins` x `days` of hourly OHLCV, 8-hourly funding and hourly open interest (the volume of the
synthetic default market), written through ``MarketStore.write_batch`` in the page sizes ingest uses:

    ohlcv/300     OHLCV in pages of 300 candles (Coinbase-like pagination), coverage row per page
    ohlcv/30d     OHLCV in 30-day chunks (replay, synthetic), coverage row per chunk
    funding/30d   funding in 30-day chunks
    oi/30d        open interest in 30-day chunks
    rewrite       the OHLCV 30-day chunks again (every row conflicts: the idempotent re-run path)
    load          ``MarketStore.load`` of each kind's full history per coin
    load/30d      ``MarketStore.load`` of 30-day windows of OHLCV

Every write stage runs into a fresh, empty store (except rewrite, which overwrites the ohlcv/30d rows). The
best of `--repeat` runs is reported (each repeat gets a fresh store).

Stores: SQLite in a temporary file (WAL, as in production), and PostgreSQL in a fresh temporary database
created on the server named by --pg-url, else CRYPTOALGO_TEST_PG_URL, else
postgresql+psycopg2://postgres@127.0.0.1:5432/postgres; the database is dropped afterwards. When the server is
unreachable the PostgreSQL column is skipped with a message.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

if TYPE_CHECKING:
    import pandas as pd

    from resources.store import MarketStore

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
CHUNK_MS = 30 * DAY_MS
START = 1_704_067_200_000  # 2024-01-01T00:00Z
DEFAULT_PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
COINS = ["BTC", "ETH", "SOL", "XRP", "DOGE", "ADA", "AVAX", "LINK", "DOT", "LTC"]

Page = tuple[str, str, "pd.DataFrame", tuple[int, int]]  # kind, coin, frame, coverage


# --------------------------------------------------------------------------------------------- data
def make_data(n_coins: int, days: int) -> dict[str, dict[str, pd.DataFrame]]:
    from tests.fakes import funding_frame, hourly_ohlcv, oi_frame

    hours = days * 24
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for i, coin in enumerate(COINS[:n_coins]):
        oi = oi_frame(START, hours, seed=10 + i)
        out[coin] = {
            "ohlcv": hourly_ohlcv(START, hours, seed=i, price=100.0 * (i + 1)),
            "funding": funding_frame(START, hours // 8, interval_h=8, seed=20 + i),
            "open_interest": oi.assign(unit="usd")[["ts", "value", "unit"]],
        }
    return out


def pages_by_rows(kind: str, coin: str, df: pd.DataFrame, n: int, end_ms: int) -> Iterator[Page]:
    for lo in range(0, len(df), n):
        part = df.iloc[lo : lo + n].reset_index(drop=True)
        p_start = int(part["ts"].iloc[0])
        p_end = int(df["ts"].iloc[lo + n]) if lo + n < len(df) else end_ms
        yield kind, coin, part, (p_start, p_end)


def pages_by_time(kind: str, coin: str, df: pd.DataFrame, chunk_ms: int, end_ms: int) -> Iterator[Page]:
    ts = df["ts"].to_numpy()
    cur = START
    while cur < end_ms:
        nxt = min(end_ms, cur + chunk_ms)
        lo, hi = ts.searchsorted([cur, nxt])
        yield kind, coin, df.iloc[lo:hi].reset_index(drop=True), (cur, nxt)
        cur = nxt


def plan(data: dict[str, dict[str, pd.DataFrame]], days: int) -> dict[str, list[Page]]:
    end = START + days * DAY_MS
    stages: dict[str, list[Page]] = {"ohlcv/300": [], "ohlcv/30d": [], "funding/30d": [], "oi/30d": []}
    for coin, frames in data.items():
        stages["ohlcv/300"] += pages_by_rows("ohlcv", coin, frames["ohlcv"], 300, end)
        stages["ohlcv/30d"] += pages_by_time("ohlcv", coin, frames["ohlcv"], CHUNK_MS, end)
        stages["funding/30d"] += pages_by_time("funding", coin, frames["funding"], CHUNK_MS, end)
        stages["oi/30d"] += pages_by_time("open_interest", coin, frames["open_interest"], CHUNK_MS, end)
    return stages


# --------------------------------------------------------------------------------------------- stores
@contextmanager
def sqlite_store(tmp: Path) -> Iterator[Callable[[], MarketStore]]:
    from resources.store import MarketStore

    made: list[MarketStore] = []

    def fresh() -> MarketStore:
        for s in made:
            s.dispose()
        path = tmp / f"bench_{uuid.uuid4().hex[:8]}.db"
        s = MarketStore(f"sqlite:///{path}")
        made.append(s)
        return s

    try:
        yield fresh
    finally:
        for s in made:
            s.dispose()


@contextmanager
def pg_store(base_url: str) -> Iterator[Callable[[], MarketStore]]:
    import sqlalchemy as sa

    from resources.store import MarketStore, redact_url

    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        why = " ".join(str(exc.orig).split())
        raise RuntimeError(f"PostgreSQL at {redact_url(base_url)} not reachable: {why}") from exc
    created: list[str] = []
    made: list[MarketStore] = []

    def fresh() -> MarketStore:
        for s in made:
            s.dispose()
        name = f"cryptoalgo_bench_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        s = MarketStore(sa.engine.make_url(base_url).set(database=name).render_as_string(hide_password=False))
        made.append(s)
        return s

    try:
        yield fresh
    finally:
        for s in made:
            s.dispose()
        with admin.connect() as conn:
            for name in created:
                conn.execute(
                    sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
                )
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


# --------------------------------------------------------------------------------------------- stages
def write_pages(store: MarketStore, pages: list[Page]) -> int:
    n = 0
    for kind, coin, frame, cov in pages:
        n += store.write_batch(kind, coin, "synthetic", frame, None, coverage=cov).written
    return n


def run_backend(
    fresh: Callable[[], MarketStore], stages: dict[str, list[Page]], coins: list[str], days: int, repeat: int
) -> dict[str, tuple[int, float]]:
    """stage -> (rows, best seconds)."""
    best: dict[str, tuple[int, float]] = {}

    def record(name: str, rows: int, secs: float) -> None:
        if name not in best or secs < best[name][1]:
            best[name] = (rows, secs)

    end = START + days * DAY_MS
    for _ in range(repeat):
        for name, pages in stages.items():
            store = fresh()
            store.claim_family("synthetic")
            t0 = time.perf_counter()
            rows = write_pages(store, pages)
            record(name, rows, time.perf_counter() - t0)
        # the last fresh store now holds oi only; build one with everything for rewrite and loads
        store = fresh()
        store.claim_family("synthetic")
        for name in ("ohlcv/30d", "funding/30d", "oi/30d"):
            write_pages(store, stages[name])
        t0 = time.perf_counter()
        rows = write_pages(store, stages["ohlcv/30d"])
        record("rewrite", rows, time.perf_counter() - t0)
        t0 = time.perf_counter()
        rows = sum(len(store.load(k, c)) for c in coins for k in ("ohlcv", "funding", "open_interest"))
        record("load", rows, time.perf_counter() - t0)
        t0 = time.perf_counter()
        rows = 0
        for c in coins:
            cur = START
            while cur < end:
                rows += len(store.load("ohlcv", c, cur, min(end, cur + CHUNK_MS)))
                cur += CHUNK_MS
        record("load/30d", rows, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--coins", type=int, default=5, help=f"number of coins (max {len(COINS)})")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pg-url", default=None)
    ap.add_argument("--skip-pg", action="store_true")
    args = ap.parse_args(argv)
    coins = COINS[: max(1, min(args.coins, len(COINS)))]

    from resources.store import redact_url

    data = make_data(len(coins), args.days)
    stages = plan(data, args.days)
    print(f"market store benchmark: {len(coins)} coins x {args.days} days, best of {args.repeat}")
    for name, pages in stages.items():
        print(f"  {name:<12} {len(pages):>5} pages, {sum(len(p[2]) for p in pages):>8} rows")

    results: dict[str, dict[str, tuple[int, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_store_") as tmp:
        with sqlite_store(Path(tmp)) as fresh:
            results["sqlite"] = run_backend(fresh, stages, coins, args.days, args.repeat)
    pg_url = args.pg_url or os.environ.get("CRYPTOALGO_TEST_PG_URL") or DEFAULT_PG
    if args.skip_pg:
        print("PostgreSQL: skipped (--skip-pg)")
    else:
        try:
            with pg_store(pg_url) as fresh:
                print(f"PostgreSQL: {redact_url(pg_url)} (temporary databases, dropped afterwards)")
                results["postgresql"] = run_backend(fresh, stages, coins, args.days, args.repeat)
        except RuntimeError as exc:
            print(f"PostgreSQL: skipped ({exc})")
        except ImportError as exc:
            print(f"PostgreSQL: skipped (driver missing: {exc})")

    print()
    header = f"{'stage':<12} {'rows':>8} {'sqlite s':>9} {'sqlite rows/s':>14}"
    if "postgresql" in results:
        header += f" {'pg s':>8} {'pg rows/s':>11} {'pg/sqlite':>10}"
    print(header)
    print("-" * len(header))
    for name, (rows, secs) in results["sqlite"].items():
        line = f"{name:<12} {rows:>8} {secs:>9.3f} {rows / secs:>14,.0f}"
        if "postgresql" in results:
            prows, psecs = results["postgresql"][name]
            line += f" {psecs:>8.3f} {prows / psecs:>11,.0f} {psecs / secs:>9.2f}x"
        print(line)
    if "postgresql" in results:
        w = [n for n in results["sqlite"] if n not in ("load", "load/30d")]
        s_tot = sum(results["sqlite"][n][1] for n in w)
        p_tot = sum(results["postgresql"][n][1] for n in w)
        print(f"\nall writes: sqlite {s_tot:.3f} s, postgresql {p_tot:.3f} s, pg/sqlite {p_tot / s_tot:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
