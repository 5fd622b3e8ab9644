"""The validation figures paper trading is compared with (pure): the chosen profile's out-of-sample direction
Brier score from a walk-forward over the research rows only (before the holdout), and the fee/edge ratio, win
rate and net edge of the robustness stage's CV trades."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from cryptoalgo_core.backtest.report import edge_decomposition
from cryptoalgo_core.config.coins import CoinSpec
from cryptoalgo_core.features.build import MarketPanel
from cryptoalgo_core.features.dataset import build_ml_dataset, labels_for_coin
from cryptoalgo_core.features.plan import FeaturePlan
from cryptoalgo_core.model.walkforward import calibration_report, walk_forward

__all__ = ["validation_baseline"]


def validation_baseline(spec: CoinSpec, plan: FeaturePlan, panel: MarketPanel, holdout_start: int,
                        cv_trades: pd.DataFrame) -> dict[str, Any]:
    seen = panel.before(holdout_start)
    ds = build_ml_dataset(plan.build(seen), labels_for_coin(seen.ohlcv[plan.coin], spec.label))
    wf = dataclasses.replace(spec.profile.walk_forward, holdout_days=0)
    pred = walk_forward(ds, list(plan.names), wf, spec.profile.model, end_ms=holdout_start).predictions
    brier = math.nan
    if len(pred):
        lab = pred["label"].to_numpy(float)
        y = np.where(lab == 1, 1.0, np.where(lab == -1, 0.0, np.nan))
        b = calibration_report(y, pred["p_dir"].to_numpy(float))["brier"]
        brier = float(b) if isinstance(b, (int, float)) else math.nan
    edge = edge_decomposition(cv_trades) if len(cv_trades) else {}
    fe = float(edge.get("fee_edge_ratio", math.nan))
    return {"brier": brier if math.isfinite(brier) else None,
            "fee_edge_ratio": fe if math.isfinite(fe) else None,
            "win_rate": float((cv_trades["net"] > 0).mean()) if len(cv_trades) else None,
            "net_bps": float(edge["net_bps"]) if edge else None, "cv_trades": int(len(cv_trades)),
            "oos_rows": int(len(pred))}
