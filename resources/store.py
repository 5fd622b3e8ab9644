"""The market store: SQLAlchemy tables for OHLCV, funding, open interest, rejects and fetch coverage.

- A SQLite (default) or PostgreSQL SQLAlchemy URL; SQLite runs in WAL mode with a busy timeout so
  Dagster's concurrent runs and a reader (the UI, the CLI summary) never block each other for long.
- Writes are idempotent upserts on the primary key `(coin, ts)`, inside one transaction per batch,
  together with the coverage record of the fetched window: a batch is either fully in (rows, rejects,
  coverage) or not at all. A killed run therefore resumes exactly where its last committed batch ended.
- A store holds one *source family* (synthetic, replay or live exchanges); mixing them in one database
  is refused, because a synthetic candle next to a real one would poison every downstream statistic.
- Bulk paths: SQLite upserts a page with one C-level executemany; PostgreSQL binary-COPYs the page into
  a session-private staging table and upserts it with one `INSERT ... SELECT ... ON CONFLICT DO UPDATE`
  (a page holding NULLs, or a driver without COPY, takes one `INSERT ... SELECT FROM unnest(arrays)`).
  Reads run one query on the DB-API cursor and build the frame column by column.
- Bad input (a URL scheme other than sqlite/postgresql, a file that is not a SQLite database, a store
  that does not exist when `create=False`) raises one StoreError naming the problem; URLs in messages
  are always redacted.
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cryptoalgo_core.errors import ConfigError, CryptoalgoError
from cryptoalgo_core.market.gaps import merge_intervals, subtract_intervals
from resources.store_bulk import STAGE_INFO_KEY, BulkWriter, _columns, _dtype, _last_per_key

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


SUPPORTED_BACKENDS = {
    "sqlite": "sqlite:///path/to/trading.db, or a plain file path",
    "postgresql": "postgresql+psycopg2://user@host:5432/dbname",
}
_SQLITE_NOT_A_DB = ("SQLITE_NOTADB", "SQLITE_CORRUPT")
_SQLITE_NOT_A_DB_TEXT = ("file is not a database", "database disk image is malformed")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


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


class MarketStore(BulkWriter):
    def __init__(self, url: str, create: bool = True) -> None:
        """Open (and with `create`, initialise) the store at `url`.

        `create=False` opens an existing store only (read paths such as the CLI summary): a SQLite path
        that does not exist raises StoreError without creating the file or its directory, and so does
        a database without the store's tables.
        """
        self.url = url
        safe = redact_url(url)
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise StoreError(f"not a valid database URL: {safe} ({_one_line(exc)})") from exc
        self.dialect = parsed.get_backend_name()
        if self.dialect not in SUPPORTED_BACKENDS:
            supported = " and ".join(f"{k} (e.g. {v})" for k, v in SUPPORTED_BACKENDS.items())
            raise StoreError(
                f"unsupported database URL scheme {parsed.drivername!r} in {safe}: "
                f"the market store supports {supported}"
            )
        if parsed.drivername == "postgresql" and not _installed("psycopg") and _installed("psycopg2"):
            parsed = parsed.set(drivername="postgresql+psycopg2")  # SQLAlchemy 2.1 defaults to psycopg 3
        self._where = safe
        if self.dialect == "sqlite" and parsed.database not in (None, "", ":memory:") and not parsed.query.get("uri"):
            path = Path(parsed.database)
            self._where = str(path)
            _check_sqlite_path(path, create)
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"timeout": 60}
        try:
            self.engine: Engine = sa.create_engine(parsed, **kwargs)
        except sa.exc.NoSuchModuleError as exc:
            raise StoreError(
                f"unknown database driver {parsed.drivername!r} in {safe}: use sqlite or postgresql "
                f"(e.g. postgresql+psycopg2://user@host/db)"
            ) from exc
        except ImportError as exc:
            raise StoreError(
                f"the database driver for {parsed.drivername!r} is not installed ({exc.name or exc}): {safe}"
            ) from exc
        except (sa.exc.ArgumentError, TypeError, ValueError) as exc:
            raise StoreError(f"cannot use database URL {safe}: {_one_line(exc)}") from exc
        # the PostgreSQL bulk path binary-COPYs through psycopg2; other drivers take the unnest path
        self._pg_copy = self.dialect == "postgresql" and self.engine.dialect.driver == "psycopg2"
        if self.dialect == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        sa.event.listen(self.engine, "handle_error", self._on_db_error)
        try:
            if create:
                self._create_tables()
            else:
                self._require_tables()
        except sa.exc.DBAPIError as exc:  # unreachable server, unknown database, no permission, ...
            self.engine.dispose()
            raise StoreError(f"cannot open market store {safe}: {_one_line(exc.orig)}") from exc
        except StoreError:
            self.engine.dispose()
            raise

    def _create_tables(self) -> None:
        """Create missing tables. Two processes opening a new store at once race on CREATE TABLE; the loser
        sees "already exists" and simply re-checks (create_all skips existing tables). On a brand-new SQLite
        file the switch to WAL can also answer "database is locked" at once (SQLite skips the busy handler when
        waiting could deadlock): that is retried too."""
        transient = ("already exists", "duplicate key", "database is locked")
        for attempt in range(10):
            try:
                metadata.create_all(self.engine)
                return
            except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError) as exc:
                if not any(t in str(exc.orig) for t in transient) or attempt == 9:
                    raise
                self.engine.dispose()  # a connection that failed its pragmas is not reused
                time.sleep(0.05 * (attempt + 1))

    # ------------------------------------------------------------------ errors
    def _store_error_for(self, orig: BaseException) -> StoreError | None:
        """A StoreError for a DB-API error that means "this file is no SQLite database" (else None)."""
        if self.dialect != "sqlite" or not isinstance(orig, sqlite3.DatabaseError):
            return None
        name = getattr(orig, "sqlite_errorname", "")
        msg = str(orig)
        if name in _SQLITE_NOT_A_DB or any(t in msg for t in _SQLITE_NOT_A_DB_TEXT):
            return StoreError(f"not a SQLite database: {self._where} (sqlite: {_one_line(msg)})")
        return None

    def _on_db_error(self, ctx: Any) -> None:
        """SQLAlchemy handle_error hook: a corrupt or foreign SQLite file becomes one StoreError."""
        err = self._store_error_for(ctx.original_exception)
        if err is not None:
            raise err from ctx.original_exception

    def _dbapi_error(self, exc: Exception, statement: str) -> Exception:
        """Wrap an error raised on a raw DB-API cursor like SQLAlchemy would (or as a StoreError)."""
        err = self._store_error_for(exc)
        if err is not None:
            return err
        return sa.exc.DBAPIError.instance(statement, None, exc, self.engine.dialect.loaded_dbapi.Error)

    def _require_tables(self) -> None:
        names = set(sa.inspect(self.engine).get_table_names())
        missing = [t for t in metadata.tables if t not in names]
        if len(missing) == len(metadata.tables):
            raise StoreError(f"no market store at {self._where} (the database has none of its tables)")
        if missing:
            raise StoreError(f"incomplete market store at {self._where}: missing table(s) {missing}")

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
        """Upsert clean rows, record rejects and the covered window — one transaction.

        Rows are upserted on (coin, ts); a batch that repeats a ts is applied like a sequence of upserts
        (the last occurrence wins), and likewise rejects on their key. All or nothing: any failure rolls
        back the rows, the rejects and the coverage of this batch together.
        """
        table = _table(kind)
        rows = _last_per_key(_columns(table, clean, ["ts", *VALUE_COLUMNS[kind]]), "ts")
        rej: dict[str, Any] | None = None
        if rejects is not None and len(rejects):
            rej = _last_per_key(_columns(rejects_table, rejects, ["ts", "reason", "payload"]), "ts")
            rej["reason"] = [str(r)[:200] for r in rej["reason"]]
            rej["payload"] = [str(p) for p in rej["payload"]]
        n_rows = len(rows["ts"])
        n_rej = 0 if rej is None else len(rej["ts"])
        staged: set[str] = set()  # staging tables created by this transaction (PostgreSQL)
        with self.engine.connect() as conn:
            with conn.begin():
                if n_rows:
                    self._bulk_upsert(conn, table, ["coin", "ts"], {"coin": coin, "source": source}, rows, staged)
                if rej is not None and n_rej:
                    const = {"kind": kind, "coin": coin, "source": source, "rejected_at": int(time.time() * 1000)}
                    self._bulk_upsert(conn, rejects_table, ["kind", "coin", "ts", "source"], const, rej, staged)
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
            if staged:  # committed: the session's temp tables exist from now on
                conn.info.setdefault(STAGE_INFO_KEY, set()).update(staged)
        return WriteResult(written=n_rows, rejected=n_rej)

    def _upsert(self, table: sa.Table, keys: list[str]) -> Any:
        """INSERT ... ON CONFLICT (keys) DO UPDATE, for a few row dicts (metadata, coverage)."""
        cols = [c.name for c in table.columns if c.name not in keys]
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table)
            return stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in cols})
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pstmt = pg_insert(table)
        return pstmt.on_conflict_do_update(index_elements=keys, set_={c: pstmt.excluded[c] for c in cols})

    # ------------------------------------------------------------------ reads
    def _select(
        self, sql_cols: list[str], table: str, coin: str, start_ms: int | None, end_ms: int | None
    ) -> list[tuple[Any, ...]]:
        """One `SELECT cols FROM table WHERE coin AND ts window ORDER BY ts` on the DB-API cursor."""
        ph = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(self.engine.dialect.paramstyle)
        q = self._q
        where: list[str] = [f"{q('coin')} = {{}}"]
        params: list[Any] = [coin]
        if start_ms is not None:
            where.append(f"{q('ts')} >= {{}}")
            params.append(int(start_ms))
        if end_ms is not None:
            where.append(f"{q('ts')} < {{}}")
            params.append(int(end_ms))
        if ph is None:  # a paramstyle this fast path does not speak: let SQLAlchemy run it
            t = metadata.tables[table]
            sq = sa.select(*[t.c[c] for c in sql_cols]).where(t.c.coin == coin)
            if start_ms is not None:
                sq = sq.where(t.c.ts >= start_ms)
            if end_ms is not None:
                sq = sq.where(t.c.ts < end_ms)
            with self.engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sq.order_by(t.c.ts))]
        sql = (
            f"SELECT {', '.join(q(c) for c in sql_cols)} FROM {q(table)} "
            f"WHERE {' AND '.join(w.format(ph) for w in where)} ORDER BY {q('ts')}"
        )
        with self.engine.connect() as conn:
            cur = conn.connection.cursor()
            try:
                cur.execute(sql, tuple(params))
                return list(cur.fetchall())
            except self.engine.dialect.loaded_dbapi.Error as exc:
                raise self._dbapi_error(exc, sql) from exc
            finally:
                cur.close()

    def load(self, kind: str, coin: str, start_ms: int | None = None, end_ms: int | None = None) -> pd.DataFrame:
        """Stored rows of `kind` for `coin` in [start_ms, end_ms), sorted by ts: ts int64, numbers float64."""
        table = _table(kind)
        cols = [c for c in table.columns if c.name != "coin"]
        rows = self._select([c.name for c in cols], table.name, coin, start_ms, end_ms)
        if not rows:
            return pd.DataFrame({c.name: pd.Series(dtype=_dtype(c)) for c in cols})
        data: dict[str, Any] = {}
        for c, values in zip(cols, zip(*rows, strict=True), strict=True):
            dt = _dtype(c)
            data[c.name] = np.array(values, dtype=dt) if dt != "object" else list(values)
        return pd.DataFrame(data)

    def load_ts(self, kind: str, coin: str, start_ms: int | None = None, end_ms: int | None = None) -> list[int]:
        table = _table(kind)
        return [int(r[0]) for r in self._select(["ts"], table.name, coin, start_ms, end_ms)]

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


def _check_sqlite_path(path: Path, create: bool) -> None:
    """Refuse a directory; with `create`, make the parent directory, else require a non-empty file.

    Only stat() here, never open(): closing any descriptor of a SQLite file releases every POSIX lock
    this process holds on it (SQLite's own connections included), and another process could then
    checkpoint and reset a WAL we are still writing to. A file that is no SQLite database is reported
    by SQLite itself on first use (see MarketStore._store_error_for).
    """
    if path.is_dir():
        raise StoreError(f"not a SQLite database: {path} is a directory")
    if not path.exists():
        if not create:
            raise StoreError(f"no market store at {path} (no such file; run `cryptoalgo ingest` first)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the directory for {path}: {exc.strerror}") from exc
    elif not create and path.stat().st_size == 0:  # do not connect: SQLite would write a header into it
        raise StoreError(f"no market store at {path} (an empty file)")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StoreError(f"database path is not writable: {path}")


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
