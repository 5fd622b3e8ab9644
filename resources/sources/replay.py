"""Replay source: a directory of recorded files, so everything runs offline.

Layout (the layout of ../shared/data/real/):
    <dir>/ohlcv_1h/<SYMBOL>.csv[.gz] | .parquet   columns ts, open, high, low, close, volume
    <dir>/funding/<SYMBOL>.csv[.gz]  | .parquet   columns ts, rate
    <dir>/open_interest/<SYMBOL>.csv[.gz] | .parquet  columns ts, open_interest (USD) [, bar_date]
                                                  (or ts, value[, unit])
`ts` is epoch milliseconds UTC. "Now" is the close of the last candle found in the OHLCV files.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

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


@lru_cache(maxsize=64)
def _read_cached(path: str, mtime: float) -> pd.DataFrame:
    p = Path(path)
    try:
        df = pd.read_parquet(p) if p.name.endswith(".parquet") else pd.read_csv(p)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise FatalSourceError(f"replay: cannot read {p}: {exc}") from exc
    if "ts" not in df.columns:
        raise FatalSourceError(f"replay: {p} has no 'ts' column (epoch ms); columns: {list(df.columns)}")
    ts = pd.to_numeric(df["ts"], errors="coerce")
    if ts.isna().any():
        raise FatalSourceError(f"replay: {p} has {int(ts.isna().sum())} non-numeric 'ts' values")
    df["ts"] = ts.astype("int64")
    return df.sort_values("ts", kind="stable").reset_index(drop=True)


def _read(p: Path) -> pd.DataFrame:
    return _read_cached(str(p.resolve()), p.stat().st_mtime)


def _window(df: pd.DataFrame, start_ms: int, end_ms: int) -> pd.DataFrame:
    lo, hi = df["ts"].searchsorted([start_ms, end_ms])
    return df.iloc[lo:hi].reset_index(drop=True)
