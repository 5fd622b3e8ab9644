"""Numba kernels of the synthetic market (arrays in, arrays out; only +, -, *, /, sqrt: bit-reproducible).

The model they implement is described in :mod:`cryptoalgo_core.synthetic`; :mod:`.simulate` drives them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["ar1", "correlate", "cumsum_rows", "recursion"]


@njit(cache=True)
def ar1(eps: np.ndarray, phi: float, std: float) -> np.ndarray:  # pragma: no cover - numba
    """Stationary Gaussian AR(1) with given stationary std, driven by N(0,1) eps (column-wise)."""
    out = np.empty_like(eps)
    scale = std * np.sqrt(1.0 - phi * phi)
    for j in range(eps.shape[1]):
        out[0, j] = std * eps[0, j]
        for t in range(1, eps.shape[0]):
            out[t, j] = phi * out[t - 1, j] + scale * eps[t, j]
    return out


@njit(cache=True)
def correlate(low: np.ndarray, z: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    """(L z_t) per row with explicit loops (no BLAS: identical rounding everywhere)."""
    n_t, n = z.shape
    out = np.zeros((n_t, n))
    for t in range(n_t):
        for i in range(n):
            acc = 0.0
            for k in range(i + 1):
                acc += low[i, k] * z[t, k]
            out[t, i] = acc
    return out


@njit(cache=True)
def recursion(  # pragma: no cover - numba
    sig: np.ndarray,
    shock: np.ndarray,
    comp: np.ndarray,
    fund_eps: np.ndarray,
    f_mean: np.ndarray,
    f_std: np.ndarray,
    f_phi: float,
    f_link: float,
    z_window: int,
    z_enter: float,
    z_full: float,
    lead: int,
    lead_sigma: float,
    lead_clip: float,
    win: int,
    er_enter: float,
    er_exit: float,
    sigma_h: np.ndarray,
    s_fr: np.ndarray,
    s_ll: np.ndarray,
    s_rm: np.ndarray,
    vol_pre: np.ndarray,
    vol_abs_coef: float,
    h_win: int,
    h_scale: float,
    h_fast: int,
    h_slow: int,
    h_low: float,
    s_hi: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Sequential state from the origin. Only +,-,*,/,sqrt: bit-reproducible.

    At the close of bar t: settle funding if the close is on the 8 h grid (uses returns of bars
    t-7..t, all closed), update the funding z-score, trend regime and lead return, and set the
    planted drift of bar t+1 from these observables only. `comp` is the martingale compensation of each
    bar's log return (log E[exp(sig * shock)] given the bar's variance state), subtracted so that a zero
    planted drift means E[close_t / close_{t-1}] = 1.

    hidden_interaction (driver ``hdrv``): ``z = sum r / sqrt(sum r^2)`` over the last ``h_win`` bars,
    ``a = (z / h_scale) / sqrt(1 + (z / h_scale)^2)``, times the volume gate ``g`` = 1 if the mean log USD
    volume of the last ``h_fast`` bars exceeds that of the last ``h_slow`` bars, else ``h_low``. The bar's
    log USD volume is ``vol_pre[t, i] + vol_abs_coef * |r[t, i]| / sig[t, i]`` up to a per-coin constant
    (which cancels in the comparison); ``vol_pre`` holds the parts known before the bar's return. The term
    enters ``mu`` only where ``s_hi != 0``, so a zero strength leaves every bit of the path unchanged.
    """
    n_t, n = sig.shape
    r = np.empty((n_t, n))
    mu = np.zeros((n_t, n))
    fz = np.full((n_t, n), np.nan)
    fdrv = np.zeros((n_t, n))
    ldrv = np.zeros((n_t, n))
    r24 = np.full((n_t, n), np.nan)
    er = np.full((n_t, n), np.nan)
    trend = np.zeros((n_t, n))
    mdrv = np.zeros((n_t, n))
    lv = np.empty((n_t, n))
    hz = np.full((n_t, n), np.nan)
    hgate = np.full((n_t, n), np.nan)
    hdrv = np.zeros((n_t, n))
    n_settle = n_t // 8 + 1
    fund = np.empty((n_settle, n))
    state = np.zeros(n)
    cur_z = np.full(n, np.nan)
    cur_f = np.zeros(n)
    innov = np.sqrt(1.0 - f_phi * f_phi)
    link_rest = np.sqrt(1.0 - f_link * f_link)
    for i in range(n):
        fund[0, i] = f_mean[i] + f_std[i] * fund_eps[0, i]
    k = 1
    for t in range(n_t):
        for i in range(n):
            r[t, i] = mu[t, i] + sig[t, i] * shock[t, i] - comp[t, i]
        if (t + 1) % 8 == 0:  # close of bar t is a settlement time
            for i in range(n):
                r8 = 0.0
                for j in range(t - 7, t + 1):
                    r8 += r[j, i]
                x = r8 / (sigma_h[i] * np.sqrt(8.0))
                x = min(max(x, -4.0), 4.0)
                dev = fund[k - 1, i] - f_mean[i]
                fund[k, i] = (
                    f_mean[i] + f_phi * dev + f_std[i] * innov * (f_link * x + link_rest * fund_eps[t, i])
                )
                if k + 1 >= z_window:
                    m = 0.0
                    for j in range(k + 1 - z_window, k + 1):
                        m += fund[j, i]
                    m /= z_window
                    v = 0.0
                    for j in range(k + 1 - z_window, k + 1):
                        v += (fund[j, i] - m) * (fund[j, i] - m)
                    sd = np.sqrt(v / (z_window - 1))
                    z = (fund[k, i] - m) / sd if sd > 0 else 0.0
                    cur_z[i] = z
                    a = (abs(z) - z_enter) / (z_full - z_enter)
                    a = min(max(a, 0.0), 1.0)
                    cur_f[i] = -a if z > 0 else a
            k += 1
        lr = r[t, lead] / lead_sigma
        lr = min(max(lr, -lead_clip), lead_clip)
        for i in range(n):
            fz[t, i] = cur_z[i]
            fdrv[t, i] = cur_f[i]
            ldrv[t, i] = lr
            if t >= win - 1:
                s = 0.0
                a_sum = 0.0
                for j in range(t - win + 1, t + 1):
                    s += r[j, i]
                    a_sum += abs(r[j, i])
                e = abs(s) / a_sum if a_sum > 0 else 0.0
                r24[t, i] = s
                er[t, i] = e
                if state[i] == 0.0 and e >= er_enter:
                    state[i] = 1.0
                elif state[i] == 1.0 and e < er_exit:
                    state[i] = 0.0
                trend[t, i] = state[i]
                sgn = 1.0 if s > 0 else (-1.0 if s < 0 else 0.0)
                mdrv[t, i] = state[i] * sgn
            lv[t, i] = vol_pre[t, i] + vol_abs_coef * abs(r[t, i]) / sig[t, i]
            if t >= h_win - 1:
                s_h = 0.0
                q_h = 0.0
                for j in range(t - h_win + 1, t + 1):
                    s_h += r[j, i]
                    q_h += r[j, i] * r[j, i]
                hz[t, i] = s_h / np.sqrt(q_h) if q_h > 0 else 0.0
            if t >= h_slow - 1:
                fast = 0.0
                for j in range(t - h_fast + 1, t + 1):
                    fast += lv[j, i]
                slow = 0.0
                for j in range(t - h_slow + 1, t + 1):
                    slow += lv[j, i]
                hgate[t, i] = 1.0 if fast / h_fast > slow / h_slow else h_low
            if t >= h_win - 1 and t >= h_slow - 1:
                x = hz[t, i] / h_scale
                hdrv[t, i] = x / np.sqrt(1.0 + x * x) * hgate[t, i]
            if t + 1 < n_t:
                acc = s_fr[i] * fdrv[t, i] + s_ll[i] * ldrv[t, i] + s_rm[i] * mdrv[t, i]
                if s_hi[i] != 0.0:
                    acc = acc + s_hi[i] * hdrv[t, i]
                mu[t + 1, i] = 1e-4 * acc
    return r, mu, fz, fdrv, ldrv, r24, er, trend, mdrv, hz, hgate, hdrv, fund


@njit(cache=True)
def cumsum_rows(start: np.ndarray, r: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    out = np.empty_like(r)
    for i in range(r.shape[1]):
        acc = start[i]
        for t in range(r.shape[0]):
            acc += r[t, i]
            out[t, i] = acc
    return out
