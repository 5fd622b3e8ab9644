"""Readiness score (0-100) and tier of one coin from its robustness statistics (pure).

Order: **hard gates first** — the coin rules (holdout return and Sharpe > 0 with enough trades, positive
cost-adjusted CV edge with an acceptable fee/edge ratio, Monte Carlo drawdown and ruin within guardrails, CV
consistency and parameter stability, stop-loss share below the limit; the drawdown gate is a catastrophe bound
plus the size-free ratio of the median horizon return to the p95 drawdown); a single failed hard gate makes the tier
``REJECT`` whatever the score. A value that could not be computed (None) fails its gate: a gate that cannot be
checked does not pass. Then the **score**: each component's value in [0, 1] times its weight
(:class:`~cryptoalgo_core.config.gates.RobustnessGates.weights`, summing to 100); the tier is the highest band
whose lower bound the score reaches. ``PILOT`` and ``FULL`` also need DSR >= ``min_dsr`` and the CSCV
probability of out-of-sample loss <= ``max_prob_oos_loss`` (the **evidence gates**; a missing value fails
them): failing one caps the tier at ``PAPER``.

Components: ``dsr`` (its value), ``pbo`` (1 - PBO), ``cv_consistency`` (share of positive folds),
``stability`` (its share), ``drawdown`` (1 - MC p95 drawdown / max_drawdown_p95, clipped), ``holdout``
(holdout annual Sharpe / holdout_sharpe_full, clipped), ``edge`` (CV net bps / edge_full_bps, clipped); None
counts as 0.
"""

from __future__ import annotations

import math
from typing import Any

from cryptoalgo_core.config.gates import RobustnessGates
from cryptoalgo_core.config.profile import TIERS

__all__ = ["assess", "tier_of"]


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if not math.isnan(x) else None


def _gate(name: str, value: Any, op: str, threshold: float, hard: bool = True) -> dict[str, Any]:
    v = _num(value)
    ok = v is not None and {">": v > threshold, ">=": v >= threshold, "<": v < threshold,
                            "<=": v <= threshold}[op]
    return {"gate": name, "value": v, "threshold": f"{op} {threshold:g}", "passed": bool(ok), "hard": hard}


def _clip01(x: float | None) -> float:
    return 0.0 if x is None or not math.isfinite(x) else min(1.0, max(0.0, x))


def tier_of(score: float, gates: RobustnessGates) -> str:
    tier = "RESEARCH"
    for t in TIERS[1:]:
        if score >= gates.bands[t]:
            tier = t
    return tier


def assess(stats: dict[str, Any], cv_terms: dict[str, Any], holdout: dict[str, Any] | None,
           holdout_min_trades: int, gates: RobustnessGates) -> dict[str, Any]:
    """``stats``: :func:`~cryptoalgo_core.robustness.report.robustness_statistics`'s dict; ``cv_terms``: the
    chosen candidate's objective terms over the CV folds (net_bps_pooled, fee_edge_ratio, stop_loss_share);
    ``holdout``: the chosen candidate's holdout metrics (None: not evaluated -> its gates fail).
    Returns ``gates`` (every hard and evidence gate: value, threshold, passed, hard), ``components``
    (value, points, max_points), ``score``, ``tier``, ``failed`` (names) and ``capped_by`` (evidence gates that
    capped the tier)."""
    h = holdout or {}
    boot = (stats.get("monte_carlo") or {}).get("bootstrap") or {}
    dd95 = (boot.get("max_drawdown") or {}).get("p95")
    med = (boot.get("final_return") or {}).get("p50")
    dd_n, med_n = _num(dd95), _num(med)
    rtd = None if dd_n is None or med_n is None else (
        med_n / dd_n if dd_n > 0 else (math.inf if med_n > 0 else 0.0))
    s = stats.get("stats", {})
    dsr = (s.get("dsr") or {}).get("value")
    pbo = (s.get("pbo") or {}).get("value")
    pol = (s.get("pbo") or {}).get("prob_oos_loss")
    cv = stats.get("cv") or {}
    stab = (stats.get("stability") or {}).get("value")
    hard = [
        _gate("holdout_return", h.get("total_return"), ">", 0.0),
        _gate("holdout_sharpe", h.get("sharpe_annual"), ">", 0.0),
        _gate("holdout_trades", h.get("trades"), ">=", float(holdout_min_trades)),
        _gate("holdout_stop_loss_share", h.get("stop_loss_share"), "<", gates.max_stop_loss_share),
        _gate("cv_net_bps", cv_terms.get("net_bps_pooled"), ">", 0.0),
        _gate("cv_fee_edge_ratio", cv_terms.get("fee_edge_ratio"), "<=", gates.max_fee_edge_ratio),
        _gate("cv_stop_loss_share", cv_terms.get("stop_loss_share"), "<", gates.max_stop_loss_share),
        _gate("mc_drawdown_p95", dd95, "<=", gates.max_drawdown_p95),
        _gate("mc_return_to_drawdown", rtd, ">=", gates.min_return_to_drawdown),
        _gate("mc_prob_ruin", boot.get("prob_ruin"), "<=", gates.max_prob_ruin),
        _gate("cv_positive_folds", cv.get("positive_share"), ">=", gates.min_positive_folds),
        _gate("parameter_stability", stab, ">=", gates.min_stability),
    ]
    evidence = [_gate("dsr", dsr, ">=", gates.min_dsr, hard=False),
                _gate("prob_oos_loss", pol, "<=", gates.max_prob_oos_loss, hard=False)]
    pbo_v, dd_v, hs_v, edge_v = (_num(pbo), _num(dd95), _num(h.get("sharpe_annual")),
                                 _num(cv_terms.get("net_bps_pooled")))
    values = {
        "dsr": _clip01(_num(dsr)),
        "pbo": _clip01(None if pbo_v is None else 1.0 - pbo_v),
        "cv_consistency": _clip01(_num(cv.get("positive_share"))),
        "stability": _clip01(_num(stab)),
        "drawdown": _clip01(None if dd_v is None else 1.0 - dd_v / gates.max_drawdown_p95),
        "holdout": _clip01(None if hs_v is None else hs_v / gates.holdout_sharpe_full),
        "edge": _clip01(None if edge_v is None else edge_v / gates.edge_full_bps),
    }
    comps = {k: {"value": v, "points": v * gates.weights[k], "max_points": gates.weights[k]}
             for k, v in values.items()}
    score = float(sum(c["points"] for c in comps.values()))
    failed_hard = [g["gate"] for g in hard if not g["passed"]]
    capped = [g["gate"] for g in evidence if not g["passed"]]
    if failed_hard:
        tier = "REJECT"
    else:
        tier = tier_of(score, gates)
        if capped and TIERS.index(tier) > TIERS.index("PAPER"):
            tier = "PAPER"
        else:
            capped = []
    return {"gates": hard + evidence, "components": comps, "score": score, "tier": tier,
            "failed": failed_hard + [g["gate"] for g in evidence if not g["passed"]], "capped_by": capped}
