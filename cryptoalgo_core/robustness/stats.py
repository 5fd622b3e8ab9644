"""Selection-bias and overfitting statistics of backtests: PSR, expected maximum Sharpe, DSR, MinTRL, CSCV PBO.

Pure functions of numbers (numpy, plus :mod:`scipy.special` for the standard normal CDF and quantile); nothing
here draws random numbers, reads files or keeps state.

Conventions
-----------
* **Sharpe ratios are per period and not annualised**: ``SR = mean / std`` of the returns at their own sampling
  frequency, with the sample standard deviation (``ddof = 1``). An annualised figure ``SR_a`` over ``m`` periods
  a year is ``SR_a / sqrt(m)`` per period; a variance of annualised Sharpe ratios is ``V_a / m`` per period.
  Feeding annualised Sharpe ratios into these formulas silently overstates every probability.
* **Moments are the biased (population-formula) sample moments** of the returns ``r`` with ``d = r - mean(r)``:
  ``m_k = mean(d ** k)``, skewness ``g3 = m_3 / m_2 ** 1.5`` and **raw (non-excess) kurtosis**
  ``g4 = m_4 / m_2 ** 2`` (normal returns: ``g3 = 0, g4 = 3``). A raw kurtosis is never below ``1 + g3 ** 2``;
  a pair that breaks this bound (most often an *excess* kurtosis passed by mistake) is rejected with
  ``ValueError``. :func:`sharpe_moments` computes ``sr``, ``n_obs``, ``skew`` and ``kurtosis`` in exactly this
  convention, so a caller can record the inputs of every figure it reports.
* The Sharpe-ratio statistics assume **iid returns**; they use the asymptotic (large-``n``) normal law of the
  estimated Sharpe ratio with the non-normal variance of Mertens (2002),
  ``Var[SR_hat] ~ (1 - g3 SR + (g4 - 1) / 4 SR ** 2) / (n - 1)``. Serially correlated returns make them
  over-confident.
* Invalid input (non-finite numbers, too few observations, impossible moments, wrong types) raises
  ``ValueError`` naming the argument and the problem; nothing is clipped or dropped silently.

References
----------
* D. H. Bailey and M. López de Prado (2012), "The Sharpe Ratio Efficient Frontier", *Journal of Risk* 15(2),
  3-44 — probabilistic Sharpe ratio (PSR) and minimum track record length (MinTRL).
* D. H. Bailey and M. López de Prado (2014), "The Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest
  Overfitting, and Non-Normality", *Journal of Portfolio Management* 40(5), 94-107 — expected maximum Sharpe
  ratio of ``N`` trials (false strategy theorem) and the deflated Sharpe ratio (DSR).
* D. H. Bailey, J. M. Borwein, M. López de Prado and Q. J. Zhu (2017), "The Probability of Backtest
  Overfitting", *Journal of Computational Finance* 20(4), 39-69 — combinatorially symmetric cross-validation
  (CSCV) and the probability of backtest overfitting (PBO).
* A. Mertens (2002), "Comments on variance of the IID estimator in Lo (2002)" — the variance term above.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Literal, TypedDict

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

__all__ = [
    "EULER_GAMMA",
    "PboResult",
    "SharpeMoments",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "min_track_record_length",
    "pbo_cscv",
    "probabilistic_sharpe_ratio",
    "sharpe_moments",
]

#: the Euler–Mascheroni constant (gamma in the false strategy theorem)
EULER_GAMMA: float = 0.57721566490153286061

Metric = Literal["sharpe", "mean", "sum"]
_METRICS: tuple[str, ...] = ("sharpe", "mean", "sum")

# relative slack on the moment bound kurtosis >= 1 + skew**2: sample moments of a two-point series sit on the
# bound and may cross it by a few ulps
_MOMENT_BOUND_RTOL = 1e-9

# upper bound on the number of floats in one working (combinations x trials) array of pbo_cscv
_PBO_CHUNK_FLOATS = 1 << 21


class SharpeMoments(TypedDict):
    """Inputs of the Sharpe-ratio statistics: per-period ``sr`` (ddof 1), ``n_obs``, biased ``skew``, raw ``kurtosis``."""

    sr: float
    n_obs: int
    skew: float
    kurtosis: float


class PboResult(TypedDict):
    """CSCV result: ``pbo``, per-combination ``lambdas`` (logits), ``prob_oos_loss`` and ``n_combinations``."""

    pbo: float
    lambdas: np.ndarray
    prob_oos_loss: float
    n_combinations: int


# --------------------------------------------------------------------------------------------------- validation


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    return out


def _integer(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    out = int(value)
    if out < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {out}")
    return out


def _variance_term(sr: float, skew: float, kurtosis: float) -> float:
    """``1 - g3 SR + (g4 - 1) / 4 SR**2`` after checking that (skew, kurtosis) can be moments of a distribution."""
    bound = 1.0 + skew * skew
    if kurtosis < bound - _MOMENT_BOUND_RTOL * bound:
        raise ValueError(
            f"kurtosis must be the raw (non-excess) kurtosis (normal = 3), which is >= 1 + skew**2 = {bound:.6g}; "
            f"got kurtosis={kurtosis:.6g} with skew={skew:.6g} (an excess kurtosis passed by mistake?)"
        )
    term = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if not term > 0.0:
        raise ValueError(
            f"the Sharpe-ratio variance term 1 - skew*sr + (kurtosis-1)/4*sr**2 is {term:.6g} (must be > 0) for "
            f"sr={sr:.6g}, skew={skew:.6g}, kurtosis={kurtosis:.6g}: a degenerate two-point distribution"
        )
    return term


# --------------------------------------------------------------------------------------------------- moments


def sharpe_moments(returns: ArrayLike) -> SharpeMoments:
    """Per-period Sharpe ratio and the moments the Sharpe-ratio statistics need, from one return series.

    With ``n`` returns ``r``, ``mu = mean(r)``, ``d = r - mu`` and ``m_k = mean(d ** k)`` (biased moments)::

        sr       = mu / sqrt(m_2 * n / (n - 1))      # sample std, ddof = 1; per period, not annualised
        skew     = m_3 / m_2 ** 1.5                   # biased sample skewness
        kurtosis = m_4 / m_2 ** 2                     # biased sample kurtosis, raw (normal = 3), not excess

    These are the estimators of Bailey & López de Prado (2012, "The Sharpe Ratio Efficient Frontier") and
    (2014, "The Deflated Sharpe Ratio"). ``returns`` must be a 1-d array of at least 2 finite values that are
    not all equal; the result ``{"sr", "n_obs", "skew", "kurtosis"}`` feeds :func:`probabilistic_sharpe_ratio`,
    :func:`deflated_sharpe_ratio` and :func:`min_track_record_length` directly.
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"returns must be a 1-d array, got shape {r.shape}")
    n = int(r.shape[0])
    if n < 2:
        raise ValueError(f"returns needs n_obs >= 2 values, got {n}")
    bad = ~np.isfinite(r)
    if bad.any():
        raise ValueError(
            f"returns has {int(bad.sum())} non-finite value(s), first at index {int(np.argmax(bad))}"
        )
    if r.max() == r.min():
        raise ValueError(
            "returns are constant: the standard deviation is 0 and the Sharpe ratio is undefined"
        )
    mu = float(r.mean())
    d = r - mu
    d2 = d * d
    m2 = float(d2.mean())
    if not m2 > 0.0:
        raise ValueError("returns have a variance that underflows to 0: the Sharpe ratio is undefined")
    m3 = float((d2 * d).mean())
    m4 = float((d2 * d2).mean())
    return SharpeMoments(
        sr=mu / math.sqrt(m2 * n / (n - 1)),
        n_obs=n,
        skew=m3 / m2**1.5,
        kurtosis=m4 / (m2 * m2),
    )


# --------------------------------------------------------------------------------------------------- PSR / DSR


def probabilistic_sharpe_ratio(sr: float, sr_star: float, n_obs: int, skew: float, kurtosis: float) -> float:
    """Probabilistic Sharpe ratio: the probability that the true Sharpe ratio exceeds the benchmark ``sr_star``.

    Bailey & López de Prado (2012), "The Sharpe Ratio Efficient Frontier", *Journal of Risk* 15(2)::

        PSR(SR*) = Phi( (SR - SR*) * sqrt(n - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR ** 2) )

    ``Phi`` the standard normal CDF, ``SR = sr`` the observed Sharpe ratio and ``SR* = sr_star`` the benchmark,
    both **per period, not annualised** (sample std, ``ddof = 1``); ``n = n_obs >= 2`` the number of returns;
    ``g3 = skew`` the biased sample skewness and ``g4 = kurtosis`` the biased **raw** kurtosis (normal = 3) of the
    returns (:func:`sharpe_moments`). iid returns; the normal approximation is asymptotic in ``n``. Equal
    ``sr`` and ``sr_star`` give 0.5; ``sr < sr_star`` gives less than 0.5.
    """
    sr_ = _finite("sr", sr)
    star = _finite("sr_star", sr_star)
    n = _integer("n_obs", n_obs, 2)
    term = _variance_term(sr_, _finite("skew", skew), _finite("kurtosis", kurtosis))
    z = (sr_ - star) * math.sqrt(n - 1) / math.sqrt(term)
    return float(special.ndtr(z))


def expected_max_sharpe(mean_sr: float, var_sr: float, n_trials: int) -> float:
    """Expected maximum of ``n_trials`` independent Sharpe-ratio estimates (the false strategy theorem).

    Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", *Journal of Portfolio Management* 40(5) (also
    Bailey, Borwein, López de Prado & Zhu 2014, "Pseudo-Mathematics and Financial Charlatanism")::

        E[max_n SR_n] ~ E[SR] + sqrt(V[SR]) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)))

    ``N = n_trials``, ``E[SR] = mean_sr`` and ``V[SR] = var_sr`` the mean and variance of the trials' Sharpe
    ratios (**per period, not annualised**), ``gamma`` the Euler–Mascheroni constant, ``e`` Euler's number,
    ``Phi^-1`` the standard normal quantile. The paper's DSR sets ``E[SR] = 0`` (no skill), so the benchmark is
    the maximum that luck alone is expected to produce.

    ``N = 1`` is defined as ``mean_sr`` (one trial: no selection; the formula's ``Phi^-1(0)`` is ``-inf``).
    The bracket is the Gumbel (extreme-value) approximation of the expected maximum of ``N`` iid standard
    normals; against the exact value it is off by -0.044 at ``N = 2`` and by at most +0.036 for ``N >= 3``
    (+0.036 at 10, +0.023 at 100, +0.014 at 1000), in units of ``sqrt(var_sr)``.
    """
    mean = _finite("mean_sr", mean_sr)
    var = _finite("var_sr", var_sr)
    if var < 0.0:
        raise ValueError(f"var_sr must be >= 0, got {var}")
    n = _integer("n_trials", n_trials, 1)
    if n == 1:
        return mean
    z = (1.0 - EULER_GAMMA) * float(special.ndtri(1.0 - 1.0 / n)) + EULER_GAMMA * float(
        special.ndtri(1.0 - 1.0 / (n * math.e))
    )
    return mean + math.sqrt(var) * z


def deflated_sharpe_ratio(
    sr: float,
    n_obs: int,
    skew: float,
    kurtosis: float,
    n_trials: int,
    var_trials_sr: float,
    mean_trials_sr: float = 0.0,
) -> float:
    """Deflated Sharpe ratio: the PSR of the selected trial against the expected maximum Sharpe ratio of luck.

    Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", *Journal of Portfolio Management* 40(5)::

        SR_0 = expected_max_sharpe(mean_trials_sr, var_trials_sr, n_trials)
        DSR  = PSR(SR_0) = Phi( (SR - SR_0) * sqrt(n - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR ** 2) )

    ``sr`` the selected (best) trial's Sharpe ratio, ``n_obs``, ``skew`` and raw ``kurtosis`` (normal = 3) of its
    returns, as in :func:`probabilistic_sharpe_ratio`; ``n_trials`` the number of (independent) trials tried and
    ``var_trials_sr`` the variance of their Sharpe ratios — all per period, not annualised. ``mean_trials_sr``
    defaults to 0, the paper's null of no skill; passing the trials' mean Sharpe ratio instead tests the
    selected trial against the best of ``n_trials`` draws around that mean. With ``n_trials = 1`` the DSR is the
    PSR against ``mean_trials_sr``.
    """
    sr0 = expected_max_sharpe(mean_trials_sr, var_trials_sr, n_trials)
    return probabilistic_sharpe_ratio(sr, sr0, n_obs, skew, kurtosis)


def min_track_record_length(
    sr: float, sr_star: float, skew: float, kurtosis: float, prob: float = 0.95
) -> float:
    """Minimum track record length: observations needed for ``PSR(sr_star) >= prob`` given the observed moments.

    Bailey & López de Prado (2012), "The Sharpe Ratio Efficient Frontier", *Journal of Risk* 15(2)::

        MinTRL = 1 + (1 - g3 * SR + (g4 - 1) / 4 * SR ** 2) * (Phi^-1(prob) / (SR - SR*)) ** 2

    in **observations** (periods of the returns, not years), with ``SR = sr`` and ``SR* = sr_star`` per period
    and not annualised, ``g3 = skew`` and ``g4 = kurtosis`` raw (normal = 3), ``0.5 < prob < 1``. It inverts
    :func:`probabilistic_sharpe_ratio` in ``n``: ``PSR(sr, sr_star, n, skew, kurtosis) == prob`` at
    ``n = MinTRL``, so the shortest integer track record that reaches ``prob`` is ``ceil(MinTRL)``. The result is
    not rounded. ``inf`` when ``sr <= sr_star`` (no track record length makes the PSR exceed one half).
    """
    sr_ = _finite("sr", sr)
    star = _finite("sr_star", sr_star)
    p = _finite("prob", prob)
    if not 0.5 < p < 1.0:
        raise ValueError(f"prob must be in (0.5, 1), got {p}")
    term = _variance_term(sr_, _finite("skew", skew), _finite("kurtosis", kurtosis))
    if sr_ <= star:
        return math.inf
    z = float(special.ndtri(p))
    return 1.0 + term * (z / (sr_ - star)) ** 2


# --------------------------------------------------------------------------------------------------- PBO (CSCV)


def _block_stats(
    x: np.ndarray, n_splits: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-block row count, column sums, two-pass centred sums of squares, column minima and maxima (S x N)."""
    blocks = np.array_split(np.arange(x.shape[0]), n_splits)
    counts = np.array([len(b) for b in blocks], dtype=np.float64)
    sums = np.empty((n_splits, x.shape[1]))
    m2 = np.empty_like(sums)
    lo = np.empty_like(sums)
    hi = np.empty_like(sums)
    for k, rows in enumerate(blocks):
        xb = x[rows[0] : rows[-1] + 1]
        sums[k] = xb.sum(axis=0)
        dev = xb - sums[k] / counts[k]
        m2[k] = (dev * dev).sum(axis=0)
        lo[k] = xb.min(axis=0)
        hi[k] = xb.max(axis=0)
    return counts, sums, m2, lo, hi


def _half_metric(
    idx: np.ndarray,
    metric: str,
    counts: np.ndarray,
    sums: np.ndarray,
    m2: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    label: str,
) -> np.ndarray:
    """Metric of every trial over the rows of the blocks ``idx`` (c x h block indices) -> (c x N).

    Blocks are combined by explicit elementwise additions, so two identical trial columns get bit-identical
    metrics (ties stay ties). The Sharpe variance uses the pooled-moments identity
    ``M2 = sum_b M2_b + sum_b n_b (mean_b - mean) ** 2`` (no cancellation).
    """
    n = counts[idx].sum(axis=1)[:, None]
    total = sums[idx[:, 0]].copy()
    for k in range(1, idx.shape[1]):
        total += sums[idx[:, k]]
    if metric == "sum":
        return total
    mean = total / n
    if metric == "mean":
        return mean
    pooled = m2[idx[:, 0]].copy()
    lowest = lo[idx[:, 0]].copy()
    highest = hi[idx[:, 0]].copy()
    for k in range(idx.shape[1]):
        b = idx[:, k]
        if k:
            pooled += m2[b]
            np.minimum(lowest, lo[b], out=lowest)
            np.maximum(highest, hi[b], out=highest)
        gap = sums[b] / counts[b][:, None] - mean
        pooled += counts[b][:, None] * gap * gap
    degenerate = (highest == lowest) | ~(pooled > 0.0)
    if degenerate.any():
        c, j = np.argwhere(degenerate)[0]
        blocks = ", ".join(str(int(b)) for b in idx[c])
        raise ValueError(
            f"perf column {int(j)} is constant over the {label} blocks ({blocks}): its Sharpe ratio is undefined "
            "(zero standard deviation); drop the trial or use metric='mean' or 'sum'"
        )
    return mean / np.sqrt(pooled / (n - 1.0))


def pbo_cscv(perf: ArrayLike, n_splits: int, metric: Metric = "sharpe", threshold: float = 0.0) -> PboResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation (CSCV).

    Bailey, Borwein, López de Prado & Zhu (2017), "The Probability of Backtest Overfitting", *Journal of
    Computational Finance* 20(4). ``perf`` is a ``T x N`` array of per-period performance (e.g. returns): rows
    are time in order, columns are the ``N >= 2`` trials (configurations) that were compared.

    1. Split the rows into ``S = n_splits`` contiguous blocks (``S`` even, ``2 <= S <= T``), sized as
       :func:`numpy.array_split` does (the first ``T mod S`` blocks get one row more).
    2. For each of the ``C(S, S/2)`` sets ``J`` of ``S/2`` blocks (in :func:`itertools.combinations` order),
       the in-sample (IS) rows are the blocks in ``J`` and the out-of-sample (OOS) rows the other ``S/2`` blocks;
       every split therefore appears once with each half in-sample.
    3. Score each trial on each half with ``metric``: ``"sharpe"`` = mean / std (``ddof = 1``, per period, not
       annualised), ``"mean"``, or ``"sum"`` of the rows.
    4. ``n*`` = the IS-best trial, ``argmax`` of the IS scores (the first index on ties). Its OOS rank
       ``w`` among the ``N`` OOS scores runs from 1 (worst) to ``N`` (best), ties getting the average of the
       ranks they span (``scipy.stats.rankdata(method="average")``); ``omega = w / (N + 1)`` and the logit
       ``lambda = log(omega / (1 - omega))``.
    5. The combination is overfit when ``lambda <= 0``: the trial picked in-sample does no better than the
       OOS median.

    Returns ``{"pbo", "lambdas", "prob_oos_loss", "n_combinations"}``: ``pbo`` the share of combinations with
    ``lambda <= 0`` (the paper's ``PBO = integral of f(lambda) over lambda <= 0``), ``lambdas`` the ``C(S, S/2)``
    logits in combination order, ``prob_oos_loss`` the share of combinations whose IS-best trial has an OOS
    score ``< threshold`` (the paper's probability of loss, threshold 0), ``n_combinations = C(S, S/2)``.

    With ``N`` exchangeable trials of iid rows (pure noise) the OOS rank of the IS winner is uniform on
    ``1..N``, so ``E[pbo] = 1/2`` for even ``N`` and ``(N + 1) / (2 N)`` for odd ``N`` (the median rank counts as
    overfit). The number of combinations grows like ``2**S / sqrt(S)`` (12,870 at ``S = 16``, 184,756 at 20).
    ``ValueError`` for a non-2-d or non-finite ``perf``, ``N < 2``, an odd ``n_splits`` or one outside
    ``[2, T]``, an unknown ``metric``, a non-finite ``threshold``, and for ``"sharpe"`` a half with fewer than 2
    rows or a trial that is constant over a half (its Sharpe ratio is undefined).
    """
    x = np.asarray(perf, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"perf must be a 2-d (T rows = time, N columns = trials) array, got shape {x.shape}")
    n_rows, n_trials = (int(s) for s in x.shape)
    if n_trials < 2:
        raise ValueError(f"perf needs N >= 2 trials (columns) to rank, got N = {n_trials}")
    s = _integer("n_splits", n_splits, 2)
    if s % 2:
        raise ValueError(f"n_splits must be even (two halves of S/2 blocks), got {s}")
    if s > n_rows:
        raise ValueError(f"n_splits = {s} > T = {n_rows} rows: every block needs at least one row")
    if metric not in _METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(_METRICS)}")
    thr = _finite("threshold", threshold)
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(
            f"perf has {int(bad.sum())} non-finite value(s), first at row {int(r)}, column {int(c)}"
        )

    x = np.ascontiguousarray(x)
    counts, sums, m2, lo, hi = _block_stats(x, s)
    half = s // 2
    is_idx = np.array(list(combinations(range(s), half)), dtype=np.intp)
    n_comb = int(is_idx.shape[0])
    outside = np.ones((n_comb, s), dtype=bool)
    outside[np.arange(n_comb)[:, None], is_idx] = False
    oos_idx = np.nonzero(outside)[1].reshape(n_comb, half)  # row-major: each row's complement, ascending
    if metric == "sharpe":
        fewest = int(min(counts[is_idx].sum(axis=1).min(), counts[oos_idx].sum(axis=1).min()))
        if fewest < 2:
            raise ValueError(
                f"metric 'sharpe' needs >= 2 rows in each half; T = {n_rows} rows in n_splits = {s} blocks gives "
                f"a half of {fewest} row(s)"
            )

    lambdas = np.empty(n_comb)
    loss = np.empty(n_comb, dtype=bool)
    step = max(1, _PBO_CHUNK_FLOATS // n_trials)
    for start in range(0, n_comb, step):
        stop = min(start + step, n_comb)
        is_score = _half_metric(is_idx[start:stop], metric, counts, sums, m2, lo, hi, "in-sample")
        oos_score = _half_metric(oos_idx[start:stop], metric, counts, sums, m2, lo, hi, "out-of-sample")
        best = np.argmax(is_score, axis=1)
        chosen = oos_score[np.arange(stop - start), best][:, None]
        rank = (oos_score < chosen).sum(axis=1) + ((oos_score == chosen).sum(axis=1) + 1) / 2.0
        omega = rank / (n_trials + 1.0)
        lambdas[start:stop] = np.log(omega / (1.0 - omega))
        loss[start:stop] = chosen[:, 0] < thr
    return PboResult(
        pbo=float(np.mean(lambdas <= 0.0)),
        lambdas=lambdas,
        prob_oos_loss=float(np.mean(loss)),
        n_combinations=n_comb,
    )
