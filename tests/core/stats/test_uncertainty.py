"""Uncertainty estimators on data whose answer is known.

Coverage tests simulate R independent replications at once (rows of one matrix; the bootstrap of row i uses
seed=i) and check the share of 95 % intervals that contain the true mean against a band that is NOT fitted to one
draw: every band is wider than ~3 binomial SEs around the coverage this implementation has at that n (measured
offline with 3000-8000 replications and quoted in each test), so a correct implementation fails a band with
probability < 0.5 % (stated per test). The data are fixed by the seeds, so the suite is deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.signal import lfilter

from cryptoalgo_core.stats import (
    block_bootstrap_mean,
    default_lags,
    edge_uncertainty,
    fold_auc,
    mean_ci,
    newey_west_se,
    per_fold_summary,
)

Z95 = float(stats.norm.ppf(0.975))
BAND = (0.92, 0.98)


def _ar1(rng: np.random.Generator, reps: int, n: int, phi: float) -> np.ndarray:
    """`reps` stationary AR(1) series x_t = phi x_{t-1} + e_t, e ~ N(0, 1), started from the stationary law."""
    e = rng.standard_normal((reps, n))
    e[:, 0] /= math.sqrt(1.0 - phi * phi)
    return np.asarray(lfilter([1.0], [1.0, -phi], e, axis=1))


def _true_se_ar1(n: int, phi: float) -> float:
    """Exact sd of the mean of n values of the stationary AR(1) with unit innovations."""
    j = np.arange(1, n)
    g0 = 1.0 / (1.0 - phi * phi)
    return math.sqrt(g0 / n * (1.0 + 2.0 * float(np.sum((1.0 - j / n) * phi**j))))


def _covers(results: list, truth: float = 0.0) -> float:
    return float(np.mean([r["lo"] <= truth <= r["hi"] for r in results]))


def _oracle(X: np.ndarray, true_se: float) -> float:
    """Coverage of mean +- 1.96 * (the TRUE sd of the mean) on the same rows: the data's own binomial luck, so
    `estimator - oracle` isolates the estimator's error with far less noise than either coverage alone."""
    return float(np.mean(np.abs(X.mean(axis=1)) <= Z95 * true_se))


# ------------------------------------------------------------------------------------------ Newey–West


def test_newey_west_hand_computed() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0])
    # m = 2.5; g0 = 5/4; g1 = (0.75 - 0.25 + 0.75) / 4 = 0.3125; LRV = g0 + 2 * (1 - 1/2) * g1 = 1.5625
    assert newey_west_se(x, lags=1) == pytest.approx(math.sqrt(1.5625 / 4))
    assert newey_west_se(x, lags=0) == pytest.approx(x.std(ddof=0) / 2.0)
    rng = np.random.default_rng(3)
    y = rng.standard_normal(300)
    assert newey_west_se(y, lags=0) == pytest.approx(y.std(ddof=0) / math.sqrt(300))


def test_newey_west_edge_cases() -> None:
    assert math.isnan(newey_west_se(np.array([])))
    assert math.isnan(newey_west_se(np.array([1.5])))
    assert math.isnan(newey_west_se(np.array([np.nan, 2.0, np.nan])))  # one value left
    assert newey_west_se(np.full(50, 0.1)) == 0.0
    x = np.random.default_rng(0).standard_normal(200)
    with_nan = np.insert(x, [5, 50, 51], np.nan)
    assert newey_west_se(with_nan) == newey_west_se(x)  # NaNs dropped, order kept
    assert newey_west_se(list(x)) == newey_west_se(x)
    with pytest.raises(ValueError, match="lags"):
        newey_west_se(x, lags=-1)
    with pytest.raises(ValueError, match="1-d"):
        newey_west_se(np.ones((3, 3)))


def test_default_lags_rule() -> None:
    rng = np.random.default_rng(5)
    iid = rng.standard_normal((50, 1000))
    # iid: the AR(1) plug-in is below the Newey–West (1994) floor floor(4 * 10 ** (2/9)) = 6
    assert {default_lags(x) for x in iid} == {6}
    # AR(1) 0.5: S = 1.1447 * ((2*0.5/0.75) ** 2 * 1000) ** (1/3) = 13.9 -> 13 lags (rho-hat +- 4 SE: 11..16)
    ar = _ar1(rng, 50, 1000, 0.5)
    lags = np.array([default_lags(x) for x in ar])
    assert lags.min() >= 10 and lags.max() <= 17 and 12 <= np.median(lags) <= 14
    assert default_lags(np.array([1.0, 2.0])) == 1 and default_lags(np.array([1.0])) == 0
    assert default_lags(np.full(100, 3.0)) == math.floor(4 * (1.0) ** (2 / 9))  # constant: rho undefined -> 0


def test_newey_west_matches_analytic_ar1_long_run_se() -> None:
    """AR(1) phi=0.5, n=2000: true sd of the mean = sqrt(LRV/n) ~ 2/sqrt(n) (LRV = 1/(1-phi)^2 = 4).

    The RMS of the NW SE over 2000 replications is ~0.955 of it (Bartlett bias -(1/S) sum|j| g_j with S ~ 18, plus
    demeaning); the naive iid SE is sqrt((1-phi)/(1+phi)) = 0.577 of it. Monte Carlo noise of these ratios < 0.5 %.
    """
    n, phi, reps = 2000, 0.5, 2000
    X = _ar1(np.random.default_rng(11), reps, n, phi)
    true = _true_se_ar1(n, phi)
    assert true == pytest.approx(2.0 / math.sqrt(n), rel=0.01)
    assert X.mean(axis=1).std() / true == pytest.approx(1.0, abs=0.05)  # the DGP is what we think
    nw = np.array([newey_west_se(x) for x in X])
    naive = X.std(axis=1, ddof=1) / math.sqrt(n)
    assert 0.92 <= math.sqrt(np.mean(nw**2)) / true <= 1.0
    assert math.sqrt(np.mean(naive**2)) / true == pytest.approx(math.sqrt((1 - phi) / (1 + phi)), abs=0.02)


@pytest.fixture(scope="module")
def ar_coverage_data() -> np.ndarray:
    """2000 stationary AR(1) phi=0.5 series of n=4000 (the coverage tests' dependent case)."""
    return _ar1(np.random.default_rng(2024), 2000, 4000, 0.5)


def test_newey_west_interval_coverage_iid_and_ar1(ar_coverage_data: np.ndarray) -> None:
    """95 % NW intervals (mean +- 1.96 se, default lags) cover the true mean 0.

    iid N(0,1), n=1000, R=2000: expected ~0.95 (binomial SE 0.005; P(outside BAND) < 1e-5).
    AR(1) phi=0.5, n=4000, R=2000: expected ~0.945 (~0.936 at n=2000: the Bartlett bias fades like n^(-1/3));
    P(< 0.92) < 0.1 %. The naive iid interval on the same AR(1) data covers ~0.74 (2 Phi(1.96 * 0.577) - 1): it
    must be far below the band — the dependence is what the HAC fixes.
    """
    iid = np.random.default_rng(2025).standard_normal((2000, 1000))
    cov_iid = _covers([mean_ci(x) for x in iid])
    ar = ar_coverage_data
    cov_ar = _covers([mean_ci(x) for x in ar])
    naive_se = ar.std(axis=1, ddof=1) / math.sqrt(ar.shape[1])
    cov_naive = float(np.mean(np.abs(ar.mean(axis=1)) <= Z95 * naive_se))
    or_iid, or_ar = _oracle(iid, 1 / math.sqrt(1000)), _oracle(ar, _true_se_ar1(4000, 0.5))
    print(f"NW coverage: iid {cov_iid:.4f} (oracle {or_iid:.4f}), AR(1) {cov_ar:.4f} (oracle {or_ar:.4f}), "
          f"naive-on-AR(1) {cov_naive:.4f}")
    assert BAND[0] <= cov_iid <= BAND[1]
    assert BAND[0] <= cov_ar <= BAND[1]
    # paired with the true-SE interval on the same rows (measured gaps: iid -0.004, AR(1) -0.008; sd of a gap ~0.003)
    assert abs(cov_iid - or_iid) <= 0.02 and abs(cov_ar - or_ar) <= 0.02
    assert cov_naive < 0.85


def test_nw_interval_shape_and_alpha() -> None:
    x = _ar1(np.random.default_rng(1), 1, 500, 0.3)[0] + 2.0
    r = mean_ci(x)
    assert set(r) == {"mean", "se", "lo", "hi", "n", "block", "lags", "method"}
    assert r["method"] == "newey_west" and r["n"] == 500 and r["block"] == r["lags"] + 1
    assert r["mean"] == pytest.approx(x.mean())
    assert r["se"] == newey_west_se(x) and r["lags"] == default_lags(x)
    assert r["lo"] == pytest.approx(r["mean"] - Z95 * r["se"]) and r["hi"] == pytest.approx(r["mean"] + Z95 * r["se"])
    r90 = mean_ci(x, alpha=0.10)
    assert (r90["hi"] - r90["lo"]) / (r["hi"] - r["lo"]) == pytest.approx(stats.norm.ppf(0.95) / Z95)
    assert mean_ci(x, lags=3)["se"] == newey_west_se(x, lags=3) == mean_ci(x, block=4)["se"]
    with pytest.raises(ValueError, match="method"):
        mean_ci(x, method="jackknife")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha"):
        mean_ci(x, alpha=1.5)


# ------------------------------------------------------------------------------------------ block bootstrap


def test_block_bootstrap_coverage_iid_and_ar1(ar_coverage_data: np.ndarray) -> None:
    """95 % circular-block-bootstrap percentile intervals (default block, n_boot=1000, seed = replication index).

    iid N(0,1), n=1000, R=1000: expected ~0.949 (binomial SE 0.007; P(outside BAND) < 0.01 %).
    AR(1) phi=0.5, n=4000, R=1200: expected ~0.943 (~0.934 at n=2000; SE 0.007; P(< 0.92) < 0.1 %).
    The iid bootstrap (block=1) on AR(1) data covers ~0.74 (R=200: P(> 0.85) < 0.1 %).
    """
    iid = np.random.default_rng(77).standard_normal((1000, 1000))
    cov_iid = _covers([block_bootstrap_mean(x, n_boot=1000, seed=i) for i, x in enumerate(iid)])
    ar = ar_coverage_data[:1200]
    res = [block_bootstrap_mean(x, n_boot=1000, seed=i) for i, x in enumerate(ar)]
    cov_ar = _covers(res)
    iid_boot = _covers([block_bootstrap_mean(x, block=1, n_boot=400, seed=i) for i, x in enumerate(ar[:200, :1000])])
    or_iid, or_ar = _oracle(iid, 1 / math.sqrt(1000)), _oracle(ar, _true_se_ar1(4000, 0.5))
    print(f"block bootstrap coverage: iid {cov_iid:.4f} (oracle {or_iid:.4f}), AR(1) {cov_ar:.4f} "
          f"(oracle {or_ar:.4f}), block=1 on AR(1) {iid_boot:.4f}")
    assert BAND[0] <= cov_iid <= BAND[1]
    assert BAND[0] <= cov_ar <= BAND[1]
    # paired with the true-SE interval (measured gaps: iid -0.005, AR(1) -0.009; sd of a gap ~0.004)
    assert abs(cov_iid - or_iid) <= 0.025 and abs(cov_ar - or_ar) <= 0.025
    assert iid_boot < 0.85
    assert all(18 <= r["block"] <= 26 for r in res)  # AR(1)-plug-in block: floor(1.1447 (1.78 * 4000) ** (1/3)) + 1 = 23


def test_block_bootstrap_variance_equals_bartlett_variance() -> None:
    """The circular block bootstrap variance with block b is the Bartlett (NW, lags b-1) variance on average
    (Künsch 1989): measured ratio 0.998-1.000; over 300 AR(1) series the noise is ~1 %."""
    ar = _ar1(np.random.default_rng(8), 300, 1000, 0.5)
    boot = np.array([block_bootstrap_mean(x, seed=i)["se"] for i, x in enumerate(ar)])
    nw = np.array([newey_west_se(x) for x in ar])
    assert np.mean(boot**2) / np.mean(nw**2) == pytest.approx(1.0, abs=0.04)


def test_block_bootstrap_iid_block_and_determinism() -> None:
    x = np.random.default_rng(4).standard_normal(400) * 3.0 + 1.0
    r = block_bootstrap_mean(x, block=1, n_boot=4000, seed=1)
    # block=1 is the iid bootstrap: Var* = std(ddof=0)^2 / n; sd of the sd estimate with 4000 draws ~ 1.1 %
    assert r["se"] == pytest.approx(x.std() / math.sqrt(400), rel=0.06)
    assert r["block"] == 1 and r["lags"] == 0 and r["method"] == "block_bootstrap"
    assert r["mean"] == pytest.approx(x.mean()) and r["lo"] < r["mean"] < r["hi"]
    assert block_bootstrap_mean(x, seed=7) == block_bootstrap_mean(x, seed=7)  # deterministic by seed
    a, b = block_bootstrap_mean(x, seed=7), block_bootstrap_mean(x, seed=8)
    assert a["mean"] == b["mean"] and a["block"] == b["block"] and (a["lo"], a["se"]) != (b["lo"], b["se"])
    assert mean_ci(x, "block_bootstrap", seed=7) == a
    assert mean_ci(x, "block_bootstrap", lags=4, seed=3) == block_bootstrap_mean(x, block=5, seed=3)
    assert block_bootstrap_mean(x, block=10_000)["block"] == 400  # capped at n
    r99 = block_bootstrap_mean(x, seed=7, alpha=0.01)
    assert r99["lo"] < a["lo"] and r99["hi"] > a["hi"]


def test_block_bootstrap_edge_cases() -> None:
    empty = block_bootstrap_mean(np.array([]))
    assert empty["n"] == 0 and all(math.isnan(empty[k]) for k in ("mean", "se", "lo", "hi"))
    one = block_bootstrap_mean(np.array([np.nan, 2.5]))
    assert one["n"] == 1 and one["mean"] == 2.5 and math.isnan(one["se"]) and math.isnan(one["lo"])
    const = block_bootstrap_mean(np.full(30, 0.1))
    assert const["se"] == 0.0 and const["lo"] == const["hi"] == const["mean"] == pytest.approx(0.1)
    c_nw = mean_ci(np.full(30, 0.1))
    assert c_nw["se"] == 0.0 and c_nw["lo"] == c_nw["hi"] == c_nw["mean"]
    x = np.random.default_rng(0).standard_normal(100)
    assert block_bootstrap_mean(np.insert(x, [0, 40], np.nan), seed=2) == block_bootstrap_mean(x, seed=2)
    for bad in ({"block": 0}, {"n_boot": 1}, {"alpha": 0.0}):
        with pytest.raises(ValueError):
            block_bootstrap_mean(x, **bad)
    assert math.isnan(mean_ci(np.array([]))["mean"]) and mean_ci(np.array([1.0]))["n"] == 1


# ------------------------------------------------------------------------------------------ weights


def test_weighted_mean_is_the_weighted_formula() -> None:
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal(300), rng.uniform(0.1, 3.0, 300)
    expected = float(np.sum(w * x) / np.sum(w))
    for method in ("newey_west", "block_bootstrap"):
        assert mean_ci(x, method, weights=w)["mean"] == pytest.approx(expected, rel=1e-12)
    # equal weights reduce to the unweighted estimators
    ones = np.full(300, 2.0)
    assert newey_west_se(x, weights=ones) == pytest.approx(newey_west_se(x), rel=1e-10)
    bw, bu = block_bootstrap_mean(x, weights=ones, seed=3), block_bootstrap_mean(x, seed=3)
    for k in ("mean", "se", "lo", "hi"):
        assert bw[k] == pytest.approx(bu[k], rel=1e-9)
    # NaN in a value or a weight drops the row; negative weights are refused; zero total weight has no mean
    xn, wn = x.copy(), w.copy()
    xn[3], wn[10] = np.nan, np.nan
    keep = np.ones(300, bool)
    keep[[3, 10]] = False
    assert newey_west_se(xn, weights=wn) == newey_west_se(x[keep], weights=w[keep])
    assert mean_ci(xn, weights=wn)["n"] == 298
    with pytest.raises(ValueError, match=">= 0"):
        newey_west_se(x, weights=-w)
    with pytest.raises(ValueError, match="shape"):
        newey_west_se(x, weights=w[:-1])
    assert math.isnan(newey_west_se(x, weights=np.zeros(300)))
    assert math.isnan(block_bootstrap_mean(x, weights=np.zeros(300))["mean"])


def test_weighted_intervals_cover_under_dependence_and_heteroscedasticity() -> None:
    """x_t = y_t / sqrt(w_t) with y AR(1) phi=0.5 and iid weights w ~ U(0.25, 4): the weighted mean estimates 0.

    The ratio-estimator NW SE matches the Monte Carlo sd of the weighted mean (expected ratio ~0.96, as for the
    unweighted AR(1)), and its 95 % interval covers 0 at ~0.944 (n=4000, R=1500, binomial SE 0.006; P(outside
    BAND) < 0.1 %). The weighted bootstrap variance equals the weighted NW variance on average (ratio ~1.00).
    """
    rng = np.random.default_rng(31)
    reps, n = 1500, 4000
    w = rng.uniform(0.25, 4.0, (reps, n))
    x = _ar1(rng, reps, n, 0.5) / np.sqrt(w)
    res = [mean_ci(xi, weights=wi) for xi, wi in zip(x, w, strict=True)]
    means = np.array([r["mean"] for r in res])
    se = np.array([r["se"] for r in res])
    assert means == pytest.approx(np.sum(w * x, axis=1) / np.sum(w, axis=1))
    assert 0.90 <= math.sqrt(np.mean(se**2)) / means.std() <= 1.02
    cov = _covers(res)
    print(f"weighted NW coverage AR(1): {cov:.4f}")
    assert BAND[0] <= cov <= BAND[1]
    boot = np.array([block_bootstrap_mean(xi, weights=wi, seed=i)["se"] for i, (xi, wi) in enumerate(
        zip(x[:200, :1000], w[:200, :1000], strict=True))])
    nw = np.array([newey_west_se(xi, weights=wi) for xi, wi in zip(x[:200, :1000], w[:200, :1000], strict=True)])
    assert np.mean(boot**2) / np.mean(nw**2) == pytest.approx(1.0, abs=0.05)


# ------------------------------------------------------------------------------------------ edge decomposition


def _trades(n: int, seed: int) -> pd.DataFrame:
    """A trades frame like the engine's: correlated gross edge, two fee levels, funding; net by the engine's formula."""
    rng = np.random.default_rng(seed)
    gross = 0.002 + 0.01 * _ar1(rng, 1, n, 0.4)[0]
    tp = rng.random(n) < 0.3
    fees = np.where(tp, 0.0005 + 0.0002, 0.0005 + 0.0005)
    slippage = np.where(tp, 0.0001, 0.0002)
    funding = 0.0001 * _ar1(rng, 1, n, 0.9)[0]
    net = gross - fees - slippage - funding  # the engine's order
    entry_ts = np.arange(n, dtype=np.int64) * 3_600_000 * 7
    df = pd.DataFrame({"entry_ts": entry_ts, "size": rng.uniform(0.2, 1.0, n), "gross": gross, "fees": fees,
                       "slippage": slippage, "funding": funding, "net": net})
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # rows out of time order


@pytest.mark.parametrize("method", ["newey_west", "block_bootstrap"])
@pytest.mark.parametrize("weighted", [False, True])
def test_edge_uncertainty_decomposition_is_exact(method: str, weighted: bool) -> None:
    t = _trades(400, 1)
    t.loc[5, "funding"] = np.nan  # a row missing one figure leaves every column
    out = edge_uncertainty(t, weights="size" if weighted else None, method=method, seed=3)  # type: ignore[arg-type]
    assert list(out) == ["gross", "fees", "slippage", "funding", "net"]
    assert {r["n"] for r in out.values()} == {399}
    assert len({(r["lags"], r["block"]) for r in out.values()}) == 1  # one common window
    m = {k: r["mean"] for k, r in out.items()}
    assert m["net"] == pytest.approx(m["gross"] - m["fees"] - m["slippage"] - m["funding"], rel=0, abs=1e-9)
    ok = t["funding"].notna()
    w = t.loc[ok, "size"].to_numpy() if weighted else np.ones(int(ok.sum()))
    for k in m:  # bps; report.edge_decomposition's figures for the unweighted case
        expected = float(np.sum(w * t.loc[ok, k].to_numpy()) / np.sum(w) * 1e4)
        assert m[k] == pytest.approx(expected, rel=1e-12, abs=1e-12)
        r = out[k]
        assert r["lo"] <= r["mean"] <= r["hi"] and r["se"] >= 0


def test_edge_uncertainty_bootstrap_shares_block_draws_across_columns() -> None:
    """Constant fees, no slippage or funding: net = gross - fee row by row, so with one common window and seed
    every bootstrap replicate of net is the gross replicate minus the fee — same se, interval shifted by the fee."""
    t = _trades(300, 4)
    t["fees"], t["slippage"], t["funding"] = 0.0007, 0.0, 0.0
    t["net"] = t["gross"] - t["fees"] - t["slippage"] - t["funding"]
    out = edge_uncertainty(t, method="block_bootstrap", seed=11)
    g, n = out["gross"], out["net"]
    assert n["se"] == pytest.approx(g["se"], rel=1e-9)
    assert n["lo"] == pytest.approx(g["lo"] - 7.0, abs=1e-9) and n["hi"] == pytest.approx(g["hi"] - 7.0, abs=1e-9)
    assert out["fees"]["se"] == 0.0 and out["fees"]["lo"] == out["fees"]["hi"] == pytest.approx(7.0)


def test_edge_uncertainty_time_order_scale_and_inputs() -> None:
    t = _trades(300, 2)
    by_time = t.sort_values("entry_ts").reset_index(drop=True)
    assert edge_uncertainty(t) == edge_uncertainty(by_time)  # rows are put in entry_ts order
    shuffled_no_ts = t.drop(columns="entry_ts")  # no time column: the given (shuffled) order is used
    assert edge_uncertainty(shuffled_no_ts)["gross"]["se"] != edge_uncertainty(by_time)["gross"]["se"]
    a, b = edge_uncertainty(t, scale=1.0), edge_uncertainty(t)
    for k in a:
        for f in ("mean", "se", "lo", "hi"):
            assert b[k][f] == pytest.approx(a[k][f] * 1e4)
    as_dict = {c: by_time[c].to_numpy() for c in by_time.columns}
    assert edge_uncertainty(as_dict, weights="size") == edge_uncertainty(by_time, weights=by_time["size"].to_numpy())
    assert edge_uncertainty(t, method="block_bootstrap", seed=5) == edge_uncertainty(t, method="block_bootstrap", seed=5)
    one = edge_uncertainty(t, columns=("net",), lags=2)
    assert list(one) == ["net"] and one["net"]["lags"] == 2
    empty = edge_uncertainty(t.iloc[:0])
    assert all(r["n"] == 0 and math.isnan(r["mean"]) for r in empty.values())
    with pytest.raises(ValueError, match="length"):
        edge_uncertainty(t, weights=np.ones(3))


# ------------------------------------------------------------------------------------------ folds


def test_per_fold_summary_known_values() -> None:
    v = [0.50, 0.55, np.nan, 0.60, 0.65]
    s = per_fold_summary(v)
    sd = float(np.std([0.50, 0.55, 0.60, 0.65], ddof=1))
    t = 3.182446305284263  # t_{0.975, 3}
    assert s["n"] == 4 and s["mean"] == pytest.approx(0.575) and s["std"] == pytest.approx(sd)
    assert s["min"] == 0.50 and s["max"] == 0.65 and s["se"] == pytest.approx(sd / 2)
    assert s["lo"] == pytest.approx(0.575 - t * sd / 2) and s["hi"] == pytest.approx(0.575 + t * sd / 2)
    e = per_fold_summary([])
    assert e["n"] == 0 and all(math.isnan(e[k]) for k in ("mean", "std", "se", "lo", "hi"))
    o = per_fold_summary([0.7, np.nan])
    assert o["n"] == 1 and o["mean"] == o["min"] == o["max"] == 0.7 and math.isnan(o["std"]) and math.isnan(o["lo"])
    c = per_fold_summary([0.6, 0.6, 0.6])
    assert c["std"] == 0.0 and c["se"] == 0.0 and c["lo"] == c["hi"] == 0.6


def test_per_fold_t_interval_coverage() -> None:
    """Five N(0.55, 0.03^2) fold AUCs: the t-interval is exact for normal folds, coverage 0.95.
    R=3000 (binomial SE 0.004): P(outside [0.935, 0.965]) ~ 0.02 %."""
    folds = np.random.default_rng(12).normal(0.55, 0.03, (3000, 5))
    cov = _covers([per_fold_summary(f) for f in folds], truth=0.55)
    print(f"per-fold t-interval coverage: {cov:.4f}")
    assert 0.935 <= cov <= 0.965


def test_fold_auc_hand_example() -> None:
    labels = np.array([1, -1, 1, -1, 0, 1, 1, -1, np.nan, 1, -1, -1])
    scores = np.array([0.9, 0.1, 0.4, 0.4, np.nan, 0.3, 0.8, 0.2, 0.5, 0.7, 0.7, 0.1])
    folds = np.array([0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 3])
    out = fold_auc(labels, scores, folds)
    assert [r["fold"] for r in out] == [0, 1, 2, 3] and isinstance(out[0]["fold"], int)
    # fold 0: pairs (0.9>0.1) (0.9>0.4) (0.4>0.1) (0.4=0.4 -> 1/2) -> 3.5 / 4; the label-0 row is left out
    assert out[0]["auc"] == pytest.approx(0.875) and (out[0]["n"], out[0]["n_up"], out[0]["n_down"]) == (4, 2, 2)
    assert math.isnan(out[1]["auc"]) and out[1]["n"] == 2  # one class
    assert math.isnan(out[2]["auc"]) and out[2]["n"] == 1  # unlabeled row left out
    assert out[3]["auc"] == pytest.approx(0.75)  # (0.7 = 0.7 -> 1/2) + (0.7 > 0.1) -> 1.5 / 2
    with pytest.raises(ValueError, match="NaN"):
        fold_auc(np.array([1.0, -1.0]), np.array([np.nan, 0.2]), np.array([0, 0]))
    with pytest.raises(ValueError, match="shape"):
        fold_auc(labels, scores[:-1], folds)
    assert fold_auc(np.array([]), np.array([]), np.array([])) == []


def test_fold_auc_matches_walkforward_directional_auc() -> None:
    from cryptoalgo_core.model.walkforward import directional_auc

    rng = np.random.default_rng(6)
    n = 3000
    labels = rng.choice([1.0, -1.0, 0.0, np.nan], size=n, p=[0.4, 0.4, 0.15, 0.05])
    scores = np.round(rng.random(n) + 0.3 * np.nan_to_num(labels), 1)  # coarse: many ties
    folds = rng.integers(0, 12, n)
    for r in fold_auc(labels, scores, folds):
        m = folds == r["fold"]
        assert r["auc"] == pytest.approx(directional_auc(labels[m], scores[m]), abs=1e-12)
