"""The shaped fold objective: each term against a hand computation of the module docstring's formula, the
ranking it induces (steady edge beats lucky trades and a few-trade Sharpe), rank_candidates and fold_result."""

from __future__ import annotations

import math
import statistics

import pandas as pd
import pytest

from cryptoalgo_core.optimize.objective import TERMS, FoldResult, fold_result, rank_candidates, score
from cryptoalgo_core.optimize.space import ObjectiveSettings

ZERO = {"dispersion_penalty": 0.0, "positive_fold_bonus_bps": 0.0, "few_trades_penalty_bps": 0.0,
        "stop_loss_penalty_bps": 0.0, "fee_edge_penalty_bps": 0.0, "churn_penalty_bps": 0.0}


def only(**kw: float) -> ObjectiveSettings:
    """Every bonus and penalty off except the ones named."""
    return ObjectiveSettings(**{**ZERO, **kw})


def fold(k: int = 0, n: int = 20, net_bps: float = 10.0, sl: int = 0, gross: float | None = None,
         fees: float | None = None, days: float = 30.0, log_return: float = 0.01) -> FoldResult:
    """A fold of ``n`` trades averaging ``net_bps``; gross/fees sums default to a cheap, healthy edge."""
    net_sum = n * net_bps / 1e4
    gross = 2 * abs(net_sum) + 0.01 if gross is None else gross
    fees = 0.1 * gross if fees is None else fees
    return FoldResult(k, n, sl, net_sum, gross, fees, days, log_return)


def test_terms_are_reported() -> None:
    out = score([fold()], ObjectiveSettings())
    assert set(TERMS) <= set(out) and "objective" in out


def test_shrinkage_keeps_half_the_mean_at_min_trades() -> None:
    out = score([fold(n=10, net_bps=20.0)], only(min_trades_per_fold=10))
    assert out["edge"] == pytest.approx(10.0)  # 20 * 10 / (10 + 10)
    assert out["objective"] == pytest.approx(10.0)
    out = score([fold(n=30, net_bps=20.0)], only(min_trades_per_fold=10))
    assert out["edge"] == pytest.approx(15.0)  # 20 * 30 / 40
    assert out["worst_fold_net_bps"] == pytest.approx(20.0)  # the raw fold mean, not the shrunk one
    out = score([fold(n=7, net_bps=20.0)], only(min_trades_per_fold=0))
    assert out["edge"] == pytest.approx(20.0)  # m = 0: no shrinkage


def test_dispersion_is_the_sample_sd_of_the_shrunk_fold_edges() -> None:
    folds = [fold(0, n=10, net_bps=10.0), fold(1, n=10, net_bps=20.0), fold(2, n=10, net_bps=30.0)]
    out = score(folds, only(min_trades_per_fold=10, dispersion_penalty=0.5))
    # shrunk edges 5, 10, 15: sd with ddof 1 = 5 (ddof 0 would be 4.08)
    assert out["edge"] == pytest.approx(10.0)
    assert out["dispersion"] == pytest.approx(0.5 * 5.0)
    assert out["objective"] == pytest.approx(10.0 - 2.5)
    # one fold: no dispersion
    assert score([fold(n=10, net_bps=30.0)], only(min_trades_per_fold=10, dispersion_penalty=0.5))[
        "dispersion"] == 0.0


def test_robustness_bonus_counts_positive_folds() -> None:
    s = only(positive_fold_bonus_bps=4.0, min_trades_per_fold=0)
    folds = [fold(0, net_bps=5.0), fold(1, net_bps=8.0), fold(2, net_bps=1.0), fold(3, net_bps=-3.0)]
    out = score(folds, s)
    assert out["robustness"] == pytest.approx(4.0 * (0.75 - 0.5))
    assert out["positive_folds"] == 3
    assert out["objective"] == pytest.approx((5 + 8 + 1 - 3) / 4 + 1.0)
    # a fold without trades is not a positive fold; all folds negative gives -half the bonus
    assert score([fold(0, net_bps=5.0), fold(1, n=0)], s)["robustness"] == pytest.approx(0.0)
    assert score([fold(0, net_bps=-5.0), fold(1, net_bps=-1.0)], s)["robustness"] == pytest.approx(-2.0)


def test_few_trades_penalty() -> None:
    s = only(few_trades_penalty_bps=20.0, min_trades_per_fold=20)
    out = score([fold(0, n=5, net_bps=0.0), fold(1, n=30, net_bps=0.0)], s)
    # mean(max(0, 1 - 5/20), max(0, 1 - 30/20)) = mean(0.75, 0) = 0.375
    assert out["few_trades"] == pytest.approx(20.0 * 0.375)
    assert out["objective"] == pytest.approx(-7.5)
    assert score([fold(0, n=0), fold(1, n=0)], s)["few_trades"] == pytest.approx(20.0)
    assert score([fold(0, n=20)], s)["few_trades"] == 0.0


def test_stop_loss_penalty_above_the_limit_scaled_by_one_minus_limit() -> None:
    s = only(stop_loss_penalty_bps=15.0, stop_loss_limit=0.6, min_trades_per_fold=0)
    # pooled share (10 + 22) / 40 = 0.8 (the mean of the fold shares would be 0.87):
    # 15 * (0.8 - 0.6) / (1 - 0.6) = 7.5 (dividing by the limit instead: 5.0)
    out = score([fold(0, n=10, net_bps=0.0, sl=10), fold(1, n=30, net_bps=0.0, sl=22)], s)
    assert out["stop_loss_share"] == pytest.approx(0.8)
    assert out["stop_loss"] == pytest.approx(7.5)
    assert out["objective"] == pytest.approx(-7.5)
    # at or below the limit: no penalty
    assert score([fold(n=10, net_bps=0.0, sl=6)], s)["stop_loss"] == 0.0
    assert score([fold(n=10, net_bps=0.0, sl=2)], s)["stop_loss"] == 0.0
    # every exit a stop: the full penalty
    assert score([fold(n=10, net_bps=0.0, sl=10)], s)["stop_loss"] == pytest.approx(15.0)
    # no trades at all: share 0, no penalty
    assert score([fold(n=0)], s)["stop_loss"] == 0.0


def test_fee_edge_penalty() -> None:
    s = only(fee_edge_penalty_bps=10.0, fee_edge_limit=0.6, min_trades_per_fold=0)
    # fees / gross = (0.005 + 0.003) / (0.006 + 0.004) = 0.8: 10 * (0.8 - 0.6) = 2
    out = score([fold(0, net_bps=0.0, gross=0.006, fees=0.005), fold(1, net_bps=0.0, gross=0.004, fees=0.003)], s)
    assert out["fee_edge_ratio"] == pytest.approx(0.8)
    assert out["fee_edge"] == pytest.approx(2.0)
    assert out["objective"] == pytest.approx(-2.0)
    # capped at the full penalty
    assert score([fold(net_bps=0.0, gross=0.004, fees=0.01)], s)["fee_edge"] == pytest.approx(10.0)
    # below the limit: none
    assert score([fold(net_bps=0.0, gross=0.01, fees=0.005)], s)["fee_edge"] == 0.0
    # no gross edge (zero or negative): an infinite ratio and the full penalty
    for gross in (0.0, -0.02):
        out = score([fold(net_bps=-5.0, gross=gross, fees=0.002)], s)
        assert out["fee_edge_ratio"] == math.inf
        assert out["fee_edge"] == pytest.approx(10.0)


def test_churn_penalty() -> None:
    s = only(churn_penalty_bps=5.0, churn_limit_per_day=2.0, min_trades_per_fold=0)
    # 30 trades over 10 days = 3 per day: 5 * (3 - 2) / 2 = 2.5
    out = score([fold(0, n=20, net_bps=0.0, days=6.0), fold(1, n=10, net_bps=0.0, days=4.0)], s)
    assert out["trades_per_day"] == pytest.approx(3.0)
    assert out["churn"] == pytest.approx(2.5)
    assert out["objective"] == pytest.approx(-2.5)
    assert score([fold(n=100, net_bps=0.0, days=10.0)], s)["churn"] == pytest.approx(5.0)  # capped
    assert score([fold(n=20, net_bps=0.0, days=10.0)], s)["churn"] == 0.0  # at the limit


def test_objective_is_the_sum_of_all_terms_with_the_default_settings() -> None:
    s = ObjectiveSettings()  # m 15, dispersion 0.5, bonus 4, few 20, SL .55/15, fee .6/10, churn 2/5
    folds = [
        FoldResult(0, 15, 9, 0.030, 0.06, 0.03, 8.0, 0.02),    # 20 bps
        FoldResult(1, 5, 4, -0.005, 0.01, 0.01, 8.0, -0.01),   # -10 bps
        FoldResult(2, 30, 20, 0.015, 0.03, 0.03, 8.0, 0.005),  # 5 bps
    ]
    shrunk = [20 * 15 / 30, -10 * 5 / 20, 5 * 30 / 45]  # 10, -2.5, 3.333
    edge = sum(shrunk) / 3
    dispersion = 0.5 * statistics.stdev(shrunk)
    robustness = 4.0 * (2 / 3 - 0.5)
    few_trades = 20.0 * (0 + (1 - 5 / 15) + 0) / 3
    stop_loss = 15.0 * (33 / 50 - 0.55) / (1 - 0.55)
    fee_edge = 10.0 * (0.07 / 0.10 - 0.6)
    churn = 5.0 * (50 / 24 - 2.0) / 2.0
    out = score(folds, s)
    expected = {"edge": edge, "dispersion": dispersion, "robustness": robustness, "few_trades": few_trades,
                "stop_loss": stop_loss, "fee_edge": fee_edge, "churn": churn}
    for k, v in expected.items():
        assert out[k] == pytest.approx(v), k
    assert out["objective"] == pytest.approx(
        edge - dispersion + robustness - few_trades - stop_loss - fee_edge - churn)
    assert out["objective"] == pytest.approx(-8.16898, abs=1e-4)
    assert (out["folds"], out["trades"], out["positive_folds"]) == (3, 50, 2)
    assert out["worst_fold_net_bps"] == pytest.approx(-10.0)
    assert out["net_bps_pooled"] == pytest.approx(0.04 / 50 * 1e4)
    assert out["stop_loss_share"] == pytest.approx(0.66)
    assert out["fee_edge_ratio"] == pytest.approx(0.7)
    assert out["trades_per_day"] == pytest.approx(50 / 24)
    assert out["fold_return_sharpe"] == pytest.approx(statistics.mean([0.02, -0.01, 0.005])
                                                      / statistics.stdev([0.02, -0.01, 0.005]))


def test_score_of_no_folds_raises() -> None:
    with pytest.raises(ValueError, match="at least one fold"):
        score([], ObjectiveSettings())


def test_one_fold_has_no_fold_sharpe() -> None:
    assert math.isnan(score([fold()], ObjectiveSettings())["fold_return_sharpe"])


# ---------------------------------------------------------------- the ranking it induces

S = ObjectiveSettings()


def steady() -> list[FoldResult]:
    """Many trades, a modest positive net edge in every fold; fold returns noisy."""
    rets = [0.04, -0.01, 0.03, 0.0, 0.02]
    return [fold(k, n=40, net_bps=8.0, sl=12, gross=0.064, fees=0.02, days=30.0, log_return=r)
            for k, r in enumerate(rets)]


def test_steady_edge_beats_three_lucky_trades() -> None:
    lucky = [fold(0, n=3, net_bps=400.0, sl=0, gross=0.13, fees=0.003, days=30.0, log_return=0.12)] + [
        fold(k, n=0, net_bps=0.0, gross=0.0, fees=0.0, days=30.0, log_return=0.0) for k in range(1, 5)]
    a, b = score(steady(), S), score(lucky, S)
    assert b["net_bps_pooled"] == pytest.approx(400.0) and a["net_bps_pooled"] == pytest.approx(8.0)
    # steady: edge 8 * 40 / 55, no dispersion, all folds positive, nothing else
    assert a["objective"] == pytest.approx(8 * 40 / 55 + 4.0 * 0.5)
    lucky_edge = [400 * 3 / 18, 0, 0, 0, 0]
    assert b["objective"] == pytest.approx(
        sum(lucky_edge) / 5 - 0.5 * statistics.stdev(lucky_edge) + 4.0 * (0.2 - 0.5)
        - 20.0 * (0.8 + 1 + 1 + 1 + 1) / 5)
    assert a["objective"] > 0 > b["objective"]
    ranked = rank_candidates([{"number": 0, "objective": b["objective"]},
                              {"number": 1, "objective": a["objective"]}], 2)
    assert [r["number"] for r in ranked] == [1, 0]


def test_three_lucky_trades_in_every_fold_still_lose() -> None:
    lucky = [fold(k, n=3, net_bps=100.0, gross=0.033, fees=0.003, log_return=0.03) for k in range(5)]
    b = score(lucky, S)
    assert b["objective"] == pytest.approx(100 * 3 / 18 + 2.0 - 20.0 * (1 - 3 / 15))
    assert score(steady(), S)["objective"] > b["objective"]


def test_high_sharpe_with_few_trades_does_not_win() -> None:
    smooth = [fold(k, n=4, net_bps=30.0, gross=0.014, fees=0.002, log_return=0.012 + 0.0001 * k)
              for k in range(5)]
    a, h = score(steady(), S), score(smooth, S)
    assert h["fold_return_sharpe"] > 10 * a["fold_return_sharpe"] > 0
    assert h["objective"] == pytest.approx(30 * 4 / 19 + 2.0 - 20.0 * (1 - 4 / 15))
    assert h["objective"] < a["objective"]
    rows = [{"number": 0, "objective": h["objective"]}, {"number": 1, "objective": a["objective"]}]
    assert rank_candidates(rows, 1)[0]["number"] == 1


# ---------------------------------------------------------------- rank_candidates


def test_rank_candidates_ties_and_nan() -> None:
    rows = [
        {"number": 3, "objective": 1.0},
        {"number": 1, "objective": 1.0},
        {"number": 2, "objective": float("nan")},
        {"number": 0, "objective": 2.0},
        {"number": 5, "objective": None},
        {"number": 4, "objective": -3.0},
    ]
    assert [r["number"] for r in rank_candidates(rows, 10)] == [0, 1, 3, 4, 2, 5]
    assert [r["number"] for r in rank_candidates(rows, 2)] == [0, 1]
    assert rank_candidates([], 3) == []
    assert [r["number"] for r in rank_candidates([{"number": 9, "objective": float("nan")},
                                                  {"number": 8, "objective": -1e9}], 2)] == [8, 9]


# ---------------------------------------------------------------- fold_result


def test_fold_result_from_a_trades_frame() -> None:
    trades = pd.DataFrame({
        "net": [0.010, -0.005, 0.002, 0.001],
        "gross": [0.012, -0.003, 0.004, 0.003],
        "fees": [0.001, 0.001, 0.001, 0.0015],
        "exit_reason": ["take_profit", "stop_loss", "stop_loss", "time"],
    })
    f = fold_result(2, trades, days=30, log_return=0.0075)
    assert (f.fold, f.trades, f.stop_losses) == (2, 4, 2)
    assert f.net_sum == pytest.approx(0.008)
    assert f.gross_sum == pytest.approx(0.016)
    assert f.fees_sum == pytest.approx(0.0045)
    assert (f.days, f.log_return) == (30.0, 0.0075)
    assert f.net_bps == pytest.approx(20.0)  # 0.008 / 4 * 1e4
    assert f.as_dict()["net_bps"] == pytest.approx(20.0) and f.as_dict()["stop_losses"] == 2

    empty = fold_result(0, trades.iloc[:0], days=15, log_return=0.0)
    assert empty == FoldResult(0, 0, 0, 0.0, 0.0, 0.0, 15.0, 0.0)
    assert empty.net_bps == 0.0
