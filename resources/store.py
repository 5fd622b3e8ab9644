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
import io
import os
import sqlite3
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

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


SUPPORTED_BACKENDS = {
    "sqlite": "sqlite:///path/to/trading.db, or a plain file path",
    "postgresql": "postgresql+psycopg2://user@host:5432/dbname",
}
_SQLITE_NOT_A_DB = ("SQLITE_NOTADB", "SQLITE_CORRUPT")
_SQLITE_NOT_A_DB_TEXT = ("file is not a database", "database disk image is malformed")
_PG_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_PG_COPY_TRAILER = struct.pack("!h", -1)
_STAGE_INFO_KEY = "cryptoalgo_staging_tables"


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


class MarketStore:
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
        sees "already exists" and simply re-checks (create_all skips existing tables)."""
        for attempt in range(5):
            try:
                metadata.create_all(self.engine)
                return
            except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError) as exc:
                if "already exists" not in str(exc.orig) and "duplicate key" not in str(exc.orig) or attempt == 4:
                    raise
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
                conn.info.setdefault(_STAGE_INFO_KEY, set()).update(staged)
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

    def _bulk_upsert(
        self,
        conn: Connection,
        table: sa.Table,
        keys: list[str],
        const: dict[str, Any],
        cols: dict[str, Any],
        staged: set[str],
    ) -> None:
        """Upsert one page: `const` values shared by every row, `cols` one sequence per column (unique ts)."""
        if self.dialect == "sqlite":
            self._sqlite_upsert(conn, table, keys, const, cols)
        elif self._pg_copy and not any(_has_null(v) for v in cols.values()):
            self._pg_copy_upsert(conn, table, keys, const, cols, staged)
        else:
            self._pg_unnest_upsert(conn, table, keys, const, cols)

    def _q(self, name: str) -> str:
        return str(self.engine.dialect.identifier_preparer.quote(name))

    def _conflict_sql(self, table: sa.Table, keys: list[str]) -> str:
        """ON CONFLICT (keys) DO UPDATE of the other columns, skipped when nothing differs (an idempotent
        re-run then writes no new row versions: no WAL, no dead tuples)."""
        cols = [self._q(c.name) for c in table.columns if c.name not in keys]
        upd = ", ".join(f"{c} = excluded.{c}" for c in cols)
        ne = "IS NOT" if self.dialect == "sqlite" else "IS DISTINCT FROM"
        changed = " OR ".join(f"{self._q(table.name)}.{c} {ne} excluded.{c}" for c in cols)
        return f"ON CONFLICT ({', '.join(self._q(k) for k in keys)}) DO UPDATE SET {upd} WHERE {changed}"

    def _sqlite_upsert(
        self, conn: Connection, table: sa.Table, keys: list[str], const: dict[str, Any], cols: dict[str, Any]
    ) -> None:
        names = [c.name for c in table.columns]
        n = len(cols["ts"])
        seqs = [[const[c]] * n if c in const else _py_list(cols[c]) for c in names]
        sql = (
            f"INSERT INTO {self._q(table.name)} ({', '.join(self._q(c) for c in names)}) "
            f"VALUES ({', '.join('?' for _ in names)}) {self._conflict_sql(table, keys)}"
        )
        conn.exec_driver_sql(sql, list(zip(*seqs, strict=True)))

    def _pg_unnest_upsert(
        self, conn: Connection, table: sa.Table, keys: list[str], const: dict[str, Any], cols: dict[str, Any]
    ) -> None:
        """One INSERT ... SELECT FROM unnest(array per column): any PostgreSQL driver, NULLs included."""
        dialect = self.engine.dialect
        select, arrays, params = [], [], {}
        for c in table.columns:
            if c.name in const:
                select.append(f"CAST(:k_{c.name} AS {_pg_type(c, dialect)})")
                params[f"k_{c.name}"] = const[c.name]
            else:
                select.append(f"u.{self._q(c.name)}")
                arrays.append(f"CAST(:a_{c.name} AS {_pg_type(c, dialect)}[])")
                params[f"a_{c.name}"] = _py_list(cols[c.name])
        alias = ", ".join(self._q(c.name) for c in table.columns if c.name not in const)
        sql = (
            f"INSERT INTO {self._q(table.name)} ({', '.join(self._q(c.name) for c in table.columns)}) "
            f"SELECT {', '.join(select)} FROM unnest({', '.join(arrays)}) AS u({alias}) "
            f"{self._conflict_sql(table, keys)}"
        )
        conn.execute(sa.text(sql), params)

    def _pg_copy_upsert(
        self,
        conn: Connection,
        table: sa.Table,
        keys: list[str],
        const: dict[str, Any],
        cols: dict[str, Any],
        staged: set[str],
    ) -> None:
        """Binary COPY of the page into a session-private staging table, then one INSERT ... SELECT.

        Numbers go as int8/float8; a text column goes as an int4 code into the page's distinct values
        (passed as one text[] parameter). The staging table is a TEMP table, ON COMMIT DELETE ROWS: rows
        never outlive the transaction, and a rollback leaves nothing behind. It is created once per
        database session (remembered in the pooled connection's info only after the creating
        transaction committed, so a rolled-back creation is simply repeated).
        """
        dialect = self.engine.dialect
        stage = f"cryptoalgo_stage_{table.name}"
        data_cols = [c for c in table.columns if c.name not in const]
        arrays: list[np.ndarray] = []
        select: list[str] = []
        params: dict[str, Any] = {}
        ddl: list[str] = []
        for c in table.columns:
            if c.name in const:
                select.append(f"CAST(:k_{c.name} AS {_pg_type(c, dialect)})")
                params[f"k_{c.name}"] = const[c.name]
                continue
            if isinstance(c.type, sa.BigInteger):
                arrays.append(np.asarray(cols[c.name], dtype=np.int64))
                ddl.append(f"{self._q(c.name)} int8")
                select.append(f"s.{self._q(c.name)}")
            elif isinstance(c.type, sa.Float):
                arrays.append(np.asarray(cols[c.name], dtype=np.float64))
                ddl.append(f"{self._q(c.name)} float8")
                select.append(f"s.{self._q(c.name)}")
            else:  # text: a code into the page's distinct values
                codes, uniques = pd.factorize(pd.Series(_py_list(cols[c.name]), dtype=object), sort=False)
                arrays.append(codes.astype(np.int32) + 1)
                ddl.append(f"{self._q(c.name)} int4")
                params[f"u_{c.name}"] = [str(u) for u in uniques]
                select.append(f"(CAST(:u_{c.name} AS TEXT[]))[s.{self._q(c.name)}]")
        cur = conn.connection.cursor()
        copy_sql = f"COPY {stage} ({', '.join(self._q(c.name) for c in data_cols)}) FROM STDIN WITH (FORMAT binary)"
        try:
            if stage not in conn.info.get(_STAGE_INFO_KEY, ()):
                cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ({', '.join(ddl)}) ON COMMIT DELETE ROWS")
                staged.add(stage)
            cur.copy_expert(copy_sql, io.BytesIO(_pg_binary_copy(arrays)))
        except self.engine.dialect.loaded_dbapi.Error as exc:
            raise self._dbapi_error(exc, copy_sql) from exc
        finally:
            cur.close()
        sql = (
            f"INSERT INTO {self._q(table.name)} ({', '.join(self._q(c.name) for c in table.columns)}) "
            f"SELECT {', '.join(select)} FROM {stage} AS s {self._conflict_sql(table, keys)}"
        )
        conn.execute(sa.text(sql), params)

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


def _dtype(col: sa.Column) -> str:
    if isinstance(col.type, sa.BigInteger):
        return "int64"
    if isinstance(col.type, sa.Float):
        return "float64"
    return "object"


def _columns(table: sa.Table, df: pd.DataFrame | None, names: list[str]) -> dict[str, Any]:
    """The frame's columns as int64 / float64 arrays, or lists for text and for NULL-holding numbers.

    `ts` must be integral; a float column holds NaN as NaN (stored as such by PostgreSQL, refused as NULL
    by SQLite, like before); None / NA in an object column becomes NULL (a NOT NULL violation).
    """
    if df is None or df.empty:
        return {n: [] for n in names}
    out: dict[str, Any] = {}
    for n in names:
        s = df[n]
        kind = _dtype(table.c[n])
        if kind == "int64":
            out[n] = s.astype("int64").to_numpy()
        elif kind == "float64" and s.dtype != object:
            out[n] = s.to_numpy(dtype=np.float64)
        elif kind == "float64":
            out[n] = [None if v is None or v is pd.NA else float(v) for v in s.tolist()]
        else:
            out[n] = [None if _is_na(v) else str(v) for v in s.tolist()]
    return out


def _is_na(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def _last_per_key(cols: dict[str, Any], key: str) -> dict[str, Any]:
    """Keep the last occurrence of each `key` value (a page is a sequence of upserts)."""
    idx = pd.Index(cols[key])
    if idx.is_unique:
        return cols
    keep = ~idx.duplicated(keep="last")
    return {n: np.asarray(v)[keep] if isinstance(v, np.ndarray) else [x for x, k in zip(v, keep, strict=True) if k]
            for n, v in cols.items()}


def _has_null(values: Any) -> bool:
    return not isinstance(values, np.ndarray) and any(v is None for v in values)


def _py_list(values: Any) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def _pg_type(col: sa.Column, dialect: Any) -> str:
    """The SQL type to CAST a bound value to: text for strings (a CAST to VARCHAR(n) would silently
    truncate; assigning text to the VARCHAR(n) column raises on an over-long value instead)."""
    return "TEXT" if isinstance(col.type, sa.String) else str(col.type.compile(dialect))


def _pg_binary_copy(arrays: Sequence[np.ndarray]) -> bytes:
    """PostgreSQL binary COPY payload of equal-length fixed-width columns (no NULLs), built by numpy."""
    n = len(arrays[0]) if arrays else 0
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for i, a in enumerate(arrays):
        fields += [(f"l{i}", ">i4"), (f"v{i}", ">" + a.dtype.str[1:])]
    rec = np.empty(n, dtype=np.dtype(fields))
    rec["n"] = len(arrays)
    for i, a in enumerate(arrays):
        rec[f"l{i}"] = a.dtype.itemsize
        rec[f"v{i}"] = a
    return _PG_COPY_HEADER + rec.tobytes() + _PG_COPY_TRAILER
