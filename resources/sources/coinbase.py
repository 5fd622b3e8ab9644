"""Coinbase Exchange public candles (spot OHLCV) over plain `requests`.

Wire format: GET {base_url}/products/{product_id}/candles?granularity=3600&start=<ISO>&end=<ISO>
-> JSON array of [time_s, low, high, open, close, volume], newest first, at most 300 rows; candles
may precede `start`, `end` is inclusive. The window is paginated in chunks of
`max_candles_per_request` hours; each chunk is requested as start=chunk_start, end=chunk_end - 1 h
and the answer is clipped to [chunk_start, chunk_end).

Coinbase spot offers neither funding nor open interest (UnsupportedDataError).
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import requests

from cryptoalgo_core.config import CoinbaseConfig
from resources.sources.base import (
    OHLCV_COLUMNS,
    FatalSourceError,
    UnsupportedDataError,
    empty_ohlcv,
)
from resources.sources.http import (
    LogFn,
    RetryPolicy,
    SleepFn,
    call_with_retry,
    parse_retry_after,
    retryable_error,
)

HOUR_MS = 3_600_000
GRANULARITY_S = 3600
USER_AGENT = "cryptoalgo/0.1 (research data ingest; python-requests)"

PageCallback = Callable[[str, int, int, int], None]


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


def floor_hour(ms: int) -> int:
    return (ms // HOUR_MS) * HOUR_MS


def ceil_hour(ms: int) -> int:
    return -((-ms) // HOUR_MS) * HOUR_MS


def iso_utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(value: Any) -> float:
    """JSON number / numeric string / null -> float (NaN when null or not numeric)."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def finalize_ohlcv(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort ascending on ts, keep the LAST occurrence of duplicated ts, enforce dtypes."""
    if frame.empty:
        return empty_ohlcv()
    out = frame.drop_duplicates(subset="ts", keep="last").sort_values("ts", kind="stable")
    out = out.reset_index(drop=True)[OHLCV_COLUMNS]
    out["ts"] = out["ts"].astype("int64")
    for col in OHLCV_COLUMNS[1:]:
        out[col] = out[col].astype("float64")
    return out


class CoinbaseSource:
    """MarketSource for the public Coinbase Exchange REST API (hourly spot candles only)."""

    name = "coinbase"

    def __init__(
        self,
        config: CoinbaseConfig | None = None,
        *,
        clock: Callable[[], int] | None = None,
        sleep: SleepFn = time.sleep,
        log: LogFn | None = None,
        on_page: PageCallback | None = None,
        session: requests.Session | None = None,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.config = config or CoinbaseConfig()
        self.base_url = self.config.base_url.rstrip("/")
        self.policy = RetryPolicy.from_config(self.config)
        self._clock = clock or wall_clock_ms
        self._sleep = sleep
        self._log = log
        self.on_page = on_page
        self.session = session or requests.Session()
        self.session.headers.update({"User-Agent": user_agent, "Accept": "application/json"})

    # ------------------------------------------------------------ MarketSource
    def now_ms(self) -> int:
        return int(self._clock())

    def fetch_ohlcv(self, symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        frames = [frame for _, _, frame in self.iter_ohlcv_pages(symbol, start_ms, end_ms) if not frame.empty]
        if not frames:
            return empty_ohlcv()
        return finalize_ohlcv(pd.concat(frames, ignore_index=True))

    def fetch_funding(self, symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        raise UnsupportedDataError(f"coinbase {symbol}: Coinbase spot has no funding rates")

    def fetch_open_interest(self, symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        raise UnsupportedDataError(f"coinbase {symbol}: Coinbase spot has no open interest")

    def close(self) -> None:
        self.session.close()

    # ------------------------------------------------------------ pages
    def page_windows(self, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """The request windows [page_start, page_end) covering [start, min(end, closed-candle limit))."""
        lo = floor_hour(int(start_ms))
        hi = min(ceil_hour(int(end_ms)), floor_hour(self.now_ms()))
        step = self.config.max_candles_per_request * HOUR_MS
        out: list[tuple[int, int]] = []
        s = lo
        while s < hi:
            e = min(s + step, hi)
            out.append((s, e))
            s = e
        return out

    def iter_ohlcv_pages(
        self, symbol: str, start_ms: int, end_ms: int
    ) -> Iterator[tuple[int, int, pd.DataFrame]]:
        """Yield (page_start_ms, page_end_ms, frame) per request; frame holds exactly the rows of the
        half-open page window that also lie in [start_ms, end_ms), sorted and de-duplicated.
        A page that yields is complete: the caller may commit it and record its coverage."""
        now = self.now_ms()
        for page_start, page_end in self.page_windows(start_ms, end_ms):
            frame = call_with_retry(
                functools.partial(self._fetch_page, symbol, page_start, page_end),
                policy=self.policy,
                source=self.name,
                symbol=symbol,
                what=f"candles {iso_utc(page_start)}..{iso_utc(page_end)}",
                sleep=self._sleep,
                log=self._log,
            )
            lo = max(page_start, int(start_ms))
            hi = min(page_end, int(end_ms))
            keep = (frame["ts"] >= lo) & (frame["ts"] < hi) & (frame["ts"] + HOUR_MS <= now)
            frame = finalize_ohlcv(frame[keep])
            if self.on_page is not None:
                self.on_page(symbol, len(frame), page_start, page_end)
            yield page_start, page_end, frame

    # ------------------------------------------------------------ HTTP
    def _fetch_page(self, product_id: str, page_start: int, page_end: int) -> pd.DataFrame:
        url = f"{self.base_url}/products/{product_id}/candles"
        params = {
            "granularity": str(GRANULARITY_S),
            "start": iso_utc(page_start),
            "end": iso_utc(page_end - HOUR_MS),  # Coinbase's end is inclusive
        }
        where = f"coinbase {product_id} [{params['start']} .. {params['end']}]"
        try:
            resp = self.session.get(url, params=params, timeout=self.config.timeout_s)
            body = resp.text  # read inside the try: a broken body is a connection error
        except requests.Timeout as exc:
            raise retryable_error(f"{where}: timeout after {self.config.timeout_s}s ({exc})") from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise retryable_error(f"{where}: connection error ({exc})") from exc
        except requests.RequestException as exc:
            raise FatalSourceError(f"{where}: request failed ({exc})") from exc

        status = resp.status_code
        if status == 429:
            hint = parse_retry_after(resp.headers.get("Retry-After"))
            raise retryable_error(f"{where}: HTTP 429 rate limited", retry_after_s=hint)
        if status >= 500:
            hint = parse_retry_after(resp.headers.get("Retry-After"))
            raise retryable_error(f"{where}: HTTP {status} {_message(body)}", retry_after_s=hint)
        if status != 200:
            raise FatalSourceError(f"{where}: HTTP {status}: product {product_id!r}: {_message(body)}")
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise retryable_error(f"{where}: unparseable/truncated JSON ({len(body)} bytes): {exc}") from exc
        return _parse_candles(payload, where)


def _message(body: str) -> str:
    """The `message` of a Coinbase error body, else the (shortened) body."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("message") is not None:
        return str(payload["message"])
    text = body.strip()
    return text[:200] if text else "(empty body)"


def _parse_candles(payload: Any, where: str) -> pd.DataFrame:
    if isinstance(payload, dict) and "message" in payload:
        raise FatalSourceError(f"{where}: error payload with HTTP 200: {payload['message']}")
    if not isinstance(payload, list):
        raise FatalSourceError(f"{where}: expected a JSON array of candles, got {type(payload).__name__}")
    if not payload:
        return empty_ohlcv()
    ts = np.empty(len(payload), dtype="int64")
    cols = {c: np.empty(len(payload), dtype="float64") for c in ("low", "high", "open", "close", "volume")}
    for i, row in enumerate(payload):
        if not isinstance(row, list) or len(row) < 6:
            raise FatalSourceError(f"{where}: malformed candle #{i}: {row!r:.100}")
        t = _num(row[0])
        if math.isnan(t):
            raise FatalSourceError(f"{where}: candle #{i} has no time: {row!r:.100}")
        ts[i] = int(t) * 1000
        for j, c in enumerate(("low", "high", "open", "close", "volume"), start=1):
            cols[c][i] = _num(row[j])
    frame = pd.DataFrame({"ts": ts, **cols})
    return frame[OHLCV_COLUMNS]
