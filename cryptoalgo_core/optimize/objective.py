"""The fold objective with shaping (pure). Higher is better; every term is in bps per trade.

Per walk-forward fold ``k`` a candidate has ``n_k`` trades with mean net edge ``net_k`` (bps per trade, after
fees, slippage and funding; 0 for a fold without trades). A mean over few trades is mostly noise, so each fold's
edge is shrunk towards zero by its sample size, ``s_k = net_k * n_k / (n_k + m)`` with ``m =
min_trades_per_fold`` (a fold of ``m`` trades keeps half its mean): a handful of lucky trades cannot outrank a
steady edge. With the preset's :class:`ObjectiveSettings`::

    edge        = mean_k s_k
    dispersion  = dispersion_penalty * sd_k(s_k)                        (ddof 1; 0 with one fold)
    robustness  = positive_fold_bonus_bps * (share of folds with net_k > 0 - 0.5)
    few_trades  = few_trades_penalty_bps * mean_k max(0, 1 - n_k / min_trades_per_fold)
    stop_loss   = stop_loss_penalty_bps * max(0, SL share - stop_loss_limit) / (1 - stop_loss_limit)
    fee_edge    = fee_edge_penalty_bps * min(1, max(0, fees / gross - fee_edge_limit))   (1 without gross edge)
    churn       = churn_penalty_bps * min(1, max(0, trades per day - limit) / limit)
    objective   = edge - dispersion + robustness - few_trades - stop_loss - fee_edge - churn

SL share, fees / gross and trades per day are pooled over all folds' trades and days. A candidate is thus
ranked by its cost-adjusted net edge and its consistency across folds, never by a Sharpe ratio (which a few
lucky trades inflate); the Sharpe of the fold returns is reported, not optimized. :func:`score` of the first
``k`` folds is the running value the pruner compares fold by fold.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cryptoalgo_core.optimize.space import ObjectiveSettings

__all__ = ["TERMS", "FoldResult", "fold_result", "rank_candidates", "score"]

TERMS = ("edge", "dispersion", "robustness", "few_trades", "stop_loss", "fee_edge", "churn")


@dataclass(frozen=True)
class FoldResult:
    """One fold's backtest, as the objective needs it (sums in fractions of notional)."""

    fold: int
    trades: int
    stop_losses: int
    net_sum: float
    gross_sum: float
    fees_sum: float
    days: float
    log_return: float

    @property
    def net_bps(self) -> float:
        return self.net_sum / self.trades * 1e4 if self.trades else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "net_bps": self.net_bps}


def fold_result(fold: int, trades: Any, days: float, log_return: float) -> FoldResult:
    """From a backtest's trades frame (columns net, gross, fees, exit_reason) on a fold of ``days``."""
    n = len(trades)
    if n == 0:
        return FoldResult(fold, 0, 0, 0.0, 0.0, 0.0, float(days), float(log_return))
    return FoldResult(fold, n, int((trades["exit_reason"] == "stop_loss").sum()), float(trades["net"].sum()),
                      float(trades["gross"].sum()), float(trades["fees"].sum()), float(days), float(log_return))


def score(folds: list[FoldResult], s: ObjectiveSettings) -> dict[str, float]:
    """The objective and every term of it (see the module docstring), plus the pooled figures behind them."""
    if not folds:
        raise ValueError("score needs at least one fold")
    n = np.array([f.trades for f in folds], dtype=float)
    raw = np.array([f.net_bps for f in folds])
    net = raw * n / (n + s.min_trades_per_fold) if s.min_trades_per_fold > 0 else raw
    total = float(n.sum())
    days = float(sum(f.days for f in folds))
    gross, fees = sum(f.gross_sum for f in folds), sum(f.fees_sum for f in folds)
    sl_share = sum(f.stop_losses for f in folds) / total if total else 0.0
    fee_ratio = fees / gross if gross > 0 else math.inf
    per_day = total / days if days > 0 else 0.0
    terms = {
        "edge": float(net.mean()),
        "dispersion": s.dispersion_penalty * (float(net.std(ddof=1)) if net.size > 1 else 0.0),
        "robustness": s.positive_fold_bonus_bps * (float((net > 0).mean()) - 0.5),
        "few_trades": s.few_trades_penalty_bps * float(np.maximum(0.0, 1.0 - n / s.min_trades_per_fold).mean())
        if s.min_trades_per_fold > 0 else 0.0,
        "stop_loss": s.stop_loss_penalty_bps * max(0.0, sl_share - s.stop_loss_limit) / (1.0 - s.stop_loss_limit),
        "fee_edge": s.fee_edge_penalty_bps * (min(1.0, max(0.0, fee_ratio - s.fee_edge_limit))
                                             if math.isfinite(fee_ratio) else 1.0),
        "churn": s.churn_penalty_bps * min(1.0, max(0.0, per_day - s.churn_limit_per_day) / s.churn_limit_per_day),
    }
    objective = terms["edge"] - terms["dispersion"] + terms["robustness"] - sum(
        terms[k] for k in ("few_trades", "stop_loss", "fee_edge", "churn"))
    rets = np.array([f.log_return for f in folds])
    return {
        "objective": float(objective),
        **terms,
        "folds": len(folds),
        "trades": int(total),
        "positive_folds": int((net > 0).sum()),
        "worst_fold_net_bps": float(raw.min()),
        "net_bps_pooled": float(sum(f.net_sum for f in folds) / total * 1e4) if total else 0.0,
        "stop_loss_share": float(sl_share),
        "fee_edge_ratio": float(fee_ratio),
        "trades_per_day": float(per_day),
        "fold_return_sharpe": float(rets.mean() / rets.std(ddof=1)) if rets.size > 1 and rets.std(ddof=1) > 0
        else float("nan"),
    }


def rank_candidates(rows: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The ``k`` best rows (each with ``objective`` and ``number``): objective descending, ties by trial number
    (the earlier trial first), NaN objectives last."""
    def key(r: dict[str, Any]) -> tuple[float, int]:
        v = r.get("objective")
        return (-(v if v is not None and math.isfinite(v) else -math.inf), int(r["number"]))

    return sorted(rows, key=key)[:k]
