"""CoinbaseSource against a real HTTP fake of the Coinbase Exchange candles API on 127.0.0.1."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import requests

from cryptoalgo_core.config import CoinbaseConfig
from resources.sources.base import (
    OHLCV_COLUMNS,
    FatalSourceError,
    MarketSource,
    RetryableSourceError,
    UnsupportedDataError,
)
from resources.sources.coinbase import CoinbaseSource
from resources.sources.http import RetryPolicy, call_with_retry, parse_retry_after, retryable_error
from tests.fakes import hourly_ohlcv
from tests.fakes.fake_coinbase import FakeCoinbase, Fault

H = 3_600_000
START = 1_704_067_200_000  # 2024-01-01T00:00Z
DAYS40 = 40 * 24  # 960 hourly candles -> ceil(960/300) = 4 requests
PRODUCT = "BTC-USD"

pytestmark = pytest.mark.timeout(30)
HANG_S = 300.0  # a fake's "delay" longer than any test may run: only a client-side timeout ends it


@pytest.fixture
def data() -> pd.DataFrame:
    return hourly_ohlcv(START, DAYS40, seed=11)


@pytest.fixture
def server(data):
    with FakeCoinbase({PRODUCT: data}) as srv:
        yield srv


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_source(server, *, now_ms=START + DAYS40 * H + H, sleeps=None, **cfg) -> CoinbaseSource:
    cfg.setdefault("timeout_s", 2.0)
    cfg.setdefault("max_retries", 3)
    config = CoinbaseConfig(base_url=server.url, **cfg)
    return CoinbaseSource(config, clock=lambda: now_ms, sleep=sleeps if sleeps is not None else Sleeps())


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want[OHLCV_COLUMNS].reset_index(drop=True))


# ---------------------------------------------------------------- happy path
def test_is_market_source(server):
    assert isinstance(make_source(server), MarketSource)


def test_full_pagination_40_days_exact(server, data):
    src = make_source(server)
    got = src.fetch_ohlcv(PRODUCT, START, START + DAYS40 * H)
    assert_same(got, data)
    assert got["ts"].dtype == np.int64
    assert server.count("/candles") == math.ceil(DAYS40 / 300) == 4
    first = server.candle_requests()[0].query
    assert first == {"granularity": "3600", "start": "2024-01-01T00:00:00Z", "end": "2024-01-13T11:00:00Z"}
    # user agent is sent
    assert "cryptoalgo" in server.candle_requests()[0].headers.get("User-Agent", "")


def test_pages_are_contiguous_and_reported(server, data):
    seen = []
    src = make_source(server)
    src.on_page = lambda sym, n, s, e: seen.append((sym, n, s, e))
    pages = list(src.iter_ohlcv_pages(PRODUCT, START, START + DAYS40 * H))
    assert [p[0] for p in pages] == [START + i * 300 * H for i in range(4)]
    assert all(pages[i][1] == pages[i + 1][0] for i in range(3))
    assert pages[-1][1] == START + DAYS40 * H
    assert sum(len(f) for _, _, f in pages) == DAYS40
    assert [n for _, n, _, _ in seen] == [300, 300, 300, 60]
    assert all(sym == PRODUCT for sym, *_ in seen)
    for ps, pe, frame in pages:
        assert frame["ts"].between(ps, pe - 1).all()


def test_half_open_window_and_unaligned_bounds(server, data):
    src = make_source(server)
    got = src.fetch_ohlcv(PRODUCT, START + 10 * H + 5, START + 20 * H)
    assert_same(got, data[(data.ts >= START + 10 * H + 5) & (data.ts < START + 20 * H)])
    assert got["ts"].iloc[0] == START + 11 * H and got["ts"].iloc[-1] == START + 19 * H


def test_only_closed_candles(server, data):
    now = START + 100 * H + 30 * 60_000  # 30 minutes into candle #100
    src = make_source(server, now_ms=now)
    got = src.fetch_ohlcv(PRODUCT, START, START + DAYS40 * H)
    assert got["ts"].max() == START + 99 * H  # candle #99 closed at START+100h <= now; #100 still open
    assert_same(got, data[data.ts < START + 100 * H])
    assert server.count("/candles") == 1  # window clipped to now: no requests for the future


def test_in_progress_candle_served_by_api_is_dropped(data):
    now = START + 50 * H + 1  # the API serves candle #50 (open) if asked; it must not be returned
    with FakeCoinbase({PRODUCT: data}) as srv:
        src = make_source(srv, now_ms=now)
        got = src.fetch_ohlcv(PRODUCT, START + 40 * H, START + 60 * H)
    assert got["ts"].max() == START + 49 * H


def test_empty_window_no_data(server):
    src = make_source(server, now_ms=START + 2000 * H)
    got = src.fetch_ohlcv(PRODUCT, START + 1000 * H, START + 1100 * H)
    assert got.empty and list(got.columns) == OHLCV_COLUMNS


def test_unsupported_datasets(server):
    src = make_source(server)
    with pytest.raises(UnsupportedDataError, match="funding"):
        src.fetch_funding(PRODUCT, START, START + H)
    with pytest.raises(UnsupportedDataError, match="open interest"):
        src.fetch_open_interest(PRODUCT, START, START + H)
    assert server.count() == 0


# ---------------------------------------------------------------- faults
def test_429_retry_after_honoured(server, data):
    sleeps = Sleeps()
    server.script = [Fault("429", retry_after=1)]
    src = make_source(server, sleeps=sleeps, backoff_base_s=0.01)
    got = src.fetch_ohlcv(PRODUCT, START, START + DAYS40 * H)
    assert_same(got, data)
    assert len(sleeps) == 1 and sleeps[0] >= 1.0
    assert server.count("/candles") == 5
    assert server.faults_applied[0][0] == "429"


@pytest.mark.parametrize("status", ["500", "502", "503"])
def test_5xx_retried(server, data, status):
    sleeps = Sleeps()
    server.script = [Fault(status), Fault(status, path="/candles")]
    src = make_source(server, sleeps=sleeps, backoff_base_s=0.5, backoff_max_s=0.75)
    got = src.fetch_ohlcv(PRODUCT, START, START + DAYS40 * H)
    assert_same(got, data)
    assert sleeps == [0.5, 0.75]  # exponential, capped at backoff_max_s
    assert server.count("/candles") == 6


def test_timeout_retried(server, data):
    # The first request is answered only after HANG_S, far beyond the module's pytest timeout: the test
    # can only finish if the client gives up on its own (timeout_s) and retries. No clock is read.
    sleeps = Sleeps()
    server.script = [Fault("delay", delay_s=HANG_S)]
    src = make_source(server, timeout_s=0.2, sleeps=sleeps)
    got = src.fetch_ohlcv(PRODUCT, START, START + DAYS40 * H)
    assert_same(got, data)
    assert [kind for kind, _ in server.faults_applied] == ["delay"]
    assert server.count("/candles") == 5  # 4 pages + the one retry of the timed-out first page
    assert len(sleeps) == 1  # exactly one back-off: the timeout was retried once


def test_dropped_connection_retried(server, data):
    server.script = [Fault("drop")]
    got = make_source(server).fetch_ohlcv(PRODUCT, START, START + DAYS40 * H)
    assert_same(got, data)


def test_retries_exhausted(server):
    sleeps = Sleeps()
    server.script = [Fault("503", times=None)]
    src = make_source(server, sleeps=sleeps, max_retries=2)
    with pytest.raises(RetryableSourceError) as err:
        src.fetch_ohlcv(PRODUCT, START, START + DAYS40 * H)
    msg = str(err.value)
    assert "coinbase" in msg and PRODUCT in msg and "3 attempt" in msg
    assert server.count("/candles") == 3 and len(sleeps) == 2


def test_unknown_product_is_fatal_without_retry(server):
    src = make_source(server)
    with pytest.raises(FatalSourceError) as err:
        src.fetch_ohlcv("NOPE-USD", START, START + 10 * H)
    assert not isinstance(err.value, RetryableSourceError)
    assert "NOPE-USD" in str(err.value) and "NotFound" in str(err.value) and "404" in str(err.value)
    assert server.count("/candles") == 1


def test_400_is_fatal_with_message(server):
    server.script = [Fault("body", status=400, body='{"message":"Unsupported granularity"}')]
    with pytest.raises(FatalSourceError, match="Unsupported granularity"):
        make_source(server).fetch_ohlcv(PRODUCT, START, START + 10 * H)
    assert server.count("/candles") == 1


def test_fake_rejects_bad_granularity_and_oversized_range(server):
    r = requests.get(f"{server.url}/products/{PRODUCT}/candles", params={"granularity": 7}, timeout=2)
    assert r.status_code == 400 and "granularity" in r.json()["message"].lower()
    r = requests.get(
        f"{server.url}/products/{PRODUCT}/candles",
        params={"granularity": 3600, "start": "2024-01-01T00:00:00Z", "end": "2024-02-01T00:00:00Z"},
        timeout=2,
    )
    assert r.status_code == 400 and "300" in r.json()["message"]
    r = requests.get(f"{server.url}/products/XX-YY/candles", params={"granularity": 3600}, timeout=2)
    assert r.status_code == 404 and r.json() == {"message": "NotFound"}


def test_empty_page_is_normal(server, data):
    # the second page answers [] -> no error, those 300 hours are simply absent
    server.script = [Fault("empty", when=lambda r: r.query.get("start") == "2024-01-13T12:00:00Z")]
    src = make_source(server)
    got = src.fetch_ohlcv(PRODUCT, START, START + DAYS40 * H)
    want = data[(data.ts < START + 300 * H) | (data.ts >= START + 600 * H)]
    assert_same(got, want)
    assert server.count("/candles") == 4


def test_truncated_json_retried(server, data):
    sleeps = Sleeps()
    server.script = [Fault("truncated")]
    got = make_source(server, sleeps=sleeps).fetch_ohlcv(PRODUCT, START, START + DAYS40 * H)
    assert_same(got, data)
    assert len(sleeps) == 1 and server.count("/candles") == 5


def test_truncated_json_forever_fails_retryable(server):
    server.script = [Fault("truncated", times=None)]
    with pytest.raises(RetryableSourceError, match="truncated"):
        make_source(server, max_retries=1).fetch_ohlcv(PRODUCT, START, START + 10 * H)


@pytest.mark.parametrize("kind", ["duplicate", "shuffle", "reverse"])
def test_duplicates_and_out_of_order_sorted_unique(server, data, kind):
    server.script = [Fault(kind, times=None)]
    got = make_source(server).fetch_ohlcv(PRODUCT, START, START + DAYS40 * H)
    assert_same(got, data)
    assert got["ts"].is_monotonic_increasing and got["ts"].is_unique


def test_duplicate_keeps_last_occurrence(server, data):
    def add_conflicting_dup(rows):
        dup = list(rows[0])
        dup[4] = 12345.0  # close
        return [*rows, dup]

    server.script = [Fault("mutate", mutate=add_conflicting_dup)]
    got = make_source(server).fetch_ohlcv(PRODUCT, START, START + 300 * H)
    row = got[got.ts == START + 299 * H]  # rows[0] = newest of the page
    assert len(row) == 1 and row["close"].iloc[0] == 12345.0
    assert len(got) == 300


def test_invalid_candles_are_returned_not_dropped():
    frame = hourly_ohlcv(START, 48, seed=3)
    frame.loc[5, ["high", "low"]] = [90.0, 110.0]  # high < low
    frame.loc[7, "volume"] = np.nan
    frame.loc[9, ["open", "close"]] = np.nan
    with FakeCoinbase({PRODUCT: frame}) as srv:
        got = make_source(srv, now_ms=START + 100 * H).fetch_ohlcv(PRODUCT, START, START + 48 * H)
    assert len(got) == 48
    assert got.loc[5, "high"] < got.loc[5, "low"]
    assert np.isnan(got.loc[7, "volume"]) and np.isnan(got.loc[9, "open"]) and np.isnan(got.loc[9, "close"])
    assert_same(got, frame)


def test_non_array_payload_is_fatal(server):
    server.script = [Fault("body", status=200, body='{"unexpected": true}')]
    with pytest.raises(FatalSourceError, match="JSON array"):
        make_source(server).fetch_ohlcv(PRODUCT, START, START + 10 * H)


# ---------------------------------------------------------------- retry helper
def test_retry_helper_backoff_and_hint():
    policy = RetryPolicy(max_retries=4, backoff_base_s=0.5, backoff_max_s=3.0)
    assert [policy.backoff_s(i) for i in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.backoff_s(0, retry_after_s=7) == 7
    calls, sleeps, logs = [], Sleeps(), []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise retryable_error("boom", retry_after_s=2 if len(calls) == 1 else None)
        return "ok"

    out = call_with_retry(flaky, policy=policy, source="s", symbol="X", sleep=sleeps, log=logs.append)
    assert out == "ok" and sleeps == [2, 1.0] and len(logs) == 2 and "retrying" in logs[0]


def test_retry_helper_fatal_not_retried():
    calls = []

    def fatal():
        calls.append(1)
        raise FatalSourceError("nope")

    with pytest.raises(FatalSourceError):
        call_with_retry(fatal, policy=RetryPolicy(max_retries=5), source="s", symbol="X", sleep=Sleeps())
    assert calls == [1]


def test_parse_retry_after():
    assert parse_retry_after("1") == 1.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now_s=1445412480.0) == 10.0
