"""Backtest engine: hand-made candles (one rule per case), cost decomposition, sweep == single run; the
strategy's venue size cap and the report's per-trade vs size-weighted edge."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cryptoalgo_core.backtest import (
    TRADE_COLUMNS,
    BacktestResult,
    EngineParams,
    param_grid,
    run_backtest,
    run_sweep,
)
from cryptoalgo_core.backtest.html import render_report
from cryptoalgo_core.backtest.report import backtest_coin, edge_decomposition
from cryptoalgo_core.config import load_coins
from cryptoalgo_core.config.costs import load_venues
from cryptoalgo_core.config.profile import CoinProfile, CostParams, SizingParams, resolve_profile
from cryptoalgo_core.strategy import build_signals
from cryptoalgo_core.timeutil import HOUR_MS

REPO = Path(__file__).resolve().parents[2]

T0 = 1_704_067_200_000  # 2024-01-01T00:00Z
SIGMA = 0.005
FEE_E, FEE_TP, FEE_X, SLIP = 0.0004, 0.0001, 0.0006, 0.0003
VOLM = 0.1  # slippage_vol_mult: each market fill pays SLIP + VOLM * sigma at the signal
THR = 0.0002  # tp_through: the TP fills only when traded through by 2 bps
SLIP_T = SLIP + VOLM * SIGMA  # 8 bps per market fill in the case table
TOL = 1e-12

Bar = tuple[float, float, float, float] | None


def F(p: float) -> tuple[float, float, float, float]:
    """A quiet bar at ``p`` (range +-0.1%: touches no level in these cases)."""
    return (p, p * 1.001, p * 0.999, p)


def params(**kw: Any) -> EngineParams:
    base: dict[str, Any] = dict(
        sl_mult=1.0,
        tp_mult=2.0,
        max_hold_hours=4,
        fee_entry=FEE_E,
        fee_exit_tp=FEE_TP,
        fee_exit_other=FEE_X,
        slippage=SLIP,
        slippage_vol_mult=VOLM,
        tp_through=THR,
    )
    base.update(kw)
    return EngineParams(**base)


def run(
    bars: Sequence[Bar],
    signal: list[int],
    p: EngineParams,
    funding: dict[int, float] | None = None,
    size: float | list[float] = 1.0,
    volume: dict[int, float] | None = None,
) -> tuple[BacktestResult, dict[str, np.ndarray]]:
    """``volume``: overrides of the default volume 1.0 per bar (0 = a halted bar)."""
    n = len(bars)
    assert len(signal) == n
    ohlc = np.array([b if b is not None else (np.nan,) * 4 for b in bars], dtype=np.float64)
    fr = np.zeros(n)
    for k, v in (funding or {}).items():
        fr[k] = v
    vol = np.ones(n)
    for k, v in (volume or {}).items():
        vol[k] = v
    data: dict[str, np.ndarray] = {
        "ts": T0 + HOUR_MS * np.arange(n, dtype=np.int64),
        "open_": ohlc[:, 0],
        "high": ohlc[:, 1],
        "low": ohlc[:, 2],
        "close": ohlc[:, 3],
        "signal": np.array(signal, dtype=np.int8),
        "sigma": np.full(n, SIGMA),
        "size": np.broadcast_to(np.asarray(size, dtype=np.float64), (n,)).copy(),
        "funding_rate": fr,
        "volume": vol,
    }
    return run_backtest(**data, params=p), data


def levels(side: int, entry: float, p: EngineParams) -> tuple[float, float]:
    w_sl = p.sl_mult * SIGMA * math.sqrt(p.max_hold_hours)
    w_tp = p.tp_mult * SIGMA * math.sqrt(p.max_hold_hours)
    return entry * math.exp(-side * w_sl), entry * math.exp(side * w_tp)


@dataclass(frozen=True)
class Exp:
    reason: str
    entry_idx: int
    exit_idx: int
    exit_px: float | str  # a price, or "sl" / "tp" for the level
    rates: float = 0.0  # side-less sum of the funding rates that must be charged
    at_open: bool = False


@dataclass(frozen=True)
class Case:
    name: str
    bars: list[Bar]
    signal: list[int]
    trades: list[Exp]
    kw: dict[str, Any] = field(default_factory=dict)
    funding: dict[int, float] = field(default_factory=dict)
    volume: dict[int, float] = field(default_factory=dict)  # bar -> volume (default 1.0; 0 = halted)


B0 = F(100.0)
TPL = 100.0 * math.exp(2.0 * SIGMA * 2.0)  # long TP of an entry at 100 (tp_mult 2, max hold 4): 102.0201
TPS = 100.0 * math.exp(-2.0 * SIGMA * 2.0)  # short TP: 98.0199
CASES = [
    Case("long_sl", [B0, F(100), (100, 100.2, 98.9, 99.2), F(99.2)], [1, 0, 0, 0], [Exp("stop_loss", 1, 2, "sl")]),
    Case("long_tp", [B0, F(100), (100.5, 102.5, 100.3, 102.2), F(102)], [1, 0, 0, 0],
         [Exp("take_profit", 1, 2, "tp")]),
    Case("both_in_one_bar_sl_first", [B0, F(100), (100, 102.5, 98.9, 100), F(100)], [1, 0, 0, 0],
         [Exp("stop_loss", 1, 2, "sl")]),
    Case("sl_on_entry_bar", [B0, (100, 100.1, 98.5, 99), F(99)], [1, 0, 0], [Exp("stop_loss", 1, 1, "sl")]),
    Case("gap_through_stop", [B0, F(100), (98.0, 98.5, 97.5, 98.2), F(98)], [1, 0, 0, 0],
         [Exp("stop_loss", 1, 2, 98.0, at_open=True)]),
    # a gap through the TP fills the resting limit at its own price (tp), not at the better open
    Case("gap_through_tp", [B0, F(100), (103.0, 103.5, 102.8, 103.2), F(103)], [1, 0, 0, 0],
         [Exp("take_profit", 1, 2, "tp", at_open=True)]),
    Case("max_hold_at_close", [B0, F(100), F(100.3), F(99.8), (100.4, 100.5, 100.1, 100.2), F(100)],
         [1, 0, 0, 0, 0, 0], [Exp("time", 1, 4, 100.2)]),
    Case("max_hold_1_entry_bar_close", [B0, (100, 100.1, 99.9, 100.05), F(100)], [1, 0, 0],
         [Exp("time", 1, 1, 100.05)], kw={"max_hold_hours": 1}),
    Case("flip_exit_next_open", [B0, F(100), F(100.2), (100.1, 100.2, 100.0, 100.1), F(100), F(100)],
         [1, 0, -1, 0, 0, 0], [Exp("signal", 1, 3, 100.1, at_open=True)], kw={"flip_exit": True}),
    Case("flip_ignored_without_flip_exit", [B0, F(100), F(100.2), (100.1, 100.2, 100.0, 100.1), F(100), F(100)],
         [1, 0, -1, 0, 0, 0], [Exp("time", 1, 4, 100.0)]),
    Case("flip_over_missing_bar", [B0, F(100), F(100.2), None, (100.1, 100.2, 100.0, 100.1), F(100)],
         [1, 0, -1, 0, 0, 0], [Exp("signal", 1, 4, 100.1, rates=0.0003, at_open=True)],
         kw={"flip_exit": True, "max_hold_hours": 9}, funding={1: 0.0001, 2: 0.0001, 3: 0.0001, 4: 0.05}),
    Case("no_signals", [B0, F(100), F(101), F(99)], [0, 0, 0, 0], []),
    Case("signal_on_last_bar", [B0, F(100), F(101), F(99)], [0, 0, 0, 1], []),
    Case("signal_before_missing_bar", [B0, None, F(100), F(100)], [1, 0, 0, 0], []),
    Case("funding_long_window", [B0, F(100), F(100.3), F(99.8), (100.4, 100.5, 100.1, 100.2), F(100)],
         [1, 0, 0, 0, 0, 0], [Exp("time", 1, 4, 100.2, rates=0.0002 - 0.00005 + 0.0003)],
         funding={0: 0.0001, 1: 0.0002, 3: -0.00005, 4: 0.0003, 5: 0.0007}),
    Case("funding_short_window", [B0, F(100), F(100.3), F(99.8), (100.4, 100.5, 100.1, 100.2), F(100)],
         [-1, 0, 0, 0, 0, 0], [Exp("time", 1, 4, 100.2, rates=0.0002 - 0.00005 + 0.0003)],
         funding={0: 0.0001, 1: 0.0002, 3: -0.00005, 4: 0.0003, 5: 0.0007}),
    Case("funding_not_at_close_of_intrabar_sl_bar", [B0, F(100), (100, 100.2, 98.9, 99.2), F(99.2)], [1, 0, 0, 0],
         [Exp("stop_loss", 1, 2, "sl", rates=0.0001)], funding={0: 0.0009, 1: 0.0001, 2: 0.0005}),
    Case("funding_not_after_gap_exit", [B0, F(100), F(100), (98.0, 98.5, 97.5, 98.2), F(98)], [1, 0, 0, 0, 0],
         [Exp("stop_loss", 1, 3, 98.0, rates=0.0003, at_open=True)], funding={1: 0.0001, 2: 0.0002, 3: 0.0005}),
    Case("funding_off", [B0, F(100), F(100.3), F(99.8), (100.4, 100.5, 100.1, 100.2), F(100)],
         [1, 0, 0, 0, 0, 0], [Exp("time", 1, 4, 100.2)], kw={"funding": False}, funding={1: 0.0002, 4: 0.0003}),
    Case("short_sl", [B0, F(100), (100, 101.2, 99.8, 101), F(101)], [-1, 0, 0, 0], [Exp("stop_loss", 1, 2, "sl")]),
    Case("short_tp", [B0, F(100), (99.5, 99.7, 97.9, 98.1), F(98)], [-1, 0, 0, 0],
         [Exp("take_profit", 1, 2, "tp")]),
    Case("short_both_sl_first", [B0, F(100), (100, 101.2, 97.9, 100), F(100)], [-1, 0, 0, 0],
         [Exp("stop_loss", 1, 2, "sl")]),
    Case("short_gap_through_stop", [B0, F(100), (101.5, 101.8, 101.3, 101.6), F(101)], [-1, 0, 0, 0],
         [Exp("stop_loss", 1, 2, 101.5, at_open=True)]),
    Case("short_gap_through_tp", [B0, F(100), (97.5, 97.8, 97.2, 97.6), F(97)], [-1, 0, 0, 0],
         [Exp("take_profit", 1, 2, "tp", at_open=True)]),
    Case("missing_bar_then_gap_stop", [B0, F(100), None, (98.0, 98.5, 97.5, 98.2), F(98)], [1, 0, 0, 0, 0],
         [Exp("stop_loss", 1, 3, 98.0, rates=0.0001 + 0.0004, at_open=True)], funding={1: 0.0001, 2: 0.0004}),
    Case("missing_max_hold_bar_exits_next_open", [B0, F(100), None, (100.05, 100.2, 99.9, 100.1), F(100)],
         [1, 0, 0, 0, 0], [Exp("time", 1, 3, 100.05, at_open=True)], kw={"max_hold_hours": 2}),
    Case("reentry_on_intrabar_exit_bar", [B0, F(100), (100, 100.2, 98.9, 99.2), F(99.2), F(99.3), F(99.1)],
         [1, 0, 1, 0, 0, 0], [Exp("stop_loss", 1, 2, "sl"), Exp("end", 3, 5, 99.1)]),
    Case("reentry_on_gap_exit_bar", [B0, F(100), (98.0, 98.5, 97.5, 98.2), F(98.3), F(98.1)],
         [1, 0, -1, 0, 0], [Exp("stop_loss", 1, 2, 98.0, at_open=True), Exp("end", 3, 4, 98.1)]),
    Case("reentry_on_time_exit_bar", [B0, (100, 100.1, 99.9, 100.05), F(100.2), F(100.1)], [1, 1, 0, 0],
         [Exp("time", 1, 1, 100.05), Exp("time", 2, 2, 100.2)], kw={"max_hold_hours": 1}),
    Case("end_before_trailing_missing", [B0, F(100), F(100.1), None, None], [1, 0, 0, 0, 0],
         [Exp("end", 1, 2, 100.1, rates=0.0003)], funding={1: 0.0001, 2: 0.0002, 3: 0.05, 4: 0.05}),
    # -- take-profit needs the price to trade THROUGH the level by tp_through (THR = 2 bps here)
    Case("long_tp_bare_touch_is_no_fill", [B0, F(100), (100.5, TPL, 100.3, 101.5), F(101.5), F(101.5), F(101.5)],
         [1, 0, 0, 0, 0, 0], [Exp("time", 1, 4, 101.5)]),
    Case("long_tp_inside_through_band_is_no_fill",
         [B0, F(100), (100.5, TPL * (1 + THR / 2), 100.3, 101.5), F(101.5), F(101.5), F(101.5)],
         [1, 0, 0, 0, 0, 0], [Exp("time", 1, 4, 101.5)]),
    Case("long_tp_traded_through", [B0, F(100), (100.5, TPL * (1 + THR) * (1 + 1e-6), 100.3, 101.5), F(101.5)],
         [1, 0, 0, 0], [Exp("take_profit", 1, 2, "tp")]),
    Case("long_tp_touch_fills_with_tp_through_0", [B0, F(100), (100.5, TPL * (1 + 1e-9), 100.3, 101.5), F(101.5)],
         [1, 0, 0, 0], [Exp("take_profit", 1, 2, "tp")], kw={"tp_through": 0.0}),
    Case("short_tp_bare_touch_is_no_fill", [B0, F(100), (99.5, 99.7, TPS, 98.5), F(98.5), F(98.5), F(98.5)],
         [-1, 0, 0, 0, 0, 0], [Exp("time", 1, 4, 98.5)]),
    Case("short_tp_traded_through", [B0, F(100), (99.5, 99.7, TPS * (1 - THR) * (1 - 1e-6), 98.5), F(98.5)],
         [-1, 0, 0, 0], [Exp("take_profit", 1, 2, "tp")]),
    Case("gap_open_inside_through_band_is_no_fill",
         [B0, F(100), F(101), (TPL * (1 + THR / 2), TPL * (1 + THR / 2), 101.6, 101.7), F(101.7), F(101.7)],
         [1, 0, 0, 0, 0, 0], [Exp("time", 1, 4, 101.7)]),
    Case("gap_open_inside_through_band_then_traded_through_intrabar",
         [B0, F(100), F(101), (TPL * (1 + THR / 2), TPL * (1 + 2 * THR), 101.6, 101.7), F(101.7)],
         [1, 0, 0, 0, 0], [Exp("take_profit", 1, 3, "tp")]),
    # -- zero-volume (halted) bars are not traded: no fill there, exactly like a missing bar
    Case("halted_entry_bar_no_entry", [B0, F(100), F(100), F(100)], [1, 0, 0, 0], [], volume={1: 0.0}),
    Case("nan_volume_entry_bar_no_entry", [B0, F(100), F(100), F(100)], [1, 0, 0, 0], [], volume={1: np.nan}),
    Case("signal_on_halted_bar_not_taken", [B0, F(100), F(100), F(100)], [1, 0, 0, 0], [], volume={0: 0.0}),
    Case("halted_bar_prices_trigger_no_stop", [B0, F(100), (99, 99, 98.0, 98.5), F(100), F(100), F(100)],
         [1, 0, 0, 0, 0, 0], [Exp("time", 1, 4, 100.0, rates=0.0001)], volume={2: 0.0}, funding={2: 0.0001}),
    Case("halted_bar_prices_trigger_no_tp", [B0, F(100), (100.5, 102.5, 100.3, 102.2), F(101), F(101), F(101)],
         [1, 0, 0, 0, 0, 0], [Exp("time", 1, 4, 101.0)], volume={2: 0.0}),
    Case("halted_then_gap_stop_at_next_traded_open", [B0, F(100), F(99), (98.0, 98.5, 97.5, 98.2), F(98)],
         [1, 0, 0, 0, 0], [Exp("stop_loss", 1, 3, 98.0, rates=0.0004, at_open=True)], volume={2: 0.0},
         funding={2: 0.0004}),
    Case("max_hold_bar_halted_exits_next_traded_open",
         [B0, F(100), F(100.2), (100.05, 100.2, 99.9, 100.1), F(100)], [1, 0, 0, 0, 0],
         [Exp("time", 1, 3, 100.05, at_open=True)], kw={"max_hold_hours": 2}, volume={2: 0.0}),
    Case("flip_exit_skips_halted_bar", [B0, F(100), F(100.2), F(100.1), (100.1, 100.2, 100.0, 100.1), F(100)],
         [1, 0, -1, 0, 0, 0], [Exp("signal", 1, 4, 100.1, at_open=True)],
         kw={"flip_exit": True, "max_hold_hours": 9}, volume={3: 0.0}),
    Case("flip_signal_on_halted_bar_is_ignored", [B0, F(100), F(100.2), F(100.1), F(100.1), F(100)],
         [1, 0, -1, 0, 0, 0], [Exp("time", 1, 4, 100.1)], kw={"flip_exit": True}, volume={2: 0.0}),
    Case("end_before_trailing_halted", [B0, F(100), F(100.1), F(100.2), F(100.3)], [1, 0, 0, 0, 0],
         [Exp("end", 1, 2, 100.1, rates=0.0003)], funding={1: 0.0001, 2: 0.0002, 3: 0.05, 4: 0.05},
         volume={3: 0.0, 4: 0.0}),
    Case("reentry_blocked_by_halted_next_bar", [B0, F(100), (100, 100.2, 98.9, 99.2), F(99.2), F(99.3)],
         [1, 0, 1, 0, 0], [Exp("stop_loss", 1, 2, "sl")], volume={3: 0.0}),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hand_made_candles(case: Case) -> None:
    p = params(**case.kw)
    res, data = run(case.bars, case.signal, p, funding=case.funding, volume=case.volume)
    slip_t = p.slippage + p.slippage_vol_mult * SIGMA
    t = res.trades
    assert list(t.columns) == list(TRADE_COLUMNS)
    assert len(t) == len(case.trades), t
    for row, exp in zip(t.itertuples(index=False), case.trades, strict=True):
        side = int(row.side)
        assert row.exit_reason == exp.reason
        assert (row.entry_idx, row.exit_idx, row.signal_idx) == (
            exp.entry_idx,
            exp.exit_idx,
            exp.entry_idx - 1,
        )
        assert side == case.signal[exp.entry_idx - 1]
        entry_raw = data["open_"][exp.entry_idx]
        sl, tp = levels(side, entry_raw, p)
        exit_raw: float = {"sl": sl, "tp": tp}[exp.exit_px] if isinstance(exp.exit_px, str) else exp.exit_px
        is_tp = exp.reason == "take_profit"
        fee_x = FEE_TP if is_tp else FEE_X
        slip_x = 0.0 if is_tp else slip_t
        funding = side * exp.rates
        gross = side * (exit_raw / entry_raw - 1.0)
        net = gross - (FEE_E + fee_x) - (slip_t + slip_x) - funding
        assert row.sl_price == pytest.approx(sl, abs=TOL) and row.tp_price == pytest.approx(tp, abs=TOL)
        assert row.entry_raw == entry_raw and row.exit_raw == pytest.approx(exit_raw, abs=TOL)
        assert row.entry_price == pytest.approx(entry_raw * (1 + side * slip_t), abs=TOL)
        assert row.exit_price == pytest.approx(exit_raw * (1 - side * slip_x), abs=TOL)
        assert row.gross == pytest.approx(gross, abs=TOL)
        assert row.fees == pytest.approx(FEE_E + fee_x, abs=TOL)
        assert row.slippage == pytest.approx(slip_t + slip_x, abs=TOL)
        assert row.funding == pytest.approx(funding, abs=TOL)
        assert row.net == pytest.approx(net, abs=TOL)
        assert row.entry_ts == data["ts"][exp.entry_idx]
        assert row.exit_ts == data["ts"][exp.exit_idx] + (0 if exp.at_open else HOUR_MS)
        assert row.hold_hours == (row.exit_ts - row.entry_ts) // HOUR_MS
        assert row.sigma_entry == SIGMA and row.size == 1.0
    if not case.trades:
        assert np.array_equal(res.equity, np.ones(len(case.bars)))
        s = res.summary()
        assert s["n_trades"] == 0 and s["total_return"] == 0.0 and s["max_drawdown"] == 0.0
    else:
        assert res.equity[-1] == pytest.approx(float(np.prod(1.0 + t["net"].to_numpy())), abs=TOL)


def test_hand_computed_numbers() -> None:
    """Literal numbers for one long SL and one short TP (catches a shared mistake in the formula checks above);
    fixed slippage only (slippage_vol_mult 0)."""
    p0 = params(slippage_vol_mult=0.0)
    res, _ = run([B0, F(100), (100, 100.2, 98.9, 99.2), F(99.2)], [1, 0, 0, 0], p0, funding={1: 0.0001})
    r = res.trades.iloc[0]
    sl = 100 * math.exp(-0.01)  # 99.00498337491681
    assert r.entry_price == pytest.approx(100.03, abs=TOL)
    assert r.exit_price == pytest.approx(sl * 0.9997, abs=TOL)
    # gross -0.00995016625, fees 0.001, slippage 0.0006, funding 0.0001
    assert r.net == pytest.approx(math.exp(-0.01) - 1 - 0.001 - 0.0006 - 0.0001, abs=TOL)
    assert r.net * 1e4 == pytest.approx(-116.5016625083, abs=1e-8)

    res, _ = run([B0, F(100), (99.5, 99.7, 97.9, 98.1), F(98)], [-1, 0, 0, 0], p0, funding={1: 0.0001})
    r = res.trades.iloc[0]
    assert r.entry_price == pytest.approx(99.97, abs=TOL) and r.exit_price == pytest.approx(
        98.01986733067553, abs=TOL
    )
    # short receives positive funding: +0.0001
    assert r.net == pytest.approx(1 - math.exp(-0.02) - 0.0005 - 0.0003 + 0.0001, abs=TOL)


def test_vol_slippage_hand_computed() -> None:
    """slip = 3 bps + 0.1 x sigma at the signal, on the entry and on the stop: a fast market's stop costs more."""
    bars = [B0, F(100), (100, 100.2, 90.0, 91.0), F(91)]
    calm, _ = run(bars, [1, 0, 0, 0], params())
    r = calm.trades.iloc[0]  # sigma 0.005: slip 0.0003 + 0.0005 = 8 bps per fill
    assert r.entry_price == pytest.approx(100.08, abs=TOL)
    assert r.exit_price == pytest.approx(100 * math.exp(-0.01) * (1 - 0.0008), abs=TOL)
    assert r.slippage == pytest.approx(0.0016, abs=TOL)
    sigma = np.full(4, 0.02)  # a fast market: slip 0.0003 + 0.002 = 23 bps per fill
    m = {"ts": T0 + HOUR_MS * np.arange(4, dtype=np.int64), "open_": np.array([b[0] for b in bars]),
         "high": np.array([b[1] for b in bars]), "low": np.array([b[2] for b in bars]),
         "close": np.array([b[3] for b in bars]), "signal": np.array([1, 0, 0, 0], dtype=np.int8),
         "sigma": sigma, "size": np.ones(4), "funding_rate": np.zeros(4)}  # fmt: skip
    r = run_backtest(**m, params=params()).trades.iloc[0]
    assert r.exit_reason == "stop_loss" and r.exit_raw == pytest.approx(100 * math.exp(-0.04), abs=TOL)
    assert r.entry_price == pytest.approx(100.23, abs=TOL)
    assert r.exit_price == pytest.approx(100 * math.exp(-0.04) * (1 - 0.0023), abs=TOL)
    assert r.slippage == pytest.approx(0.0046, abs=TOL)
    assert r.net == pytest.approx(math.exp(-0.04) - 1 - 0.001 - 0.0046, abs=TOL)
    # a take-profit (resting limit) pays no slippage however fast the market
    res, _ = run([B0, F(100), (100.5, 102.5, 100.3, 102.2), F(102)], [1, 0, 0, 0], params(slippage_vol_mult=5.0))
    r = res.trades.iloc[0]
    assert r.exit_reason == "take_profit" and r.exit_price == r.exit_raw == r.tp_price
    assert r.slippage == pytest.approx(0.0003 + 5.0 * SIGMA, abs=TOL)


def test_equity_curve_marks_open_position() -> None:
    bars = [B0, F(100), F(100.3), F(99.8), (100.4, 100.5, 100.1, 100.2), F(100)]
    res, _ = run(bars, [1, 0, 0, 0, 0, 0], params(), funding={2: 0.0002}, size=0.5)
    eq = res.equity
    assert eq[0] == 1.0
    assert eq[1] == pytest.approx(1 + 0.5 * (0.0 - FEE_E - SLIP_T), abs=TOL)
    assert eq[2] == pytest.approx(1 + 0.5 * (100.3 / 100 - 1 - FEE_E - SLIP_T - 0.0002), abs=TOL)
    assert eq[3] == pytest.approx(1 + 0.5 * (99.8 / 100 - 1 - FEE_E - SLIP_T - 0.0002), abs=TOL)
    net = res.trades["net"].iloc[0]
    assert eq[4] == eq[5] == pytest.approx(1 + 0.5 * net, abs=TOL)
    s = res.summary()
    assert s["max_drawdown"] == pytest.approx(1 - eq[3] / eq[2], abs=TOL)
    assert s["total_return"] == pytest.approx(0.5 * net, abs=TOL)
    assert s["share_time"] == 1.0 and s["n_trades"] == 1


# --------------------------------------------------------------------------------------------------- random data


def random_market(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.006, n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, 0.0015, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.004, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.004, n)))
    missing = rng.random(n) < 0.01
    for a in (open_, high, low, close):
        a[missing] = np.nan
    signal = rng.choice(np.array([-1, 0, 1], dtype=np.int8), size=n, p=[0.06, 0.88, 0.06])
    sigma = 0.006 * np.exp(rng.normal(0, 0.3, n))
    sigma[rng.random(n) < 0.01] = np.nan
    size = rng.uniform(0.2, 1.5, n)
    size[rng.random(n) < 0.05] = 0.0
    funding = np.zeros(n)
    funding[::8] = rng.normal(0.0001, 0.0002, len(funding[::8]))
    volume = rng.uniform(10.0, 100.0, n)
    volume[rng.random(n) < 0.02] = 0.0  # halted bars
    volume[missing] = np.nan
    return {
        "ts": T0 + HOUR_MS * np.arange(n, dtype=np.int64),
        "open_": open_,
        "high": high,
        "low": low,
        "close": close,
        "signal": signal,
        "sigma": sigma,
        "size": size,
        "funding_rate": funding,
        "volume": volume,
    }


def _seq_totals(trades: pd.DataFrame) -> tuple[int, float, float, int, float]:
    """Totals recomputed from the trade records, sequentially in the kernel's order."""
    eq, peak, mdd, s, wins = 1.0, 1.0, 0.0, 0.0, 0
    for net, size in zip(trades["net"], trades["size"], strict=True):
        eq = eq * (1.0 + size * net)
        peak = max(peak, eq)
        mdd = max(mdd, 1.0 - eq / peak)
        s += net
        wins += int(net > 0.0)
    return len(trades), (math.log(eq) if eq > 0 else -math.inf), s, wins, mdd


@pytest.mark.parametrize("flip", [False, True])
def test_decomposition_adds_up_exactly(flip: bool) -> None:
    m = random_market(3000, seed=11)
    res = run_backtest(**m, params=params(flip_exit=flip, sl_mult=1.5, tp_mult=1.5, max_hold_hours=12))
    t = res.trades
    assert len(t) > 50 and set(t["exit_reason"]) >= {"stop_loss", "take_profit", "time"}
    if flip:
        assert "signal" in set(t["exit_reason"])
    assert (t["net"] == t["gross"] - t["fees"] - t["slippage"] - t["funding"]).all()  # bit for bit
    assert np.allclose(t["gross"], t["side"] * (t["exit_raw"] / t["entry_raw"] - 1), atol=1e-15, rtol=0)
    tp = t["exit_reason"] == "take_profit"
    assert tp.sum() > 10 and (t.loc[tp, "exit_price"] == t.loc[tp, "exit_raw"]).all()
    assert (t.loc[tp, "exit_raw"] == t.loc[tp, "tp_price"]).all()  # the limit fills at its price, gaps included
    # ... and only where the bar traded through the level (at the open or intrabar)
    xi = t["exit_idx"].to_numpy()
    through = np.where(t["side"] > 0, m["high"][xi] >= t["tp_price"] * (1 + THR), m["low"][xi] <= t["tp_price"] * (1 - THR))
    assert through[tp.to_numpy()].all()
    slip_t = SLIP + VOLM * t["sigma_entry"]
    assert np.allclose(t["slippage"], np.where(tp, slip_t, 2 * slip_t), atol=1e-15, rtol=0)
    assert np.allclose(t["entry_price"], t["entry_raw"] * (1 + t["side"] * slip_t), atol=1e-12, rtol=0)
    assert np.allclose(t["fees"], np.where(tp, FEE_E + FEE_TP, FEE_E + FEE_X), atol=1e-18, rtol=0)
    # no fill on a halted (zero-volume) bar
    assert (m["volume"][t["entry_idx"].to_numpy()] > 0).all() and (m["volume"][xi] > 0).all()
    assert (m["volume"] == 0).sum() > 30
    # one position at a time, entries right after their signal, exits never before entries
    assert (t["entry_idx"] == t["signal_idx"] + 1).all()
    assert (t["exit_idx"] >= t["entry_idx"]).all()
    assert (t["entry_idx"].to_numpy()[1:] > t["exit_idx"].to_numpy()[:-1]).all()
    # max hold: never held past 12 h unless a missing bar delayed the exit to the next existing open
    miss = np.r_[0, np.cumsum(np.isnan(m["close"]) | ~(m["volume"] > 0))]  # missing or not traded
    gap_inside = miss[t["exit_idx"].to_numpy() + 1] - miss[t["entry_idx"].to_numpy()] > 0
    assert (t["hold_hours"][~gap_inside] <= 12).all()
    assert ((t["hold_hours"] <= 12) | gap_inside).all() and (t["hold_hours"] >= 1).all()
    assert gap_inside.any()
    n, log_ret, _, _, mdd = _seq_totals(t)
    assert log_ret == res.log_return and mdd == res.max_drawdown_realized
    assert res.equity[-1] == pytest.approx(math.exp(log_ret), rel=1e-13)


def test_sweep_equals_single_run_totals() -> None:
    m = random_market(4000, seed=5)
    rng = np.random.default_rng(99)
    k = 40
    sl = rng.uniform(0.3, 3.0, k)
    tp = rng.uniform(0.3, 4.0, k)
    mh = rng.integers(1, 48, k)
    for flip, fund in ((False, True), (True, True), (True, False)):
        base = params(flip_exit=flip, funding=fund)
        sw = run_sweep(**m, sl_mults=sl, tp_mults=tp, max_holds=mh, params=base)
        assert len(sw) == k
        for i in range(k):
            p = params(sl_mult=float(sl[i]), tp_mult=float(tp[i]), max_hold_hours=int(mh[i]), flip_exit=flip,
                       funding=fund)  # fmt: skip
            res = run_backtest(**m, params=p)
            n, log_ret, s, wins, mdd = _seq_totals(res.trades)
            row = sw.iloc[i]
            assert row.n_trades == n and row.wins == wins
            assert row.log_return == log_ret == res.log_return
            assert row.sum_net == s
            assert row.max_drawdown_realized == mdd == res.max_drawdown_realized


def test_param_grid_and_sweep_frame() -> None:
    sl, tp, mh = param_grid([1.0, 2.0], [1.5, 2.5, 3.5], [4, 8])
    assert len(sl) == 12 and sl[0] == 1.0 and sl[-1] == 2.0 and tp[1] == 1.5 and mh[1] == 8
    m = random_market(500, seed=2)
    sw = run_sweep(**m, sl_mults=sl, tp_mults=tp, max_holds=mh, params=params())
    assert list(sw["max_hold_hours"]) == list(mh)
    assert np.allclose(sw["total_return"], np.expm1(sw["log_return"]))


def test_deterministic() -> None:
    m = random_market(2000, seed=3)
    p = params(flip_exit=True)
    a = run_backtest(**m, params=p)
    b = run_backtest(**{k: v.copy() for k, v in m.items()}, params=p)
    pd.testing.assert_frame_equal(a.trades, b.trades, check_exact=True)
    assert np.array_equal(a.equity, b.equity)
    assert a.summary() == pytest.approx(b.summary(), nan_ok=True)


def test_inputs_are_validated() -> None:
    m = random_market(10, seed=1)
    with pytest.raises(ValueError, match="sl_mult"):
        params(sl_mult=0.0)
    with pytest.raises(ValueError, match="max_hold_hours"):
        params(max_hold_hours=0)
    with pytest.raises(ValueError, match="fee_entry"):
        params(fee_entry=-1e-4)
    with pytest.raises(ValueError, match="slippage_vol_mult"):
        params(slippage_vol_mult=-0.1)
    with pytest.raises(ValueError, match="slippage_vol_mult"):
        params(slippage_vol_mult=math.nan)
    with pytest.raises(ValueError, match="tp_through"):
        params(tp_through=-1e-4)
    with pytest.raises(ValueError, match="tp_through must be < 1"):
        params(tp_through=1.0)
    with pytest.raises(ValueError, match="volume must be 1-d with 10 rows"):
        run_backtest(**{**m, "volume": m["volume"][:5]}, params=params())
    bad_ts = m["ts"].copy()
    bad_ts[5:] += HOUR_MS
    with pytest.raises(ValueError, match="full hourly grid"):
        run_backtest(**{**m, "ts": bad_ts}, params=params())
    with pytest.raises(ValueError, match="signal values"):
        run_backtest(**{**m, "signal": np.full(10, 2, dtype=np.int8)}, params=params())
    with pytest.raises(ValueError, match="close must be 1-d with 10 rows"):
        run_backtest(**{**m, "close": m["close"][:5]}, params=params())


def test_engine_defaults_are_conservative_and_match_the_profile() -> None:
    p = EngineParams(sl_mult=1.0, tp_mult=1.0, max_hold_hours=4, fee_entry=0.0, fee_exit_tp=0.0, fee_exit_other=0.0,
                     slippage=0.0)  # fmt: skip
    assert p.slippage_vol_mult == 0.03 and p.tp_through == 2e-4
    from cryptoalgo_core.backtest.report import engine_params

    e = engine_params(load_coins()["BTC"].profile)
    assert (e.slippage_vol_mult, e.tp_through, e.max_hold_hours) == (0.03, 2e-4, 24)  # BTC labels look 24 h ahead


def test_volume_none_means_every_present_bar_is_traded() -> None:
    bars = [B0, F(100), (100, 100.2, 98.9, 99.2), F(99.2)]
    res, data = run(bars, [1, 0, 0, 0], params())
    no_vol = run_backtest(**{k: v for k, v in data.items() if k != "volume"}, params=params())
    pd.testing.assert_frame_equal(res.trades, no_vol.trades)
    halted, _ = run(bars, [1, 0, 0, 0], params(), volume={1: 0.0})
    assert len(res.trades) == 1 and len(halted.trades) == 0


# --------------------------------------------------------------------------------------------------- sizing


def _profile(venue: str, **sizing: float) -> CoinProfile:
    tier = "intro_1" if venue == "coinbase_advanced" else "vip0"
    prof = CoinProfile(sizing=SizingParams(**sizing), costs=CostParams(venue=venue, fee_tier=tier,
                                                                       funding=venue == "binance_usdm"))
    return resolve_profile(prof, "test", load_venues(REPO / "config" / "costs.yaml"), label_hours=12)


def _signals(profile: CoinProfile, rv: float) -> np.ndarray:
    n = 4
    grid = T0 + HOUR_MS * np.arange(n, dtype=np.int64)
    preds = pd.DataFrame({"ts": grid, "p_dir": 0.9, "p_up": 0.6, "p_down": 0.1})
    feats = pd.DataFrame({"ts": grid, "rv_24": rv, "mom_mag_24": 1.0, "trend_bucket": 2.0, "regime_state": 5.0})
    return build_signals(grid, preds, feats, profile).size


def test_size_is_capped_at_1x_on_spot_and_at_max_leverage_on_perps() -> None:
    # target hourly vol 0.5 / sqrt(8760) = 0.00534; at rv 0.0005 the vol target asks for ~10.7x, max_fraction 5x
    spot = _profile("coinbase_advanced", max_fraction=5.0)
    assert spot.max_position == 1.0
    assert np.allclose(_signals(spot, 0.0005), 1.0)
    perp_default = _profile("binance_usdm", max_fraction=5.0)
    assert perp_default.sizing.max_leverage == 1.0 and np.allclose(_signals(perp_default, 0.0005), 1.0)
    perp_3x = _profile("binance_usdm", max_fraction=5.0, max_leverage=3.0)
    assert np.allclose(_signals(perp_3x, 0.0005), 3.0)
    perp_10x = _profile("binance_usdm", max_fraction=5.0, max_leverage=10.0)
    assert np.allclose(_signals(perp_10x, 0.0005), 5.0)  # max_fraction binds first
    # below the caps the vol target is untouched: 0.00534 / 0.01
    assert np.allclose(_signals(perp_3x, 0.01), 0.5 / math.sqrt(8760) / 0.01)
    assert np.allclose(_signals(spot, 0.01), 0.5 / math.sqrt(8760) / 0.01)


# --------------------------------------------------------------------------------------------------- report


def test_size_weighted_edge_follows_the_equity_curve() -> None:
    """A small winner and a big loser: the per-trade edge is positive, the size-weighted edge (and equity) negative."""
    bars = [B0, F(100), (100.5, 102.5, 100.3, 102.2), F(102), (102, 102.1, 100.5, 101), F(101)]
    res, _ = run(bars, [1, 0, 0, 1, 0, 0], params(), size=[0.1, 0.1, 0.1, 1.0, 1.0, 1.0])
    t = res.trades
    assert list(t["exit_reason"]) == ["take_profit", "stop_loss"] and list(t["size"]) == [0.1, 1.0]
    per_trade = edge_decomposition(t)
    weighted = edge_decomposition(t, weighted=True)
    assert per_trade["net_bps"] > 0 > weighted["net_bps"]
    assert res.log_return < 0  # the equity curve agrees with the size-weighted edge
    w = np.array([0.1, 1.0])
    for k in ("gross", "fees", "slippage", "funding", "net"):
        assert weighted[f"{k}_bps"] == pytest.approx(float(np.dot(w, t[k]) / w.sum() * 1e4), abs=1e-9)
        assert per_trade[f"{k}_bps"] == pytest.approx(float(t[k].mean() * 1e4), abs=1e-9)
    assert weighted["net_bps"] == pytest.approx(weighted["gross_bps"] - weighted["fees_bps"]
                                                - weighted["slippage_bps"] - weighted["funding_bps"], abs=1e-9)
    assert weighted["trades"] == per_trade["trades"] == 2
    assert edge_decomposition(t.iloc[:0], weighted=True)["trades"] == 0


def _coin_inputs(volume_bar1: float) -> tuple[pd.DataFrame, ...]:
    """Six hand-made bars of ETH: a long signal at bar 0 (enters at bar 1's open), a TP traded through at bar 2."""
    bars = [B0, F(100), (100.5, 104.0, 100.3, 103.5), F(103.5), F(103.5), F(103.5)]
    n = len(bars)
    grid = T0 + HOUR_MS * np.arange(n, dtype=np.int64)
    ohlcv = pd.DataFrame(bars, columns=["open", "high", "low", "close"]).assign(ts=grid, volume=1.0)
    ohlcv.loc[1, "volume"] = volume_bar1
    preds = pd.DataFrame({"ts": grid, "p_dir": [0.9] + [0.5] * (n - 1), "p_up": [0.6] + [0.3] * (n - 1),
                          "p_down": [0.1] + [0.3] * (n - 1), "label": [1.0, -1.0] * (n // 2)})  # fmt: skip
    feats = pd.DataFrame({"ts": grid, "rv_24": SIGMA, "mom_mag_24": 1.0, "trend_bucket": 2.0, "regime_state": 5.0})
    funding = pd.DataFrame({"ts": pd.Series([], dtype="int64"), "rate": pd.Series([], dtype="float64")})
    return preds, feats, ohlcv[["ts", "open", "high", "low", "close", "volume"]], funding


def test_backtest_coin_does_not_trade_halted_bars_and_reports_both_edges() -> None:
    prof = load_coins()["ETH"].profile
    end = T0 + 6 * HOUR_MS
    traded = backtest_coin("ETH", *_coin_inputs(1.0), prof, end)
    assert list(traded.trades["exit_reason"]) == ["take_profit"] and traded.trades["entry_idx"].iloc[0] == 1
    d = traded.diagnostics
    assert d["edge"]["trades"] == d["edge_size_weighted"]["trades"] == 1
    assert d["edge_size_weighted"]["net_bps"] == pytest.approx(d["edge"]["net_bps"], abs=1e-9)  # one trade
    assert d["costs"]["slippage_vol_mult"] == 0.03 and d["costs"]["tp_through_bps"] == 2.0
    halted = backtest_coin("ETH", *_coin_inputs(0.0), prof, end)  # the entry bar has no volume: no entry
    assert halted.trades.empty and halted.diagnostics["edge"]["trades"] == 0
    page = render_report(d, traded.result.equity)
    assert "Size-weighted" in page and page.count(f"{d['edge_size_weighted']['net_bps']:.4g}") >= 2
