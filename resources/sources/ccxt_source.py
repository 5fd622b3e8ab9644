"""ccxt-backed source: spot OHLCV fallback (default binance) and perp funding / open interest
(default binanceusdm), paginated forward, with ccxt's exceptions mapped onto the source taxonomy.

Pagination
- OHLCV and funding: cursor pages. Ask `since=cursor, limit=page_limit, until=end-1`; a full page moves
  the cursor past its newest row, a short or empty page ends the window. `page_limit` must therefore
  not exceed the exchange's own maximum (binance: klines 1000, fundingRate 1000).
- Open interest: fixed windows of `oi_page_limit * oi_period` (each holds at most one page of rows),
  so the result does not depend on whether the exchange answers oldest- or newest-first.

Funding timestamps are rounded to the NEAREST hour (half up) after pagination: Binance reports `fundingTime`
a few milliseconds after the settlement hour (e.g. 1704067200018 for 2024-01-01T00:00Z), and everything
downstream (the store, `strategy.funding_on_grid`, the backtest) places a settlement on the hourly grid by its
exact ts. The cursor still moves on the exchange's raw timestamps; two raw settlements rounding to one hour
collapse to the last one.

URL override (CcxtConfig.urls), applied to exchange.urls['api'] (every string entry, recursively):
- {"*": "http://127.0.0.1:PORT"} or {"<exchange id>": base}: scheme+host of every entry -> base,
  the entry's path is kept (binance 'public' -> base + /api/v3, binanceusdm 'fapiPublic' -> base +
  /fapi/v1, 'fapiData' -> base + /futures/data, ...).
- {"<exchange id>.<api key>": url}: that single entry is set verbatim (wins over the above).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import ccxt
import pandas as pd

from cryptoalgo_core.config import CcxtConfig
from resources.sources.base import (
    FUNDING_COLUMNS,
    OHLCV_COLUMNS,
    OI_COLUMNS,
    FatalSourceError,
    empty_funding,
    empty_ohlcv,
    empty_oi,
)
from resources.sources.coinbase import HOUR_MS, ceil_hour, finalize_ohlcv, floor_hour, iso_utc, wall_clock_ms
from resources.sources.http import (
    LogFn,
    RetryPolicy,
    SleepFn,
    call_with_retry,
    parse_retry_after,
    retryable_error,
)

PageCallback = Callable[[str, int, int, int], None]
PERIOD_MS = {"1h": HOUR_MS, "1d": 24 * HOUR_MS}
MAX_PAGES = 1_000_000  # hard stop for every pagination loop (progress is also enforced per page)

# ccxt.NetworkError is the parent of DDoSProtection (-> RateLimitExceeded), RequestTimeout,
# ExchangeNotAvailable, InvalidNonce; listed explicitly for readability.
# ccxt.OperationFailed is their common parent and also covers BadResponse / "server busy" answers.
RETRYABLE_CCXT = (
    ccxt.RateLimitExceeded,
    ccxt.DDoSProtection,
    ccxt.RequestTimeout,
    ccxt.ExchangeNotAvailable,
    ccxt.NetworkError,
    ccxt.OperationFailed,
)
_STATUS_ATTR = "_cryptoalgo_last_status"


class _MalformedJson(ccxt.NetworkError):
    """HTTP 2xx whose body looks like JSON but does not parse (truncated): transient."""


def rehost(url: str, base: str) -> str:
    """Replace scheme+host(+port) of `url` with `base` (which may carry a path prefix)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    return base.rstrip("/") + tail


def redirect_api_urls(exchange: Any, overrides: dict[str, str]) -> None:
    """Point exchange.urls['api'] at the override URLs (see module doc)."""
    base = overrides.get(exchange.id) or overrides.get("*")

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
        exact = overrides.get(f"{exchange.id}.{path}")
        if exact is not None:
            return exact
        if isinstance(node, str) and base:
            return rehost(node, base)
        return node

    urls = dict(exchange.urls)
    urls["api"] = walk(urls.get("api"), "")
    exchange.urls = urls


def round_to_hour(ts: pd.Series) -> pd.Series:
    """Epoch-ms timestamps rounded to the nearest whole hour (half up): 1704067200018 -> 1704067200000."""
    t = ts.astype("int64")
    return (t + HOUR_MS // 2) // HOUR_MS * HOUR_MS


def _to_float(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class CcxtSource:
    """MarketSource over the ccxt library (two exchange instances: spot OHLCV and perp data)."""

    name = "ccxt"

    def __init__(
        self,
        config: CcxtConfig | None = None,
        *,
        clock: Callable[[], int] | None = None,
        sleep: SleepFn = time.sleep,
        log: LogFn | None = None,
        on_page: PageCallback | None = None,
    ) -> None:
        self.config = config or CcxtConfig()
        self.policy = RetryPolicy.from_config(self.config)
        self._clock = clock or wall_clock_ms
        self._sleep = sleep
        self._log = log
        self.on_page = on_page
        self.ohlcv_exchange = self._make_exchange(self.config.ohlcv_exchange, market_type="spot")
        self.perp_exchange = self._make_exchange(self.config.perp_exchange, market_type="linear")

    # ------------------------------------------------------------ construction
    def _make_exchange(self, exchange_id: str, market_type: str) -> Any:
        if exchange_id not in ccxt.exchanges:
            raise FatalSourceError(f"ccxt: unknown exchange id {exchange_id!r}")
        cls = getattr(ccxt, exchange_id)
        ex = cls(
            {"enableRateLimit": bool(self.config.enable_rate_limit), "timeout": int(self.config.timeout_ms)}
        )
        fm = ex.options.get("fetchMarkets")
        if isinstance(fm, dict) and "types" in fm:  # binance family: load only the market type we use
            ex.options["fetchMarkets"] = {**fm, "types": [market_type]}
        if "fetchMargins" in ex.options:
            ex.options["fetchMargins"] = False
        if self.config.urls:
            redirect_api_urls(ex, dict(self.config.urls))
        self._guard_malformed_json(ex)
        return ex

    @staticmethod
    def _guard_malformed_json(ex: Any) -> None:
        """ccxt hands an unparseable 2xx body back as a string; turn that into a transient error."""
        original = ex.handle_errors

        def handle_errors(code, reason, url, method, headers, body, response, *rest):
            setattr(ex, _STATUS_ATTR, code)  # ccxt maps some 5xx JSON bodies to plain ExchangeError
            result = original(code, reason, url, method, headers, body, response, *rest)
            if (
                response is None
                and code is not None
                and 200 <= int(code) < 300
                and isinstance(body, str)
                and body.lstrip()[:1] in ("[", "{")
            ):
                raise _MalformedJson(
                    f"{ex.id} {method} {url}: truncated/unparseable JSON ({len(body)} bytes)"
                )
            return result

        ex.handle_errors = handle_errors

    # ------------------------------------------------------------ MarketSource
    def now_ms(self) -> int:
        return int(self._clock())

    def fetch_ohlcv(self, symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        frames = [f for _, _, f in self.iter_ohlcv_pages(symbol, start_ms, end_ms) if not f.empty]
        return finalize_ohlcv(pd.concat(frames, ignore_index=True)) if frames else empty_ohlcv()

    def fetch_funding(self, symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        frames = [f for _, _, f in self.iter_funding_pages(symbol, start_ms, end_ms) if not f.empty]
        return _finalize(pd.concat(frames, ignore_index=True), FUNDING_COLUMNS) if frames else empty_funding()

    def fetch_open_interest(self, symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        frames = [f for _, _, f in self.iter_open_interest_pages(symbol, start_ms, end_ms) if not f.empty]
        return _finalize(pd.concat(frames, ignore_index=True), OI_COLUMNS) if frames else empty_oi()

    def close(self) -> None:
        for ex in (self.ohlcv_exchange, self.perp_exchange):
            session = getattr(ex, "session", None)
            if session is not None:
                session.close()

    # ------------------------------------------------------------ pages
    def iter_ohlcv_pages(
        self, symbol: str, start_ms: int, end_ms: int
    ) -> Iterator[tuple[int, int, pd.DataFrame]]:
        """(page_start, page_end, frame) per request; closed hourly candles in [start, end)."""
        now = self.now_ms()
        lo = ceil_hour(int(start_ms))
        hi = min(ceil_hour(int(end_ms)), floor_hour(now))
        ex = self.ohlcv_exchange
        limit = self.config.ohlcv_page_limit

        def fetch(since: int) -> list[Any]:
            return ex.fetch_ohlcv(symbol, "1h", since, limit, {"until": hi - 1})

        def to_frame(rows: list[Any]) -> pd.DataFrame:
            return _ohlcv_frame(rows, f"{ex.id} {symbol}")

        yield from self._cursor_pages(ex, symbol, "ohlcv 1h", lo, hi, limit, HOUR_MS, fetch, to_frame)

    def iter_funding_pages(
        self, symbol: str, start_ms: int, end_ms: int
    ) -> Iterator[tuple[int, int, pd.DataFrame]]:
        """(page_start, page_end, frame) per request; settled funding rates (raw ts <= now) in [start, end), each
        ts rounded to the nearest hour (module doc)."""
        now = self.now_ms()
        lo = int(start_ms)
        hi = min(int(end_ms), now + 1)
        ex = self.perp_exchange
        limit = self.config.funding_page_limit

        def fetch(since: int) -> list[Any]:
            return ex.fetch_funding_rate_history(symbol, since, limit, {"until": hi - 1})

        def to_frame(rows: list[Any]) -> pd.DataFrame:
            return _records_frame(rows, f"{ex.id} {symbol}", funding=True)

        for page_start, page_end, frame in self._cursor_pages(ex, symbol, "funding", lo, hi, limit, 1, fetch, to_frame):
            yield page_start, page_end, _finalize(frame.assign(ts=round_to_hour(frame["ts"])), FUNDING_COLUMNS)

    def iter_open_interest_pages(
        self, symbol: str, start_ms: int, end_ms: int
    ) -> Iterator[tuple[int, int, pd.DataFrame]]:
        """(page_start, page_end, frame) per fixed window of oi_page_limit * oi_period; ts <= now."""
        now = self.now_ms()
        lo = int(start_ms)
        hi = min(int(end_ms), now + 1)
        ex = self.perp_exchange
        period = self.config.oi_period
        limit = self.config.oi_page_limit
        span = limit * PERIOD_MS[period]
        page_start = lo
        pages = 0
        while page_start < hi and pages < MAX_PAGES:
            pages += 1
            page_end = min(page_start + span, hi)

            def call(ps: int = page_start, pe: int = page_end) -> list[Any]:
                return self._ccxt_call(
                    ex,
                    symbol,
                    lambda: ex.fetch_open_interest_history(symbol, period, ps, limit, {"until": pe - 1}),
                )

            rows = call_with_retry(
                call,
                policy=self.policy,
                source=f"{self.name}:{ex.id}",
                symbol=symbol,
                what=f"open interest {iso_utc(page_start)}..{iso_utc(page_end)}",
                sleep=self._sleep,
                log=self._log,
            )
            frame = _records_frame(rows, f"{ex.id} {symbol}", funding=False)
            frame = _finalize(frame[(frame["ts"] >= page_start) & (frame["ts"] < page_end)], OI_COLUMNS)
            self._page_done(symbol, len(frame), page_start, page_end)
            yield page_start, page_end, frame
            page_start = page_end

    # ------------------------------------------------------------ internals
    def _cursor_pages(
        self,
        ex: Any,
        symbol: str,
        what: str,
        lo: int,
        hi: int,
        limit: int,
        step_ms: int,
        fetch: Callable[[int], list[Any]],
        to_frame: Callable[[list[Any]], pd.DataFrame],
    ) -> Iterator[tuple[int, int, pd.DataFrame]]:
        cursor = lo
        pages = 0
        while cursor < hi and pages < MAX_PAGES:
            pages += 1
            rows = call_with_retry(
                functools.partial(self._ccxt_call, ex, symbol, functools.partial(fetch, cursor)),
                policy=self.policy,
                source=f"{self.name}:{ex.id}",
                symbol=symbol,
                what=f"{what} since {iso_utc(cursor)}",
                sleep=self._sleep,
                log=self._log,
            )
            raw = to_frame(rows)
            in_window = raw[(raw["ts"] >= cursor) & (raw["ts"] < hi)]
            if len(rows) >= limit and not in_window.empty:
                page_end = min(int(in_window["ts"].max()) + step_ms, hi)
            else:
                page_end = hi  # short or empty page: the exchange has nothing more in the window
            frame = _finalize(in_window, list(raw.columns))
            self._page_done(symbol, len(frame), cursor, page_end)
            yield cursor, page_end, frame
            if page_end <= cursor:  # cannot happen with the arithmetic above; guards the loop anyway
                raise FatalSourceError(f"{ex.id} {symbol}: {what} pagination made no progress at {cursor}")
            cursor = page_end

    def _page_done(self, symbol: str, n: int, page_start: int, page_end: int) -> None:
        if self.on_page is not None:
            self.on_page(symbol, n, page_start, page_end)

    def _ccxt_call(self, ex: Any, symbol: str, fn: Callable[[], Any]) -> Any:
        """Run one ccxt call (loading markets first), mapping ccxt errors onto the source taxonomy."""
        where = f"ccxt {ex.id} {symbol}"
        setattr(ex, _STATUS_ATTR, None)
        try:
            if not ex.markets:
                ex.load_markets()
            result = fn()
        except (ccxt.RateLimitExceeded, ccxt.DDoSProtection) as exc:
            headers = getattr(ex, "last_response_headers", None) or {}
            hint = parse_retry_after(headers.get("Retry-After") if hasattr(headers, "get") else None)
            raise retryable_error(f"{where}: rate limited ({type(exc).__name__}: {exc})", hint) from exc
        except RETRYABLE_CCXT as exc:
            raise retryable_error(f"{where}: {type(exc).__name__}: {exc}") from exc
        except ccxt.BadSymbol as exc:
            raise FatalSourceError(f"{where}: BadSymbol: unknown/invalid symbol {symbol!r}: {exc}") from exc
        except (ccxt.BadRequest, ccxt.AuthenticationError, ccxt.NotSupported) as exc:
            raise FatalSourceError(f"{where}: {type(exc).__name__}: {exc}") from exc
        except ccxt.ExchangeError as exc:
            status = getattr(ex, _STATUS_ATTR, None)
            if status is not None and (int(status) >= 500 or int(status) == 429):
                headers = getattr(ex, "last_response_headers", None) or {}
                hint = parse_retry_after(headers.get("Retry-After") if hasattr(headers, "get") else None)
                raise retryable_error(f"{where}: HTTP {status}: {type(exc).__name__}: {exc}", hint) from exc
            raise FatalSourceError(f"{where}: {type(exc).__name__}: {exc}") from exc
        except ccxt.BaseError as exc:
            raise FatalSourceError(f"{where}: {type(exc).__name__}: {exc}") from exc
        except (TypeError, ValueError, KeyError, IndexError) as exc:  # ccxt choking on a malformed payload
            raise FatalSourceError(f"{where}: malformed response ({type(exc).__name__}: {exc})") from exc
        if not isinstance(result, list):
            raise FatalSourceError(f"{where}: expected a list from ccxt, got {type(result).__name__}")
        return result


def _ohlcv_frame(rows: list[Any], where: str) -> pd.DataFrame:
    if not rows:
        return empty_ohlcv()
    data: dict[str, list[Any]] = {c: [] for c in OHLCV_COLUMNS}
    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) < 6 or row[0] is None:
            raise FatalSourceError(f"{where}: malformed OHLCV row #{i}: {row!r:.100}")
        data["ts"].append(int(row[0]))
        for j, c in enumerate(OHLCV_COLUMNS[1:], start=1):
            data[c].append(_to_float(row[j]))
    return pd.DataFrame(data)[OHLCV_COLUMNS]


def _records_frame(rows: list[Any], where: str, *, funding: bool) -> pd.DataFrame:
    if not rows:
        return empty_funding() if funding else empty_oi()
    ts: list[int] = []
    values: list[float] = []
    units: list[str] = []
    for i, rec in enumerate(rows):
        if not isinstance(rec, dict) or rec.get("timestamp") is None:
            raise FatalSourceError(
                f"{where}: malformed {'funding' if funding else 'OI'} record #{i}: {rec!r:.100}"
            )
        ts.append(int(rec["timestamp"]))
        if funding:
            values.append(_to_float(rec.get("fundingRate")))
        elif rec.get("openInterestValue") is not None:
            values.append(_to_float(rec["openInterestValue"]))
            units.append("usd")
        else:
            values.append(_to_float(rec.get("openInterestAmount")))
            units.append("base")
    if funding:
        return pd.DataFrame({"ts": ts, "rate": values})
    return pd.DataFrame({"ts": ts, "value": values, "unit": units})


def _finalize(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Sort ascending on ts, keep the last duplicate, enforce the frame dtypes."""
    if columns == OHLCV_COLUMNS:
        return finalize_ohlcv(frame)
    empty = empty_funding() if columns == FUNDING_COLUMNS else empty_oi()
    if frame.empty:
        return empty
    out = (
        frame.drop_duplicates(subset="ts", keep="last")
        .sort_values("ts", kind="stable")
        .reset_index(drop=True)
    )
    out = out[columns].copy()
    out["ts"] = out["ts"].astype("int64")
    out[columns[1]] = out[columns[1]].astype("float64")
    if "unit" in columns:
        out["unit"] = out["unit"].astype("object")
    return out


__all__ = ["CcxtSource", "redirect_api_urls", "rehost", "round_to_hour"]
