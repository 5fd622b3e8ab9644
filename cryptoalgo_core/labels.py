"""Triple-barrier labels on a full hourly grid (pure; numba kernel for the scan).

Causality
---------
* The **barriers** at row ``t`` use only data known at the close of bar ``t``: ``close[t]`` and the realized
  hourly volatility of the returns ending at ``t`` (closes ``t-window .. t``).
* The **label itself is forward-looking by design**: it is decided by bars ``t+1 .. t+H``. The column ``t1``
  (epoch ms close time of the bar where the outcome was decided) is what downstream cross-validation must use to
  purge / embargo training rows whose outcome overlaps a test window. Never use ``label``, ``target``, ``ret`` or
  ``t1`` as a feature.

Rules (see :func:`triple_barrier`)
----------------------------------
``width = vol_target * sigma_t * sqrt(forward_hours)``, ``upper = close[t] * exp(width)``,
``lower = close[t] * exp(-width)``. Bars ``t+1 .. t+H`` are scanned in order; ``high >= upper`` is an upper touch,
``low <= lower`` a lower touch; when **both** happen in the same bar the **lower** barrier wins (conservative: the
adverse move is assumed to come first, since hourly bars do not tell the intrabar order) — unless the bar OPENED
beyond a barrier: the open is the bar's first price, so that barrier was touched first. The exit price is the
barrier price, or the bar's open when the bar opened beyond the barrier (a gap through it fills at the open). No
touch within ``H`` bars is a vertical-barrier outcome (label 0, exit ``close[t+H]``).

No label (NaN label/target/ret, ``t1 = -1``, ``barrier = ''``) when ``sigma_t`` or ``close[t]`` is NaN, when a
missing bar (NaN high/low/close) is met in the scan before any touch, or when ``t + H`` is beyond the last row —
the last ``H`` rows never get a label even if a touch happened early, so the end of the data is not biased toward
fast (early-touch) outcomes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit

from cryptoalgo_core.timeutil import HOUR_MS

__all__ = [
    "BARRIER_NAMES",
    "LabelParams",
    "realized_vol",
    "triple_barrier",
    "triple_barrier_from_sigma",
]

#: barrier code -> name (code 0 = no label)
BARRIER_NAMES: tuple[str, ...] = ("", "upper", "lower", "vertical")
_NONE, _UPPER, _LOWER, _VERTICAL = 0, 1, 2, 3


@dataclass(frozen=True)
class LabelParams:
    """Triple-barrier parameters.

    ``forward_hours``: vertical barrier ``H`` in bars (>= 1). ``vol_target``: barrier width multiplier ``k > 0``.
    ``vol_window_hours``: number of 1-h returns in the realized-vol window known at ``t``. ``min_vol``: floor on the
    hourly vol (keeps barriers from collapsing onto the close in flat stretches).
    """

    forward_hours: int
    vol_target: float
    vol_window_hours: int = 24
    min_vol: float = 1e-5

    def __post_init__(self) -> None:
        if int(self.forward_hours) != self.forward_hours or self.forward_hours < 1:
            raise ValueError(f"forward_hours must be an integer >= 1, got {self.forward_hours!r}")
        if not (math.isfinite(self.vol_target) and self.vol_target > 0):
            raise ValueError(f"vol_target must be finite and > 0, got {self.vol_target!r}")
        if int(self.vol_window_hours) != self.vol_window_hours or self.vol_window_hours < 2:
            raise ValueError(f"vol_window_hours must be an integer >= 2, got {self.vol_window_hours!r}")
        if not (math.isfinite(self.min_vol) and self.min_vol >= 0):
            raise ValueError(f"min_vol must be finite and >= 0, got {self.min_vol!r}")


# --------------------------------------------------------------------------------------------------- kernels


@njit(cache=True)
def _realized_vol_kernel(close: np.ndarray, window: int) -> np.ndarray:  # pragma: no cover - numba
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
def _barrier_kernel(  # pragma: no cover - numba
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    sigma: np.ndarray,
    horizon: int,
    k: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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


# --------------------------------------------------------------------------------------------------- API


def _f64(name: str, a: np.ndarray, n: int) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be 1-d with {n} rows, got shape {arr.shape}")
    return arr


def _check_grid(ts: np.ndarray) -> np.ndarray:
    t = np.asarray(ts, dtype=np.int64)
    if t.ndim != 1:
        raise ValueError(f"ts must be 1-d, got shape {t.shape}")
    if t.size > 1 and not np.all(np.diff(t) == HOUR_MS):
        bad = int(np.argmax(np.diff(t) != HOUR_MS))
        raise ValueError(
            f"ts must be a full hourly grid (+{HOUR_MS} ms per row); row {bad + 1} steps by "
            f"{int(t[bad + 1] - t[bad])} ms (reindex onto the grid with NaN bars first)"
        )
    return t


def realized_vol(close: np.ndarray, window: int) -> np.ndarray:
    """Hourly realized vol at each ``t``: sample std (ddof=1) of the ``window`` 1-h log returns ending at ``t``.

    Causal: uses ``close[t-window .. t]`` only. NaN for ``t < window`` and whenever any of those returns is
    missing (a NaN, or non-positive, close at ``t'`` or ``t'-1``).
    """
    if int(window) != window or window < 2:
        raise ValueError(f"window must be an integer >= 2, got {window!r}")
    c = np.ascontiguousarray(np.asarray(close, dtype=np.float64))
    if c.ndim != 1:
        raise ValueError(f"close must be 1-d, got shape {c.shape}")
    return _realized_vol_kernel(c, int(window))


def triple_barrier_from_sigma(
    ts: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    sigma: np.ndarray,
    forward_hours: int,
    vol_target: float,
) -> pd.DataFrame:
    """Triple-barrier labels with the per-row hourly ``sigma`` given directly (no floor applied here).

    Same output and rules as :func:`triple_barrier` (which computes ``sigma`` causally and floors it).
    """
    if int(forward_hours) != forward_hours or forward_hours < 1:
        raise ValueError(f"forward_hours must be an integer >= 1, got {forward_hours!r}")
    if not (math.isfinite(vol_target) and vol_target > 0):
        raise ValueError(f"vol_target must be finite and > 0, got {vol_target!r}")
    t = _check_grid(ts)
    n = t.shape[0]
    o, h, lo, c, s = (_f64(nm, a, n) for nm, a in
                      (("open_", open_), ("high", high), ("low", low), ("close", close), ("sigma", sigma)))
    label, ret, exit_idx, code, upper, lower = _barrier_kernel(o, h, lo, c, s, int(forward_hours),
                                                                float(vol_target))
    has = exit_idx >= 0
    t1 = np.full(n, -1, dtype=np.int64)
    t1[has] = t[exit_idx[has]] + HOUR_MS
    target = np.where(np.isnan(label), np.nan, (label == 1.0).astype(np.float64))
    vol = np.where(np.isnan(upper), np.nan, s)
    return pd.DataFrame(
        {
            "ts": t,
            "label": label,
            "target": target,
            "t1": t1,
            "ret": ret,
            "barrier": np.asarray(BARRIER_NAMES, dtype=object)[code],
            "upper": upper,
            "lower": lower,
            "vol": vol,
        }
    )


def triple_barrier(
    ts: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    params: LabelParams,
) -> pd.DataFrame:
    """Triple-barrier labels, one output row per input row (inputs on a full hourly grid, NaN = missing bar).

    Causality: the barriers at ``t`` use only data up to ``t`` (``close[t]`` and
    ``realized_vol(close, vol_window_hours)[t]``, floored at ``min_vol``); the label is forward-looking by design
    (decided by bars ``t+1 .. t+H``) and needs data up to ``t+H`` only — ``t1`` gives the decision time for
    purging.

    Columns: ``ts`` (int64); ``label`` (+1 upper first, -1 lower first — also when both are touched in one bar —,
    0 vertical, NaN no label); ``target`` (1.0 if label == +1 else 0.0, NaN without label); ``t1`` (int64 epoch ms,
    close time of the deciding bar = its ``ts`` + 1 h; -1 without label); ``ret`` (log return from ``close[t]`` to
    the exit: the barrier price, or the open when the bar gapped through the barrier, else ``close[t+H]``);
    ``barrier`` ('upper' | 'lower' | 'vertical' | ''); ``upper``, ``lower``, ``vol`` (barrier prices and the
    floored sigma, filled whenever computable — including the unlabeled last ``H`` rows).
    """
    n = np.asarray(ts).shape[0]
    c = _f64("close", close, n)
    sigma = realized_vol(c, params.vol_window_hours)
    sigma = np.where(np.isnan(sigma), np.nan, np.maximum(sigma, params.min_vol))
    return triple_barrier_from_sigma(ts, open_, high, low, c, sigma, params.forward_hours, params.vol_target)
