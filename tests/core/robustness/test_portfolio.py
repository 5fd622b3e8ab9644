"""Portfolio readiness on constructed series whose answer is known by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from cryptoalgo_core.config.gates import PortfolioGates
from cryptoalgo_core.robustness.portfolio import (
    portfolio_readiness,
    portfolio_weights,
    risk_contributions,
)

CONDITIONS = ["coins", "max_pair_correlation", "basket_drawdown", "correlated_drawdown_share",
              "exposure_overlap", "max_risk_share"]


def days(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC")


def walsh(n: int, k: int) -> np.ndarray:
    """+-1 sequence of period 2**(k+1); distinct k are exactly orthogonal with mean 0 when n is a multiple
    of 2**(k+1) for the largest k."""
    return np.where((np.arange(n) // 2 ** k) % 2 == 0, 1.0, -1.0)


def normal_frame(n: int, coins: list[str], seed: int, mu: float = 0.001, sd: float = 0.005) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(mu, sd, size=(n, len(coins))), index=days(n), columns=coins)


def cond(result: dict, name: str) -> dict:
    return next(c for c in result["conditions"] if c["condition"] == name)


# ---------------------------------------------------------------------------------------------- weights/RC
def test_risk_contributions_known_diagonal_covariance() -> None:
    n = 64
    frame = pd.DataFrame({"A": 0.03 * walsh(n, 0), "B": 0.01 * walsh(n, 1)}, index=days(n))
    assert abs(frame.cov().loc["A", "B"]) < 1e-15
    rc = risk_contributions(frame, {"A": 0.5, "B": 0.5})
    assert rc == pytest.approx({"A": 0.9, "B": 0.1}, abs=1e-12)
    assert rc["A"] > PortfolioGates().max_risk_share  # concentrated
    rc_iv = risk_contributions(frame, portfolio_weights(frame, "inverse_vol"))
    assert rc_iv == pytest.approx({"A": 0.5, "B": 0.5}, abs=1e-12)


def test_equal_risk_is_inverse_vol_on_diagonal_covariance() -> None:
    n = 64
    frame = pd.DataFrame({"A": 0.03 * walsh(n, 0), "B": 0.01 * walsh(n, 1), "C": 0.02 * walsh(n, 2)},
                         index=days(n))
    erc = portfolio_weights(frame, "equal_risk")
    iv = portfolio_weights(frame, "inverse_vol")
    assert erc == pytest.approx(iv, abs=1e-9)
    assert iv == pytest.approx({"A": 2 / 11, "B": 6 / 11, "C": 3 / 11}, abs=1e-12)
    # independent large sample: the sample covariance is only nearly diagonal
    rng = np.random.default_rng(7)
    big = pd.DataFrame(rng.normal(0, 1, size=(20_000, 3)) * [0.01, 0.02, 0.05], columns=["X", "Y", "Z"])
    assert portfolio_weights(big, "equal_risk") == pytest.approx(portfolio_weights(big, "inverse_vol"), abs=0.01)


def test_equal_risk_equalises_contributions_on_correlated_assets() -> None:
    rng = np.random.default_rng(11)
    z = rng.normal(0, 1, size=(500, 3))
    x = np.column_stack([z[:, 0], 0.8 * z[:, 0] + 0.6 * z[:, 1], -0.3 * z[:, 0] + 0.95 * z[:, 2]])
    frame = pd.DataFrame(x * [0.01, 0.03, 0.02], index=days(500), columns=["A", "B", "C"])
    w = portfolio_weights(frame, "equal_risk")
    assert sum(w.values()) == pytest.approx(1.0, abs=1e-12)
    assert all(v > 0 for v in w.values())
    rc = risk_contributions(frame, w)
    assert max(abs(v - 1 / 3) for v in rc.values()) < 1e-6
    iv_rc = risk_contributions(frame, portfolio_weights(frame, "inverse_vol"))
    assert max(abs(v - 1 / 3) for v in iv_rc.values()) > 0.02  # the correlation makes inverse-vol unequal


def test_zero_variance_coin_is_named() -> None:
    frame = normal_frame(30, ["A", "B"], seed=1)
    frame["FLAT"] = 0.0
    with pytest.raises(ValueError, match=r"zero-variance.*FLAT"):
        portfolio_weights(frame, "inverse_vol")


# ----------------------------------------------------------------------------------------------- conditions
def test_perfectly_correlated_pair_fails_and_independent_pair_passes() -> None:
    frame = normal_frame(300, ["A", "C"], seed=3)
    frame["B"] = frame["A"] * 1.0
    gates = PortfolioGates(min_coins=2, weighting="inverse_vol")
    bad = portfolio_readiness(frame, ["A", "B"], gates)
    c = cond(bad, "max_pair_correlation")
    assert c["value"] == pytest.approx(1.0) and not c["passed"]
    assert "max_pair_correlation" in bad["failed"] and not bad["passed"]
    assert bad["pairs_over_limit"] == [{"pair": ["A", "B"], "correlation": pytest.approx(1.0)}]
    good = portfolio_readiness(frame, ["A", "C"], gates)
    assert abs(good["correlation"]["A"]["C"]) < 0.15
    assert cond(good, "max_pair_correlation")["passed"] and good["pairs_over_limit"] == []
    assert good["passed"], good["failed"]


def test_risk_concentration_fails_max_risk_share() -> None:
    # B and C hedge each other (corr ~ -0.9), A is independent: inverse-vol leaves ~83 % of the risk on A
    rng = np.random.default_rng(5)
    z = rng.normal(0, 1, size=(400, 3))
    x = np.column_stack([z[:, 0], z[:, 1], -0.9 * z[:, 1] + math.sqrt(1 - 0.81) * z[:, 2]]) * 0.005 + 0.001
    frame = pd.DataFrame(x, index=days(400), columns=["A", "B", "C"])
    iv = portfolio_readiness(frame, ["A", "B", "C"], PortfolioGates(min_coins=3, weighting="inverse_vol"))
    c = cond(iv, "max_risk_share")
    assert c["value"] == pytest.approx(iv["risk_contributions"]["A"])
    assert 0.75 < c["value"] < 0.9 and not c["passed"]
    assert iv["failed"] == ["max_risk_share"] and not iv["passed"]
    erc = portfolio_readiness(frame, ["A", "B", "C"], PortfolioGates(min_coins=3, weighting="equal_risk"))
    assert cond(erc, "max_risk_share")["value"] == pytest.approx(1 / 3, abs=1e-6)
    assert erc["passed"], erc["failed"]


def test_single_great_coin_never_passes_and_empty_basket_is_handled() -> None:
    frame = normal_frame(200, ["A"], seed=2, mu=0.01, sd=0.002)  # superb returns
    res = portfolio_readiness(frame, ["A"], PortfolioGates())
    assert not res["passed"] and res["failed"] == ["coins", "max_risk_share"] and res["basket"] == ["A"]
    assert cond(res, "max_risk_share")["value"] == 1.0  # one coin carries all the risk
    assert res["basket_sharpe_daily"] > 3
    assert [c["condition"] for c in res["conditions"]] == CONDITIONS
    assert cond(res, "exposure_overlap")["note"] == "no exposure data"
    empty = portfolio_readiness(frame, [], PortfolioGates())
    assert empty["passed"] is False and empty["basket"] == [] and empty["weights"] == {}
    assert empty["failed"] == ["coins"] and empty["days"] == 0
    assert [c["condition"] for c in empty["conditions"]] == CONDITIONS
    json.dumps(empty)


def test_basket_drawdown_hand_computed() -> None:
    n = 20
    a = np.zeros(n)
    a[:5] = [0.1, -0.2, 0.05, -0.1, 0.3]  # equity 1.1, 0.88, 0.924, 0.8316, 1.08108 -> dd 1 - 0.8316 / 1.1
    b = np.zeros(n)
    b[:5] = [-0.1, 0.05, 0.02, -0.03, 0.0]  # peak is the start 1.0 -> dd 0.1 on day 1
    frame = pd.DataFrame({"A": a, "B": b}, index=days(n))
    ra = portfolio_readiness(frame, ["A"], PortfolioGates())
    assert ra["basket_drawdown"] == pytest.approx(1 - 0.8316 / 1.1, abs=1e-12)
    assert ra["basket_return"] == pytest.approx(0.08108, abs=1e-12)
    assert ra["weights"] == {"A": 1.0}
    rb = portfolio_readiness(frame, ["B"], PortfolioGates())
    assert rb["basket_drawdown"] == pytest.approx(0.1, abs=1e-12)
    assert cond(ra, "basket_drawdown")["passed"]  # 0.244 <= 0.25
    tight = PortfolioGates(max_basket_drawdown=0.2)
    assert not cond(portfolio_readiness(frame, ["A"], tight), "basket_drawdown")["passed"]
    assert cond(portfolio_readiness(frame, ["B"], tight), "basket_drawdown")["passed"]


def test_correlated_drawdown_windows() -> None:
    n = 40
    a = 0.001 * walsh(n, 0)
    b = 0.001 * walsh(n, 1)
    c = 0.001 * walsh(n, 2)
    a[10], b[10] = -0.2, -0.2  # crash together on day 10 ...
    a[15], b[15] = 0.25, 0.25  # ... and recover on day 15: both deeper than 10 % on days 10..14
    a[20], b[22] = -0.15, -0.15  # A alone from day 20, B joins on day 22; both recover on day 25
    a[25], b[25] = 0.2, 0.2
    frame = pd.DataFrame({"A": a, "B": b, "C": c}, index=days(n))
    res = portfolio_readiness(frame, ["A", "B", "C"], PortfolioGates(min_coins=3))
    idx = frame.index
    assert res["correlated_drawdown_windows"] == [
        {"start": idx[10].isoformat(), "end": idx[14].isoformat(), "days": 5, "coins": ["A", "B"]},
        {"start": idx[22].isoformat(), "end": idx[24].isoformat(), "days": 3, "coins": ["A", "B"]},
    ]
    assert res["correlated_drawdown_share"] == pytest.approx(8 / 40)
    assert not cond(res, "correlated_drawdown_share")["passed"]  # 0.2 > 0.15
    # epoch-ms index: window bounds are ints
    ms = frame.set_axis((idx.asi8 // 1_000_000).astype(np.int64))
    res_ms = portfolio_readiness(ms, ["A", "B", "C"], PortfolioGates(min_coins=3))
    assert res_ms["correlated_drawdown_windows"][0]["start"] == int(ms.index[10])


def test_exposure_overlap_hand_built() -> None:
    rows = [  # A, B, C, D (D is not in the basket)
        (0, 0, 0, 1), (1, 0, 0, 1), (1, 1, 0, 0), (1, -1, 0, 1), (-1, -1, 1, 0),
        (0, 0, 0, 0), (1, 1, 1, 0), (0, -1, 0, -1), (-1, 1, 1, 0), (0, 0, 1, 0),
    ]  # active hours: 1,2,3,4,6,7,8,9 (8); same side by >= 2: 2,4,6,8 (4) -> 0.5
    hours = pd.date_range("2024-01-01", periods=len(rows), freq="h", tz="UTC")
    exposure = pd.DataFrame(rows, index=hours, columns=["A", "B", "C", "D"])
    frame = normal_frame(100, ["A", "B", "C", "D"], seed=9)
    res = portfolio_readiness(frame, ["A", "B", "C"], PortfolioGates(min_coins=3), exposure=exposure)
    assert res["exposure_overlap"] == pytest.approx(0.5)
    assert cond(res, "exposure_overlap")["passed"]
    strict = portfolio_readiness(frame, ["A", "B", "C"], PortfolioGates(min_coins=3, max_exposure_overlap=0.4),
                                 exposure=exposure)
    assert not cond(strict, "exposure_overlap")["passed"] and "exposure_overlap" in strict["failed"]
    # basket A, D: active hours 0,1,2,3,4,6,7,8 (8); both on the same side on hours 1 and 3 -> 2 / 8
    ad = portfolio_readiness(frame, ["A", "D"], PortfolioGates(), exposure=exposure)
    assert ad["exposure_overlap"] == pytest.approx(2 / 8)
    with pytest.raises(ValueError, match="exposure values"):
        portfolio_readiness(frame, ["A", "B"], PortfolioGates(), exposure=exposure * 2)


def test_regime_failures_are_reported_not_gated() -> None:
    frame = normal_frame(100, ["A", "B", "C"], seed=4)
    regimes = {"A": {"trend": 5.0, "chop": -3.0, "crash": -1.0}, "B": {"chop": -2.0, "crash": 4.0},
               "C": {"chop": 1.0, "crash": -8.0}, "X": {"trend": -1.0}}
    res = portfolio_readiness(frame, ["A", "B", "C"], PortfolioGates(min_coins=3), regimes=regimes)
    assert res["regime_failures"] == [{"bucket": "chop", "coins": ["A", "B"]},
                                      {"bucket": "crash", "coins": ["A", "C"]}]
    assert res["passed"], res["failed"]


# --------------------------------------------------------------------------------------------- greedy drop
def test_greedy_drops_one_of_a_near_copy_pair() -> None:
    rng = np.random.default_rng(21)
    z = rng.normal(0, 1, size=(500, 3))
    a = z[:, 0]
    b = 0.99 * z[:, 0] + math.sqrt(1 - 0.99 ** 2) * z[:, 1]
    frame = pd.DataFrame(np.column_stack([a, b, z[:, 2]]) * 0.005 + 0.001, index=days(500), columns=["A", "B", "C"])
    assert frame.corr().loc["A", "B"] > 0.98
    res = portfolio_readiness(frame, ["A", "B", "C"], PortfolioGates(min_coins=2))
    assert len(res["dropped"]) == 1
    drop = res["dropped"][0]
    assert drop["coin"] in ("A", "B")
    assert "max_pair_correlation" in drop["reason"] and "basket passes without it" in drop["reason"]
    other = "B" if drop["coin"] == "A" else "A"
    assert f"with {other}" in drop["reason"]
    assert res["basket"] == [c for c in ["A", "B", "C"] if c != drop["coin"]]
    assert res["passed"] and res["failed"] == []
    assert set(res["weights"]) == set(res["basket"])
    # a basket already at min_coins is never reduced
    res3 = portfolio_readiness(frame, ["A", "B", "C"], PortfolioGates(min_coins=3))
    assert res3["dropped"] == [] and not res3["passed"] and "max_pair_correlation" in res3["failed"]


def test_greedy_drops_sharpe_drag() -> None:
    frame = normal_frame(500, ["A", "B", "C"], seed=8)
    frame["C"] = frame["C"] - 0.003  # a loser that passes every condition but drags the Sharpe
    res = portfolio_readiness(frame, ["A", "B", "C"], PortfolioGates(min_coins=2))
    assert [d["coin"] for d in res["dropped"]] == ["C"]
    assert "Sharpe" in res["dropped"][0]["reason"]
    assert res["basket"] == ["A", "B"] and res["passed"]
    before = portfolio_readiness(frame, ["A", "B", "C"], PortfolioGates(min_coins=3))
    assert res["basket_sharpe_daily"] > before["basket_sharpe_daily"] + 0.005


def test_result_is_plain_json() -> None:
    frame = normal_frame(100, ["A", "B"], seed=6)
    res = portfolio_readiness(frame, ["A", "B"], PortfolioGates())
    text = json.dumps(res)
    assert json.loads(text)["basket"] == ["A", "B"]
    for key in ("basket_drawdown", "basket_sharpe_daily", "basket_sharpe_annual", "basket_return",
                "correlated_drawdown_share"):
        assert type(res[key]) is float
    assert type(res["days"]) is int and res["days"] == 100
    assert res["basket_sharpe_annual"] == pytest.approx(res["basket_sharpe_daily"] * math.sqrt(365))
    assert sum(res["weights"].values()) == pytest.approx(1.0)
    assert sum(res["risk_contributions"].values()) == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------- bad input
def test_bad_input_raises_specific_errors() -> None:
    frame = normal_frame(30, ["A", "B"], seed=0)
    gates = PortfolioGates()
    with pytest.raises(ValueError, match=r"\['ZZZ'\] not in the returns columns"):
        portfolio_readiness(frame, ["A", "ZZZ"], gates)
    inf = frame.copy()
    inf.iloc[3, 1] = np.inf
    with pytest.raises(ValueError, match=r"returns\['B'\] has 1 non-finite value"):
        portfolio_readiness(inf, ["A", "B"], gates)
    short = frame.copy()
    short.iloc[:11, 0] = np.nan  # 19 common days left
    with pytest.raises(ValueError, match=r"only 19 common day"):
        portfolio_readiness(short, ["A", "B"], gates)
    assert portfolio_readiness(short.iloc[1:].fillna(0.0), ["A", "B"], gates)["days"] == 29
    dup = frame.set_axis(list(frame.index[:-1]) + [frame.index[0]])
    with pytest.raises(ValueError, match="duplicate"):
        portfolio_readiness(dup, ["A", "B"], gates)
    with pytest.raises(ValueError, match="sorted"):
        portfolio_readiness(frame.iloc[::-1], ["A", "B"], gates)
