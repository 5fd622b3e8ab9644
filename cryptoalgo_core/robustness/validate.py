"""One coin's robustness validation end to end (pure): evidence from the finished study, statistics, gates,
score and tier — what the ``robustness_report`` asset and the gate-calibration benchmark both call.

``mode`` ``full`` or ``screen``: screen (the launch's paper screen) uses fewer Monte Carlo paths, a quarter of
the PBO trials and a third of the stability neighbours; the statistics and gates are the same.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cryptoalgo_core.config.gates import RobustnessGates
from cryptoalgo_core.optimize.cache import PredictionCache
from cryptoalgo_core.optimize.space import Preset
from cryptoalgo_core.optimize.study import StudyData
from cryptoalgo_core.robustness.evidence import Track, candidate_track, neighbourhood, trial_returns
from cryptoalgo_core.robustness.report import robustness_statistics
from cryptoalgo_core.robustness.tiers import assess

__all__ = ["PASSING_TIERS", "chosen_holdout", "mc_drawdown_sample", "validate_coin"]

PASSING_TIERS = ("PILOT", "FULL")  # a coin is pilot-ready at these tiers (hard gates passed on the way)


def chosen_holdout(holdout: dict[str, Any] | None) -> dict[str, Any] | None:
    """The chosen candidate's holdout metrics from holdout.json (None when there is none)."""
    if not holdout or not holdout.get("candidates"):
        return None
    c = holdout["candidates"][0]
    return {k: c.get(k) for k in ("number", "total_return", "sharpe_annual", "trades", "stop_loss_share",
                                  "net_bps", "fee_edge_ratio", "max_drawdown")} | {
        "days": holdout.get("days"), "passed": (holdout.get("gate") or {}).get("passed")}


def validate_coin(data: StudyData, preset: Preset, trials: list[dict[str, Any]], chosen: dict[str, Any],
                  holdout: dict[str, Any] | None, n_trials: int, gates: RobustnessGates, mode: str,
                  cache: PredictionCache) -> tuple[dict[str, Any], Track]:
    """``trials``: the study's rows (number, state, objective, params); ``chosen``: {number, params, objective}
    (decided by the study, before the holdout); ``holdout``: holdout.json or None; ``n_trials``: the coin's
    recorded trial count. Returns the robustness document (without file names) and the chosen track."""
    if mode not in ("full", "screen"):
        raise ValueError(f"mode must be full or screen, got {mode!r}")
    full = mode == "full"
    track = candidate_track(data, chosen["params"], cache, preset.objective)
    complete = [t for t in trials if t.get("state") == "COMPLETE" and t.get("objective") is not None
                and math.isfinite(float(t["objective"]))]
    max_trials = gates.pbo_max_trials if full else max(2, gates.pbo_max_trials // 4)
    matrix, numbers = trial_returns(data, complete, cache, max_trials)
    n_nb = gates.stability_neighbours if full else max(1, gates.stability_neighbours // 3)
    nb = neighbourhood(data, preset, chosen["params"], cache, n_nb, gates.stability_radius, gates.seed)
    stats = robustness_statistics(track.daily["ret"].to_numpy(float), track.trade_returns, track.folds, track.trades,
                                  matrix, n_trials, [n["objective"] for n in nb], float(track.terms["objective"]),
                                  gates, mode)
    stats["stability"].update({"radius": gates.stability_radius, "tolerance": gates.stability_tolerance})
    hold = chosen_holdout(holdout)
    verdict = assess(stats, track.terms, hold, preset.holdout_gate.min_trades, gates)
    doc = {
        "coin": data.coin, "mode": mode, "chosen_trial": int(chosen["number"]),
        "objective": float(track.terms["objective"]), "cv_terms": track.terms, **stats, "folds": track.folds,
        "holdout": hold, **verdict, "passed": verdict["tier"] in PASSING_TIERS,
        "trials": {"recorded_total": int(n_trials), "study": len(trials), "complete": len(complete),
                   "pbo_trials": numbers},
        "track": {"days": int(len(track.daily)), "trades": int(len(track.trades)),
                  "start_day": int(track.daily["day"].iloc[0]) if len(track.daily) else None,
                  "end_day": int(track.daily["day"].iloc[-1]) if len(track.daily) else None,
                  "total_return": float(np.prod(1.0 + track.daily["ret"].to_numpy(float)) - 1.0)},
    }
    return doc, track


def mc_drawdown_sample(trade_returns: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Max drawdowns of ``n`` bootstrap paths (for the report's histogram; the statistics use monte_carlo)."""
    from cryptoalgo_core.robustness.montecarlo import trade_paths

    r = np.asarray(trade_returns, float)
    if r.size < 2:
        return np.empty(0)
    eq = np.cumprod(1.0 + trade_paths(r, n, "bootstrap", seed), axis=1)
    peak = np.maximum.accumulate(np.maximum(eq, 1.0), axis=1)
    return np.asarray((1.0 - eq / peak).max(axis=1))
