"""Paper trading (pure): live signals, the paper book and its performance.

**Signals.** At each hourly tick the bars that closed since the last decision get a signal: the production
model's prediction on features built from data known at the bar's close, through the same entry rule, filters
and sizing as the backtest (:func:`cryptoalgo_core.strategy.signal_arrays`), on the paper-scaled profile
(``position_scale`` times the tier's scale), times the coin's switch scale (1 ACTIVE, ``reducing_scale``
REDUCING, 0 HALTED). The signal log is append-only and keyed by the bar: a bar decided once is never decided
again, so a re-run of a tick cannot change what was signalled.

**The book** is the backtest engine run over the paper segment (from its start to the last closed bar) on the
logged signals: fills at the next bar's open with the backtest's fees, slippage, funding and fill rules, by
construction. The engine is causal, so a trade closed at bar ``j`` is final once bar ``j`` has closed; each tick
recomputes the same closed trades (idempotent: the store keys fills by the entry time) and the open position
(the engine's ``end`` trade). A halt at ``H`` stops the signals and closes an open position at the open of the
first traded bar at or after ``H`` as a market exit (taker fee, the trade's slippage, funding up to the fill);
until that bar exists the position is ``closing``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cryptoalgo_core.backtest.engine import BacktestResult, run_backtest
from cryptoalgo_core.backtest.report import edge_decomposition, engine_params
from cryptoalgo_core.config.profile import CoinProfile
from cryptoalgo_core.grid import hourly_grid, reindex_on_grid
from cryptoalgo_core.strategy import funding_on_grid, signal_arrays
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS

__all__ = ["SIGNAL_COLUMNS", "Book", "decide", "paper_book", "paper_profile", "performance"]

SIGNAL_COLUMNS = ("ts", "p_dir", "p_up", "p_down", "signal", "sigma", "size", "scale", "state")


def paper_profile(profile: CoinProfile, tier_scale: float) -> CoinProfile:
    """The profile paper-trades at ``tier_scale`` of its position size."""
    s = profile.sizing
    return dataclasses.replace(profile, sizing=dataclasses.replace(s, position_scale=s.position_scale * tier_scale))


def decide(pred: pd.DataFrame, features: pd.DataFrame, profile: CoinProfile, scale: float | np.ndarray,
           state: str) -> pd.DataFrame:
    """Signal rows (:data:`SIGNAL_COLUMNS`) for the bars of ``pred`` (ts, p_dir, p_up, p_down), with the filter
    features (rv_24, mom_mag_24, trend_bucket) of the same bars; ``profile`` is already paper-scaled; ``scale``
    (one value or one per bar) multiplies the size, and a scale <= 0 means no signal."""
    f = pred[["ts"]].merge(features[["ts", "rv_24", "mom_mag_24", "trend_bucket"]], on="ts", how="left")
    rv = f["rv_24"].to_numpy(float)
    sig, size, _ = signal_arrays(pred["p_dir"].to_numpy(float), pred["p_up"].to_numpy(float),
                                 pred["p_down"].to_numpy(float), rv, f["mom_mag_24"].to_numpy(float),
                                 f["trend_bucket"].to_numpy(float), profile)
    k = np.broadcast_to(np.asarray(scale, dtype=float), sig.shape)
    return pd.DataFrame({"ts": pred["ts"].to_numpy(np.int64), "p_dir": pred["p_dir"].to_numpy(float),
                         "p_up": pred["p_up"].to_numpy(float), "p_down": pred["p_down"].to_numpy(float),
                         "signal": np.where(k > 0, sig, 0).astype(int), "sigma": rv, "size": size * np.maximum(k, 0.0),
                         "scale": k, "state": state})


@dataclass
class Book:
    trades: pd.DataFrame  # closed trades (engine columns + exit_reason incl. "halt"), entry_ts ascending
    position: dict[str, Any] | None  # the open (or closing) position with its mark-to-market
    equity: pd.DataFrame  # ts, equity: hourly mark-to-market equity of the segment (1.0 at its start)
    last_bar: int | None  # ts of the last closed bar in the segment


def _bars(ohlcv: pd.DataFrame, funding: pd.DataFrame, start: int, end: int) -> dict[str, np.ndarray]:
    grid = hourly_grid(start, end)
    b = reindex_on_grid(ohlcv, grid, ["open", "high", "low", "close", "volume"])
    out = {c: b[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume")}
    out["ts"], out["funding"] = grid, funding_on_grid(grid, funding)
    return out


def _run(bars: dict[str, np.ndarray], signals: pd.DataFrame, profile: CoinProfile, n: int) -> BacktestResult:
    s = pd.DataFrame({"ts": bars["ts"][:n]}).merge(signals[["ts", "signal", "sigma", "size"]], on="ts", how="left")
    sig = s["signal"].fillna(0).to_numpy(np.int64)  # a bar without a logged decision is not traded
    return run_backtest(bars["ts"][:n], bars["open"][:n], bars["high"][:n], bars["low"][:n], bars["close"][:n], sig,
                        s["sigma"].to_numpy(float), s["size"].fillna(0.0).to_numpy(float), bars["funding"][:n],
                        engine_params(profile), volume=bars["volume"][:n])


def paper_book(ohlcv: pd.DataFrame, funding: pd.DataFrame, signals: pd.DataFrame, profile: CoinProfile,
               start: int, end: int, halted_at: int | None = None, close_at_end: str = "") -> Book:
    """The book of the segment ``[start, end)`` (``end`` = the tick time: bars before it have closed) from the
    logged ``signals``; ``halted_at``: the halt time (module docstring). ``close_at_end`` (a reason, e.g.
    ``switch`` when a new production version takes over): the open position is closed at the close of the last
    bar (the engine's end-of-data market exit) and recorded with that reason."""
    bars = _bars(ohlcv, funding, start, end)
    n = bars["ts"].size
    if n == 0:
        return Book(pd.DataFrame(), None, pd.DataFrame({"ts": [], "equity": []}), None)
    stop = n if halted_at is None else int(np.searchsorted(bars["ts"], halted_at))
    bt = _run(bars, signals, profile, stop) if stop > 0 else None
    trades = bt.trades.copy() if bt is not None else pd.DataFrame()
    equity = bt.equity.copy() if bt is not None else np.ones(0)
    position = None
    if len(trades) and trades["exit_reason"].iloc[-1] == "end":  # the engine's end-of-data exit: still open
        last = trades.iloc[-1].to_dict()
        trades = trades.iloc[:-1]
        closed = _halt_close(last, bars, stop, profile) if halted_at is not None else None
        if closed is None and close_at_end:  # e.g. a version switch: the engine's end-of-data market exit
            closed = {**last, "exit_reason": close_at_end}
        if closed is not None:
            trades = pd.concat([trades, pd.DataFrame([closed])], ignore_index=True)
        else:
            position = _open(last, bars, n - 1, "open" if halted_at is None else "closing")
    if halted_at is not None:  # flat from the halt on: the curve holds the realized equity
        realized = float(np.prod(1.0 + trades["size"].to_numpy(float) * trades["net"].to_numpy(float))) if len(
            trades) else 1.0
        tail = np.full(n - equity.size, realized if position is None else np.nan)
        equity = np.r_[equity, tail] if tail.size else equity
        if position is not None:
            equity = pd.Series(equity).ffill().to_numpy()
    eq = pd.DataFrame({"ts": bars["ts"][:equity.size], "equity": equity})
    return Book(trades.reset_index(drop=True), position, eq, int(bars["ts"][n - 1]))


def _open(t: dict[str, Any], bars: dict[str, np.ndarray], k: int, status: str) -> dict[str, Any]:
    side, entry = int(t["side"]), float(t["entry_raw"])
    close = bars["close"][: k + 1]
    mark = float(close[np.isfinite(close)][-1])
    return {"status": status, "side": side, "size": float(t["size"]), "entry_ts": int(t["entry_ts"]),
            "entry_price": float(t["entry_price"]), "entry_raw": entry, "sl_price": float(t["sl_price"]),
            "tp_price": float(t["tp_price"]), "mark": mark, "mark_ts": int(bars["ts"][k]),
            "unrealized": side * (mark / entry - 1.0)}


def _halt_close(t: dict[str, Any], bars: dict[str, np.ndarray], k0: int, profile: CoinProfile) -> dict[str, Any] | None:
    """Close trade ``t`` (open at the halt) at the open of the first traded bar at index >= ``k0``."""
    o, v = bars["open"], bars["volume"]
    traded = np.flatnonzero(np.isfinite(o[k0:]) & (np.nan_to_num(v[k0:]) > 0))
    if traded.size == 0:
        return None
    k = k0 + int(traded[0])
    p = engine_params(profile)
    side, entry_raw = int(t["side"]), float(t["entry_raw"])
    slip = p.slippage + p.slippage_vol_mult * float(t["sigma_entry"])
    exit_raw = float(o[k])
    gross = side * (exit_raw / entry_raw - 1.0)
    fees = p.fee_entry + p.fee_exit_other
    ei = int(t["entry_idx"])
    funding = side * float(bars["funding"][ei:k].sum()) if p.funding else 0.0
    net = gross - fees - 2 * slip - funding
    return {**t, "exit_idx": k, "exit_ts": int(bars["ts"][k]), "exit_raw": exit_raw,
            "exit_price": exit_raw * (1.0 - side * slip), "exit_reason": "halt", "gross": gross, "fees": fees,
            "funding": funding, "slippage": 2 * slip, "net": net,
            "hold_hours": (int(bars["ts"][k]) - int(t["entry_ts"])) / HOUR_MS}


def performance(book: Book, win_window: int) -> dict[str, Any]:
    """The book's figures the kill switches read: return, the worst intraday drawdown of any UTC day, rolling
    win rate of the last ``win_window`` closed trades, the edge decomposition (fee/edge ratio) and exits."""
    t, eq = book.trades, book.equity
    n = len(t)
    curve = eq["equity"].to_numpy(float) if len(eq) else np.ones(0)
    worst_day, days = 0.0, []
    if curve.size:
        day = eq["ts"].to_numpy(np.int64) // DAY_MS
        prev = 1.0
        for d in np.unique(day):
            c = curve[day == d]
            peak = np.maximum.accumulate(np.r_[prev, c])
            dd = float(np.max(1.0 - np.r_[prev, c] / peak))
            days.append({"day": int(d * DAY_MS), "return": float(c[-1] / prev - 1.0), "drawdown": dd})
            worst_day, prev = max(worst_day, dd), float(c[-1])
    recent = t.tail(win_window) if n else t
    edge = edge_decomposition(t) if n else {}
    return {
        "trades": n,
        "equity": float(curve[-1]) if curve.size else 1.0,
        "return": float(curve[-1] - 1.0) if curve.size else 0.0,
        "max_daily_drawdown": worst_day,
        "daily": days,
        "win_rate_recent": float((recent["net"] > 0).mean()) if n else math.nan,
        "win_window_trades": int(len(recent)),
        "net_bps": float(edge.get("net_bps", math.nan)) if n else math.nan,
        "gross_bps": float(edge.get("gross_bps", math.nan)) if n else math.nan,
        "fee_edge_ratio": float(edge.get("fee_edge_ratio", math.nan)) if n else math.nan,
        "exits": t["exit_reason"].value_counts().to_dict() if n else {},
        "position": book.position,
    }
