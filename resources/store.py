"""The market store: SQLAlchemy tables for OHLCV, funding, open interest, rejects and fetch coverage.

- Any SQLAlchemy URL works; SQLite (default) runs in WAL mode with a busy timeout so Dagster's
  concurrent runs and a reader (the UI, the CLI summary) never block each other for long.
- Writes are idempotent upserts on the primary key `(coin, ts)`, inside one transaction per batch,
  together with the coverage record of the fetched window: a batch is either fully in (rows, rejects,
  coverage) or not at all. A killed run therefore resumes exactly where its last committed batch ended.
- A store holds one *source family* (synthetic, replay or live exchanges); mixing them in one database
  is refused, because a synthetic candle next to a real one would poison every downstream statistic.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cryptoalgo_core.errors import ConfigError, CryptoalgoError
from cryptoalgo_core.market.gaps import merge_intervals, subtract_intervals

KINDS = ("ohlcv", "funding", "open_interest")
SOURCE_FAMILIES = {"synthetic": "synthetic", "replay": "replay", "coinbase": "live", "ccxt": "live", "auto": "live"}

metadata = sa.MetaData()

ohlcv_table = sa.Table(
    "ohlcv",
    metadata,
    sa.Column("coin", sa.String(16), primary_key=True),
    sa.Column("ts", sa.BigInteger, primary_key=True),
    sa.Column("open", sa.Float, nullable=False),
    sa.Column("high", sa.Float, nullable=False),
    sa.Column("low", sa.Float, nullable=False),
    sa.Column("close", sa.Float, nullable=False),
    sa.Column("volume", sa.Float, nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
)
funding_table = sa.Table(
    "funding",
    metadata,
    sa.Column("coin", sa.String(16), primary_key=True),
    sa.Column("ts", sa.BigInteger, primary_key=True),
    sa.Column("rate", sa.Float, nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
)
oi_table = sa.Table(
    "open_interest",
    metadata,
    sa.Column("coin", sa.String(16), primary_key=True),
    sa.Column("ts", sa.BigInteger, primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("unit", sa.String(16), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
)
rejects_table = sa.Table(
    "rejects",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("coin", sa.String(16), primary_key=True),
    sa.Column("ts", sa.BigInteger, primary_key=True),
    sa.Column("source", sa.String(32), primary_key=True),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("rejected_at", sa.BigInteger, nullable=False),
)
coverage_table = sa.Table(
    "fetch_coverage",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("coin", sa.String(16), primary_key=True),
    sa.Column("family", sa.String(16), primary_key=True),
    sa.Column("start_ts", sa.BigInteger, primary_key=True),
    sa.Column("end_ts", sa.BigInteger, nullable=False),
)
meta_table = sa.Table(
    "store_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)
TABLES = {"ohlcv": ohlcv_table, "funding": funding_table, "open_interest": oi_table}
VALUE_COLUMNS = {
    "ohlcv": ["open", "high", "low", "close", "volume"],
    "funding": ["rate"],
    "open_interest": ["value", "unit"],
}


class StoreError(CryptoalgoError):
    """The store cannot be opened or written (bad URL, unwritable path, mixed source families)."""


def default_db_url(db_path: str | None = None) -> str:
    """--db-path, else TRADER_DB_URL, else TRADER_DB_PATH, else $TRADER_DATA_DIR/trading.db (default ./data)."""
    if db_path:
        return db_path if "://" in db_path else f"sqlite:///{Path(db_path).expanduser().resolve()}"
    if os.environ.get("TRADER_DB_URL"):
        return os.environ["TRADER_DB_URL"]
    if os.environ.get("TRADER_DB_PATH"):
        return f"sqlite:///{Path(os.environ['TRADER_DB_PATH']).expanduser().resolve()}"
    data_dir = Path(os.environ.get("TRADER_DATA_DIR", "./data")).expanduser().resolve()
    return f"sqlite:///{data_dir / 'trading.db'}"


def redact_url(url: str) -> str:
    """Hide a password in a URL before it reaches logs or metadata."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable url>"


def family_of(source: str) -> str:
    try:
        return SOURCE_FAMILIES[source.split(":")[0]]
    except KeyError:
        raise ConfigError(f"unknown source {source!r}; known: {sorted(SOURCE_FAMILIES)}") from None


@dataclass(frozen=True)
class WriteResult:
    written: int
    rejected: int


class MarketStore:
    def __init__(self, url: str, create: bool = True) -> None:
        self.url = url
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise StoreError(f"not a valid database URL: {redact_url(url)} ({exc})") from exc
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite" and parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the directory for {path}: {exc.strerror}") from exc
            if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
                raise StoreError(f"database path is not writable: {path}")
        kwargs: dict[str, Any] = {"future": True}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"timeout": 60}
        self.engine: Engine = sa.create_engine(url, **kwargs)
        if self.dialect == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        if create:
            try:
                metadata.create_all(self.engine)
            except sa.exc.OperationalError as exc:
                raise StoreError(f"cannot open market store {redact_url(url)}: {exc.orig}") from exc

    # ------------------------------------------------------------------ writes
    def claim_family(self, source: str) -> None:
        """Record the store's source family on first write; refuse a different family later."""
        fam = family_of(source)
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "source_family")).first()
            if row is None:
                conn.execute(self._upsert(meta_table, ["key"]), [{"key": "source_family", "value": fam}])
            elif row[0] != fam:
                raise StoreError(
                    f"the market store {redact_url(self.url)} holds {row[0]} data; refusing to mix in {fam} "
                    f"data from source {source!r}. Use another --db-path / TRADER_DB_PATH."
                )

    def source_family(self) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "source_family")).first()
        return None if row is None else str(row[0])

    def write_batch(
        self,
        kind: str,
        coin: str,
        source: str,
        clean: pd.DataFrame,
        rejects: pd.DataFrame | None = None,
        coverage: tuple[int, int] | None = None,
    ) -> WriteResult:
        """Upsert clean rows, record rejects and the covered window — one transaction."""
        table = _table(kind)
        rows = _records(kind, coin, source, clean)
        rej_rows: list[dict[str, Any]] = []
        if rejects is not None and len(rejects):
            now = int(time.time() * 1000)
            rej_rows = [
                {
                    "kind": kind,
                    "coin": coin,
                    "ts": int(ts),
                    "source": source,
                    "reason": str(reason)[:200],
                    "payload": str(payload),
                    "rejected_at": now,
                }
                for ts, reason, payload in zip(rejects["ts"], rejects["reason"], rejects["payload"], strict=True)
            ]
        with self.engine.begin() as conn:
            if rows:
                conn.execute(self._upsert(table, ["coin", "ts"]), rows)
            if rej_rows:
                conn.execute(self._upsert(rejects_table, ["kind", "coin", "ts", "source"]), rej_rows)
            if coverage is not None and coverage[1] > coverage[0]:
                conn.execute(
                    self._upsert(coverage_table, ["kind", "coin", "family", "start_ts"]),
                    [
                        {
                                "kind": kind,
                                "coin": coin,
                                "family": family_of(source),
                                "start_ts": int(coverage[0]),
                            "end_ts": int(coverage[1]),
                        }
                    ],
                )
        return WriteResult(written=len(rows), rejected=len(rej_rows))

    def _upsert(self, table: sa.Table, keys: list[str]) -> Any:
        """INSERT ... ON CONFLICT (keys) DO UPDATE, executed as executemany with a list of row dicts."""
        cols = [c.name for c in table.columns if c.name not in keys]
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table)
            return stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in cols})
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            pstmt = pg_insert(table)
            return pstmt.on_conflict_do_update(index_elements=keys, set_={c: pstmt.excluded[c] for c in cols})
        raise StoreError(f"upsert is implemented for sqlite and postgresql, not {self.dialect}")

    # ------------------------------------------------------------------ reads
    def load(self, kind: str, coin: str, start_ms: int | None = None, end_ms: int | None = None) -> pd.DataFrame:
        table = _table(kind)
        q = sa.select(*[c for c in table.columns if c.name != "coin"]).where(table.c.coin == coin)
        if start_ms is not None:
            q = q.where(table.c.ts >= start_ms)
        if end_ms is not None:
            q = q.where(table.c.ts < end_ms)
        q = q.order_by(table.c.ts)
        with self.engine.connect() as conn:
            res = conn.execute(q)
            df = pd.DataFrame(res.fetchall(), columns=list(res.keys()))
        if df.empty:
            df = pd.DataFrame({c.name: pd.Series(dtype=_dtype(c)) for c in table.columns if c.name != "coin"})
        df["ts"] = df["ts"].astype("int64")
        return df

    def load_ts(self, kind: str, coin: str, start_ms: int | None = None, end_ms: int | None = None) -> list[int]:
        table = _table(kind)
        q = sa.select(table.c.ts).where(table.c.coin == coin)
        if start_ms is not None:
            q = q.where(table.c.ts >= start_ms)
        if end_ms is not None:
            q = q.where(table.c.ts < end_ms)
        with self.engine.connect() as conn:
            return [int(r[0]) for r in conn.execute(q.order_by(table.c.ts))]

    def rejects(self, kind: str | None = None, coin: str | None = None) -> pd.DataFrame:
        q = sa.select(rejects_table)
        if kind:
            q = q.where(rejects_table.c.kind == kind)
        if coin:
            q = q.where(rejects_table.c.coin == coin)
        with self.engine.connect() as conn:
            res = conn.execute(q.order_by(rejects_table.c.kind, rejects_table.c.coin, rejects_table.c.ts))
            return pd.DataFrame(res.fetchall(), columns=list(res.keys()))

    def count_rejects(self, kind: str, coin: str, start_ms: int, end_ms: int) -> int:
        q = (
            sa.select(sa.func.count())
            .select_from(rejects_table)
            .where(
                rejects_table.c.kind == kind,
                rejects_table.c.coin == coin,
                rejects_table.c.ts >= start_ms,
                rejects_table.c.ts < end_ms,
            )
        )
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def duplicate_keys(self, kind: str, coin: str) -> int:
        """(coin, ts) pairs stored more than once — 0 by construction; checked independently anyway."""
        table = _table(kind)
        sub = (
            sa.select(table.c.ts)
            .where(table.c.coin == coin)
            .group_by(table.c.ts)
            .having(sa.func.count() > 1)
            .subquery()
        )
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(sub)).scalar_one())

    def stats(self, kind: str, coin: str) -> dict[str, Any]:
        table = _table(kind)
        q = sa.select(sa.func.count(), sa.func.min(table.c.ts), sa.func.max(table.c.ts)).where(table.c.coin == coin)
        with self.engine.connect() as conn:
            n, lo, hi = conn.execute(q).one()
            srcs = [
                r[0] for r in conn.execute(sa.select(table.c.source).where(table.c.coin == coin).distinct())
            ]
        return {"rows": int(n), "first_ts": lo, "last_ts": hi, "sources": sorted(srcs)}

    def coverage(self, kind: str, coin: str, family: str) -> list[tuple[int, int]]:
        c = coverage_table.c
        q = sa.select(c.start_ts, c.end_ts).where(c.kind == kind, c.coin == coin, c.family == family)
        with self.engine.connect() as conn:
            return merge_intervals((int(s), int(e)) for s, e in conn.execute(q))

    def missing_windows(self, kind: str, coin: str, source: str, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """Sub-windows of [start_ms, end_ms) never fetched from this source family."""
        return subtract_intervals(start_ms, end_ms, self.coverage(kind, coin, family_of(source)))

    def coins(self, kind: str = "ohlcv") -> list[str]:
        table = _table(kind)
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(table.c.coin).distinct().order_by(table.c.coin))]

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()


def _table(kind: str) -> sa.Table:
    try:
        return TABLES[kind]
    except KeyError:
        raise ValueError(f"unknown dataset kind {kind!r}; known: {list(TABLES)}") from None


def _dtype(col: sa.Column) -> str:
    if isinstance(col.type, sa.BigInteger):
        return "int64"
    if isinstance(col.type, sa.Float):
        return "float64"
    return "object"


def _records(kind: str, coin: str, source: str, df: pd.DataFrame) -> list[dict[str, Any]]:
    if df is None or df.empty:
        return []
    cols = ["ts", *VALUE_COLUMNS[kind]]
    out = df[cols].to_dict("records")
    for r in out:
        r["ts"] = int(r["ts"])
        r["coin"] = coin
        r["source"] = source
        for k in VALUE_COLUMNS[kind]:
            if k != "unit" and r[k] is not None:
                r[k] = float(r[k])
    return out

