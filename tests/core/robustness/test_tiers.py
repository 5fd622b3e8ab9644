"""Score and tier on crafted reports: hard gates first, then bands, then the evidence cap."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cryptoalgo_core.config.gates import RobustnessGates
from cryptoalgo_core.robustness.tiers import assess, tier_of

G = RobustnessGates()


def strong() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    stats = {
        "stats": {"dsr": {"value": 0.97}, "pbo": {"value": 0.1, "prob_oos_loss": 0.02}, "psr": {"value": 0.99}},
        "monte_carlo": {"bootstrap": {"max_drawdown": {"p50": 0.05, "p95": 0.09, "p99": 0.12}, "prob_ruin": 0.0,
                                      "final_return": {"p5": 0.01, "p50": 0.2, "p95": 0.4}}},
        "cv": {"positive_share": 1.0},
        "stability": {"value": 0.9},
    }
    cv = {"net_bps_pooled": 25.0, "fee_edge_ratio": 0.3, "stop_loss_share": 0.3}
    hold = {"total_return": 0.08, "sharpe_annual": 2.5, "trades": 40, "stop_loss_share": 0.35}
    return stats, cv, hold


def test_a_strong_report_is_full_and_its_score_is_the_sum_of_its_points() -> None:
    s, cv, h = strong()
    out = assess(s, cv, h, 10, G)
    assert out["tier"] == "FULL" and out["failed"] == [] and out["capped_by"] == []
    expect = (0.97 * 25 + 0.9 * 15 + 1.0 * 15 + 0.9 * 10 + (1 - 0.09 / 0.50) * 10 + 1.0 * 15 + 1.0 * 10)
    assert out["score"] == pytest.approx(expect)
    assert all(g["passed"] for g in out["gates"])


@pytest.mark.parametrize("path,value,gate", [
    (("hold", "total_return"), -0.01, "holdout_return"),
    (("hold", "sharpe_annual"), -0.2, "holdout_sharpe"),
    (("hold", "trades"), 9, "holdout_trades"),
    (("hold", "stop_loss_share"), 0.75, "holdout_stop_loss_share"),
    (("cv", "net_bps_pooled"), -0.5, "cv_net_bps"),
    (("cv", "fee_edge_ratio"), 0.95, "cv_fee_edge_ratio"),
    (("cv", "stop_loss_share"), 0.71, "cv_stop_loss_share"),
    (("mc", "p95"), 0.51, "mc_drawdown_p95"),
    (("mcr", "p50"), 0.08, "mc_return_to_drawdown"),  # 0.08 / 0.09 < 1: the median year does not earn the bad case
    (("mc", "prob_ruin"), 0.02, "mc_prob_ruin"),
    (("cvc", "positive_share"), 0.4, "cv_positive_folds"),
    (("stab", "value"), 0.3, "parameter_stability"),
    (("stab", "value"), None, "parameter_stability"),  # not computable = not passed
])
def test_one_failing_hard_gate_rejects_whatever_the_score(path: tuple[str, str], value: Any, gate: str) -> None:
    s, cv, h = strong()
    s = copy.deepcopy(s)
    where = {"hold": h, "cv": cv, "mc": s["monte_carlo"]["bootstrap"], "cvc": s["cv"], "stab": s["stability"],
             "mcr": s["monte_carlo"]["bootstrap"]["final_return"]}
    target = where[path[0]]
    if path == ("mc", "p95"):
        target["max_drawdown"]["p95"] = value
        target["final_return"]["p50"] = 0.6  # keep the return/drawdown ratio passing
    else:
        target[path[1]] = value
    out = assess(s, cv, h, 10, G)
    assert out["tier"] == "REJECT"
    assert out["failed"] == [gate]
    row = next(g for g in out["gates"] if g["gate"] == gate)
    assert row["passed"] is False and row["hard"] is True and row["threshold"]


def test_no_holdout_rejects() -> None:
    s, cv, _h = strong()
    out = assess(s, cv, None, 10, G)
    assert out["tier"] == "REJECT" and "holdout_return" in out["failed"]


@pytest.mark.parametrize("key,field,value,gate", [("dsr", "value", 0.5, "dsr"),
                                                  ("pbo", "prob_oos_loss", 0.3, "prob_oos_loss"),
                                                  ("dsr", "value", None, "dsr")])
def test_weak_evidence_caps_a_high_score_at_paper(key: str, field: str, value: Any, gate: str) -> None:
    s, cv, h = strong()
    s["stats"][key][field] = value
    out = assess(s, cv, h, 10, G)
    assert out["score"] >= G.bands["PILOT"]
    assert out["tier"] == "PAPER" and out["capped_by"] == [gate]


def test_pbo_moves_the_score_not_the_tier_cap() -> None:
    s, cv, h = strong()
    s["stats"]["pbo"]["value"] = 0.6  # a real edge shared by every trial ranks them by chance: PBO ~ 0.5
    out = assess(s, cv, h, 10, G)
    assert out["tier"] == "FULL" and out["components"]["pbo"]["points"] == pytest.approx(0.4 * 15)


def test_bands_pick_the_highest_tier_reached() -> None:
    assert tier_of(0.0, G) == "RESEARCH"
    assert tier_of(39.99, G) == "RESEARCH"
    assert tier_of(40.0, G) == "PAPER"
    assert tier_of(55.0, G) == "PILOT"
    assert tier_of(100.0, G) == "FULL"


def test_bad_gate_config_is_a_named_error() -> None:
    with pytest.raises(ValueError, match="sum to 100"):
        RobustnessGates(weights={**G.weights, "dsr": 30.0})
    with pytest.raises(ValueError, match="bands"):
        RobustnessGates(bands={"RESEARCH": 0, "PAPER": 60, "PILOT": 55, "FULL": 75})
    with pytest.raises(ValueError, match="mc_paths"):
        RobustnessGates(mc_paths=500)
