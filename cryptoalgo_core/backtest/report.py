"""Backtest a coin's out-of-sample predictions and explain the result: edge decomposition (gross edge,
fees, funding, slippage, net — in bps per trade, adding up), exit-reason diagnostics, regime buckets,
calibration. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cryptoalgo_core import metrics
from cryptoalgo_core.backtest.engine import BacktestResult, EngineParams, run_backtest
from cryptoalgo_core.config.profile import CoinProfile
from cryptoalgo_core.grid import hourly_grid, reindex_on_grid
from cryptoalgo_core.model.walkforward import calibration_report, directional_auc
from cryptoalgo_core.strategy import Signals, build_signals, funding_on_grid
from cryptoalgo_core.timeutil import HOUR_MS, ms_to_iso

REASONS = ("stop_loss", "take_profit", "time", "signal", "end")
VOL_NAMES = {0: "low_vol", 1: "mid_vol", 2: "high_vol"}
TREND_NAMES = {0: "down", 1: "chop", 2: "up"}
HOURS_PER_YEAR = 24 * 365


def engine_params(profile: CoinProfile) -> EngineParams:
    c, x = profile.costs, profile.exits
    return EngineParams(
        sl_mult=x.vol_mult_sl,
        tp_mult=x.vol_mult_tp,
        max_hold_hours=x.max_hold_hours,
        fee_entry=c.fee_entry,
        fee_exit_tp=c.fee_exit_tp,
        fee_exit_other=c.fee_exit_other,
        slippage=c.slippage,
        flip_exit=x.flip_exit,
        funding=c.funding,
    )


@dataclass
class CoinBacktest:
    result: BacktestResult
    signals: Signals
    trades: pd.DataFrame  # engine trades + regime columns
    diagnostics: dict[str, Any]


def backtest_coin(
    coin: str,
    predictions: pd.DataFrame,
    features: pd.DataFrame,
    ohlcv: pd.DataFrame,
    funding: pd.DataFrame,
    profile: CoinProfile,
    end_ms: int,
) -> CoinBacktest:
    """Trade the out-of-sample window [first prediction, end_ms) — end_ms is the holdout start, so no
    trade ever sees a holdout bar (an open position is closed at the last bar before it)."""
    if predictions.empty:
        raise ValueError(f"{coin}: no out-of-sample predictions to backtest")
    start = int(predictions["ts"].min())
    bars = reindex_on_grid(ohlcv, hourly_grid(start, end_ms), ["open", "high", "low", "close"])
    grid = bars["ts"].to_numpy(np.int64)
    sig = build_signals(grid, predictions, features, profile)
    fund = funding_on_grid(grid, funding)
    res = run_backtest(
        grid,
        bars["open"].to_numpy(float),
        bars["high"].to_numpy(float),
        bars["low"].to_numpy(float),
        bars["close"].to_numpy(float),
        sig.signal,
        sig.sigma,
        sig.size,
        fund,
        engine_params(profile),
    )
    trades = res.trades.copy()
    reg = sig.regime[trades["signal_idx"].to_numpy(int)] if len(trades) else np.array([])
    trades["regime_state"] = reg
    trades["vol_bucket"] = [VOL_NAMES.get(int(r // 3), "unknown") if np.isfinite(r) else "unknown" for r in reg]
    trades["trend_bucket"] = [TREND_NAMES.get(int(r % 3), "unknown") if np.isfinite(r) else "unknown" for r in reg]
    diag = diagnostics(coin, trades, res, sig, predictions, profile, start, end_ms)
    return CoinBacktest(res, sig, trades, diag)


def edge_decomposition(trades: pd.DataFrame) -> dict[str, float]:
    """Mean per trade, in bps of notional: gross - fees - slippage - funding = net (exactly)."""
    n = len(trades)
    if n == 0:
        return {"trades": 0, "gross_bps": 0.0, "fees_bps": 0.0, "slippage_bps": 0.0, "funding_bps": 0.0,
                "net_bps": 0.0, "fee_edge_ratio": float("nan"), "cost_edge_ratio": float("nan")}
    m = {k: float(trades[k].mean() * 1e4) for k in ("gross", "fees", "slippage", "funding", "net")}
    costs = m["fees"] + m["slippage"] + m["funding"]
    return {
        "trades": n,
        "gross_bps": m["gross"],
        "fees_bps": m["fees"],
        "slippage_bps": m["slippage"],
        "funding_bps": m["funding"],
        "net_bps": m["net"],
        # fees as a share of the gross edge (> 1: fees alone eat the edge; inf/neg: no gross edge at all)
        "fee_edge_ratio": m["fees"] / m["gross"] if m["gross"] > 0 else float("inf"),
        "cost_edge_ratio": costs / m["gross"] if m["gross"] > 0 else float("inf"),
    }


def exit_diagnostics(trades: pd.DataFrame) -> dict[str, Any]:
    n = len(trades)
    shares = {r: (float((trades["exit_reason"] == r).mean()) if n else 0.0) for r in REASONS}
    by_reason = {}
    for r in REASONS:
        t = trades[trades["exit_reason"] == r] if n else trades
        by_reason[r] = {"trades": len(t), "net_bps": float(t["net"].mean() * 1e4) if len(t) else 0.0,
                        "avg_hold_hours": float(t["hold_hours"].mean()) if len(t) else 0.0}
    return {
        "shares": shares,
        "by_reason": by_reason,
        "avg_hold_hours": float(trades["hold_hours"].mean()) if n else 0.0,
        "win_rate": float((trades["net"] > 0).mean()) if n else 0.0,
        "long_share": float((trades["side"] > 0).mean()) if n else 0.0,
    }


def regime_outcomes(trades: pd.DataFrame) -> list[dict[str, Any]]:
    if trades.empty:
        return []
    rows = []
    for (vb, tb), t in trades.groupby(["vol_bucket", "trend_bucket"], sort=True):
        rows.append({"vol": vb, "trend": tb, "trades": len(t), "net_bps": float(t["net"].mean() * 1e4),
                     "win_rate": float((t["net"] > 0).mean())})
    return rows


def diagnostics(
    coin: str,
    trades: pd.DataFrame,
    res: BacktestResult,
    sig: Signals,
    predictions: pd.DataFrame,
    profile: CoinProfile,
    start: int,
    end_ms: int,
) -> dict[str, Any]:
    label = predictions["label"].to_numpy(float)
    cal_dir = calibration_report(
        np.where(label == 1, 1.0, np.where(label == -1, 0.0, np.nan)), predictions["p_dir"].to_numpy(float)
    )
    summ = res.summary()
    years = max((end_ms - start) / (HOURS_PER_YEAR * HOUR_MS), 1e-9)
    eq = res.equity[np.isfinite(res.equity)]
    # hourly log returns, population std (ddof=0) as this report has always used; 0.0 where undefined
    sharpe = metrics.annualised_sharpe(metrics.log_returns(eq), HOURS_PER_YEAR, ddof=0)
    sharpe = sharpe if np.isfinite(sharpe) else 0.0
    return {
        "coin": coin,
        "window": {"start": ms_to_iso(start), "end": ms_to_iso(end_ms), "years": round(years, 3)},
        "edge": edge_decomposition(trades),
        "exits": exit_diagnostics(trades),
        "regimes": regime_outcomes(trades),
        "calibration": {"direction": cal_dir, "directional_auc": directional_auc(label, predictions["p_dir"].to_numpy(float))},
        "signal_funnel": sig.funnel,
        "performance": {
            "total_return": float(summ.get("total_return", 0.0)),
            "cagr": float(np.exp(np.log(max(eq[-1], 1e-12)) / years) - 1) if eq.size else 0.0,
            "sharpe_hourly_annualised": sharpe,
            "max_drawdown": float(summ.get("max_drawdown", 0.0)),
            "trades_per_year": len(trades) / years,
        },
        "costs": {"venue": profile.costs.venue, "fee_tier": profile.costs.fee_tier,
                  "maker_bps": profile.costs.maker_bps, "taker_bps": profile.costs.taker_bps,
                  "slippage_bps": profile.costs.slippage_bps, "funding": profile.costs.funding},
    }
