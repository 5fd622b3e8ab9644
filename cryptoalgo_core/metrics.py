"""Performance metrics of an equity curve (pure numpy; the backtest, robustness and the paper book share them).

Conventions
-----------
* An **equity curve** is a 1-d array of account values at consecutive periods (the backtest's: per hourly bar,
  starting from 1.0), all > 0 unless the account is ruined.
* **Per-period returns** are simple returns ``e[t] / e[t-1] - 1`` (:func:`period_returns`) or log returns
  ``log(e[t] / e[t-1])`` (:func:`log_returns`); ``n`` values give ``n - 1`` returns.
* **Sharpe** is ``mean(r) / std(r, ddof)`` per period, with the sample std (``ddof=1``) by default; the annualised
  Sharpe multiplies it by ``sqrt(periods_per_year)`` (hourly bars: ``24 * 365``). No risk-free rate is subtracted.
  NaN when it is undefined: fewer than ``ddof + 1`` returns, a zero or non-finite std.
* **Drawdown** at ``t`` is ``e[t] / peak[t] - 1`` (<= 0) with ``peak`` the running maximum (optionally floored
  at an initial capital); **max drawdown** is its largest magnitude ``max(1 - e / peak)`` as a positive fraction
  (0.25 = a 25 % loss from the peak), 0.0 for an empty curve.
* **Total return** is ``e[-1] / initial - 1``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "annualised_sharpe",
    "drawdown_series",
    "log_returns",
    "max_drawdown",
    "period_returns",
    "running_peak",
    "sharpe",
    "total_return",
    "total_return_from_log",
]


def _curve(equity: np.ndarray) -> np.ndarray:
    eq = np.asarray(equity, dtype=np.float64)
    if eq.ndim != 1:
        raise ValueError(f"equity must be 1-d, got shape {eq.shape}")
    return eq


def period_returns(equity: np.ndarray) -> np.ndarray:
    """Simple returns ``e[1:] / e[:-1] - 1`` (empty for fewer than two values)."""
    eq = _curve(equity)
    return eq[1:] / eq[:-1] - 1.0


def log_returns(equity: np.ndarray) -> np.ndarray:
    """Log returns ``diff(log(e))`` (empty for fewer than two values; ``-inf`` into a ruined, zero equity)."""
    eq = _curve(equity)
    with np.errstate(divide="ignore"):
        return np.diff(np.log(eq))


def sharpe(returns: np.ndarray, ddof: int = 1) -> float:
    """Per-period Sharpe ratio ``mean / std(ddof)``; NaN when fewer than ``ddof + 1`` returns or std is 0 / NaN."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size <= ddof:
        return float("nan")
    with np.errstate(invalid="ignore"):  # an infinite return (ruin) makes the std NaN
        sd = r.std(ddof=ddof)
    if not sd > 0 or not math.isfinite(sd):
        return float("nan")
    return float(r.mean() / sd)


def annualised_sharpe(returns: np.ndarray, periods_per_year: float, ddof: int = 1) -> float:
    """:func:`sharpe` times ``sqrt(periods_per_year)`` (e.g. ``24 * 365`` for hourly returns)."""
    if not periods_per_year > 0:
        raise ValueError(f"periods_per_year must be > 0, got {periods_per_year!r}")
    return sharpe(returns, ddof) * math.sqrt(periods_per_year)


def running_peak(equity: np.ndarray, initial: float | None = None) -> np.ndarray:
    """Running maximum of the curve; with ``initial``, of ``max(e, initial)`` (the peak is at least the capital)."""
    eq = _curve(equity)
    return np.maximum.accumulate(eq if initial is None else np.maximum(eq, initial))


def drawdown_series(equity: np.ndarray, initial: float | None = None) -> np.ndarray:
    """``e / peak - 1`` per period (0 at a new high, negative below it)."""
    eq = _curve(equity)
    return eq / running_peak(eq, initial) - 1.0


def max_drawdown(equity: np.ndarray, initial: float | None = None) -> float:
    """Largest drawdown as a positive fraction, ``max(1 - e / peak)``; 0.0 for an empty curve."""
    eq = _curve(equity)
    if eq.size == 0:
        return 0.0
    return float(np.max(1.0 - eq / running_peak(eq, initial)))


def total_return(equity: np.ndarray, initial: float = 1.0) -> float:
    """``e[-1] / initial - 1`` (0.0 for an empty curve)."""
    eq = _curve(equity)
    return float(eq[-1] / initial - 1.0) if eq.size else 0.0


def total_return_from_log(log_return: float) -> float:
    """Total return of a summed log return: ``exp(log_return) - 1``; -1.0 (ruin) for a non-finite one."""
    final = math.exp(log_return) if math.isfinite(log_return) else 0.0
    return final - 1.0
