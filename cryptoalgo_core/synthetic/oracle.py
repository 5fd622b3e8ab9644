"""The planted net Sharpe: what an oracle that KNOWS the planted mechanism could earn after costs.

Detection power of the research loop is reported against this number rather than against raw strengths
(bps per unit driver), because the same strength is worth very different amounts depending on how often
its driver is large, how volatile the coin is and what trading costs.

The oracle, for one coin of a synthetic market ``cfg`` over the bars with open time in ``[start_ms, end_ms)``:

* **Signal.** At the close of bar ``t`` it knows the planted expected log return of bar ``t + 1``,
  ``mu_t = sum_m strength_m * D_m[t]`` in bps: ``1e4 * observables(...)["planted_drift_next"]``, the planted
  part only (the martingale compensation is not part of it: it makes a zero ``mu`` a zero expected SIMPLE
  return, so ``mu`` is the excess expected return). Every driver ``D_m[t]`` is observable at that close.
* **Position.** ``p_t = sign(mu_t)`` if ``|mu_t| >= theta`` else 0 (long or short one unit), decided at the
  close of ``t`` and held over bar ``t + 1``. The oracle starts flat before the first bar of the window and
  is flat after its last bar (``p`` of the last bar is 0: there is no next bar inside the window to hold).
* **P&L per bar** (simple returns, no compounding, one unit of notional):
  ``gross_{t+1} = p_t * (close_{t+1} / close_t - 1)`` (the realised return of ``generate``) and a cost
  ``cost_bps / 2 / 1e4 * |p_t - p_{t-1}|`` per unit of position change, so ``cost_bps`` is the round-trip
  cost (entering and leaving one unit; a flip long -> short pays it once). The change made at the close of
  ``t`` is booked with bar ``t + 1``; the final flattening at the close of the last bar is booked with the
  last bar.
* **Sharpe.** Daily P&L = the sum of the hourly P&L of each UTC day (by bar open time; every UTC day with
  at least one bar in the window counts, idle days as 0). ``sharpe_annual = mean / std(ddof=1) * sqrt(365)``
  of the daily P&L; 0.0 when the standard deviation is 0 (never trades) or there are fewer than 2 days.
* **Threshold.** ``theta`` is chosen from ``thresholds_bps`` as the one with the highest Sharpe (ties: the
  smallest theta). It is chosen IN-SAMPLE, on the same window, so the result is an upper bound of what
  even the oracle could have planned for; use :func:`oracle_performance` with a fixed threshold for an
  honest out-of-sample figure.

Reported (:func:`planted_net_sharpe`, :func:`oracle_performance`):

``sharpe_annual``, ``threshold_bps`` (the theta used), ``days``, ``trades`` and ``trades_per_day`` (a
*trade* is one holding episode: a maximal run of bars with the same nonzero position; a flip ends one and
starts the next), ``gross_bps_per_trade`` / ``net_bps_per_trade`` (total gross / net P&L over the window
divided by the number of trades, in bps of notional; the net one is gross minus ``cost_bps`` per trade;
NaN without trades), ``exposure`` (share of bars with a position) and ``net_bps_per_day`` (mean daily net
P&L). A noise coin (every strength 0) has ``mu = 0 < theta``: it never trades, Sharpe 0.0, 0 trades.

Pure and deterministic (a function of the config only; the market is the cached simulation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cryptoalgo_core.synthetic.config import SyntheticConfig
from cryptoalgo_core.synthetic.simulate import generate, observables
from cryptoalgo_core.timeutil import DAY_MS

__all__ = ["DEFAULT_THRESHOLDS_BPS", "oracle_performance", "planted_net_sharpe"]

DEFAULT_THRESHOLDS_BPS: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0)


def _inputs(
    cfg: SyntheticConfig, coin: str, start_ms: int, end_ms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu in bps for the next bar, simple return of each bar, UTC day index of each bar) over the window."""
    ob = observables(cfg, [coin], start_ms, end_ms)[coin]
    px = generate(cfg, [coin], start_ms, end_ms)[coin].ohlcv
    mu = ob["planted_drift_next"].to_numpy(float) * 1e4
    ret = px["close"].to_numpy(float) / px["open"].to_numpy(float) - 1.0
    day = (px["ts"].to_numpy(np.int64) - cfg.origin_ms) // DAY_MS
    return mu, ret, day


def _evaluate(
    mu: np.ndarray, ret: np.ndarray, day: np.ndarray, theta: float, cost_bps: float
) -> dict[str, float]:
    n = len(mu)
    p = np.where(np.abs(mu) >= theta, np.sign(mu), 0.0)
    if n:
        p[-1] = 0.0  # flat after the window's last bar
    held = np.zeros(n)  # position held over bar s (decided at the close of s - 1)
    held[1:] = p[:-1]
    gross = held * ret
    change = np.abs(np.diff(np.r_[0.0, p]))  # position change at the close of each bar
    cost = np.zeros(n)
    cost[1:] += change[:-1]  # booked with the bar the new position is held over
    if n:
        cost[-1] += change[-1]  # the final flattening, booked with the last bar
    cost *= cost_bps / 2.0 / 1e4
    pnl = gross - cost
    days_idx, inverse = np.unique(day, return_inverse=True)
    daily = np.bincount(inverse, weights=pnl, minlength=len(days_idx))
    n_days = len(days_idx)
    sd = float(daily.std(ddof=1)) if n_days >= 2 else 0.0
    sharpe = float(daily.mean() / sd * math.sqrt(365.0)) if sd > 0 else 0.0
    prev = np.r_[0.0, p[:-1]] if n else p
    trades = int(np.count_nonzero((p != 0) & (p != prev)))  # episode starts (entries and flips)
    g_total, n_total = float(gross.sum()), float(pnl.sum())
    return {
        "sharpe_annual": sharpe,
        "threshold_bps": float(theta),
        "days": float(n_days),
        "trades": float(trades),
        "trades_per_day": trades / n_days if n_days else 0.0,
        "gross_bps_per_trade": g_total / trades * 1e4 if trades else math.nan,
        "net_bps_per_trade": n_total / trades * 1e4 if trades else math.nan,
        "exposure": float(np.count_nonzero(held)) / n if n else 0.0,
        "net_bps_per_day": float(daily.mean()) * 1e4 if n_days else 0.0,
    }


def _check(cost_bps: float, thresholds: Sequence[float]) -> None:
    if not (math.isfinite(cost_bps) and cost_bps >= 0):
        raise ValueError(f"cost_bps must be a finite number >= 0, got {cost_bps!r}")
    if not thresholds or not all(math.isfinite(t) and t > 0 for t in thresholds):
        raise ValueError(f"thresholds must be finite numbers > 0, got {tuple(thresholds)!r}")


def oracle_performance(cfg: SyntheticConfig, coin: str, start_ms: int, end_ms: int, threshold_bps: float,
                       cost_bps: float = 10.0) -> dict[str, float]:
    """The oracle's performance with a FIXED threshold ``threshold_bps`` (see the module docstring)."""
    _check(cost_bps, (threshold_bps,))
    return _evaluate(*_inputs(cfg, coin, start_ms, end_ms), float(threshold_bps), float(cost_bps))


def planted_net_sharpe(cfg: SyntheticConfig, coin: str, start_ms: int, end_ms: int, cost_bps: float = 10.0,
                       thresholds_bps: tuple[float, ...] = DEFAULT_THRESHOLDS_BPS) -> dict[str, float]:
    """The planted net Sharpe of ``coin`` over ``[start_ms, end_ms)``: the oracle's annualised daily Sharpe after
    ``cost_bps`` round-trip costs at the best threshold of ``thresholds_bps`` (chosen in-sample: an upper
    bound). Keys: see the module docstring. A noise coin gives ``sharpe_annual`` 0.0 and 0 trades."""
    _check(cost_bps, thresholds_bps)
    inputs = _inputs(cfg, coin, start_ms, end_ms)
    best: dict[str, float] | None = None
    for theta in sorted(float(t) for t in thresholds_bps):
        res = _evaluate(*inputs, theta, float(cost_bps))
        if best is None or res["sharpe_annual"] > best["sharpe_annual"]:
            best = res
    assert best is not None
    return best
