"""What the robustness statistics are computed from, rebuilt from a finished study (pure, deterministic).

Everything here is **research data** (before ``holdout_start``): the study's CV folds, re-traded from the
prediction cache the study filled (a complete trial's every fold is cached, so nothing is refit):

* :func:`candidate_track` — the chosen candidate's out-of-sample track over the CV folds: calendar-day returns,
  trades (with the regime at the signal bar), the hourly position side, per-fold figures and a calibration
  table of its predictions against the realised labels;
* :func:`trial_returns` — the T x N matrix of daily returns of the study's complete trials on the same days
  (the input of PBO by CSCV and of the trials' Sharpe variance for the DSR);
* :func:`neighbourhood` — the objective of random strategy-parameter neighbours of the chosen parameters
  (label and model parameters held, so every neighbour reuses the cached predictions).

Days are UTC calendar days: a day's return is the last equity mark of that day over the previous day's last
mark (1.0 before a fold's first bar); each fold trades on its own (flat at its start, closed at its end), like
the study's folds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cryptoalgo_core import metrics
from cryptoalgo_core.backtest.engine import BacktestResult
from cryptoalgo_core.optimize.cache import PredictionCache
from cryptoalgo_core.optimize.evaluate import window_backtest, window_days
from cryptoalgo_core.optimize.objective import fold_result, score
from cryptoalgo_core.optimize.space import MODEL_SECTIONS, PARAMS, ObjectiveSettings, Preset, apply_params
from cryptoalgo_core.optimize.study import StudyData
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS, ms_to_iso

__all__ = ["Track", "calendar_returns", "candidate_track", "daily_returns", "neighbourhood", "trial_returns"]

TREND = {0: "down", 1: "chop", 2: "up"}
VOL = {0: "low", 1: "mid", 2: "high"}


def daily_returns(ts: np.ndarray, equity: np.ndarray) -> pd.DataFrame:
    """``day`` (UTC midnight, ms) and ``ret`` (simple return) of an hourly equity curve starting from 1.0."""
    if ts.size == 0:
        return pd.DataFrame({"day": np.empty(0, np.int64), "ret": np.empty(0)})
    day = (ts // DAY_MS) * DAY_MS
    last = np.r_[np.flatnonzero(day[1:] != day[:-1]), day.size - 1]
    marks = equity[last]
    prev = np.r_[1.0, marks[:-1]]
    return pd.DataFrame({"day": day[last].astype(np.int64), "ret": marks / prev - 1.0})


def calendar_returns(daily: pd.DataFrame) -> pd.Series:
    """One return per calendar day (index ``day``) from a track's per-fold days: a day two folds share (one
    ends, the next starts on it) compounds both parts."""
    return daily.groupby("day")["ret"].apply(lambda r: float(np.prod(1.0 + r.to_numpy(float)) - 1.0))


def _fold_backtests(data: StudyData, params: dict[str, Any], cache: PredictionCache
                    ) -> list[tuple[Any, BacktestResult, pd.DataFrame]]:
    spec = apply_params(data.spec, params)
    out = []
    for f in data.folds:
        pred = data.predictions(spec, f, cache)
        out.append((f, window_backtest(data.market, f.test_start, f.test_end, pred, spec.profile), pred))
    return out


@dataclass
class Track:
    """The chosen candidate's out-of-sample CV track (research data only)."""

    daily: pd.DataFrame  # day, ret, fold
    trades: pd.DataFrame  # the backtest's trade columns + fold, trend, vol
    exposure: pd.DataFrame  # ts (hour), side (-1/0/1: the position held during that hour)
    folds: list[dict[str, Any]]
    terms: dict[str, float]  # the objective and its terms (objective.score) over the folds
    calibration: pd.DataFrame  # predicted, observed, n per probability bin

    @property
    def trade_returns(self) -> np.ndarray:
        """Per-trade return as a fraction of equity (what the engine compounds: size x net)."""
        t = self.trades
        return (t["size"].to_numpy(float) * t["net"].to_numpy(float)) if len(t) else np.empty(0)


def candidate_track(data: StudyData, params: dict[str, Any], cache: PredictionCache, settings: ObjectiveSettings,
                    bins: int = 10) -> Track:
    """Re-trade ``params`` on the study's folds from cached predictions (see the module docstring); ``settings``
    the preset's objective (the track's ``terms`` then equal the study's for that trial)."""
    spec = apply_params(data.spec, params)
    days, trades, sides, folds, results, preds = [], [], [], [], [], []
    feats = data.features.set_index("ts")
    for f, bt, pred in _fold_backtests(data, params, cache):
        d = daily_returns(bt.ts, bt.equity)
        d["fold"] = f.index
        days.append(d)
        t = bt.trades.copy()
        t["fold"] = f.index
        sig = t["entry_ts"].to_numpy(np.int64) - HOUR_MS  # the signal bar: entries fill at the next open
        for col, names in (("trend_bucket", TREND), ("vol_bucket", VOL)):
            vals = feats[col].reindex(sig).to_numpy(float) if col in feats else np.full(sig.size, np.nan)
            t[col.split("_")[0]] = [names.get(int(v), "n/a") if math.isfinite(v) else "n/a" for v in vals]
        trades.append(t)
        # trades never overlap: +side from each entry bar, -side from its exit bar, cumulated over the bars
        step = np.zeros(bt.ts.size + 1, np.int64)
        side_of = t["side"].to_numpy(np.int64)
        np.add.at(step, np.searchsorted(bt.ts, t["entry_ts"].to_numpy(np.int64)), side_of)
        np.add.at(step, np.searchsorted(bt.ts, t["exit_ts"].to_numpy(np.int64)), -side_of)
        sides.append(pd.DataFrame({"ts": bt.ts, "side": np.cumsum(step[:-1]).astype(np.int8)}))
        fr = fold_result(f.index, bt.trades, window_days(f.test_start, f.test_end), bt.log_return)
        results.append(fr)
        rets = d["ret"].to_numpy(float)
        folds.append({"fold": f.index, "start": ms_to_iso(f.test_start), "end": ms_to_iso(f.test_end),
                      "days": round(window_days(f.test_start, f.test_end), 2), "trades": fr.trades,
                      "net_bps": fr.net_bps, "return": metrics.total_return_from_log(bt.log_return),
                      "sharpe_daily": metrics.sharpe(rets),
                      "max_drawdown": metrics.max_drawdown(bt.equity, initial=1.0) if bt.equity.size else 0.0})
        preds.append(pred)
    daily = pd.concat(days, ignore_index=True)
    all_trades = pd.concat(trades, ignore_index=True)
    terms = score(results, settings)
    return Track(daily, all_trades, pd.concat(sides, ignore_index=True), folds, terms,
                 _calibration(data, spec, pd.concat(preds, ignore_index=True), bins))


def _calibration(data: StudyData, spec: Any, pred: pd.DataFrame, bins: int) -> pd.DataFrame:
    """Mean calibrated P(up first) per equal-width bin vs the realised share of up-first labels."""
    fd = data.fold_data(spec.label)
    lab = pd.DataFrame({"ts": fd.ts, "label": fd.label})
    m = pred[["ts", "p_dir"]].merge(lab, on="ts", how="inner").dropna()
    if m.empty:
        return pd.DataFrame(columns=["predicted", "observed", "n"])
    b = np.clip((m["p_dir"].to_numpy(float) * bins).astype(int), 0, bins - 1)
    g = m.assign(bin=b).groupby("bin")
    out = pd.DataFrame({"predicted": g["p_dir"].mean(), "observed": g["label"].mean(), "n": g.size()})
    return out.reset_index(drop=True)


def trial_returns(data: StudyData, trials: list[dict[str, Any]], cache: PredictionCache, max_trials: int
                  ) -> tuple[np.ndarray, list[int]]:
    """Daily returns (T days x N trials) of complete trials on the study's folds. ``trials``: rows with
    ``number`` and ``params``; more than ``max_trials`` are thinned to an even spread over trial numbers (the
    order the study tried them), never to the best ones (PBO must see the losers too)."""
    rows = sorted(trials, key=lambda r: int(r["number"]))
    if len(rows) > max_trials:
        pick = np.unique(np.linspace(0, len(rows) - 1, max_trials).round().astype(int))
        rows = [rows[i] for i in pick]
    cols, numbers = [], []
    for r in rows:
        d = pd.concat([daily_returns(bt.ts, bt.equity) for _f, bt, _p in _fold_backtests(data, r["params"], cache)],
                      ignore_index=True)
        cols.append(d["ret"].to_numpy(float))
        numbers.append(int(r["number"]))
    if not cols:
        return np.empty((0, 0)), []
    return np.column_stack(cols), numbers


def neighbourhood(data: StudyData, preset: Preset, params: dict[str, Any], cache: PredictionCache, n: int,
                  radius: float, seed: int) -> list[dict[str, Any]]:
    """Objectives of ``n`` random neighbours of ``params``: each numeric strategy parameter (entry, exits,
    filters) of the space moved uniformly within +-``radius`` x its range (clipped to the range, ints rounded
    to their step); label, model and categorical parameters kept (cached predictions, no refit)."""
    rng = np.random.default_rng(seed)
    movable = [k for k, r in preset.space.items()
               if PARAMS[k][0] not in MODEL_SECTIONS and not r.categorical and k in params]
    settings = preset.objective
    out = []
    for _ in range(n):
        p = dict(params)
        for k in movable:
            r = preset.space[k]
            lo, hi = float(r.low), float(r.high)  # type: ignore[arg-type]
            v = float(p[k]) + rng.uniform(-radius, radius) * (hi - lo)
            v = min(hi, max(lo, v))
            if PARAMS[k][2] == "int":
                step = int(r.step or 1)
                v = int(round((v - lo) / step) * step + lo)
            p[k] = v
        if "min_vol_24h" in p and "max_vol_24h" in p and p["min_vol_24h"] >= p["max_vol_24h"]:
            p["min_vol_24h"] = params["min_vol_24h"]
        results = [fold_result(f.index, bt.trades, window_days(f.test_start, f.test_end), bt.log_return)
                   for f, bt, _p in _fold_backtests(data, p, cache)]
        out.append({"params": p, "objective": score(results, settings)["objective"]})
    return out
