"""The research loop in memory (pure): market panel -> features -> labels -> ML dataset -> purged walk-forward
-> backtest, for one coin, honouring the holdout. The Dagster stages run the same functions with I/O in
between; this composition serves the multi-seed acceptance test and the detection benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cryptoalgo_core.config.coins import CoinSpec
from cryptoalgo_core.features.build import MarketPanel
from cryptoalgo_core.features.dataset import build_ml_dataset, labels_for_coin
from cryptoalgo_core.features.plan import feature_plan, research_bounds
from cryptoalgo_core.model.walkforward import calibration_report, directional_auc, walk_forward

__all__ = ["CoinEvaluation", "evaluate_coin", "evaluate_market", "scaled_synthetic_config", "synthetic_panel"]


@dataclass
class CoinEvaluation:
    coin: str
    auc: float  # directional AUC pooled over the out-of-sample folds
    fold_aucs: list[float]
    brier: float
    edge: dict[str, Any]  # the backtest's edge decomposition (bps per trade)
    trades: int
    holdout_start: int

    def as_dict(self) -> dict[str, Any]:
        return {"coin": self.coin, "auc": self.auc, "fold_aucs": self.fold_aucs, "brier": self.brier,
                "trades": self.trades, "net_bps": self.edge.get("net_bps"), "gross_bps": self.edge.get("gross_bps"),
                "edge": self.edge}


def synthetic_panel(cfg: Any, coins: list[str], start_ms: int, end_ms: int) -> MarketPanel:
    """The synthetic market of `cfg` as a panel (open interest without its unit column)."""
    from cryptoalgo_core import synthetic as syn

    g = syn.generate(cfg, coins, start_ms, end_ms)
    return MarketPanel({c: g[c].ohlcv for c in coins}, {c: g[c].funding for c in coins},
                       {c: g[c].open_interest[["ts", "value"]] for c in coins})


def evaluate_coin(panel: MarketPanel, coin: str, spec: CoinSpec, holdout_days: int | None = None,
                  test_days: int | None = None) -> CoinEvaluation:
    """Out-of-sample evaluation of `coin` with `spec`'s label, features and profile. Research sees only the
    panel before the holdout (the last `holdout_days`, default the profile's); `test_days` overrides the
    walk-forward retrain cadence (the acceptance test uses a coarser one to stay fast)."""
    from cryptoalgo_core.backtest.report import backtest_coin

    prof = spec.profile
    days = prof.walk_forward.holdout_days if holdout_days is None else holdout_days
    last = int(panel.ohlcv[coin]["ts"].max())
    bounds = research_bounds((None, None), last, days)
    seen = panel.before(bounds.holdout_start)
    plan = feature_plan(seen, coin, spec.features, (None, bounds.holdout_start), bounds=bounds)
    feats = plan.build(seen)
    ds = build_ml_dataset(feats, labels_for_coin(seen.ohlcv[coin], spec.label))
    wf = replace(prof.walk_forward, holdout_days=days,
                 test_days=prof.walk_forward.test_days if test_days is None else test_days)
    res = walk_forward(ds, list(plan.names), wf, prof.model, end_ms=bounds.holdout_start)
    p = res.predictions
    label = p["label"].to_numpy(float)
    score = p["p_dir"].to_numpy(float)
    cal = calibration_report(np.where(label == 1, 1.0, np.where(label == -1, 0.0, np.nan)), score)
    brier = cal["brier"]
    fold_aucs = [float(directional_auc(label[p["fold"].to_numpy() == k], score[p["fold"].to_numpy() == k]))
                 for k in sorted(p["fold"].unique())]
    bt = backtest_coin(coin, p, feats, seen.ohlcv[coin], seen.funding[coin], prof, bounds.holdout_start)
    return CoinEvaluation(coin, float(directional_auc(label, score)), fold_aucs,
                          float(brier) if isinstance(brier, (int, float)) else float("nan"),
                          dict(bt.diagnostics["edge"]), int(bt.diagnostics["edge"]["trades"]), bounds.holdout_start)


def scaled_synthetic_config(seed: int, strength: float, years: float, base: Any | None = None, *,
                            mechanisms: dict[str, float] | None = None) -> Any:
    """The synthetic market of config/synthetic.yaml (or `base`) with another seed, every planted strength times
    `strength` (noise coins stay at zero) and a calendar of `years` from the origin.

    `mechanisms` (mechanism -> bps) replaces the profile of the PLANTED coins of `base` (those with any nonzero
    strength): each named mechanism gets `value * strength`, every unnamed one 0; noise coins stay at 0. E.g.
    ``{"hidden_interaction": 6.0}`` plants only the hidden mechanism, at 6 x `strength` bps. Unknown names are a
    ValueError. The strengths are not re-validated against `edge_shape.max_strength_bps`."""
    import dataclasses

    from cryptoalgo_core import synthetic as syn
    from cryptoalgo_core.timeutil import DAY_MS

    base = base or syn.load_synthetic_config()
    if mechanisms is not None:
        unknown = sorted(set(mechanisms) - set(syn.MECHANISMS))
        if unknown:
            raise ValueError(f"unknown mechanism(s) {unknown}; known: {list(syn.MECHANISMS)}")

    def scaled(edge: Any) -> Any:
        now = edge.as_dict()
        if mechanisms is None:
            new = {k: v * strength for k, v in now.items()}
        else:
            planted = any(v != 0 for v in now.values())
            new = {k: float(mechanisms.get(k, 0.0)) * strength if planted else 0.0 for k in now}
        return dataclasses.replace(edge, **new)

    coins = tuple(dataclasses.replace(c, edge=scaled(c.edge)) for c in base.coins)
    return dataclasses.replace(base, seed=seed, coins=coins, end_ms=base.origin_ms + int(years * 365.25) * DAY_MS)


def evaluate_market(cfg: Any, spec: CoinSpec, coins: list[str] | None = None, test_days: int | None = None,
                    planted: tuple[str, ...] = ("ETH", "SOL")) -> list[dict[str, Any]]:
    """Every coin of the synthetic market `cfg` evaluated with ONE profile `spec` (rows for a detection table)."""
    from cryptoalgo_core import synthetic as syn

    coins = coins or list(cfg.coin_names)
    start, end = syn.calendar_bounds(cfg)
    panel = synthetic_panel(cfg, coins, start, end)
    truth = syn.planted_truth(cfg)
    out = []
    for coin in coins:
        e = evaluate_coin(panel, coin, spec, test_days=test_days)
        aucs = np.asarray([a for a in e.fold_aucs if a == a], dtype=float)
        out.append({"seed": cfg.seed, "coin": coin, "planted": sum(truth[coin].values()) > 0, "auc": e.auc,
                    "net_bps": e.edge["net_bps"], "gross_bps": e.edge["gross_bps"], "trades": e.trades,
                    "fold_auc_sd": float(aucs.std(ddof=1)) if aucs.size > 1 else float("nan")})
    return out
