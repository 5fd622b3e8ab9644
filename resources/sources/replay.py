"""Replay source: a directory of recorded files, so everything runs offline.

Layout (the layout of ../shared/data/real/):
    <dir>/ohlcv_1h/<SYMBOL>.csv[.gz] | .parquet   columns ts, open, high, low, close, volume
    <dir>/funding/<SYMBOL>.csv[.gz]  | .parquet   columns ts, rate
    <dir>/open_interest/<SYMBOL>.csv[.gz] | .parquet  columns ts, open_interest (USD) [, bar_date]
                                                  (or ts, value[, unit])
`ts` is epoch milliseconds UTC. "Now" is the close of the last candle found in the OHLCV files.

Files are read with polars (CSV, gzip-compressed CSV, Parquet) and handed on as the pandas frames of the
source contract (base.py): `ts` int64, numeric columns float64, text as pandas strings. Rows are returned
as recorded, sorted by `ts` (stable, so file order is kept among equal timestamps): duplicate timestamps
are NOT resolved here. Ingest (`resources.ingest.split_duplicate_ts`) collapses identical duplicates and
sends conflicting ones to the store's rejects table, so a recording never silently becomes
"last row wins".
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd
import polars as pl

from cryptoalgo_core.timeutil import HOUR_MS
from resources.sources.base import (
    FatalSourceError,
    UnsupportedDataError,
    empty_funding,
    empty_ohlcv,
    empty_oi,
)

SUBDIRS = {"ohlcv": "ohlcv_1h", "funding": "funding", "open_interest": "open_interest"}
EXTENSIONS = (".csv.gz", ".csv", ".parquet")


class ReplaySource:
    name = "replay"

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory).expanduser()
        if not self.dir.is_dir():
            raise FatalSourceError(f"replay: directory does not exist: {self.dir}")
        if not (self.dir / SUBDIRS["ohlcv"]).is_dir():
            raise FatalSourceError(f"replay: {self.dir} has no {SUBDIRS['ohlcv']}/ folder (expected layout: see docs)")

    def _path(self, kind: str, symbol: str) -> Path | None:
        base = self.dir / SUBDIRS[kind]
        for ext in EXTENSIONS:
            p = base / f"{symbol}{ext}"
            if p.exists():
                return p
        return None

    def now_ms(self) -> int:
        last = None
        base = self.dir / SUBDIRS["ohlcv"]
        for p in sorted(base.iterdir()):
            if any(p.name.endswith(e) for e in EXTENSIONS):
                df = _read(p)
                if len(df):
                    t = int(df["ts"].max())
                    last = t if last is None else max(last, t)
        if last is None:
            raise FatalSourceError(f"replay: no OHLCV files with rows in {base}")
        return last + HOUR_MS

    def _frame(self, kind: str, symbol: str, required: list[str]) -> pd.DataFrame:
        p = self._path(kind, symbol)
        if p is None:
            if kind == "ohlcv":
                raise FatalSourceError(
                    f"replay: no file for {symbol} in {self.dir / SUBDIRS[kind]} (tried {', '.join(EXTENSIONS)})"
                )
            raise UnsupportedDataError(f"replay: no {kind} file for {symbol} in {self.dir / SUBDIRS[kind]}")
        df = _read(p)
        missing = [c for c in required if c not in df.columns]
        if missing:
            raise FatalSourceError(f"replay: {p} lacks column(s) {missing}; has {list(df.columns)}")
        return df

    def fetch_ohlcv(self, symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        df = self._frame("ohlcv", symbol, ["ts", "open", "high", "low", "close", "volume"])
        out = _window(df, start_ms, end_ms)[["ts", "open", "high", "low", "close", "volume"]]
        return out if len(out) else empty_ohlcv()

    def fetch_funding(self, symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        df = self._frame("funding", symbol, ["ts", "rate"])
        out = _window(df, start_ms, end_ms)[["ts", "rate"]]
        return out if len(out) else empty_funding()

    def fetch_open_interest(self, symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        df = self._frame("open_interest", symbol, ["ts"])
        if "open_interest" in df.columns:
            df = df.assign(value=df["open_interest"], unit="usd")
        elif "value" in df.columns:
            if "unit" not in df.columns:
                df = df.assign(unit="usd")
        else:
            raise FatalSourceError(f"replay: open-interest file for {symbol} needs column 'open_interest' or 'value'")
        out = _window(df, start_ms, end_ms)[["ts", "value", "unit"]]
        return out if len(out) else empty_oi()


# Columns read as float64 whatever the first rows look like (the frame contract; an all-integer volume
# column is still float64). A value that does not parse as a number makes the whole file fall back to
# full-file type inference, where the column stays text (validation then rejects those rows by reason).
FLOAT_COLUMNS = ("open", "high", "low", "close", "volume", "rate", "open_interest", "value")
# pandas.read_csv's default missing-value markers, so a recording reads the same as it always did.
NULL_VALUES = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
]


def _read_polars(p: Path) -> pl.DataFrame:
    if p.name.endswith(".parquet"):
        df = pl.read_parquet(p)
    else:
        try:
            df = pl.read_csv(p, schema_overrides={c: pl.Float64 for c in FLOAT_COLUMNS}, null_values=NULL_VALUES)
        except pl.exceptions.ComputeError:  # a value that is no number, or types changing after the first rows
            df = pl.read_csv(p, infer_schema_length=None, null_values=NULL_VALUES)
    floats = [c for c in FLOAT_COLUMNS if c in df.columns and df.schema[c].is_numeric()]
    return df.with_columns(pl.col(c).cast(pl.Float64) for c in floats)


def _ts_int64(df: pl.DataFrame, p: Path) -> pl.DataFrame:
    """`ts` -> Int64; a value that is not a number is a FatalSourceError naming how many."""
    ts = df["ts"]
    if ts.dtype == pl.String:
        ts = ts.str.strip_chars().cast(pl.Float64, strict=False)
    elif not ts.dtype.is_numeric():
        ts = ts.cast(pl.Float64, strict=False)
    bad = ts.null_count() + (int(ts.is_nan().sum()) if ts.dtype.is_float() else 0)
    if bad:
        raise FatalSourceError(f"replay: {p} has {bad} non-numeric 'ts' values")
    try:
        return df.with_columns(ts.cast(pl.Int64).alias("ts"))
    except pl.exceptions.PolarsError as exc:  # out of the int64 range
        raise FatalSourceError(f"replay: {p} has 'ts' values that are no epoch milliseconds: {exc}") from exc


@lru_cache(maxsize=64)
def _read_cached(path: str, mtime: float) -> pd.DataFrame:
    p = Path(path)
    try:
        df = _read_polars(p)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise FatalSourceError(f"replay: cannot read {p}: {' '.join(str(exc).split())[:300]}") from exc
    if "ts" not in df.columns:
        raise FatalSourceError(f"replay: {p} has no 'ts' column (epoch ms); columns: {list(df.columns)}")
    df = _ts_int64(df, p).sort("ts", maintain_order=True)
    return df.to_pandas()


def _read(p: Path) -> pd.DataFrame:
    return _read_cached(str(p.resolve()), p.stat().st_mtime)


def _window(df: pd.DataFrame, start_ms: int, end_ms: int) -> pd.DataFrame:
    lo, hi = df["ts"].searchsorted([start_ms, end_ms])
    return df.iloc[lo:hi].reset_index(drop=True)
