"""Portfolio readiness of a basket of coins: weights, risk shares, correlation, drawdowns and exposure overlap.

Pure (numpy and pandas only): no files, no random numbers, no global state; the same inputs give the same result.

Inputs and conventions
----------------------
* ``returns``: index = UTC day (``DatetimeIndex`` or int epoch-ms), sorted ascending and unique; columns = coins;
  each value is the coin's daily **simple** strategy return (fraction of equity per day, 0.0 on flat days).
  NaN means the coin had no data that day. The analysis uses the **common days**: the days on which every
  candidate coin has a value (inner join over the candidates, i.e. over the starting basket). The same days are
  kept while coins are dropped, so every basket in the greedy drop is compared on the same sample.
  ``ValueError`` (with a specific message) on: a candidate that is not a column, a non-finite value other than
  NaN (inf), fewer than :data:`MIN_COMMON_DAYS` common days, a duplicate or unsorted index, a zero-variance coin.
* Covariance and Pearson correlation are the sample figures (``ddof = 1``) over the common days.
* Weights (:func:`portfolio_weights`), summing to 1 and all > 0:
  ``inverse_vol`` ``w_i ~ 1 / sigma_i``; ``equal_risk`` equal risk contributions under the sample covariance,
  solved by damped Newton iteration (Spinu 2013) on ``min 1/2 y'Cy - (1/n) sum log y_i`` over the *correlation*
  matrix ``C`` (its minimiser solves ``y_i (Cy)_i = 1/n``), then ``w_i ~ y_i / sigma_i``; it stops when every risk
  contribution is within 1e-10 of ``1/n``. For a diagonal covariance ``y`` is constant, so ``equal_risk`` equals
  ``inverse_vol``.
* Risk contribution (:func:`risk_contributions`): ``RC_i = w_i (Sigma w)_i / (w' Sigma w)``, summing to 1.
* Basket: daily return ``r_t = sum_i w_i r_it`` (rebalanced daily); equity ``cumprod(1 + r)``; max drawdown
  ``max_t 1 - E_t / P_t`` with the running peak ``P_t = max(1, E_1..E_t)`` (the start counts), a positive
  fraction; ``basket_return = E_T - 1``; Sharpe per day ``mean / std`` (``ddof = 1``; NaN for a constant series)
  and annualised ``x sqrt(365)``.
* Correlated drawdown: each coin's own equity ``cumprod(1 + r_i)`` and drawdown as above; a day counts when >= 2
  basket coins are each in a drawdown *deeper* (strictly) than ``coin_drawdown_limit``; the share is such days /
  common days. Windows are the runs of consecutive such common days: ``start``, ``end`` (ISO string for
  timestamps, int for epoch-ms), ``days`` and the ``coins`` that were that deep on some day of the run.
* Exposure overlap (``exposure``: hourly index, columns = coins, values in {-1, 0, 1}, NaN read as 0 = flat; all
  its rows are used): among the hours in which at least one basket coin holds a position, the share in which
  >= 2 basket coins hold a position on the same side (0.0 when no basket coin ever holds one). ``None`` ->
  ``exposure_overlap`` is None and its condition passes with the note "no exposure data".
* Regime failures (``regimes``: coin -> {bucket -> mean net return per trade, bps}): buckets (sorted by name) in
  which >= 2 basket coins have a negative value; informational only, never a pass condition.

Conditions, in this order, each ``{"condition", "value", "threshold", "passed"}`` (plus ``"note"`` when vacuous):
``coins`` (basket size >= ``min_coins``), ``max_pair_correlation`` (largest pairwise correlation <= limit),
``basket_drawdown``, ``correlated_drawdown_share``, ``exposure_overlap``, ``max_risk_share`` (largest ``RC_i``).
With fewer than 2 coins the correlation, correlated-drawdown and overlap conditions pass vacuously but ``coins``
fails whenever ``min_coins >= 2``, so a single coin never makes the portfolio pass; with no coin at all every
other condition passes vacuously (note "empty basket") and the result is ``passed = False``.

Greedy drop: start from all candidates; while the basket holds more than ``min_coins`` coins, a coin qualifies
when its removal (a) turns at least one failing condition other than ``coins`` into a passing one while no
passing condition fails, or (b) raises the basket daily Sharpe by more than ``min_sharpe_gain`` with every
condition passing. Among the qualifying coins the one leaving the largest basket Sharpe is dropped (ties:
alphabetical), with a reason naming the fixed condition(s) or the Sharpe gain; the weights are re-computed and the
loop repeats until no coin qualifies. A basket of ``min_coins`` coins is never reduced.

Every number in the result is a plain Python float or int (NaN only where undefined).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from cryptoalgo_core.config.gates import PortfolioGates

__all__ = ["MIN_COMMON_DAYS", "portfolio_readiness", "portfolio_weights", "risk_contributions"]

MIN_COMMON_DAYS = 20
_ERC_TOL = 1e-10
_ERC_MAX_ITER = 200
_NAN = float("nan")


# ----------------------------------------------------------------------------------------------- validation
def _check_index(frame: pd.DataFrame, what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    if frame.index.has_duplicates:
        first = frame.index[frame.index.duplicated()][0]
        raise ValueError(f"{what} index has duplicate entries (first duplicate: {first})")
    if not frame.index.is_monotonic_increasing:
        raise ValueError(f"{what} index must be sorted ascending")
    if frame.columns.has_duplicates:
        raise ValueError(f"{what} has duplicate columns")


def _common_days(returns: pd.DataFrame, coins: list[str]) -> pd.DataFrame:
    """The validated inner join of ``returns[coins]`` (float), at least MIN_COMMON_DAYS rows, no flat coin."""
    _check_index(returns, "returns")
    if len(set(coins)) != len(coins):
        raise ValueError(f"duplicate coins in {coins}")
    missing = [c for c in coins if c not in returns.columns]
    if missing:
        raise ValueError(f"coin(s) {missing} not in the returns columns")
    frame = returns.loc[:, coins].astype(float)
    for coin in coins:
        n_inf = int(np.isinf(frame[coin].to_numpy()).sum())
        if n_inf:
            raise ValueError(f"returns[{coin!r}] has {n_inf} non-finite value(s) (inf); only NaN (no data) "
                             "is allowed")
    common = frame.dropna(how="any")
    if len(common) < MIN_COMMON_DAYS:
        raise ValueError(f"only {len(common)} common day(s) on which every coin of {coins} has a return; "
                         f"need >= {MIN_COMMON_DAYS}")
    std = common.std(ddof=1)
    flat = [c for c in coins if not std[c] > 0]
    if flat:
        raise ValueError(f"zero-variance returns for coin(s) {flat}: weights and risk are undefined")
    return common


# ------------------------------------------------------------------------------------------------ kernels
def _cov(x: np.ndarray) -> np.ndarray:
    return np.atleast_2d(np.cov(x, rowvar=False, ddof=1))


def _erc_unit(corr: np.ndarray) -> np.ndarray:
    """Equal-risk-contribution solution ``y > 0`` of ``y_i (C y)_i = 1/n``: damped Newton on the self-concordant
    ``f(y) = 1/2 y'Cy - (1/n) sum log y_i`` (Spinu 2013); the step ``1 / (1 + lambda)`` keeps ``y > 0``."""
    n = corr.shape[0]
    b = 1.0 / n
    y = np.full(n, 1.0 / math.sqrt(n))
    for _ in range(_ERC_MAX_ITER):
        grad = corr @ y - b / y
        hess = corr + np.diag(b / (y * y))
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            break
        lam = math.sqrt(max(float(grad @ step), 0.0))  # Newton decrement
        y = y - step / (1.0 + lam) if lam > 0.25 else y - step
        if not np.all(np.isfinite(y)) or not np.all(y > 0):
            break
        rc = y * (corr @ y)
        total = float(rc.sum())
        if total > 0 and float(np.max(np.abs(rc / total - b))) < _ERC_TOL:
            return y
    raise ValueError("equal_risk weights did not converge (is the covariance singular, e.g. a perfect hedge?)")


def _weights(x: np.ndarray, weighting: str) -> np.ndarray:
    sd = x.std(axis=0, ddof=1)
    if weighting == "inverse_vol":
        w = 1.0 / sd
    elif weighting == "equal_risk":
        cov = _cov(x)
        corr = cov / np.outer(sd, sd)
        w = _erc_unit(corr) / sd
    else:
        raise ValueError(f"weighting must be 'equal_risk' or 'inverse_vol', got {weighting!r}")
    return np.asarray(w / w.sum(), dtype=float)


def _rc(cov: np.ndarray, w: np.ndarray) -> np.ndarray:
    sw = cov @ w
    total = float(w @ sw)
    if not total > 0:
        raise ValueError("the portfolio variance w' Sigma w is not > 0: risk contributions are undefined")
    return np.asarray(w * sw / total, dtype=float)


def _drawdown(r: np.ndarray) -> np.ndarray:
    """Drawdown path(s) ``1 - E_t / max(1, E_1..E_t)`` of simple returns along axis 0."""
    eq = np.cumprod(1.0 + r, axis=0)
    peak = np.maximum(np.maximum.accumulate(eq, axis=0), 1.0)
    return np.asarray(1.0 - eq / peak, dtype=float)


def _sharpe(r: np.ndarray) -> float:
    sd = float(np.std(r, ddof=1))
    return float(np.mean(r)) / sd if sd > 0 and math.isfinite(sd) else _NAN


def _label(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, (int, np.integer)):
        return int(value)
    return str(value)


# ------------------------------------------------------------------------------------------------- public
def portfolio_weights(returns: pd.DataFrame, weighting: str) -> dict[str, float]:
    """Weights (summing to 1, all > 0) of every column of ``returns`` over its common days (see module doc)."""
    coins = [str(c) for c in returns.columns] if isinstance(returns, pd.DataFrame) else []
    common = _common_days(returns, coins)
    w = _weights(common.to_numpy(), weighting)
    return {c: float(v) for c, v in zip(coins, w, strict=True)}


def risk_contributions(returns: pd.DataFrame, weights: dict[str, float]) -> dict[str, float]:
    """``RC_i = w_i (Sigma w)_i / (w' Sigma w)`` (sums to 1) under the sample covariance of ``returns[weights]``
    over the common days of those coins."""
    coins = list(weights)
    common = _common_days(returns, coins)
    w = np.array([float(weights[c]) for c in coins])
    if not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite")
    rc = _rc(_cov(common.to_numpy()), w)
    return {c: float(v) for c, v in zip(coins, rc, strict=True)}


def _condition(name: str, value: Any, threshold: str, passed: bool, note: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"condition": name, "value": value, "threshold": threshold, "passed": bool(passed)}
    if note is not None:
        out["note"] = note
    return out


def _evaluate(common: pd.DataFrame, basket: list[str], gates: PortfolioGates,
              expo: np.ndarray | None, expo_cols: list[str]) -> dict[str, Any]:
    n = len(basket)
    lim = gates.max_pair_correlation
    res: dict[str, Any] = {"weights": {}, "risk_contributions": {}, "correlation": {}, "pairs_over_limit": [],
                           "basket_drawdown": _NAN, "basket_sharpe_daily": _NAN, "basket_sharpe_annual": _NAN,
                           "basket_return": _NAN, "correlated_drawdown_share": _NAN,
                           "correlated_drawdown_windows": [], "exposure_overlap": None}
    if expo is not None:
        idx = [expo_cols.index(c) for c in basket]
        e = expo[:, idx]
        active = int((e != 0).any(axis=1).sum())
        same = ((e > 0).sum(axis=1) >= 2) | ((e < 0).sum(axis=1) >= 2)
        res["exposure_overlap"] = float(same.sum()) / active if active else 0.0
    few = "fewer than 2 coins"
    conds = [_condition("coins", n, f">= {gates.min_coins}", n >= gates.min_coins)]
    if n == 0:
        for name in ("max_pair_correlation", "basket_drawdown", "correlated_drawdown_share"):
            conds.append(_condition(name, None, f"<= {getattr(gates, _LIMITS[name]):g}", True, "empty basket"))
        conds.append(_overlap_condition(res["exposure_overlap"], gates, "empty basket"))
        conds.append(_condition("max_risk_share", None, f"<= {gates.max_risk_share:g}", True, "empty basket"))
        res["conditions"] = conds
        return res
    x = common[basket].to_numpy()
    w = _weights(x, gates.weighting)
    rc = _rc(_cov(x), w)
    corr = np.atleast_2d(np.corrcoef(x, rowvar=False))
    rb = x @ w
    res["weights"] = {c: float(v) for c, v in zip(basket, w, strict=True)}
    res["risk_contributions"] = {c: float(v) for c, v in zip(basket, rc, strict=True)}
    res["correlation"] = {a: {b: float(corr[i, j]) for j, b in enumerate(basket)} for i, a in enumerate(basket)}
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    res["pairs_over_limit"] = [{"pair": [basket[i], basket[j]], "correlation": float(corr[i, j])}
                               for i, j in pairs if corr[i, j] > lim]
    res["basket_drawdown"] = float(np.max(_drawdown(rb)))
    sr = _sharpe(rb)
    res["basket_sharpe_daily"] = sr
    res["basket_sharpe_annual"] = sr * math.sqrt(365.0)
    res["basket_return"] = float(np.prod(1.0 + rb) - 1.0)
    deep = _drawdown(x) > gates.coin_drawdown_limit
    hit = deep.sum(axis=1) >= 2
    res["correlated_drawdown_share"] = float(hit.sum()) / len(hit)
    res["correlated_drawdown_windows"] = _windows(common.index, hit, deep, basket)
    max_corr = float(max(corr[i, j] for i, j in pairs)) if pairs else None
    conds.append(_condition("max_pair_correlation", max_corr, f"<= {lim:g}",
                            max_corr is None or max_corr <= lim, None if pairs else few))
    conds.append(_condition("basket_drawdown", res["basket_drawdown"], f"<= {gates.max_basket_drawdown:g}",
                            res["basket_drawdown"] <= gates.max_basket_drawdown))
    share = res["correlated_drawdown_share"]
    conds.append(_condition("correlated_drawdown_share", share, f"<= {gates.max_correlated_drawdown_share:g}",
                            n < 2 or share <= gates.max_correlated_drawdown_share, few if n < 2 else None))
    conds.append(_overlap_condition(res["exposure_overlap"], gates, few if n < 2 else None))
    max_rc = float(np.max(rc))
    conds.append(_condition("max_risk_share", max_rc, f"<= {gates.max_risk_share:g}",
                            max_rc <= gates.max_risk_share))
    res["conditions"] = conds
    return res


_LIMITS = {"max_pair_correlation": "max_pair_correlation", "basket_drawdown": "max_basket_drawdown",
           "correlated_drawdown_share": "max_correlated_drawdown_share", "exposure_overlap": "max_exposure_overlap",
           "max_risk_share": "max_risk_share"}


def _overlap_condition(value: float | None, gates: PortfolioGates, vacuous: str | None) -> dict[str, Any]:
    thr = f"<= {gates.max_exposure_overlap:g}"
    if value is None:
        return _condition("exposure_overlap", None, thr, True, "no exposure data")
    return _condition("exposure_overlap", value, thr, vacuous is not None or value <= gates.max_exposure_overlap,
                      vacuous)


def _windows(index: pd.Index, hit: np.ndarray, deep: np.ndarray, basket: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    t, n_days = 0, len(hit)
    while t < n_days:
        if not hit[t]:
            t += 1
            continue
        end = t
        while end + 1 < n_days and hit[end + 1]:
            end += 1
        involved = np.asarray(deep[t:end + 1].any(axis=0), dtype=bool)
        out.append({"start": _label(index[t]), "end": _label(index[end]), "days": end - t + 1,
                    "coins": [c for c, k in zip(basket, involved.tolist(), strict=True) if k]})
        t = end + 1
    return out


def _passes(ev: dict[str, Any]) -> dict[str, bool]:
    return {c["condition"]: c["passed"] for c in ev["conditions"]}


def _drop_reason(coin: str, cur: dict[str, Any], new: dict[str, Any], fixed: list[str],
                 gates: PortfolioGates) -> str:
    if not fixed:
        return (f"basket daily Sharpe {cur['basket_sharpe_daily']:.3g} -> {new['basket_sharpe_daily']:.3g} "
                f"without it (gain > {gates.min_sharpe_gain:g})")
    parts = []
    values = {c["condition"]: c["value"] for c in cur["conditions"]}
    for name in fixed:
        limit = getattr(gates, _LIMITS[name])
        if name == "max_pair_correlation":
            mine = [p for p in cur["pairs_over_limit"] if coin in p["pair"]]
            top = max(mine, key=lambda p: p["correlation"])
            other = top["pair"][1] if top["pair"][0] == coin else top["pair"][0]
            parts.append(f"{name} {top['correlation']:.3g} > {limit:g} with {other}")
        else:
            parts.append(f"{name} {values[name]:.3g} > {limit:g}")
    tail = "basket passes without it" if all(_passes(new).values()) else "no other condition fails without it"
    return f"{', '.join(parts)}; {tail}"


def portfolio_readiness(returns: pd.DataFrame, candidates: list[str], gates: PortfolioGates,
                        exposure: pd.DataFrame | None = None,
                        regimes: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """Evaluate the basket of ``candidates`` against ``gates``, greedily dropping coins that degrade it.

    See the module docstring for every convention. Returns a JSON-serialisable dict with the keys ``passed``,
    ``basket``, ``dropped``, ``candidates``, ``weights``, ``risk_contributions``, ``correlation``,
    ``pairs_over_limit``, ``basket_drawdown``, ``basket_sharpe_daily``, ``basket_sharpe_annual``,
    ``basket_return``, ``correlated_drawdown_share``, ``correlated_drawdown_windows``, ``exposure_overlap``,
    ``regime_failures``, ``days``, ``conditions`` and ``failed``.
    """
    candidates = [str(c) for c in candidates]
    if candidates:
        common = _common_days(returns, candidates)
    else:
        _check_index(returns, "returns")
        common = returns.iloc[0:0]
    expo: np.ndarray | None = None
    if exposure is not None:
        _check_index(exposure, "exposure")
        missing = [c for c in candidates if c not in exposure.columns]
        if missing:
            raise ValueError(f"exposure has no column for coin(s) {missing}")
        expo = exposure.loc[:, candidates].astype(float).fillna(0.0).to_numpy()
        if not np.isin(expo, (-1.0, 0.0, 1.0)).all():
            raise ValueError("exposure values must be -1, 0, 1 (or NaN = flat)")
    basket = list(candidates)
    dropped: list[dict[str, str]] = []
    cur = _evaluate(common, basket, gates, expo, candidates)
    while len(basket) > gates.min_coins:
        ok = _passes(cur)
        best: tuple[float, str, dict[str, Any], list[str]] | None = None
        for coin in sorted(basket):
            new = _evaluate(common, [c for c in basket if c != coin], gates, expo, candidates)
            ok_new = _passes(new)
            fixed = [k for k in ok if k != "coins" and not ok[k] and ok_new[k]]
            broken = [k for k in ok if ok[k] and not ok_new[k]]
            s0, s1 = cur["basket_sharpe_daily"], new["basket_sharpe_daily"]
            gain = (math.isfinite(s0) and math.isfinite(s1) and s1 - s0 > gates.min_sharpe_gain
                    and all(ok_new.values()))
            if (fixed and not broken) or gain:
                score = s1 if math.isfinite(s1) else -math.inf
                if best is None or score > best[0]:  # coins visited alphabetically: ties keep the first
                    best = (score, coin, new, fixed if not broken else [])
        if best is None:
            break
        _, coin, new, fixed = best
        dropped.append({"coin": coin, "reason": _drop_reason(coin, cur, new, fixed, gates)})
        basket = [c for c in basket if c != coin]
        cur = new
    failures: list[dict[str, Any]] = []
    if regimes:
        buckets = sorted({str(b) for c in basket for b in regimes.get(c, {})})
        for bucket in buckets:
            bad = [c for c in basket if float(regimes.get(c, {}).get(bucket, _NAN)) < 0]
            if len(bad) >= 2:
                failures.append({"bucket": bucket, "coins": bad})
    failed = [c["condition"] for c in cur["conditions"] if not c["passed"]]
    out: dict[str, Any] = {"passed": bool(basket) and not failed, "basket": basket, "dropped": dropped,
                           "candidates": candidates}
    out.update({k: v for k, v in cur.items() if k != "conditions"})
    out.update({"regime_failures": failures, "days": len(common) if candidates else 0,
                "conditions": cur["conditions"], "failed": failed})
    return out
