"""Triple-barrier labels on a full hourly grid (pure; the numba kernels are in :mod:`.label_kernels`).

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

import numpy as np
import pandas as pd

from cryptoalgo_core.config.coins import LabelParams
from cryptoalgo_core.features import label_kernels as K
from cryptoalgo_core.grid import check_hourly
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


def _f64(name: str, a: np.ndarray, n: int) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be 1-d with {n} rows, got shape {arr.shape}")
    return arr


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
    return K.realized_vol_kernel(c, int(window))


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
    t = check_hourly(ts)
    n = t.shape[0]
    o, h, lo, c, s = (_f64(nm, a, n) for nm, a in
                      (("open_", open_), ("high", high), ("low", low), ("close", close), ("sigma", sigma)))
    label, ret, exit_idx, code, upper, lower = K.barrier_kernel(o, h, lo, c, s, int(forward_hours),
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
