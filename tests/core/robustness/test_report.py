"""Robustness statistics: recomputable from the inputs stored with them; known properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryptoalgo_core.config.gates import RobustnessGates
from cryptoalgo_core.robustness import stats as st
from cryptoalgo_core.robustness.report import (
    cv_consistency,
    regime_buckets,
    robustness_statistics,
    sharpe_stats,
    stability_share,
)


def test_sharpe_stats_are_recomputable_from_their_stored_inputs() -> None:
    rng = np.random.default_rng(5)
    daily = rng.normal(0.002, 0.01, 400)
    trial_sr = rng.normal(0.0, 0.05, 50)
    out = sharpe_stats(daily, 120, trial_sr)
    p, d, m = out["psr"], out["dsr"], out["min_trl"]
    assert p["value"] == pytest.approx(st.probabilistic_sharpe_ratio(p["sr"], p["sr_star"], p["n_obs"], p["skew"],
                                                                     p["kurtosis"]))
    assert d["value"] == pytest.approx(st.deflated_sharpe_ratio(d["sr"], d["n_obs"], d["skew"], d["kurtosis"],
                                                                d["n_trials"], d["var_trials_sr"]))
    assert d["var_trials_sr"] == pytest.approx(trial_sr.var(ddof=1)) and d["n_trials"] == 120
    assert d["value"] <= p["value"]
    assert m["value"] == pytest.approx(st.min_track_record_length(m["sr"], 0.0, m["skew"], m["kurtosis"], 0.95))
    assert m["enough"] == (m["available"] >= m["value"])
    more = sharpe_stats(daily, 5000, trial_sr)
    assert more["dsr"]["value"] < d["value"]  # more trials, higher bar


def test_undefined_series_reports_none_with_a_reason() -> None:
    out = sharpe_stats(np.zeros(30), 10, np.array([0.1, 0.2]))
    assert out["psr"]["value"] is None and "constant" in out["psr"]["reason"]


def test_cv_consistency_and_stability_on_known_values() -> None:
    folds = [{"fold": i, "return": r, "sharpe_daily": s} for i, (r, s) in
             enumerate([(0.02, 0.1), (-0.01, -0.05), (0.03, 0.2), (0.01, 0.04)])]
    cv = cv_consistency(folds)
    assert cv["positive_share"] == 0.75 and cv["worst_fold"] == 1 and cv["worst_return"] == -0.01
    assert cv["sharpe_sd"] == pytest.approx(np.std([0.1, -0.05, 0.2, 0.04], ddof=1))
    s = stability_share(10.0, [9.0, 4.0, 6.0, 5.1, -3.0], 0.5)  # tolerance 5 bps: >= 5 is stable
    assert s["value"] == pytest.approx(3 / 5) and s["tolerance_bps"] == 5.0
    assert stability_share(-0.2, [-0.9, -1.5], 0.5)["tolerance_bps"] == 0.5  # floor of 1 bps x tolerance


def test_regime_buckets_split_trades_by_trend_and_vol() -> None:
    t = pd.DataFrame({"net": [0.01, -0.005, 0.002, 0.004], "trend": ["up", "up", "down", "chop"],
                      "vol": ["low", "high", "low", "low"], "exit_reason": ["take_profit"] * 4})
    rows = {r["bucket"]: r for r in regime_buckets(t)}
    assert rows["trend=up"]["trades"] == 2 and rows["trend=up"]["net_bps"] == pytest.approx(25.0)
    assert rows["vol=low"]["win_rate"] == 1.0 and rows["vol=high"]["win_rate"] == 0.0


def test_statistics_drop_constant_trials_from_pbo_and_are_seeded() -> None:
    rng = np.random.default_rng(1)
    mat = rng.normal(0, 0.01, (64, 8))
    mat[:, 3] = 0.0  # a trial that never traded
    trades = pd.DataFrame({"net": rng.normal(0.001, 0.01, 80), "exit_reason": ["stop_loss", "take_profit"] * 40})
    g = RobustnessGates()
    kw = dict(daily=mat[:, 0], trade_returns=trades["net"].to_numpy(), folds=[], trades=trades,
              trial_matrix=mat, n_trials=50, neighbour_objectives=[1.0, 2.0], chosen_objective=2.0, gates=g)
    a = robustness_statistics(**kw, mode="screen")
    b = robustness_statistics(**kw, mode="screen")
    assert a == b
    assert a["stats"]["pbo"]["n_trials"] == 7 and a["stats"]["pbo"]["dropped_constant"] == 1
    assert a["monte_carlo"]["bootstrap"]["n_paths"] == g.screen_mc_paths
    assert robustness_statistics(**kw, mode="full")["monte_carlo"]["reshuffle"]["n_paths"] == g.mc_paths
    assert a["exit_reasons"] == {"stop_loss": 40, "take_profit": 40}
    with pytest.raises(ValueError, match="mode"):
        robustness_statistics(**kw, mode="fast")
