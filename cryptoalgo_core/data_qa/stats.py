"""Drift and data-QA statistics for features and targets (pure; the report is :mod:`.report`).

* :func:`psi` — population stability index with reference-quantile bins.
* :func:`ks_stat` — two-sample Kolmogorov–Smirnov D statistic.
* :func:`drift_snapshot` — PSI/KS of the last ``drift_recent_days`` against the ``drift_reference_days`` before
  them (settings: :class:`~cryptoalgo_core.config.gates.DataQaGates`, config/gates.yaml ``data_qa``).
* :func:`missingness`, :func:`class_balance` — simple QA summaries.

Both drift statistics ignore NaNs and return NaN when either side has fewer than :data:`MIN_FINITE` finite values.
The PSI / KS thresholds alone are calibrated for roughly independent observations; strongly autocorrelated
features (slow moving averages, regime variables) have far fewer effective samples, which is why
:func:`drift_snapshot` also requires significance at the effective sample size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from cryptoalgo_core.config.gates import DataQaGates
from cryptoalgo_core.timeutil import DAY_MS

__all__ = [
    "MIN_FINITE",
    "PSI_EPS",
    "KS_C_ALPHA",
    "class_balance",
    "drift_snapshot",
    "ks_stat",
    "missingness",
    "psi",
]

MIN_FINITE = 20
PSI_EPS = 1e-4
KS_C_ALPHA = 1.949  # c(alpha) of the two-sample KS test at alpha = 0.001


def _finite(a: Any) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index ``sum((c - r) * ln(c / r))`` over bins.

    Bin edges are the reference quantiles ``1/bins .. (bins-1)/bins`` (deduplicated), with open-ended outer bins
    so out-of-range current values are counted; intervals are right-closed. Proportions are floored at
    :data:`PSI_EPS` (epsilon smoothing, so empty bins stay finite). NaNs are ignored; NaN if either side has fewer
    than :data:`MIN_FINITE` finite values.
    """
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    ref, cur = _finite(reference), _finite(current)
    if ref.size < MIN_FINITE or cur.size < MIN_FINITE:
        return float("nan")
    edges = np.unique(np.quantile(ref, np.arange(1, bins) / bins))
    nb = edges.size + 1
    r = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=nb) / ref.size
    c = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=nb) / cur.size
    r = np.maximum(r, PSI_EPS)
    c = np.maximum(c, PSI_EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def ks_stat(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sample KS D statistic (max distance between the empirical CDFs); NaN rules as :func:`psi`."""
    ref, cur = _finite(reference), _finite(current)
    if ref.size < MIN_FINITE or cur.size < MIN_FINITE:
        return float("nan")
    return float(stats.ks_2samp(ref, cur).statistic)


def _ts_ms(s: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(s):
        dt = pd.to_datetime(s, utc=True)
        return ((dt - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).to_numpy(dtype=np.int64)
    return s.to_numpy(dtype=np.int64)


def drift_snapshot(df: pd.DataFrame, features: list[str], ts_col: str, gates: DataQaGates) -> pd.DataFrame:
    """PSI and KS of each feature: recent window vs the reference window right before it.

    With ``T`` the last timestamp, recent rows have ``ts`` in ``(T - drift_recent_days, T]`` and reference rows
    in ``(T - drift_recent_days - drift_reference_days, T - drift_recent_days]`` (``ts_col`` in epoch
    ms, or datetimes; windows and thresholds from ``gates``). One row per
    feature: ``feature, psi, ks, n_recent, n_reference, n_eff, ks_crit, flagged`` where ``n_*`` count finite
    values. A feature is flagged when the shift is material (``psi > drift_psi_warn or ks > drift_ks_warn``) AND
    significant given its persistence: ``ks > ks_crit``, the two-sample KS critical value at alpha = 0.001
    computed with effective sample sizes ``n (1 - rho) / (1 + rho)`` (rho = lag-1 autocorrelation within the
    reference window). Hourly
    features such as a 7-day volatility have a handful of independent observations per month; without this a
    slow regime change flags every time (measured: 16 % of stationary AR(1) phi=0.95 series). A NaN
    statistic never flags.
    """
    missing = [f for f in [ts_col, *features] if f not in df.columns]
    if missing:
        raise KeyError(f"drift_snapshot: columns not in the frame: {missing}")
    cols = ["feature", "psi", "ks", "n_recent", "n_reference", "n_eff", "ks_crit", "flagged"]
    if df.empty:
        return pd.DataFrame(
            {"feature": list(features), "psi": np.nan, "ks": np.nan, "n_recent": 0, "n_reference": 0,
             "n_eff": 0.0, "ks_crit": np.nan, "flagged": False},
            columns=cols,
        )
    ts = _ts_ms(df[ts_col])
    end = int(ts.max())
    cut = end - gates.drift_recent_days * DAY_MS
    start = cut - gates.drift_reference_days * DAY_MS
    recent = ts > cut
    reference = (ts > start) & (ts <= cut)
    rows = []
    for f in features:
        x = df[f].to_numpy(dtype=np.float64)
        cur, ref = _finite(x[recent]), _finite(x[reference])
        p, k = psi(ref, cur), ks_stat(ref, cur)
        shrink = _eff_factor(x[reference])  # persistence of the baseline (a shift itself would inflate rho)
        n1, n2 = max(cur.size * shrink, 2.0), max(ref.size * shrink, 2.0)
        crit = KS_C_ALPHA * float(np.sqrt((n1 + n2) / (n1 * n2)))
        material = (np.isfinite(p) and p > gates.drift_psi_warn) or (np.isfinite(k) and k > gates.drift_ks_warn)
        flagged = bool(material and np.isfinite(k) and k > crit)
        rows.append((f, p, k, int(cur.size), int(ref.size), round(n1 + n2, 1), crit, flagged))
    return pd.DataFrame(rows, columns=cols)


def _eff_factor(x: np.ndarray) -> float:
    """n_eff / n = (1 - rho) / (1 + rho) for an AR(1)-like series (rho = lag-1 autocorrelation, >= 0)."""
    a = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(a[1:]) & np.isfinite(a[:-1])
    if ok.sum() < 10:
        return 1.0
    u, v = a[1:][ok], a[:-1][ok]
    if u.std() == 0 or v.std() == 0:
        return 1.0
    rho = float(np.clip(np.corrcoef(u, v)[0, 1], 0.0, 0.999))
    return (1.0 - rho) / (1.0 + rho)


def missingness(df: pd.DataFrame, features: list[str]) -> pd.Series:
    """Fraction of NaN per feature, sorted descending (ties keep the given order)."""
    if df.empty:
        return pd.Series(np.nan, index=pd.Index(features), dtype=np.float64, name="missing_frac")
    frac = df[list(features)].isna().mean().astype(np.float64)
    return frac.sort_values(ascending=False, kind="stable").rename("missing_frac")


def class_balance(target: pd.Series) -> dict[str, Any]:
    """Labeled count, positive rate and counts of a 0/1 target (NaN = unlabeled).

    ``constant`` is True when fewer than two distinct labeled values exist (including no labels at all): a model
    cannot be trained or evaluated on it.
    """
    y = pd.Series(target, dtype=np.float64).dropna()
    n = int(y.size)
    n_pos = int((y == 1.0).sum())
    return {
        "n_labeled": n,
        "positive_rate": float(n_pos / n) if n else float("nan"),
        "n_pos": n_pos,
        "n_neg": n - n_pos,
        "constant": bool(y.nunique() < 2),
    }
