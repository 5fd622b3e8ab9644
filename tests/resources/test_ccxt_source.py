"""CcxtSource (the real ccxt binance / binanceusdm clients) against a real HTTP Binance fake on 127.0.0.1."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cryptoalgo_core.config import CcxtConfig
from resources.sources.base import (
    FUNDING_COLUMNS,
    OHLCV_COLUMNS,
    OI_COLUMNS,
    FatalSourceError,
    MarketSource,
    RetryableSourceError,
)
from resources.sources.ccxt_source import CcxtSource, redirect_api_urls, rehost
from tests.fakes import funding_frame, hourly_ohlcv, oi_frame
from tests.fakes.fake_binance import FakeBinance, Fault

H = 3_600_000
START = 1_704_067_200_000  # 2024-01-01T00:00Z
N = 40 * 24  # 960 hours
END = START + N * H
SPOT = "BTC/USDT"
PERP = "BTC/USDT:USDT"

pytestmark = pytest.mark.timeout(30)
HANG_S = 300.0  # a fake's "delay" longer than any test may run: only a client-side timeout ends it


@pytest.fixture(scope="module")
def frames():
    return {
        "ohlcv": hourly_ohlcv(START, N, seed=5),
        "funding": funding_frame(START, N // 8, interval_h=8),  # 120 settlements
        "oi": oi_frame(START, N),
    }


@pytest.fixture
def server(frames):
    with FakeBinance(
        spot={"BTCUSDT": frames["ohlcv"]},
        funding={"BTCUSDT": frames["funding"]},
        open_interest={"BTCUSDT": frames["oi"]},
        extra_spot=["ETHUSDT"],
    ) as srv:
        yield srv


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_source(server, *, now_ms=END + H, sleeps=None, **cfg) -> CcxtSource:
    cfg.setdefault("timeout_ms", 2000)
    cfg.setdefault("max_retries", 3)
    cfg.setdefault("enable_rate_limit", False)
    config = CcxtConfig(urls={"*": server.url}, **cfg)
    return CcxtSource(config, clock=lambda: now_ms, sleep=sleeps if sleeps is not None else Sleeps())


def same(got: pd.DataFrame, want: pd.DataFrame, cols) -> None:
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want[cols].reset_index(drop=True))


# ---------------------------------------------------------------- wiring
def test_urls_redirected_to_loopback(server):
    src = make_source(server)
    assert isinstance(src, MarketSource)
    for ex in (src.ohlcv_exchange, src.perp_exchange):
        api = ex.urls["api"]
        assert all(v.startswith(server.url) for v in api.values() if isinstance(v, str))
    assert src.ohlcv_exchange.urls["api"]["public"] == server.url + "/api/v3"
    assert src.perp_exchange.urls["api"]["fapiPublic"] == server.url + "/fapi/v1"
    assert src.perp_exchange.urls["api"]["fapiData"] == server.url + "/futures/data"
    assert src.ohlcv_exchange.enableRateLimit is False and src.ohlcv_exchange.timeout == 2000


def test_rehost_and_exact_override():
    assert rehost("https://fapi.binance.com/fapi/v1", "http://127.0.0.1:9/") == "http://127.0.0.1:9/fapi/v1"

    class Ex:
        id = "binance"
        urls = {
            "api": {"public": "https://api.binance.com/api/v3", "sapi": "https://api.binance.com/sapi/v1"}
        }

    ex = Ex()
    redirect_api_urls(ex, {"*": "http://h:1", "binance.sapi": "http://other/x"})
    assert ex.urls["api"] == {"public": "http://h:1/api/v3", "sapi": "http://other/x"}


def test_defaults_use_rate_limit_and_real_hosts():
    src = CcxtSource()
    assert src.ohlcv_exchange.id == "binance" and src.perp_exchange.id == "binanceusdm"
    assert src.ohlcv_exchange.enableRateLimit is True
    assert src.ohlcv_exchange.urls["api"]["public"].startswith("https://api.binance.com")
    assert src.ohlcv_exchange.options["fetchMarkets"]["types"] == ["spot"]
    assert src.perp_exchange.options["fetchMarkets"]["types"] == ["linear"]


# ---------------------------------------------------------------- happy paths
def test_ohlcv_pagination_exact(server, frames):
    src = make_source(server, ohlcv_page_limit=100)
    got = src.fetch_ohlcv(SPOT, START, END)
    same(got, frames["ohlcv"], OHLCV_COLUMNS)
    assert got["ts"].dtype == np.int64
    assert server.count("/api/v3/klines") == math.ceil(N / 100) == 10
    # markets loaded once, spot only (no sapi / fapi / dapi calls from the spot client)
    assert server.count("/api/v3/exchangeInfo") == 1
    assert [p for p in server.paths() if "exchangeInfo" in p] == ["/api/v3/exchangeInfo"]
    q = [r for r in server.requests if r.path == "/api/v3/klines"][0].query
    assert q["symbol"] == "BTCUSDT" and q["interval"] == "1h" and q["startTime"] == str(START)
    assert q["limit"] == "100" and q["endTime"] == str(END - 1)


def test_ohlcv_pages_contiguous(server):
    seen = []
    src = make_source(server, ohlcv_page_limit=300)
    src.on_page = lambda sym, n, s, e: seen.append((sym, n, s, e))
    pages = list(src.iter_ohlcv_pages(SPOT, START, END))
    assert [p[0] for p in pages] == [START, START + 300 * H, START + 600 * H, START + 900 * H]
    assert all(pages[i][1] == pages[i + 1][0] for i in range(len(pages) - 1)) and pages[-1][1] == END
    assert [n for _, n, _, _ in seen] == [300, 300, 300, 60]


def test_ohlcv_closed_candles_only(server, frames):
    now = START + 500 * H + 10 * 60_000
    got = make_source(server, now_ms=now).fetch_ohlcv(SPOT, START, END)
    assert got["ts"].max() == START + 499 * H
    same(got, frames["ohlcv"][frames["ohlcv"].ts < START + 500 * H], OHLCV_COLUMNS)


def test_funding_pagination(server, frames):
    src = make_source(server, funding_page_limit=50)
    got = src.fetch_funding(PERP, START, END)
    same(got, frames["funding"], FUNDING_COLUMNS)
    assert server.count("/fapi/v1/fundingRate") == math.ceil(120 / 50) == 3
    assert [p for p in server.paths() if "exchangeInfo" in p] == ["/fapi/v1/exchangeInfo"]


def test_funding_window_and_now(server, frames):
    f = frames["funding"]
    now = START + 400 * H
    got = make_source(server, now_ms=now).fetch_funding(PERP, START + 100 * H, END)
    same(got, f[(f.ts >= START + 100 * H) & (f.ts <= now)], FUNDING_COLUMNS)


def test_funding_times_rounded_to_the_hour_stored_and_charged(tmp_path):
    """Binance's fundingTime carries ms offsets (…800018): the stored settlements are on the hour, and a long held
    across them pays them in the backtest (an off-grid ts would silently be charged as zero)."""
    from cryptoalgo_core.backtest.engine import EngineParams, run_backtest
    from cryptoalgo_core.config import load_coins, load_sources
    from cryptoalgo_core.strategy import funding_on_grid
    from resources.ingest import SourceSet, ingest_dataset
    from resources.store import MarketStore

    n_set = 12  # every 8 h: 96 hours
    on_hour = funding_frame(START, n_set, interval_h=8)
    offsets = np.array([18, 1, 18, 999, -7, 12, 250, 18, 3, -1, 18, 40], dtype="int64")  # a few ms either way
    raw = on_hour.assign(ts=on_hour["ts"] + offsets)
    assert raw["ts"].iloc[2] == 1_704_124_800_018  # 2024-01-01T16:00Z as Binance reports it
    end = START + n_set * 8 * H
    with FakeBinance(funding={"BTCUSDT": raw}) as srv:
        got = make_source(srv, funding_page_limit=5).fetch_funding(PERP, START, end)
        pd.testing.assert_frame_equal(got, on_hour[FUNDING_COLUMNS])  # every ts on the hour, nothing lost
        assert srv.count("/fapi/v1/fundingRate") == 3  # pagination still walks the raw timestamps
        sources = SourceSet("ccxt", load_sources(), factories={"ccxt": lambda: make_source(srv, now_ms=end + H)})
        store = MarketStore(f"sqlite:///{tmp_path / 'store.db'}")
        rep = ingest_dataset("funding", load_coins()["BTC"], sources, store, START, end, 0.01)
        stored = store.load("funding", "BTC")
        store.dispose()
    assert rep.rows_written == n_set and (stored["ts"] % H == 0).all()
    assert stored["ts"].tolist() == on_hour["ts"].tolist()
    assert np.allclose(stored["rate"], on_hour["rate"], rtol=0, atol=1e-12)

    grid = START + H * np.arange(48, dtype="int64")
    assert funding_on_grid(grid, raw).sum() == 0.0  # the bug: offsets never meet the grid
    fr = funding_on_grid(grid, stored)
    px = np.full(48, 100.0)
    signal = np.zeros(48, dtype=np.int8)
    signal[0] = 1  # long from bar 1's open (01:00Z) to bar 24's close (01:00Z next day)
    p = EngineParams(sl_mult=5.0, tp_mult=5.0, max_hold_hours=24, fee_entry=0.0, fee_exit_tp=0.0,
                     fee_exit_other=0.0, slippage=0.0, slippage_vol_mult=0.0, funding=True)  # fmt: skip
    t = run_backtest(grid, px, px * 1.001, px * 0.999, px, signal, np.full(48, 0.01), np.ones(48), fr, p).trades
    assert len(t) == 1 and t["exit_reason"].iloc[0] == "time"
    paid = on_hour.set_index("ts")["rate"].loc[[START + 8 * H, START + 16 * H, START + 24 * H]].sum()
    assert paid != 0.0 and t["funding"].iloc[0] == pytest.approx(paid, abs=1e-15)  # 08:00, 16:00 (…800018), 24:00
    assert t["net"].iloc[0] == pytest.approx(-paid, abs=1e-15)


def test_open_interest_pagination_usd(server, frames):
    src = make_source(server, oi_page_limit=100)
    got = src.fetch_open_interest(PERP, START, END)
    want = frames["oi"].assign(unit=pd.Series(["usd"] * N, dtype=object))[["ts", "value", "unit"]]
    same(got, want, OI_COLUMNS)
    assert server.count("/futures/data/openInterestHist") == math.ceil(N / 100) == 10
    q = [r for r in server.requests if r.path.endswith("openInterestHist")][0].query
    assert q["period"] == "1h" and q["limit"] == "100" and q["startTime"] == str(START)
    assert q["endTime"] == str(START + 100 * H - 1)


def test_open_interest_falls_back_to_base_amount():
    oi = oi_frame(START, 48)
    oi.loc[10:, "value"] = np.nan  # the exchange stops sending sumOpenInterestValue
    with FakeBinance(open_interest={"BTCUSDT": oi}) as srv:
        got = make_source(srv).fetch_open_interest(PERP, START, START + 48 * H)
    assert list(got["unit"][:10]) == ["usd"] * 10 and list(got["unit"][10:]) == ["base"] * 38
    assert np.allclose(got["value"][:10], oi["value"][:10]) and np.allclose(
        got["value"][10:], oi["amount"][10:]
    )


# ---------------------------------------------------------------- faults
def test_429_retry_after_honoured(server, frames):
    sleeps = Sleeps()
    server.script = [Fault("429", retry_after=1, path="/klines")]
    got = make_source(server, sleeps=sleeps, backoff_base_s=0.01).fetch_ohlcv(SPOT, START, END)
    same(got, frames["ohlcv"], OHLCV_COLUMNS)
    assert len(sleeps) == 1 and sleeps[0] >= 1.0
    assert server.count("/api/v3/klines") == 2


def test_5xx_during_load_markets_and_pages_retried(server, frames):
    sleeps = Sleeps()
    server.script = [
        Fault("503", path="exchangeInfo"),
        Fault("500", path="/klines"),
        Fault("502", path="/klines"),
    ]
    got = make_source(server, sleeps=sleeps, backoff_base_s=0.1).fetch_ohlcv(SPOT, START, END)
    same(got, frames["ohlcv"], OHLCV_COLUMNS)
    assert len(sleeps) == 3 and server.script == []


@pytest.mark.parametrize("kind", ["500", "502", "503", "504", "drop"])
def test_server_errors_and_resets_retried(server, frames, kind):
    sleeps = Sleeps()
    server.script = [Fault(kind, path="/klines")]
    got = make_source(server, sleeps=sleeps, ohlcv_page_limit=500).fetch_ohlcv(SPOT, START, END)
    same(got, frames["ohlcv"], OHLCV_COLUMNS)
    assert len(sleeps) == 1 and server.count("/klines") == 3


def test_timeout_retried(server, frames):
    # The first fundingRate request is answered only after HANG_S, far beyond the module's pytest
    # timeout: the test can only finish if ccxt gives up on its own (timeout_ms) and the source retries.
    sleeps = Sleeps()
    server.script = [Fault("delay", delay_s=HANG_S, path="fundingRate")]
    got = make_source(server, timeout_ms=200, sleeps=sleeps).fetch_funding(PERP, START, END)
    same(got, frames["funding"], FUNDING_COLUMNS)
    assert [kind for kind, _ in server.faults_applied] == ["delay"]
    assert server.count("fundingRate") == 2  # the timed-out page and its one retry
    assert len(sleeps) == 1


def test_truncated_json_retried(server, frames):
    server.script = [Fault("truncated", path="openInterestHist")]
    got = make_source(server).fetch_open_interest(PERP, START, START + 100 * H)
    assert len(got) == 100 and server.count("openInterestHist") == 2


def test_retries_exhausted(server):
    sleeps = Sleeps()
    server.script = [Fault("503", path="/klines", times=None)]
    with pytest.raises(RetryableSourceError) as err:
        make_source(server, sleeps=sleeps, max_retries=2).fetch_ohlcv(SPOT, START, END)
    assert "BTC/USDT" in str(err.value) and "3 attempt" in str(err.value) and "binance" in str(err.value)
    assert server.count("/klines") == 3 and len(sleeps) == 2


def test_bad_symbol_is_fatal(server):
    src = make_source(server)
    with pytest.raises(FatalSourceError, match="DOGE/XYZ") as err:
        src.fetch_ohlcv("DOGE/XYZ", START, END)  # not in the markets: ccxt BadSymbol client-side
    assert not isinstance(err.value, RetryableSourceError)
    assert server.count("/klines") == 0


def test_exchange_side_invalid_symbol_is_fatal(server):
    # ETHUSDT is listed in exchangeInfo but the klines endpoint answers {"code":-1121,"msg":"Invalid symbol."}
    with pytest.raises(FatalSourceError, match="BadSymbol"):
        make_source(server).fetch_ohlcv("ETH/USDT", START, END)
    assert server.count("/klines") == 1


def test_perp_symbol_on_funding_unknown_is_fatal(server):
    with pytest.raises(FatalSourceError):
        make_source(server).fetch_funding("NOPE/USDT:USDT", START, END)


@pytest.mark.parametrize("kind", ["duplicate", "shuffle"])
def test_duplicates_and_out_of_order(server, frames, kind):
    server.script = [Fault(kind, path="/klines", times=None)]
    got = make_source(server, ohlcv_page_limit=1000).fetch_ohlcv(SPOT, START, END)
    same(got, frames["ohlcv"], OHLCV_COLUMNS)
    assert got["ts"].is_unique and got["ts"].is_monotonic_increasing


def test_invalid_rows_returned_not_dropped():
    frame = hourly_ohlcv(START, 24, seed=9)
    frame.loc[3, ["high", "low"]] = [1.0, 2.0]
    frame.loc[4, "close"] = np.nan
    with FakeBinance(spot={"BTCUSDT": frame}) as srv:
        got = make_source(srv).fetch_ohlcv(SPOT, START, START + 24 * H)
    assert len(got) == 24 and got.loc[3, "high"] < got.loc[3, "low"] and np.isnan(got.loc[4, "close"])


def test_empty_page_ends_window(server):
    server.script = [Fault("empty", path="/klines")]
    got = make_source(server).fetch_ohlcv(SPOT, START, END)
    assert got.empty and list(got.columns) == OHLCV_COLUMNS
    assert server.count("/klines") == 1
