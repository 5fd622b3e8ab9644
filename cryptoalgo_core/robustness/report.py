"""One coin's robustness statistics from its research evidence (pure; numbers in, a JSON-able dict out).

Inputs are what :mod:`cryptoalgo_core.robustness.evidence` rebuilds from the study (research data only) plus
the holdout evaluation's result (``holdout.json``, read, never recomputed: the holdout is read once, by that
stage). Every statistic is stored with the inputs it was computed from, so any figure can be recomputed:

* ``monte_carlo``: the chosen candidate's CV trades (per-trade return = size x net, a fraction of equity)
  resampled by ``bootstrap`` (iid, with replacement; each path one ``mc_horizon_days`` of trades at the track's
  trade rate) and ``reshuffle`` (all the track's trades, random order): max-drawdown quantiles, probability of
  ruin (equity ever below ``ruin_floor``), final-return quantiles;
* ``cv``: share of folds with a positive return, the fold Sharpe ratios (daily), their dispersion, worst fold;
* ``psr``: P(true daily Sharpe > 0) of the CV track's daily returns (Bailey & López de Prado 2012);
* ``dsr``: PSR against the expected maximum Sharpe of ``n_trials`` trials with the variance of the study's
  trial Sharpe ratios (2014); ``n_trials`` is the coin's total recorded trial count (every cohort, plus the
  holdout reads), not this study's alone;
* ``min_trl``: the track record (days) needed for PSR >= 0.95 against 0, vs the days available;
* ``pbo``: CSCV over the T x N matrix of complete trials' daily returns, trials ranked by their **mean** daily
  return in each half (a trial that trades rarely is flat over whole blocks, where a Sharpe ratio is undefined;
  on the same days the mean ranks trials by return, which is what a deployment earns); trials that never
  traded (constant columns) are dropped;
* ``stability``: share of random strategy-parameter neighbours whose objective is within
  ``tolerance x max(|chosen|, 1)`` bps of the chosen objective;
* ``regimes``: CV trades by trend and volatility bucket at the signal bar.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from cryptoalgo_core.config.gates import RobustnessGates
from cryptoalgo_core.robustness import stats as st
from cryptoalgo_core.robustness.montecarlo import monte_carlo

__all__ = ["cv_consistency", "regime_buckets", "robustness_statistics", "sharpe_stats", "stability_share"]


def _f(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def sharpe_stats(daily: np.ndarray, n_trials: int, trial_sharpes: np.ndarray) -> dict[str, Any]:
    """PSR, DSR and MinTRL of a daily return series, each with its inputs. Undefined (too short, constant)
    series give value None with the reason."""
    r = np.asarray(daily, float)
    try:
        m = st.sharpe_moments(r)
    except ValueError as exc:
        reason = str(exc)
        out = {k: {"value": None, "reason": reason, "n_obs": int(r.size)} for k in ("psr", "dsr", "min_trl")}
        out["dsr"]["n_trials"] = max(1, int(n_trials))
        return out
    base = {"sr": m["sr"], "sr_annual": m["sr"] * math.sqrt(365), "n_obs": m["n_obs"], "skew": m["skew"],
            "kurtosis": m["kurtosis"]}
    psr = st.probabilistic_sharpe_ratio(m["sr"], 0.0, m["n_obs"], m["skew"], m["kurtosis"])
    ts = np.asarray(trial_sharpes, float)
    ts = ts[np.isfinite(ts)]
    var = float(ts.var(ddof=1)) if ts.size > 1 else 0.0
    n = max(1, int(n_trials))
    dsr_doc: dict[str, Any] = {**base, "n_trials": n, "var_trials_sr": var, "mean_trials_sr": 0.0,
                               "trial_sharpes_used": int(ts.size)}
    if n > 1 and var > 0:
        dsr_doc["sr0"] = st.expected_max_sharpe(0.0, var, n)
        dsr_doc["value"] = st.deflated_sharpe_ratio(m["sr"], m["n_obs"], m["skew"], m["kurtosis"], n, var)
    else:  # one trial, or no spread among them: nothing to deflate by
        dsr_doc["sr0"] = 0.0
        dsr_doc["value"] = psr
    try:
        trl = st.min_track_record_length(m["sr"], 0.0, m["skew"], m["kurtosis"], 0.95) if m["sr"] > 0 else math.inf
    except ValueError:
        trl = math.inf
    return {
        "psr": {**base, "sr_star": 0.0, "value": psr},
        "dsr": dsr_doc,
        "min_trl": {**base, "sr_star": 0.0, "prob": 0.95, "value": _f(trl), "available": m["n_obs"],
                    "enough": bool(math.isfinite(trl) and m["n_obs"] >= trl)},
    }


def cv_consistency(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Share of positive folds, fold Sharpe dispersion and the worst fold (by return)."""
    if not folds:
        return {"positive_share": 0.0, "folds": 0, "sharpe_sd": None, "worst_fold": None, "worst_return": None}
    rets = np.array([f["return"] for f in folds], float)
    shs = np.array([f["sharpe_daily"] for f in folds], float)
    fin = shs[np.isfinite(shs)]
    w = int(np.argmin(rets))
    return {"positive_share": float((rets > 0).mean()), "folds": len(folds),
            "fold_sharpes": [_f(s) for s in shs], "sharpe_mean": _f(fin.mean()) if fin.size else None,
            "sharpe_sd": _f(fin.std(ddof=1)) if fin.size > 1 else None,
            "worst_fold": int(folds[w]["fold"]), "worst_return": float(rets[w]),
            "worst_sharpe": _f(shs[w])}


def stability_share(chosen: float, neighbours: list[float], tolerance: float) -> dict[str, Any]:
    obj = np.asarray(neighbours, float)
    tol = tolerance * max(abs(chosen), 1.0)
    ok = obj >= chosen - tol
    return {"value": float(ok.mean()) if obj.size else None, "neighbours": int(obj.size), "chosen": chosen,
            "tolerance_bps": tol, "objective_p10": _f(np.quantile(obj, 0.1)) if obj.size else None,
            "objective_median": _f(np.median(obj)) if obj.size else None}


def regime_buckets(trades: pd.DataFrame) -> list[dict[str, Any]]:
    """Trades, mean net bps and win rate per trend and per volatility bucket at the signal bar."""
    out = []
    for col in ("trend", "vol"):
        if col not in trades:
            continue
        for bucket, g in trades.groupby(col, sort=True):
            net = g["net"].to_numpy(float)
            out.append({"bucket": f"{col}={bucket}", "trades": int(net.size), "net_bps": float(net.mean() * 1e4),
                        "win_rate": float((net > 0).mean())})
    return out


def _monte_carlo(trade_returns: np.ndarray, paths: int, floor: float, seed: int, track_days: float,
                 horizon_days: int) -> dict[str, Any]:
    """Bootstrap paths of ``horizon_days`` worth of trades (the track's trade rate; at least 2 trades), and
    reshuffles of the whole track (the same trades, other orders)."""
    r = np.asarray(trade_returns, float)
    r = r[np.isfinite(r)]
    if r.size < 2:
        return {"bootstrap": None, "reshuffle": None, "reason": f"{r.size} trade(s): nothing to resample"}
    per_day = r.size / track_days if track_days > 0 else 0.0
    horizon = max(2, int(round(per_day * horizon_days)))
    boot = dict(monte_carlo(r, n_paths=paths, method="bootstrap", seed=seed, ruin_floor=floor, horizon=horizon))
    boot["horizon_days"] = horizon_days
    return {"bootstrap": boot,
            "reshuffle": dict(monte_carlo(r, n_paths=paths, method="reshuffle", seed=seed, ruin_floor=floor))}


def _pbo(matrix: np.ndarray, splits: int) -> dict[str, Any]:
    if matrix.size == 0:
        return {"value": None, "reason": "no complete trials", "n_trials": 0}
    keep = matrix.std(axis=0) > 0
    m = matrix[:, keep]
    t = m.shape[0]
    s = min(splits, t - t % 2) if t >= 4 else 0
    s -= s % 2
    if m.shape[1] < 2 or s < 2:
        return {"value": None, "reason": f"{m.shape[1]} varying trial(s) over {t} days: CSCV needs >= 2 and "
                                         f">= 4 days", "n_trials": int(m.shape[1]), "n_obs": int(t)}
    res = st.pbo_cscv(m, s, metric="mean")
    lam = np.asarray(res["lambdas"], float)
    return {"value": float(res["pbo"]), "prob_oos_loss": float(res["prob_oos_loss"]), "n_splits": s, "metric": "mean",
            "n_trials": int(m.shape[1]), "dropped_constant": int((~keep).sum()), "n_obs": int(t),
            "lambda_median": float(np.median(lam)), "combinations": int(lam.size)}


def robustness_statistics(daily: np.ndarray, trade_returns: np.ndarray, folds: list[dict[str, Any]],
                          trades: pd.DataFrame, trial_matrix: np.ndarray, n_trials: int,
                          neighbour_objectives: list[float], chosen_objective: float, gates: RobustnessGates,
                          mode: str) -> dict[str, Any]:
    """Every statistic of the module docstring. ``mode`` ``full`` or ``screen`` (fewer Monte Carlo paths)."""
    if mode not in ("full", "screen"):
        raise ValueError(f"mode must be full or screen, got {mode!r}")
    paths = gates.mc_paths if mode == "full" else gates.screen_mc_paths
    trial_sr = np.array([_col_sharpe(trial_matrix[:, j]) for j in range(trial_matrix.shape[1])]) \
        if trial_matrix.size else np.empty(0)
    out = sharpe_stats(daily, n_trials, trial_sr)
    out["pbo"] = _pbo(trial_matrix, gates.pbo_splits)
    return {
        "stats": out,
        "monte_carlo": _monte_carlo(trade_returns, paths, gates.ruin_floor, gates.seed, float(np.asarray(daily).size),
                                    gates.mc_horizon_days),
        "cv": cv_consistency(folds),
        "stability": stability_share(chosen_objective, neighbour_objectives, gates.stability_tolerance),
        "regimes": regime_buckets(trades),
        "exit_reasons": {str(k): int(v) for k, v in trades["exit_reason"].value_counts().items()} if len(trades)
        else {},
    }


def _col_sharpe(x: np.ndarray) -> float:
    sd = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return float(x.mean() / sd) if sd > 0 else float("nan")
