#!/usr/bin/env python
"""Drift-test calibration and power benchmark: prints tables, never asserts.

    .venv/bin/python benchmarks/bench_drift.py [--seeds 500] [--quick] [--alpha 0.01]

Compares, on 120 days of hourly data (reference 90 d = 2160 rows, recent 30 d = 720 rows, default gates):

* **old** — the significance rule drift_snapshot used before the block permutation (copied below, verbatim in
  logic, so the comparison stays reproducible): material (PSI > 0.25 or KS > 0.2) AND KS above the two-sample
  critical value at alpha = 0.001 computed with effective sample sizes ``n (1 - rho) / (1 + rho)``, rho the
  lag-1 autocorrelation of the reference window.
* **new** — :func:`cryptoalgo_core.data_qa.stats.feature_drift`: material AND block-permutation p-value of the
  KS statistic <= ``drift_alpha``.
* **oracle** (power table only) — material AND KS above the exact 1 - alpha quantile of the KS statistic of the
  same process without a shift (simulated, 4000 series): the best any rule based on the KS statistic can do at
  that false-flag rate, knowing the process.

Tables: the false-flag rate on stationary processes (each row ``--seeds`` independent series; ``se`` is the
binomial standard error of the new rate), the detection rate of a level shift of the recent window by
0.25 / 0.5 / 1 / 1.5 / 2 / 3 standard deviations of the process, and the time of one call. About 5 minutes at the
default 500 series per cell on one core; ``--quick`` (100 series) about 1 minute.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats
from scipy.signal import lfilter

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cryptoalgo_core.config import DataQaGates  # noqa: E402
from cryptoalgo_core.data_qa.stats import drift_snapshot, feature_drift, ks_block_permutation  # noqa: E402

N_REF, N_REC = 90 * 24, 30 * 24
N = N_REF + N_REC
HOUR_MS = 3_600_000

# ------------------------------------------------------------------ the old rule (drift_snapshot before the change)

KS_C_ALPHA = 1.949  # c(alpha) of the two-sample KS test at alpha = 0.001
PSI_EPS = 1e-4
MIN_FINITE = 20


def _finite(a: np.ndarray) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def old_psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
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


def old_ks(reference: np.ndarray, current: np.ndarray) -> float:
    ref, cur = _finite(reference), _finite(current)
    if ref.size < MIN_FINITE or cur.size < MIN_FINITE:
        return float("nan")
    return float(stats.ks_2samp(ref, cur, method="asymp").statistic)  # the statistic only (its p-value unused)


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


def old_flag(ref_raw: np.ndarray, cur_raw: np.ndarray, g: DataQaGates) -> bool:
    cur, ref = _finite(cur_raw), _finite(ref_raw)
    p, k = old_psi(ref, cur), old_ks(ref, cur)
    shrink = _eff_factor(ref_raw)  # persistence of the baseline (a shift itself would inflate rho)
    n1, n2 = max(cur.size * shrink, 2.0), max(ref.size * shrink, 2.0)
    crit = KS_C_ALPHA * float(np.sqrt((n1 + n2) / (n1 * n2)))
    material = (np.isfinite(p) and p > g.drift_psi_warn) or (np.isfinite(k) and k > g.drift_ks_warn)
    return bool(material and np.isfinite(k) and k > crit)


# ------------------------------------------------------------------ processes (rows = independent series)

Gen = Callable[[int, np.random.Generator], np.ndarray]


def ar1(rows: int, phi: float, rng: np.random.Generator, n: int = N) -> np.ndarray:
    """Stationary unit-variance AR(1) paths."""
    e = rng.standard_normal((rows, n))
    x0 = e[:, :1]
    y = lfilter([math.sqrt(1 - phi * phi)], [1.0, -phi], e[:, 1:], axis=1, zi=phi * x0)[0]
    return np.concatenate([x0, y], axis=1)


def mixture(rows: int, rng: np.random.Generator, slow_share: float) -> np.ndarray:
    """Sum of a slow AR(1) (phi 0.999) with ``slow_share`` of the variance and a fast one (phi 0.5)."""
    return math.sqrt(slow_share) * ar1(rows, 0.999, rng) + math.sqrt(1 - slow_share) * ar1(rows, 0.5, rng)


def rolling_mean(rows: int, rng: np.random.Generator, k: int = 168) -> np.ndarray:
    """k-hour rolling mean of iid noise, scaled to unit variance."""
    e = rng.standard_normal((rows, N + k - 1))
    c = np.concatenate([np.zeros((rows, 1)), np.cumsum(e, axis=1)], axis=1)
    return (c[:, k:] - c[:, :-k]) / math.sqrt(k)


def garch_rv(rows: int, rng: np.random.Generator, a: float = 0.05, b: float = 0.93, k: int = 24) -> np.ndarray:
    """Rolling 24-h realized volatility of GARCH(1,1) returns (persistence a + b = 0.98; 2000 h burn-in)."""
    burn = 2000
    z = rng.standard_normal((rows, N + k - 1 + burn))
    r2 = np.empty_like(z)
    s2 = np.ones(rows)
    for i in range(z.shape[1]):
        r2[:, i] = s2 * z[:, i] ** 2
        s2 = (1 - a - b) + a * r2[:, i] + b * s2
    c = np.concatenate([np.zeros((rows, 1)), np.cumsum(r2[:, burn:], axis=1)], axis=1)
    return np.sqrt((c[:, k:] - c[:, :-k]) / k)


STATIONARY: dict[str, Gen] = {
    "iid N(0,1)": lambda r, g: g.standard_normal((r, N)),
    "AR(1) phi=0.95": lambda r, g: ar1(r, 0.95, g),
    "AR(1) phi=0.99": lambda r, g: ar1(r, 0.99, g),
    "AR(1) phi=0.995": lambda r, g: ar1(r, 0.995, g),
    "AR(1) phi=0.999": lambda r, g: ar1(r, 0.999, g),
    "mix 50% phi .999 + phi .5": lambda r, g: mixture(r, g, 0.5),
    "mix 20% phi .999 + phi .5": lambda r, g: mixture(r, g, 0.2),
    "168-h rolling mean": lambda r, g: rolling_mean(r, g),
    "24-h realized vol, GARCH": lambda r, g: garch_rv(r, g),
}

PERSISTENT: dict[str, Gen] = {
    "AR(1) phi=0.5": lambda r, g: ar1(r, 0.5, g),
    "AR(1) phi=0.95": lambda r, g: ar1(r, 0.95, g),
    "AR(1) phi=0.99": lambda r, g: ar1(r, 0.99, g),
    "AR(1) phi=0.995": lambda r, g: ar1(r, 0.995, g),
    "168-h rolling mean": lambda r, g: rolling_mean(r, g),
    "mix 50% phi .999 + phi .5": lambda r, g: mixture(r, g, 0.5),
}

SHIFTS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)


def _rates(x: np.ndarray, g: DataQaGates, seed0: int) -> tuple[float, float]:
    old = [old_flag(row[:N_REF], row[N_REF:], g) for row in x]
    new = [feature_drift(row[:N_REF], row[N_REF:], g, seed=seed0 + i)["flagged"] for i, row in enumerate(x)]
    return float(np.mean(old)), float(np.mean(new))


def _oracle_threshold(gen: Gen, g: DataQaGates, rng: np.random.Generator, n: int = 4000) -> float:
    x = gen(n, rng)
    d = np.array([old_ks(row[:N_REF], row[N_REF:]) for row in x])
    return float(np.quantile(d, 1 - g.drift_alpha))


def _oracle_flag(row: np.ndarray, q: float, g: DataQaGates) -> bool:
    p, k = old_psi(row[:N_REF], row[N_REF:]), old_ks(row[:N_REF], row[N_REF:])
    return bool((p > g.drift_psi_warn or k > g.drift_ks_warn) and k > q)


def false_flag_table(seeds: int, g: DataQaGates) -> None:
    print(f"\nFalse-flag rate on stationary processes ({seeds} series each, alpha = {g.drift_alpha}, "
          f"reference {N_REF} h + recent {N_REC} h)")
    print(f"{'process':28s} {'old':>7s} {'new':>7s} {'se(new)':>8s} {'time':>6s}")
    for i, (name, gen) in enumerate(STATIONARY.items()):
        t0 = time.perf_counter()
        x = gen(seeds, np.random.default_rng(10_000 + i))
        old, new = _rates(x, g, seed0=0)
        se = math.sqrt(max(new * (1 - new), 1e-12) / seeds)
        print(f"{name:28s} {old:7.3f} {new:7.3f} {se:8.3f} {time.perf_counter() - t0:5.1f}s", flush=True)


def power_table(seeds: int, g: DataQaGates) -> None:
    print(f"\nDetection rate of a level shift of the recent window (shift in sd of the process, {seeds} series each; "
          f"old / new / oracle)")
    print(f"{'process':28s} " + " ".join(f"{f'+{s:g} sd':>17s}" for s in SHIFTS))
    for i, (name, gen) in enumerate(PERSISTENT.items()):
        q = _oracle_threshold(gen, g, np.random.default_rng(20_000 + i))
        cells = []
        for j, s in enumerate(SHIFTS):
            x = gen(seeds, np.random.default_rng(30_000 + 100 * i + j))
            x[:, N_REF:] += s
            old, new = _rates(x, g, seed0=0)
            orc = float(np.mean([_oracle_flag(row, q, g) for row in x]))
            cells.append(f"{old:.2f}/{new:.2f}/{orc:.2f}")
        print(f"{name:28s} " + " ".join(f"{c:>17s}" for c in cells), flush=True)


def timing(g: DataQaGates) -> None:
    print("\nTime per call (120 days of hourly data, median of 40 calls after one warm-up)")
    rng = np.random.default_rng(0)
    cases = {
        "iid N(0,1) +1 sd (blocks of 2 h)": rng.standard_normal(N),
        "AR(1) phi=0.95 +1 sd": ar1(1, 0.95, rng)[0],
        "AR(1) phi=0.995 +3 sd (circular)": ar1(1, 0.995, rng)[0],
    }
    for (name, x), s in zip(cases.items(), (1.0, 1.0, 3.0), strict=True):
        x = x.copy()
        x[N_REF:] += s
        ks_block_permutation(x[:N_REF], x[N_REF:])
        ts = []
        for i in range(40):
            t0 = time.perf_counter()
            r = ks_block_permutation(x[:N_REF], x[N_REF:], seed=i)
            ts.append(time.perf_counter() - t0)
        t1 = []
        for i in range(40):
            t0 = time.perf_counter()
            feature_drift(x[:N_REF], x[N_REF:], g, seed=i)
            t1.append(time.perf_counter() - t0)
        print(f"  {name:34s} ks_block_permutation {1e3 * statistics.median(ts):5.1f} ms "
              f"(block {r.block_rows} h)   feature_drift {1e3 * statistics.median(t1):5.1f} ms")
    import pandas as pd

    feats = {f"f{i}": ar1(1, 0.95, rng)[0] + (1.0 if i % 5 == 0 else 0.0) * (np.arange(N) >= N_REF)
             for i in range(50)}
    df = pd.DataFrame({"ts": np.arange(N, dtype=np.int64) * HOUR_MS, **feats})
    drift_snapshot(df, list(feats), "ts", g)
    t0 = time.perf_counter()
    snap = drift_snapshot(df, list(feats), "ts", g)
    dt = time.perf_counter() - t0
    print(f"  drift_snapshot, 50 AR(1) phi=0.95 features (10 shifted by 1 sd): {1e3 * dt:.0f} ms, "
          f"{int(snap['flagged'].sum())} flagged")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=500, help="series per table cell (default 500)")
    ap.add_argument("--quick", action="store_true", help="100 series per cell")
    ap.add_argument("--alpha", type=float, default=None, help="drift_alpha (default: DataQaGates())")
    args = ap.parse_args()
    seeds = 100 if args.quick else args.seeds
    g = DataQaGates() if args.alpha is None else DataQaGates(drift_alpha=args.alpha)
    t0 = time.perf_counter()
    timing(g)
    false_flag_table(seeds, g)
    power_table(seeds, g)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
