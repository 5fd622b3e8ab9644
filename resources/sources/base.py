"""The one interface every market-data source implements, and its error taxonomy.

Frames (pandas.DataFrame), all timestamps int64 epoch milliseconds UTC:
- OHLCV:         ts (candle OPEN time, on the hour), open, high, low, close, volume  (float64)
- funding:       ts (settlement time), rate (fraction per funding interval, 0.0001 = 0.01 %)
- open interest: ts (time the value is known), value (float64), unit (str: 'usd' | 'base' | 'contracts')

Windows are half-open: [start_ms, end_ms) on `ts`. A source returns what it has in the window,
sorted by ts; rows may still be malformed (validation happens downstream and rejects, never drops).
Only CLOSED candles are returned (open time + 1 h <= source's now).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pandas as pd

OHLCV_COLUMNS = ["ts", "open", "high", "low", "close", "volume"]
FUNDING_COLUMNS = ["ts", "rate"]
OI_COLUMNS = ["ts", "value", "unit"]


class SourceError(Exception):
    """Any failure of a source. The message names the source, symbol and what happened."""


class RetryableSourceError(SourceError):
    """Transient: rate limit, 5xx, timeout, connection reset. Retried with backoff; raised after retries."""


class FatalSourceError(SourceError):
    """Permanent: bad symbol, 4xx other than 429, malformed response, missing file."""


class UnsupportedDataError(FatalSourceError):
    """The source does not offer this dataset (e.g. Coinbase spot has no funding)."""


@runtime_checkable
class MarketSource(Protocol):
    name: str

    def now_ms(self) -> int:
        """The source's notion of now: wall clock for live sources, data end for replay/synthetic."""
        ...

    def fetch_ohlcv(self, symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame: ...

    def fetch_funding(self, symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame: ...

    def fetch_open_interest(self, symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame: ...


def empty_ohlcv() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "ts" else "float64") for c in OHLCV_COLUMNS})


def empty_funding() -> pd.DataFrame:
    return pd.DataFrame({"ts": pd.Series(dtype="int64"), "rate": pd.Series(dtype="float64")})


def empty_oi() -> pd.DataFrame:
    return pd.DataFrame(
        {"ts": pd.Series(dtype="int64"), "value": pd.Series(dtype="float64"), "unit": pd.Series(dtype="object")}
    )
