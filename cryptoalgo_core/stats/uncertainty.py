"""Error bars for the verdict figures: HAC / block-bootstrap intervals of a mean, per-trade edge, per-fold spread.

Pure numpy (+ scipy for the normal / Student-t quantiles and ranks); every random routine takes an explicit
``seed`` and is deterministic given it.

Conventions
-----------
* A **series** is a 1-d array in time order. NaNs are ignored by dropping them (the remaining values keep their
  order and are treated as consecutive); ``+-inf`` is not special-cased and propagates.
* Every interval is two-sided at level ``1 - alpha`` (``alpha=0.05``: a 95 % interval). The estimators target the
  mean of a **weakly dependent, stationary** series; they are asymptotic (large-``n``) and under-cover for short or
  very persistent series.
* **Dependence window.** Both time-series estimators use one window: Newey–West with ``L`` lags (Bartlett weights
  ``1 - j / (L + 1)``, ``j = 1..L``) and a circular block bootstrap with blocks of ``b = L + 1`` observations
  estimate the same long-run variance (the block bootstrap variance of the mean is a Bartlett estimator with
  bandwidth ``b``; Künsch 1989). Every result reports both ``lags`` and ``block`` (``block == lags + 1``).
* **Default window** (:func:`default_lags`), for ``n`` non-NaN values::

      L_fixed   = floor(4 (n / 100) ** (2 / 9))                    # Newey & West (1994) fixed rule
      rho       = lag-1 autocorrelation of the demeaned series, clipped to [-0.97, 0.97]
      alpha1    = (2 rho / (1 - rho ** 2)) ** 2                      # Andrews (1991) AR(1) plug-in
      S         = 1.1447 (alpha1 n) ** (1 / 3)                       # MSE-optimal Bartlett bandwidth
      L         = min(max(L_fixed, floor(S)), n - 1)

  The fixed rule alone ignores persistence: with AR(1) ``rho = 0.5`` and ``n = 1000`` it keeps 6 lags, whose
  Bartlett bias leaves the SE ~10 % short (a nominal 95 % interval covers ~92 %). The AR(1) plug-in scales the
  window with the measured persistence (~13 lags there: SE ~5 % short, coverage ~93 %; the Bartlett bias shrinks
  like ``n ** (-1/3)``); flooring it at the fixed rule guards against dependence the lag-1 autocorrelation does
  not see. ``S`` is also exactly the AR(1)-plug-in optimal block length of the circular block bootstrap
  (Politis & White 2004, corrected by Patton, Politis & White 2009), so ``block = L + 1`` (capped at ``n // 2``).
* **Finite samples.** Both intervals are asymptotic; for persistent series they are somewhat too narrow at small
  ``n`` (measured, AR(1) ``rho = 0.5``, 95 % nominal: ~0.90 at n=200, ~0.92 at n=500, ~0.935 at n=2000, ~0.945
  at n=4000; iid data: ~0.94 from n=200). A backtest with a few hundred trades gets intervals a little too narrow.
* **Weights** (e.g. position size): the weighted mean is ``m = sum(w x) / sum(w)``. Its uncertainty treats the
  pairs ``(x_i, w_i)`` as the random draws (a ratio estimator): Newey–West runs on the influence series
  ``u_i = w_i (x_i - m) / mean(w)`` (delta method: ``m - mu ~ mean(u)``), the bootstrap resamples blocks of pairs and
  recomputes ``sum(w* x*) / sum(w*)``. Weights must be >= 0 (not all 0); a row whose value or weight is NaN is
  dropped. With equal weights both reduce to the unweighted estimators.
* **Folds** (:func:`per_fold_summary`): fold values are treated as independent draws — an approximation
  (expanding-window folds share training data, so their errors are positively correlated and the interval is, if
  anything, too narrow).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, Protocol, TypedDict

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

__all__ = [
    "EDGE_COLUMNS",
    "FoldAuc",
    "FoldSummary",
    "MeanCI",
    "block_bootstrap_mean",
    "default_lags",
    "edge_uncertainty",
    "fold_auc",
    "mean_ci",
    "newey_west_se",
    "per_fold_summary",
]

#: the per-trade decomposition ``net = gross - fees - slippage - funding`` (engine trades frame columns)
EDGE_COLUMNS: tuple[str, ...] = ("gross", "fees", "slippage", "funding", "net")

RHO_CLIP = 0.97
ANDREWS_BARTLETT = 1.1447

Method = Literal["newey_west", "block_bootstrap"]


class MeanCI(TypedDict):
    """A mean with its standard error and ``1 - alpha`` interval; ``n`` non-NaN values, window ``lags``/``block``."""

    mean: float
    se: float
    lo: float
    hi: float
    n: int
    block: int
    lags: int
    method: str


class FoldSummary(TypedDict):
    mean: float
    std: float
    min: float
    max: float
    n: int
    se: float
    lo: float
    hi: float


class FoldAuc(TypedDict):
    fold: Any
    n: int
    n_up: int
    n_down: int
    auc: float


class _Columns(Protocol):
    """Anything indexable by column name — a pandas DataFrame, a dict of equal-length arrays."""

    def __getitem__(self, key: str, /) -> Any: ...


NAN = float("nan")


# --------------------------------------------------------------------------------------------------- helpers


def _series(x: ArrayLike) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"expected a 1-d series, got shape {a.shape}")
    return a


def _pairs(x: ArrayLike, weights: ArrayLike | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Drop NaN rows (of x, or of x or w); validate weights."""
    a = _series(x)
    if weights is None:
        return a[~np.isnan(a)], None
    w = _series(weights)
    if w.shape != a.shape:
        raise ValueError(f"weights shape {w.shape} != values shape {a.shape}")
    ok = ~np.isnan(a) & ~np.isnan(w)
    a, w = a[ok], w[ok]
    if np.any(w < 0):
        raise ValueError("weights must be >= 0")
    return a, w


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def _weighted_mean(a: np.ndarray, w: np.ndarray | None) -> float:
    if a.size == 0:
        return NAN
    if w is None:
        return float(np.mean(a))
    sw = float(np.sum(w))
    return float(np.dot(w, a) / sw) if sw > 0 else NAN


def _influence(a: np.ndarray, w: np.ndarray | None, m: float) -> np.ndarray:
    """Series whose plain mean linearises the (weighted) mean's error: ``x - m`` or ``w (x - m) / mean(w)``."""
    if w is None:
        return a - m
    return w * (a - m) / float(np.mean(w))


def _rho1(u: np.ndarray) -> float:
    """Lag-1 autocorrelation of a series (demeaned here), clipped to [-RHO_CLIP, RHO_CLIP]; 0 if undefined."""
    if u.size < 3:
        return 0.0
    d = u - u.mean()
    g0 = float(np.dot(d, d))
    if not g0 > 0 or not math.isfinite(g0):
        return 0.0
    return float(np.clip(np.dot(d[1:], d[:-1]) / g0, -RHO_CLIP, RHO_CLIP))


def _window(u: np.ndarray) -> int:
    """Default Newey–West lag count of a (centred) series of length n (module docstring)."""
    n = u.size
    if n < 2:
        return 0
    fixed = math.floor(4.0 * (n / 100.0) ** (2.0 / 9.0))
    rho = _rho1(u)
    alpha1 = (2.0 * rho / (1.0 - rho * rho)) ** 2
    plug_in = math.floor(ANDREWS_BARTLETT * (alpha1 * n) ** (1.0 / 3.0))
    return int(min(max(fixed, plug_in), n - 1))


def _block_cap(n: int) -> int:
    return max(1, n // 2)


def _nw_se(u: np.ndarray, lags: int) -> float:
    """Bartlett HAC SE of the mean of a series ``u`` that is already centred (autocovariances with 1/n)."""
    n = u.size
    lrv = float(np.dot(u, u)) / n
    for j in range(1, min(lags, n - 1) + 1):
        lrv += 2.0 * (1.0 - j / (lags + 1.0)) * float(np.dot(u[j:], u[:-j])) / n
    return math.sqrt(max(lrv, 0.0) / n)


def _is_constant(a: np.ndarray) -> bool:
    return a.size > 0 and bool(np.all(a == a[0]))


def _result(mean: float, se: float, lo: float, hi: float, n: int, lags: int, method: str) -> MeanCI:
    return MeanCI(mean=mean, se=se, lo=lo, hi=hi, n=n, block=lags + 1, lags=lags, method=method)


# ---------------------------------------------------------------------------------------------- public API


def default_lags(x: ArrayLike, weights: ArrayLike | None = None) -> int:
    """The default dependence window (Newey–West lags ``L``; block length ``L + 1``) of a series — module docstring.

    Computed on the influence series of the (weighted) mean; 0 for fewer than 2 non-NaN values.
    """
    a, w = _pairs(x, weights)
    if a.size < 2:
        return 0
    return _window(_influence(a, w, _weighted_mean(a, w)))


def newey_west_se(x: ArrayLike, lags: int | None = None, weights: ArrayLike | None = None) -> float:
    """Newey–West (Bartlett-kernel HAC) standard error of the sample mean of a time series.

    ``se = sqrt(LRV / n)`` with ``LRV = g0 + 2 sum_{j=1..L} (1 - j / (L + 1)) g_j`` and autocovariances
    ``g_j = sum_t (x_t - m)(x_{t-j} - m) / n`` (divisor ``n``, which keeps ``LRV >= 0``). ``lags=0`` gives the iid
    ``std(ddof=0) / sqrt(n)``; ``lags=None`` uses :func:`default_lags`. With ``weights``: the SE of the weighted mean
    (HAC of ``w (x - m) / mean(w)``, module docstring). NaNs ignored; NaN for fewer than 2 values or zero total
    weight; 0.0 for a constant series.
    """
    if lags is not None and lags < 0:
        raise ValueError(f"lags must be >= 0, got {lags!r}")
    a, w = _pairs(x, weights)
    if a.size < 2:
        return NAN
    m = _weighted_mean(a, w)
    if not math.isfinite(m):
        return NAN
    if _is_constant(a):
        return 0.0
    u = _influence(a, w, m)
    return _nw_se(u, _window(u) if lags is None else int(lags))


def block_bootstrap_mean(
    x: ArrayLike,
    block: int | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    weights: ArrayLike | None = None,
) -> MeanCI:
    """Circular block bootstrap (Politis & Romano 1992) of the (weighted) mean, percentile interval.

    Each replicate concatenates ``ceil(n / block)`` blocks of ``block`` consecutive values (wrapping around the
    end; block starts uniform on ``0..n-1``, drawn with ``numpy.random.default_rng(seed)``), truncated to ``n``
    values, and takes its mean (with ``weights``: ``sum(w* x*) / sum(w*)`` over the resampled pairs). ``se`` is the
    replicates' std (ddof=1); ``lo``/``hi`` are their ``alpha/2`` and ``1 - alpha/2`` quantiles (percentile
    interval — the circular scheme centres the unweighted replicates exactly on the sample mean). ``block=None``
    uses :func:`default_lags` ``+ 1`` capped at ``n // 2``; ``block=1`` is the iid bootstrap.

    Returns :class:`MeanCI` (``method="block_bootstrap"``, ``lags = block - 1``). NaNs ignored; ``mean`` NaN for no
    values; ``se``/``lo``/``hi`` NaN for fewer than 2; a constant series gives ``se=0`` and ``lo=hi=mean``.
    """
    _check_alpha(alpha)
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot!r}")
    a, w = _pairs(x, weights)
    n = a.size
    m = _weighted_mean(a, w)
    if block is not None and block < 1:
        raise ValueError(f"block must be >= 1, got {block!r}")
    if n < 2 or not math.isfinite(m):
        b = 1 if block is None else int(block)
        return _result(m, NAN, NAN, NAN, n, b - 1, "block_bootstrap")
    u = _influence(a, w, m)
    b = min(_window(u) + 1, _block_cap(n)) if block is None else min(int(block), n)
    if _is_constant(a):
        return _result(m, 0.0, m, m, n, b - 1, "block_bootstrap")
    k = -(-n // b)  # blocks per replicate
    r = n - (k - 1) * b  # length of the last (truncated) block, 1..b
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n, size=(n_boot, k))

    def block_sums(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sums of the circular blocks of length b and of length r starting at every position."""
        cs = np.concatenate(([0.0], np.cumsum(np.concatenate((v, v[:b])))))
        idx = np.arange(n)
        return cs[idx + b] - cs[idx], cs[idx + r] - cs[idx]

    def replicate_sums(v: np.ndarray) -> np.ndarray:
        full, part = block_sums(v)
        return np.asarray(full[starts[:, : k - 1]].sum(axis=1) + part[starts[:, k - 1]])

    if w is None:
        reps = m + replicate_sums(a - m) / n  # centred first: the cumulative sums stay small
    else:
        sw = replicate_sums(w)
        with np.errstate(invalid="ignore", divide="ignore"):
            reps = m + replicate_sums(w * (a - m)) / sw
        reps = reps[np.isfinite(reps)]  # a replicate drawing only zero weights has no mean
        if reps.size < 2:
            return _result(m, NAN, NAN, NAN, n, b - 1, "block_bootstrap")
    lo, hi = np.quantile(reps, [alpha / 2.0, 1.0 - alpha / 2.0])
    return _result(m, float(np.std(reps, ddof=1)), float(lo), float(hi), n, b - 1, "block_bootstrap")


def mean_ci(
    x: ArrayLike,
    method: Method = "newey_west",
    *,
    alpha: float = 0.05,
    lags: int | None = None,
    block: int | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    weights: ArrayLike | None = None,
) -> MeanCI:
    """The (weighted) mean with a ``1 - alpha`` interval by one mechanism, as a :class:`MeanCI`.

    * ``"newey_west"``: ``mean +- z_{1 - alpha/2} * se`` with ``se`` = :func:`newey_west_se` (``lags``; ``block`` is
      reported as ``lags + 1``). Deterministic; ``seed``/``n_boot`` unused.
    * ``"block_bootstrap"``: :func:`block_bootstrap_mean` (``block``, ``n_boot``, ``seed``; percentile interval).
      Passing only ``lags`` sets ``block = lags + 1``.
    """
    _check_alpha(alpha)
    if method == "block_bootstrap":
        if block is None and lags is not None:
            block = int(lags) + 1
        return block_bootstrap_mean(x, block=block, n_boot=n_boot, seed=seed, alpha=alpha, weights=weights)
    if method != "newey_west":
        raise ValueError(f"method must be 'newey_west' or 'block_bootstrap', got {method!r}")
    if lags is None and block is not None:
        lags = int(block) - 1
    a, w = _pairs(x, weights)
    m = _weighted_mean(a, w)
    if a.size < 2 or not math.isfinite(m):
        return _result(m, NAN, NAN, NAN, a.size, 0 if lags is None else int(lags), "newey_west")
    L = _window(_influence(a, w, m)) if lags is None else int(lags)
    se = newey_west_se(a, lags=L, weights=w)
    if se == 0.0:
        return _result(m, 0.0, m, m, a.size, L, "newey_west")
    z = float(stats.norm.ppf(1.0 - alpha / 2.0))
    return _result(m, se, m - z * se, m + z * se, a.size, L, "newey_west")


def edge_uncertainty(
    trades: _Columns,
    columns: Sequence[str] = EDGE_COLUMNS,
    weights: str | ArrayLike | None = None,
    scale: float = 1e4,
    method: Method = "newey_west",
    seed: int = 0,
    *,
    alpha: float = 0.05,
    lags: int | None = None,
    block: int | None = None,
    n_boot: int = 2000,
    time_column: str = "entry_ts",
) -> dict[str, MeanCI]:
    """Mean per trade of each decomposition column with its SE and interval, in ``scale`` units (1e4: bps).

    ``trades`` is the engine's trades frame (or any mapping of equal-length columns); its rows are put in time
    order by ``time_column`` (stable sort; kept as given when the column is absent) and each column is treated as a
    time series of per-trade figures — one position at a time, but consecutive trades can be correlated (regimes,
    funding), hence :func:`mean_ci` rather than an iid SE. ``weights`` is a column name (e.g. ``"size"``) or an
    array aligned with the rows: size-weighted means and the ratio-estimator SE of the module docstring.

    Additivity: one common row set (rows where any requested column or the weight is NaN are dropped from every
    column) and one common window — ``lags``/``block`` default to the largest :func:`default_lags` over the
    columns, and the bootstrap uses the same ``seed``, hence the same block draws, for every column. So the means
    keep ``net = gross - fees - slippage - funding`` (up to float rounding) and so does every bootstrap replicate.
    No trades: ``n = 0`` and NaN figures.
    """
    cols = {c: _series(trades[c]) for c in columns}
    n_rows = next(iter(cols.values())).size if cols else 0
    w: np.ndarray | None
    if weights is None:
        w = None
    elif isinstance(weights, str):
        w = _series(trades[weights])
    else:
        w = _series(weights)
    for name, v in [*cols.items(), *([("weights", w)] if w is not None else [])]:
        if v.shape != (n_rows,):
            raise ValueError(f"{name}: length {v.shape} != {n_rows} trades")
    order = np.arange(n_rows)
    try:
        t = np.asarray(trades[time_column])
    except (KeyError, IndexError):
        t = None
    if t is not None and t.shape == (n_rows,):
        order = np.argsort(t, kind="stable")
    ok = np.ones(n_rows, dtype=bool)
    for v in cols.values():
        ok &= ~np.isnan(v)
    if w is not None:
        ok &= ~np.isnan(w)
    sel = order[ok[order]]
    cols = {c: v[sel] for c, v in cols.items()}
    w = None if w is None else w[sel]
    if method == "block_bootstrap" and block is None and lags is not None:
        block = int(lags) + 1
    if method == "newey_west" and lags is None and block is not None:
        lags = int(block) - 1
    if lags is None and block is None and sel.size >= 2:
        common = max(default_lags(v, w) for v in cols.values()) if cols else 0
        lags, block = common, min(common + 1, _block_cap(sel.size))
    out: dict[str, MeanCI] = {}
    for c, v in cols.items():
        r = mean_ci(v, method, alpha=alpha, lags=lags, block=block, n_boot=n_boot, seed=seed, weights=w)
        out[c] = _result(r["mean"] * scale, r["se"] * scale, r["lo"] * scale, r["hi"] * scale, r["n"],
                         r["lags"], r["method"])
    return out


def per_fold_summary(values: ArrayLike, alpha: float = 0.05) -> FoldSummary:
    """Spread of a per-fold figure (e.g. per-fold AUC, per-fold net bps) across walk-forward folds.

    NaN folds are ignored. ``std`` is the sample std (ddof=1), ``se = std / sqrt(n)``, and ``lo``/``hi`` the
    Student-t interval ``mean +- t_{1 - alpha/2, n - 1} * se`` — assuming independent, roughly normal fold values
    (see the module docstring on fold dependence). n=0: all NaN; n=1: mean/min/max only.
    """
    _check_alpha(alpha)
    a = _series(values)
    a = a[~np.isnan(a)]
    n = int(a.size)
    if n == 0:
        return FoldSummary(mean=NAN, std=NAN, min=NAN, max=NAN, n=0, se=NAN, lo=NAN, hi=NAN)
    mean, lo_v, hi_v = float(np.mean(a)), float(np.min(a)), float(np.max(a))
    if n == 1:
        return FoldSummary(mean=mean, std=NAN, min=lo_v, max=hi_v, n=1, se=NAN, lo=NAN, hi=NAN)
    if _is_constant(a):
        return FoldSummary(mean=mean, std=0.0, min=lo_v, max=hi_v, n=n, se=0.0, lo=mean, hi=mean)
    sd = float(np.std(a, ddof=1))
    se = sd / math.sqrt(n)
    t = float(stats.t.ppf(1.0 - alpha / 2.0, n - 1))
    return FoldSummary(mean=mean, std=sd, min=lo_v, max=hi_v, n=n, se=se, lo=mean - t * se, hi=mean + t * se)


def _auc(up: np.ndarray, score: np.ndarray) -> float:
    """Mann–Whitney AUC with average ranks for ties (= sklearn's roc_auc_score); NaN with one class."""
    n1 = int(up.sum())
    n0 = up.size - n1
    if up.size < 2 or n1 == 0 or n0 == 0:
        return NAN
    ranks = stats.rankdata(score)  # average ranks: a tie between classes counts 1/2
    return float((ranks[up].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def fold_auc(labels: ArrayLike, scores: ArrayLike, fold_ids: ArrayLike) -> list[FoldAuc]:
    """Directional AUC per fold, as :func:`cryptoalgo_core.model.walkforward.directional_auc` computes it.

    Only rows with ``label`` in {+1, -1} count (vertical outcomes 0 and unlabeled NaN are left out); the positive
    class is ``label == +1`` ("upper first"), ties in ``scores`` are averaged. One row per distinct fold id
    (ascending): ``{"fold", "n" (directional rows), "n_up", "n_down", "auc"}``, ``auc`` NaN when the fold has fewer
    than two directional rows or only one class. A non-finite score on a directional row raises ``ValueError``
    (as ``directional_auc`` does).
    """
    lab = _series(labels)
    sc = _series(scores)
    fid = np.asarray(fold_ids)
    if not (lab.shape == sc.shape == fid.shape):
        raise ValueError(f"labels {lab.shape}, scores {sc.shape} and fold_ids {fid.shape} must have one shape")
    directional = (lab == 1.0) | (lab == -1.0)
    if not np.all(np.isfinite(sc[directional])):
        raise ValueError("scores contain NaN or inf on directional (label +-1) rows")
    out: list[FoldAuc] = []
    for f in np.unique(fid):
        m = (fid == f) & directional
        up = lab[m] == 1.0
        out.append(FoldAuc(fold=f.item() if isinstance(f, np.generic) else f, n=int(m.sum()),
                           n_up=int(up.sum()), n_down=int((~up).sum()), auc=_auc(up, sc[m])))
    return out
