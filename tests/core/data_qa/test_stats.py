"""Drift and QA statistics (cryptoalgo_core.data_qa.stats)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cryptoalgo_core.config import DataQaGates
from cryptoalgo_core.data_qa import class_balance, drift_snapshot, ks_stat, missingness, psi
from cryptoalgo_core.timeutil import HOUR_MS

T0 = 1_704_067_200_000
N_HOURS = 120 * 24  # exactly reference (90 d) + recent (30 d)


def _frame(x: np.ndarray, name: str = "f") -> pd.DataFrame:
    return pd.DataFrame({"ts": T0 + np.arange(x.size, dtype=np.int64) * HOUR_MS, name: x})


def _ar1(n: int, phi: float, rng: np.random.Generator) -> np.ndarray:
    e = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = e[0]
    s = math.sqrt(1 - phi * phi)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + s * e[i]
    return x


def _false_flag_rate(phi: float, seeds: int = 200) -> float:
    th = DataQaGates()
    flags = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(N_HOURS) if phi == 0 else _ar1(N_HOURS, phi, rng)
        flags += bool(drift_snapshot(_frame(x), ["f"], "ts", th)["flagged"].iloc[0])
    return flags / seeds


# ------------------------------------------------------------------------------------------ psi / ks


def test_psi_basic() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(5000), rng.standard_normal(5000)
    assert 0 <= psi(a, b) < 0.02
    assert psi(a, a) == pytest.approx(0.0, abs=1e-12)
    assert psi(a, b + 1.0) > 0.5
    assert psi(a, b) == pytest.approx(psi(np.concatenate([a, [np.nan] * 50]), b))  # NaNs ignored


def test_psi_degenerate_reference() -> None:
    c = np.ones(100)
    assert psi(c, c) == pytest.approx(0.0, abs=1e-12)
    assert psi(c, c + 1) > 1.0  # deduplicated edges still separate a shifted current


def test_min_finite_rule() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal(100)
    few = np.concatenate([rng.standard_normal(19), [np.nan] * 50])
    assert math.isnan(psi(a, few)) and math.isnan(psi(few, a))
    assert math.isnan(ks_stat(a, few)) and math.isnan(ks_stat(few, a))
    assert np.isfinite(psi(a, a[:20])) and np.isfinite(ks_stat(a, a[:20]))


def test_ks_matches_scipy() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal(300), rng.normal(0.3, 1, 200)
    assert ks_stat(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic)


# ------------------------------------------------------------------------------------------ drift snapshot


def test_drift_windows_and_level_shift_flagged() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal(N_HOURS + 24 * 50)  # 50 extra days before the reference window: excluded
    y = x.copy()
    y[-30 * 24 :] += 1.0  # +1 std in the recent 30 days
    df = _frame(x, "stationary").assign(shifted=y)
    snap = drift_snapshot(df, ["stationary", "shifted"], "ts", DataQaGates()).set_index("feature")
    assert list(snap.columns) == ["psi", "ks", "n_recent", "n_reference", "n_eff", "ks_crit", "flagged"]
    assert (snap["n_recent"] == 30 * 24).all() and (snap["n_reference"] == 90 * 24).all()
    assert not snap.loc["stationary", "flagged"]
    assert snap.loc["shifted", "flagged"]
    assert snap.loc["shifted", "psi"] > 0.25 and snap.loc["shifted", "ks"] > 0.2


def test_drift_datetime_ts_and_nan_feature() -> None:
    rng = np.random.default_rng(6)
    df = _frame(rng.standard_normal(N_HOURS))
    df["ts"] = pd.to_datetime(df["ts"], unit="ms", utc=True)
    df["empty"] = np.nan
    snap = drift_snapshot(df, ["f", "empty"], "ts", DataQaGates()).set_index("feature")
    assert snap.loc["f", "n_recent"] == 720
    assert math.isnan(snap.loc["empty", "psi"]) and not snap.loc["empty", "flagged"]


def test_drift_settings_come_from_the_data_qa_gates() -> None:
    """Windows and thresholds are the DataQaGates fields (config/gates.yaml data_qa), nothing else."""
    rng = np.random.default_rng(5)
    y = rng.standard_normal(N_HOURS)
    y[-30 * 24 :] += 1.0
    df = _frame(y)
    narrow = DataQaGates(drift_recent_days=10, drift_reference_days=20)
    snap = drift_snapshot(df, ["f"], "ts", narrow).iloc[0]
    assert (snap["n_recent"], snap["n_reference"]) == (10 * 24, 20 * 24)
    assert drift_snapshot(df, ["f"], "ts", DataQaGates())["flagged"].iloc[0]
    lax = DataQaGates(drift_psi_warn=10.0, drift_ks_warn=1.0)  # shift no longer material
    assert not drift_snapshot(df, ["f"], "ts", lax)["flagged"].iloc[0]


def test_false_flag_rate_iid_below_5pct() -> None:
    rate = _false_flag_rate(0.0)
    print(f"\ndrift false-flag rate, iid N(0,1), 200 seeds, default thresholds: {rate:.3f}")
    assert rate < 0.05


def test_false_flag_rate_ar1_below_5pct() -> None:
    """A persistent AR(1) (phi = 0.95) has few effective samples: the n_eff-aware KS keeps it quiet
    (without the adjustment, 16 % of seeds flagged)."""
    rate = _false_flag_rate(0.95)
    print(f"\ndrift false-flag rate, AR(1) phi=0.95, 200 seeds, default thresholds: {rate:.3f}")
    assert rate < 0.05


def test_level_shift_in_a_persistent_series_is_still_detected() -> None:
    """Power: a 3-std level shift in the recent window of an AR(1) phi=0.95 series (std of the series)."""
    th = DataQaGates()
    hits = 0
    for seed in range(50):
        rng = np.random.default_rng(1000 + seed)
        x = _ar1(N_HOURS, 0.95, rng)
        x[-30 * 24 :] += 3.0 * x.std()
        hits += bool(drift_snapshot(_frame(x), ["f"], "ts", th)["flagged"].iloc[0])
    print(f"\ndetection rate, 3-std shift in AR(1) phi=0.95, 50 seeds: {hits / 50:.2f}")
    assert hits / 50 > 0.8


# ------------------------------------------------------------------------------------------ QA summaries


def test_missingness_finds_injected_block() -> None:
    rng = np.random.default_rng(7)
    df = pd.DataFrame(rng.standard_normal((1000, 3)), columns=["a", "b", "c"])
    df.loc[200:449, "b"] = np.nan  # 25 %
    df.loc[10:19, "c"] = np.nan  # 1 %
    m = missingness(df, ["a", "b", "c"])
    assert list(m.index) == ["b", "c", "a"]
    assert m["b"] == pytest.approx(0.25) and m["c"] == pytest.approx(0.01) and m["a"] == 0.0


def test_class_balance() -> None:
    bal = class_balance(pd.Series([1.0, 0.0, 0.0, np.nan, 1.0, 0.0]))
    assert bal == {"n_labeled": 5, "positive_rate": pytest.approx(0.4), "n_pos": 2, "n_neg": 3,
                   "constant": False}
    const = class_balance(pd.Series([0.0, 0.0, np.nan, 0.0]))
    assert const["constant"] and const["positive_rate"] == 0.0 and const["n_neg"] == 3
    assert class_balance(pd.Series([1.0] * 4))["constant"]
    empty = class_balance(pd.Series([np.nan, np.nan]))
    assert empty["constant"] and empty["n_labeled"] == 0 and math.isnan(empty["positive_rate"])
