"""The one-shot holdout evaluation and its gate (pure). The only code that reads rows at or after
``holdout_start``.

Each candidate (the study's top-k, best first, plus the coin's baseline coins.yaml profile) is trained once on
the whole research span (purged at ``holdout_start``, calibrated on its last share like a walk-forward fold) and
trades the holdout ``[holdout_start, end)`` with the backtest's fill rules. The chosen candidate is the study's
best, decided before the holdout was read; the other candidates' holdout figures are reported for information
and never change the choice (selecting on the holdout would turn it into one more fold to overfit).

Gate (``require_holdout_pass``): the chosen candidate needs holdout return > 0, holdout Sharpe > 0 (daily
returns of the equity curve), trades >= ``min_trades``, stop-loss share < ``max_stop_loss_share`` and a fee/edge
ratio below the baseline profile's on the same holdout (no gross edge = an infinite ratio).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from cryptoalgo_core import metrics
from cryptoalgo_core.backtest.report import edge_decomposition
from cryptoalgo_core.checks import CheckOutcome, Severity
from cryptoalgo_core.config.coins import CoinSpec
from cryptoalgo_core.features.dataset import build_ml_dataset, labels_for_coin
from cryptoalgo_core.model.walkforward import Fold, FoldData, predict_fold
from cryptoalgo_core.optimize.evaluate import GridMarket, window_backtest
from cryptoalgo_core.optimize.space import HoldoutGateSettings, apply_params
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS

__all__ = ["evaluate_candidate", "evaluate_holdout", "holdout_gate", "holdout_metrics"]


def holdout_metrics(trades: pd.DataFrame, equity: np.ndarray, log_return: float) -> dict[str, Any]:
    """Return, daily-return Sharpe (per day and annualised), trades, exit shares and the edge decomposition."""
    n = len(trades)
    days = equity.size // 24
    daily = np.diff(np.log(np.r_[1.0, equity[23::24][:days]])) if days >= 1 else np.array([])
    sr = metrics.sharpe(daily) if daily.size > 1 else float("nan")
    edge = edge_decomposition(trades)
    return {
        "trades": n,
        "total_return": metrics.total_return_from_log(log_return),
        "sharpe_daily": float(sr),
        "sharpe_annual": float(sr * math.sqrt(365)) if math.isfinite(sr) else float("nan"),
        "max_drawdown": metrics.max_drawdown(equity, initial=1.0) if equity.size else 0.0,
        "stop_loss_share": float((trades["exit_reason"] == "stop_loss").mean()) if n else 0.0,
        "net_bps": edge["net_bps"], "gross_bps": edge["gross_bps"], "fees_bps": edge["fees_bps"],
        "fee_edge_ratio": edge["fee_edge_ratio"],
    }


def evaluate_candidate(spec: CoinSpec, features: pd.DataFrame, names: list[str], ohlcv: pd.DataFrame,
                       market: GridMarket, holdout_start: int, end: int,
                       keep: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``spec`` on everything before the holdout and trade the holdout; its :func:`holdout_metrics`
    (``keep``, when given, receives the holdout ``predictions`` and ``trades`` frames)."""
    ds = build_ml_dataset(features, labels_for_coin(ohlcv, spec.label))
    data = FoldData.of(ds, names)
    wf = spec.profile.walk_forward
    first = int(data.ts[0])
    train_start = first if wf.scheme == "expanding" else max(first, holdout_start - wf.rolling_train_days * DAY_MS)
    fold = Fold(0, train_start, holdout_start - int((holdout_start - train_start) * wf.calibration_share),
                holdout_start, end)
    fp = predict_fold(data, fold, replace(wf, holdout_days=0), spec.profile.model)
    if fp.predictions is None:
        raise ValueError(f"{spec.name}: the holdout model could not be trained ({fp.row.get('skipped')})")
    bt = window_backtest(market, holdout_start, end, fp.predictions, spec.profile)
    if keep is not None:
        keep["predictions"], keep["trades"] = fp.predictions, bt.trades
    return holdout_metrics(bt.trades, bt.equity, bt.log_return)


def evaluate_holdout(spec: CoinSpec, candidates: list[dict[str, Any]], features: pd.DataFrame, names: list[str],
                     ohlcv: pd.DataFrame, funding: pd.DataFrame, holdout_start: int,
                     keep: dict[str, Any] | None = None) -> dict[str, Any]:
    """``candidates``: [{"number", "objective", "params"}] best first. Features, OHLCV and funding run through the
    holdout's end (the features causal, so rows before ``holdout_start`` equal the research ones). ``keep``
    receives the chosen candidate's holdout predictions and trades."""
    end = int(ohlcv["ts"].max()) + HOUR_MS
    if end <= holdout_start:
        raise ValueError(f"{spec.name}: no candles in the holdout (data ends before {holdout_start})")
    market = GridMarket.of(ohlcv, funding, features, holdout_start, end)
    baseline = evaluate_candidate(spec, features, names, ohlcv, market, holdout_start, end)
    rows = []
    for i, c in enumerate(candidates):
        m = evaluate_candidate(apply_params(spec, c["params"]), features, names, ohlcv, market, holdout_start, end,
                               keep if i == 0 else None)
        rows.append({"number": c["number"], "objective": c["objective"], "params": c["params"], **m})
    return {"holdout_start": holdout_start, "end": end, "days": (end - holdout_start) / DAY_MS,
            "baseline": baseline, "candidates": rows, "chosen": rows[0]["number"] if rows else None,
            "evaluations": len(rows) + 1}


def holdout_gate(result: dict[str, Any], gate: HoldoutGateSettings, required: bool) -> CheckOutcome:
    """The gate on the chosen candidate: every condition's value, threshold and verdict in the metadata.
    ``required`` False: the same verdict, reported as a warning (staging not blocked)."""
    sev = Severity.ERROR if required else Severity.WARN
    if not result.get("candidates"):
        return CheckOutcome("holdout_gate", False, sev, "no candidate finished the study", {"conditions": []})
    c, base = result["candidates"][0], result["baseline"]
    fe, fe_base = c["fee_edge_ratio"], base["fee_edge_ratio"]
    improved = (math.isfinite(fe) and (not math.isfinite(fe_base) or fe < fe_base))
    conds = [
        ("holdout_return", c["total_return"], "> 0", c["total_return"] > 0),
        ("holdout_sharpe", c["sharpe_annual"], "> 0", bool(c["sharpe_annual"] > 0)),
        ("holdout_trades", c["trades"], f">= {gate.min_trades}", c["trades"] >= gate.min_trades),
        ("stop_loss_share", c["stop_loss_share"], f"< {gate.max_stop_loss_share}",
         c["stop_loss_share"] < gate.max_stop_loss_share),
        ("fee_edge_ratio", fe, f"< baseline {_fmt(_num(fe_base))}", improved),
    ]
    rows = [{"condition": n, "value": _num(v), "threshold": t, "passed": bool(p)} for n, v, t, p in conds]
    failed = [r["condition"] for r in rows if not r["passed"]]
    desc = (f"trial {c['number']} on the {result['days']:.0f}-day holdout: " +
            ("all conditions pass" if not failed else "fails " + ", ".join(
                f"{r['condition']} {_fmt(r['value'])} (need {r['threshold']})" for r in rows if not r["passed"])))
    return CheckOutcome("holdout_gate", not failed, sev, desc, {"conditions": rows, "required": required})


def _num(v: Any) -> float | int | None:
    if isinstance(v, (int, np.integer)):
        return int(v)
    f = float(v)
    return f if math.isfinite(f) else None


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.4g}"
