"""Numba kernels of the triple-barrier labels (arrays in, arrays out). The rules and the Python API are in
:mod:`cryptoalgo_core.features.labels`; callers pass contiguous float64 arrays on a full hourly grid.

Barrier codes in ``code``: 0 no label, 1 upper, 2 lower, 3 vertical (names:
:data:`cryptoalgo_core.features.labels.BARRIER_NAMES`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["barrier_kernel", "realized_vol_kernel"]


@njit(cache=True)
def realized_vol_kernel(close: np.ndarray, window: int) -> np.ndarray:  # pragma: no cover - numba
    """Sample std (ddof=1) of the ``window`` 1-h log returns ending at each ``t``; NaN if any is missing."""
    n = close.shape[0]
    out = np.full(n, np.nan)
    r = np.full(n, np.nan)
    for t in range(1, n):
        a = close[t - 1]
        b = close[t]
        if a > 0.0 and b > 0.0:  # False for NaN
            r[t] = math.log(b / a)
    for t in range(window, n):
        s = 0.0
        ok = True
        for j in range(t - window + 1, t + 1):
            if math.isnan(r[j]):
                ok = False
                break
            s += r[j]
        if not ok:
            continue
        m = s / window
        ss = 0.0
        for j in range(t - window + 1, t + 1):
            d = r[j] - m
            ss += d * d
        out[t] = math.sqrt(ss / (window - 1))
    return out


@njit(cache=True)
def barrier_kernel(  # pragma: no cover - numba
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    sigma: np.ndarray,
    horizon: int,
    k: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scan bars ``t+1 .. t+horizon`` of every row: ``(label, ret, exit_idx, code, upper, lower)``."""
    n = close.shape[0]
    label = np.full(n, np.nan)
    ret = np.full(n, np.nan)
    exit_idx = np.full(n, -1, dtype=np.int64)
    code = np.zeros(n, dtype=np.int8)
    upper = np.full(n, np.nan)
    lower = np.full(n, np.nan)
    sq = math.sqrt(horizon)
    for t in range(n):
        c0 = close[t]
        s = sigma[t]
        if math.isnan(c0) or math.isnan(s) or c0 <= 0.0:
            continue
        w = k * s * sq
        up = c0 * math.exp(w)
        lo = c0 * math.exp(-w)
        upper[t] = up
        lower[t] = lo
        if t + horizon > n - 1:
            continue  # the full horizon is not in the data: never labeled
        for j in range(t + 1, t + horizon + 1):
            h = high[j]
            lw = low[j]
            if math.isnan(h) or math.isnan(lw) or math.isnan(close[j]):
                break  # a gap before any touch: the outcome is unknown
            o = open_[j]
            if o >= up:  # opened beyond the upper barrier: the open is the first price of the bar
                label[t] = 1.0
                ret[t] = math.log(o / c0)
                exit_idx[t] = j
                code[t] = 1
                break
            if lw <= lo:  # lower first, also when both barriers are inside this bar (conservative)
                px = o if o <= lo else lo  # NaN open compares False -> barrier price
                label[t] = -1.0
                ret[t] = math.log(px / c0)
                exit_idx[t] = j
                code[t] = 2
                break
            if h >= up:
                px = o if o >= up else up
                label[t] = 1.0
                ret[t] = math.log(px / c0)
                exit_idx[t] = j
                code[t] = 1
                break
            if j == t + horizon:
                label[t] = 0.0
                ret[t] = math.log(close[j] / c0)
                exit_idx[t] = j
                code[t] = 3
    return label, ret, exit_idx, code, upper, lower
