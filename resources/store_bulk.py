"""Bulk upserts of the market store (see resources/store.py): SQLite pages go as one C-level executemany;
PostgreSQL pages are binary-COPYed into a session-private staging table and upserted with one
`INSERT ... SELECT ... ON CONFLICT DO UPDATE`; a page holding NULLs, or a driver without COPY, takes one
`INSERT ... SELECT FROM unnest(arrays)`. Identical re-writes are skipped (`IS DISTINCT FROM`)."""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

_PG_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_PG_COPY_TRAILER = struct.pack("!h", -1)
STAGE_INFO_KEY = "cryptoalgo_staging_tables"


class BulkWriter:
    """The write half of MarketStore (a mixin: needs `engine`, `dialect` and `_dbapi_error`)."""

    engine: Engine
    dialect: str

    def _dbapi_error(self, exc: Exception, statement: str) -> Exception:  # pragma: no cover - MarketStore's
        raise NotImplementedError

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
            if stage not in conn.info.get(STAGE_INFO_KEY, ()):
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
