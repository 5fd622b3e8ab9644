"""Backtest a coin's out-of-sample predictions and explain the result: edge decomposition (gross edge,
fees, funding, slippage, net — in bps per trade, adding up; per trade and size-weighted), exit-reason
diagnostics, regime buckets, calibration. Pure."""

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
        max_hold_hours=x.hold_hours,
        fee_entry=c.fee_entry,
        fee_exit_tp=c.fee_exit_tp,
        fee_exit_other=c.fee_exit_other,
        slippage=c.slippage,
        flip_exit=x.flip_exit,
        funding=c.funding,
        slippage_vol_mult=c.slippage_vol_mult,
        tp_through=x.tp_through,
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
    bars = reindex_on_grid(ohlcv, hourly_grid(start, end_ms), ["open", "high", "low", "close", "volume"])
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
        volume=bars["volume"].to_numpy(float),  # zero-volume (halted) bars are not traded
    )
    trades = res.trades.copy()
    reg = sig.regime[trades["signal_idx"].to_numpy(int)] if len(trades) else np.array([])
    trades["signal_ts"] = grid[trades["signal_idx"].to_numpy(int)] if len(trades) else np.array([], dtype=np.int64)
    trades["regime_state"] = reg
    trades["vol_bucket"] = [VOL_NAMES.get(int(r // 3), "unknown") if np.isfinite(r) else "unknown" for r in reg]
    trades["trend_bucket"] = [TREND_NAMES.get(int(r % 3), "unknown") if np.isfinite(r) else "unknown" for r in reg]
    diag = diagnostics(coin, trades, res, sig, predictions, profile, start, end_ms)
    return CoinBacktest(res, sig, trades, diag)


EDGE_PARTS = ("gross", "fees", "slippage", "funding", "net")


def edge_decomposition(trades: pd.DataFrame, weighted: bool = False) -> dict[str, float]:
    """Mean per trade, in bps of notional: gross - fees - slippage - funding = net (exactly).

    ``weighted=False``: every trade counts once (the edge of the signal). ``weighted=True``: trades are weighted by
    their position ``size`` (fraction of equity), ``sum(size * x) / sum(size)`` — the edge the equity curve earns, so
    its net has the sign of ``sum(size * net)`` (the first-order equity change); it still adds up exactly."""
    n = len(trades)
    w = trades["size"].to_numpy(float) if weighted and n else np.ones(n)
    if n == 0 or not w.sum() > 0:
        return {"trades": n, "gross_bps": 0.0, "fees_bps": 0.0, "slippage_bps": 0.0, "funding_bps": 0.0,
                "net_bps": 0.0, "fee_edge_ratio": float("nan"), "cost_edge_ratio": float("nan")}
    if weighted:
        m = {k: float(np.dot(w, trades[k].to_numpy(float)) / w.sum() * 1e4) for k in EDGE_PARTS}
    else:
        m = {k: float(trades[k].mean() * 1e4) for k in EDGE_PARTS}
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


def edge_intervals(trades: pd.DataFrame) -> dict[str, Any]:
    """Standard error and 95 % interval of every edge figure (bps per trade; Newey–West over the trades in time
    order, the per-trade series may be autocorrelated), equal-weight and size-weighted."""
    from cryptoalgo_core.stats.uncertainty import edge_uncertainty

    if trades.empty:
        return {"per_trade": {}, "size_weighted": {}, "method": "newey_west", "level": 0.95}
    eq = edge_uncertainty(trades, time_column="entry_ts")
    sw = edge_uncertainty(trades, weights="size", time_column="entry_ts") if "size" in trades else {}
    return {"per_trade": {k: dict(v) for k, v in eq.items()}, "size_weighted": {k: dict(v) for k, v in sw.items()},
            "method": "newey_west", "level": 0.95}


def fold_report(trades: pd.DataFrame, predictions: pd.DataFrame) -> dict[str, Any]:
    """Per walk-forward fold: the directional AUC (each fold's model is calibrated on its own slice, so AUCs are
    compared per fold, not only pooled) and the net edge of the trades signalled in it; mean, spread and a
    t-interval across folds."""
    from cryptoalgo_core.stats.uncertainty import fold_auc, per_fold_summary

    if predictions.empty:
        return {"by_fold": [], "auc": {}, "net_bps": {}}
    if "fold" not in predictions:  # predictions from outside the walk-forward: one fold
        predictions = predictions.assign(fold=0)
    aucs = fold_auc(predictions["label"].to_numpy(float), predictions["p_dir"].to_numpy(float),
                    predictions["fold"].to_numpy())
    by_fold = [{k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in dict(a).items()} for a in aucs]
    net: dict[Any, float] = {}
    count: dict[Any, int] = {}
    if len(trades):
        fold_of = pd.Series(predictions["fold"].to_numpy(), index=predictions["ts"].to_numpy())
        f = fold_of.reindex(trades["signal_ts"].to_numpy()).to_numpy()
        for k in np.unique(f[~pd.isna(f)]):
            sel = f == k
            net[k], count[k] = float(trades["net"].to_numpy()[sel].mean() * 1e4), int(sel.sum())
    for row in by_fold:
        row["net_bps"] = net.get(row["fold"], float("nan"))
        row["trades"] = count.get(row["fold"], 0)
    return {"by_fold": by_fold,
            "auc": dict(per_fold_summary([float(a["auc"]) for a in aucs if a["auc"] == a["auc"]])),
            "net_bps": dict(per_fold_summary([v for v in net.values() if v == v]))}


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
        "edge_size_weighted": edge_decomposition(trades, weighted=True),
        "edge_uncertainty": edge_intervals(trades),
        "folds": fold_report(trades, predictions),
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
                  "slippage_bps": profile.costs.slippage_bps, "slippage_vol_mult": profile.costs.slippage_vol_mult,
                  "tp_through_bps": profile.exits.tp_through_bps, "max_position": profile.max_position,
                  "funding": profile.costs.funding},
    }
