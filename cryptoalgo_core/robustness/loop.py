"""The whole decision loop for one coin, in memory (pure composition): research features before the holdout ->
Optuna study -> the one holdout evaluation of the chosen candidate -> robustness validation (score, tier). The
Dagster stages run the same functions with I/O between them (``optimized_profile``, ``holdout_evaluation``,
``robustness_report``); this composition serves the gate-calibration benchmark and its CI version, where the
planted truth is known.

The study runs in Optuna's in-memory storage; the trial count the DSR deflates by is this study's trials plus
the holdout evaluations (what the trial ledger would hold for a coin researched once).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from cryptoalgo_core.config.coins import CoinSpec
from cryptoalgo_core.config.gates import RobustnessGates
from cryptoalgo_core.features.build import MarketPanel
from cryptoalgo_core.features.plan import feature_plan, research_bounds
from cryptoalgo_core.optimize.cache import PredictionCache
from cryptoalgo_core.optimize.evaluate import fingerprint
from cryptoalgo_core.optimize.holdout import evaluate_holdout, holdout_gate
from cryptoalgo_core.optimize.space import Preset
from cryptoalgo_core.optimize.study import StudyData, run_study, study_summary
from cryptoalgo_core.robustness.validate import validate_coin

__all__ = ["decide_coin"]


def decide_coin(panel: MarketPanel, coin: str, spec: CoinSpec, preset: Preset, trials: int,
                gates: RobustnessGates, cache_dir: Path, mode: str = "full") -> dict[str, Any]:
    """Research ``coin`` of ``panel`` with ``preset`` and ``trials`` (tier-scaled by the preset), read its holdout
    once, validate. Returns the robustness document (tier, score, gates, statistics) plus ``holdout_gate``
    (the holdout gate's verdict) and ``budget``."""
    import optuna

    last = int(panel.ohlcv[coin]["ts"].max())
    bounds = research_bounds((None, None), last, preset.holdout_days)
    hs = bounds.holdout_start
    seen = panel.before(hs)
    plan = feature_plan(seen, coin, spec.features, (None, hs), bounds=bounds)
    feats = plan.build(seen)
    ohlcv, funding = seen.ohlcv[coin], seen.funding[coin]
    fp = fingerprint(feats, ohlcv, funding)
    data = StudyData.prepare(coin, spec, feats, list(plan.names), ohlcv, funding, hs, preset, fp)
    cache = PredictionCache(cache_dir)
    budget = preset.budget(trials)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = run_study(data, preset, budget, optuna.storages.InMemoryStorage(), f"{coin}", cache)
    summary = study_summary(study, preset.top_k)
    rows = [{"number": t.number, "state": t.state.name, "objective": t.value, "params": dict(t.params)}
            for t in study.get_trials(deepcopy=False)]
    best = summary["best"]
    if best is None:
        return {"coin": coin, "tier": "REJECT", "score": 0.0, "passed": False, "failed": ["no_complete_trial"],
                "budget": budget}
    # the holdout: features over the whole panel (causal: rows before hs equal the research ones)
    full_feats = plan.build(panel)
    top = [{"number": r["number"], "objective": r["objective"], "params": r["params"]} for r in summary["top_k"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        holdout = evaluate_holdout(spec, top, full_feats, list(plan.names), panel.ohlcv[coin],
                                   panel.funding[coin], hs)
    gate = holdout_gate(holdout, preset.holdout_gate, required=True)
    holdout["gate"] = {"passed": gate.passed, **gate.metadata}
    chosen = {"number": best["number"], "params": best["params"], "objective": best["objective"]}
    n_trials = len(rows) + int(holdout["evaluations"])
    doc, _track = validate_coin(data, preset, rows, chosen, holdout, n_trials, gates, mode, cache)
    doc.update({"holdout_gate": gate.passed, "budget": budget, "fits": data.fits})
    return doc
