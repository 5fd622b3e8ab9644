"""The holdout gate on crafted evaluate_holdout results, and holdout_metrics on a constructed equity curve."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cryptoalgo_core.checks import Severity
from cryptoalgo_core.optimize.holdout import holdout_gate, holdout_metrics
from cryptoalgo_core.optimize.space import HoldoutGateSettings

GATE = HoldoutGateSettings(min_trades=10, max_stop_loss_share=0.7)
CONDITIONS = ["holdout_return", "holdout_sharpe", "holdout_trades", "stop_loss_share", "fee_edge_ratio"]


def metrics(**kw: Any) -> dict[str, Any]:
    """holdout_metrics-shaped figures of a healthy candidate, with ``kw`` replacing some."""
    base = {"trades": 40, "total_return": 0.06, "sharpe_daily": 0.08, "sharpe_annual": 1.5, "max_drawdown": 0.04,
            "stop_loss_share": 0.3, "net_bps": 12.0, "gross_bps": 30.0, "fees_bps": 12.0, "fee_edge_ratio": 0.4}
    return {**base, **kw}


def result(*candidates: dict[str, Any], baseline: dict[str, Any] | None = None, days: float = 180.0) -> dict[str, Any]:
    rows = [{"number": 10 + i, "objective": 5.0 - i, "params": {"max_depth": 2}, **c}
            for i, c in enumerate(candidates)]
    return {"holdout_start": 0, "end": int(days * 86_400_000), "days": days,
            "baseline": baseline if baseline is not None else metrics(fee_edge_ratio=0.6),
            "candidates": rows, "chosen": rows[0]["number"] if rows else None, "evaluations": len(rows) + 1}


def conditions(outcome: Any) -> dict[str, dict[str, Any]]:
    rows = outcome.metadata["conditions"]
    assert [r["condition"] for r in rows] == CONDITIONS
    return {r["condition"]: r for r in rows}


def test_a_healthy_candidate_passes() -> None:
    out = holdout_gate(result(metrics()), GATE, required=True)
    assert out.passed is True
    assert out.name == "holdout_gate"
    assert out.metadata["required"] is True
    c = conditions(out)
    assert all(r["passed"] is True for r in c.values())
    assert c["holdout_return"] == {"condition": "holdout_return", "value": 0.06, "threshold": "> 0", "passed": True}
    assert c["holdout_trades"]["value"] == 40 and c["holdout_trades"]["threshold"] == ">= 10"
    assert c["stop_loss_share"]["threshold"] == "< 0.7"
    assert c["fee_edge_ratio"]["value"] == 0.4 and c["fee_edge_ratio"]["threshold"] == "< baseline 0.6"
    assert out.description == "trial 10 on the 180-day holdout: all conditions pass"


@pytest.mark.parametrize("required, severity", [(True, Severity.ERROR), (False, Severity.WARN)])
def test_a_failing_candidate_is_blocked_with_every_condition(required: bool, severity: Severity) -> None:
    bad = metrics(trades=6, total_return=-0.03, sharpe_annual=-0.8, stop_loss_share=0.8, fee_edge_ratio=0.9)
    out = holdout_gate(result(bad), GATE, required=required)
    assert out.passed is False
    assert out.severity == severity
    assert out.metadata["required"] is required
    c = conditions(out)
    assert c == {
        "holdout_return": {"condition": "holdout_return", "value": -0.03, "threshold": "> 0", "passed": False},
        "holdout_sharpe": {"condition": "holdout_sharpe", "value": -0.8, "threshold": "> 0", "passed": False},
        "holdout_trades": {"condition": "holdout_trades", "value": 6, "threshold": ">= 10", "passed": False},
        "stop_loss_share": {"condition": "stop_loss_share", "value": 0.8, "threshold": "< 0.7", "passed": False},
        "fee_edge_ratio": {"condition": "fee_edge_ratio", "value": 0.9, "threshold": "< baseline 0.6",
                           "passed": False},
    }
    for name in CONDITIONS:
        assert name in out.description
    assert out.description.startswith("trial 10 on the 180-day holdout: fails ")


@pytest.mark.parametrize("field, value, failing", [
    ("total_return", 0.0, "holdout_return"),
    ("sharpe_annual", float("nan"), "holdout_sharpe"),
    ("trades", 9, "holdout_trades"),
    ("stop_loss_share", 0.7, "stop_loss_share"),
    ("fee_edge_ratio", 0.6, "fee_edge_ratio"),
])
def test_each_condition_alone_fails_the_gate(field: str, value: Any, failing: str) -> None:
    out = holdout_gate(result(metrics(**{field: value})), GATE, required=True)
    assert out.passed is False
    assert [n for n, r in conditions(out).items() if not r["passed"]] == [failing]


def test_the_boundaries_that_pass() -> None:
    out = holdout_gate(result(metrics(trades=10, stop_loss_share=0.69)), GATE, required=True)
    assert out.passed is True


def test_the_gate_judges_the_chosen_candidate_only() -> None:
    """The first candidate (the study's best) is judged; a better holdout elsewhere never rescues it."""
    out = holdout_gate(result(metrics(total_return=-0.01), metrics(total_return=0.3)), GATE, required=True)
    assert out.passed is False
    assert out.description.startswith("trial 10 ")
    out = holdout_gate(result(metrics(), metrics(total_return=-0.5)), GATE, required=True)
    assert out.passed is True


@pytest.mark.parametrize("cand, base, improved, value, threshold", [
    (0.9, math.inf, True, 0.9, "< baseline n/a"),        # baseline has no gross edge
    (0.9, float("nan"), True, 0.9, "< baseline n/a"),    # baseline made no trades
    (math.inf, 0.5, False, None, "< baseline 0.5"),       # candidate has no gross edge
    (math.inf, math.inf, False, None, "< baseline n/a"),
    (float("nan"), 0.5, False, None, "< baseline 0.5"),   # candidate made no trades
    (0.45, 0.5, True, 0.45, "< baseline 0.5"),
    (0.55, 0.5, False, 0.55, "< baseline 0.5"),
])
def test_fee_edge_improved_rules(cand: float, base: float, improved: bool, value: Any, threshold: str) -> None:
    out = holdout_gate(result(metrics(fee_edge_ratio=cand), baseline=metrics(fee_edge_ratio=base)), GATE, True)
    row = conditions(out)["fee_edge_ratio"]
    assert (row["passed"], row["value"], row["threshold"]) == (improved, value, threshold)
    assert out.passed is improved  # every other condition passes


@pytest.mark.parametrize("required, severity", [(True, Severity.ERROR), (False, Severity.WARN)])
def test_no_candidate_fails(required: bool, severity: Severity) -> None:
    out = holdout_gate(result(), GATE, required=required)
    assert out.passed is False
    assert out.severity == severity
    assert out.metadata["conditions"] == []
    assert "no candidate" in out.description


def test_gate_settings_from_the_preset_are_used() -> None:
    strict = HoldoutGateSettings(min_trades=50, max_stop_loss_share=0.25)
    c = conditions(holdout_gate(result(metrics()), strict, required=True))
    assert c["holdout_trades"]["threshold"] == ">= 50" and c["holdout_trades"]["passed"] is False
    assert c["stop_loss_share"]["threshold"] == "< 0.25" and c["stop_loss_share"]["passed"] is False


# ---------------------------------------------------------------- holdout_metrics


def _trades(n: int) -> pd.DataFrame:
    data = {
        "gross": [0.012, -0.004, 0.006, 0.002],
        "fees": [0.001, 0.001, 0.001, 0.001],
        "slippage": [0.0005, 0.0005, 0.0005, 0.0005],
        "funding": [0.0001, 0.0, 0.0002, 0.0001],
        "exit_reason": ["take_profit", "stop_loss", "time", "take_profit"],
    }
    df = pd.DataFrame(data).iloc[:n].copy()
    df["net"] = df["gross"] - df["fees"] - df["slippage"] - df["funding"]
    df["size"] = 0.5
    return df


def test_holdout_metrics_on_two_days() -> None:
    eq = np.ones(48)
    eq[10] = 1.05          # the peak
    eq[15] = 0.945         # 10% below it: the max drawdown
    eq[23] = 1.02          # end of day 1
    eq[30:47] = 1.0
    eq[47] = 0.99          # end of day 2
    log_ret = math.log(0.99)
    m = holdout_metrics(_trades(4), eq, log_ret)
    assert m["trades"] == 4
    assert m["total_return"] == pytest.approx(math.exp(log_ret) - 1) and m["total_return"] == pytest.approx(-0.01)
    daily = [math.log(1.02), math.log(0.99 / 1.02)]
    sd = abs(daily[0] - daily[1]) / math.sqrt(2)  # ddof 1 of two values
    assert m["sharpe_daily"] == pytest.approx((daily[0] + daily[1]) / 2 / sd)
    assert m["sharpe_annual"] == pytest.approx(m["sharpe_daily"] * math.sqrt(365))
    assert m["max_drawdown"] == pytest.approx(0.1)
    assert m["stop_loss_share"] == pytest.approx(0.25)
    assert m["gross_bps"] == pytest.approx(40.0)   # mean 0.004
    assert m["fees_bps"] == pytest.approx(10.0)
    assert m["net_bps"] == pytest.approx(40.0 - 10.0 - 5.0 - 1.0)
    assert m["fee_edge_ratio"] == pytest.approx(0.25)


def test_holdout_metrics_total_return_follows_the_log_return() -> None:
    eq = np.linspace(1.0, 1.1, 72)
    m = holdout_metrics(_trades(2), eq, 0.0953)
    assert m["total_return"] == pytest.approx(math.expm1(0.0953))
    assert m["stop_loss_share"] == pytest.approx(0.5)
    assert m["max_drawdown"] == 0.0
    assert holdout_metrics(_trades(2), eq, float("-inf"))["total_return"] == -1.0  # ruin


def test_holdout_metrics_without_trades_or_days() -> None:
    m = holdout_metrics(_trades(0), np.ones(30), 0.0)  # one day: no daily Sharpe
    assert m["trades"] == 0 and m["total_return"] == 0.0 and m["stop_loss_share"] == 0.0
    assert math.isnan(m["sharpe_daily"]) and math.isnan(m["sharpe_annual"])
    assert math.isnan(m["fee_edge_ratio"]) and m["net_bps"] == 0.0
    # no trades: a NaN fee/edge ratio fails the gate's fee/edge condition (and the trade count)
    c = conditions(holdout_gate(result(m), GATE, required=False))
    assert c["fee_edge_ratio"]["passed"] is False and c["fee_edge_ratio"]["value"] is None
    assert c["holdout_trades"]["passed"] is False
    empty = holdout_metrics(_trades(0), np.array([]), 0.0)
    assert empty["max_drawdown"] == 0.0 and math.isnan(empty["sharpe_daily"])


def test_holdout_metrics_feed_the_gate() -> None:
    eq = np.r_[np.linspace(1.0, 1.01, 24), np.linspace(1.01, 1.03, 24), np.linspace(1.03, 1.04, 24)]
    m = holdout_metrics(_trades(4), eq, math.log(1.04))
    assert m["sharpe_annual"] > 0 and m["total_return"] == pytest.approx(0.04)
    gate = HoldoutGateSettings(min_trades=3, max_stop_loss_share=0.5)
    out = holdout_gate(result(m, baseline={**m, "fee_edge_ratio": 0.5}), gate, required=True)
    assert out.passed is True, out.description
