"""Purged, embargoed walk-forward XGBoost with probability calibration — pure, seeded, deterministic.

Timeline (all epoch ms; a row's `t1` is when its label was decided):
- The final `holdout_days` (from the last row) are the holdout: no row at or after `holdout_start` is
  trained on, calibrated on, or predicted here.
- Test windows of `test_days` are anchored at the data start (first test window starts `min_train_days`
  after the first row) so a fold's boundaries never depend on later data (the truncation tests rely
  on it). The last window ends at `holdout_start`.
- Training rows for a test window starting at `a`: `ts < a - embargo` and `t1 <= a` (purging: no
  training label may still be open when the test window starts). Rolling scheme: also `ts >= a - train`.
- Calibration, then refit: the last `calibration_share` of the training span is held out (with its own purge
  and embargo); a classifier fitted on the rest scores it, and isotonic or sigmoid calibration learns the map
  from those held-out scores to probabilities. With `refit_full` (default) the classifier is then refitted
  on the WHOLE purged training span — so the most recent rows before the test window reach the model — and
  the map is applied to the refitted model's scores (a monotone map: the ranking, hence AUC, is the refitted
  model's own; the map itself was learned out of sample).
- Two models per fold: *direction* P(upper first | a horizontal barrier is touched), trained on touched
  rows only, and *touch* P(a horizontal barrier is touched). p_up = p_touch * p_dir and
  p_down = p_touch * (1 - p_dir), so the probability spread p_up - p_down = p_touch * (2 p_dir - 1) is
  an expected-value-like quantity, while the direction model alone cannot profit from volatility
  structure (a model that only forecasts vol scores AUC 0.5 on direction).
- XGBoost runs with tree_method=hist, n_jobs=1 and the profile's seed: same data + seed -> identical output.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score

from cryptoalgo_core.config.profile import ModelParams, WalkForwardParams
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS

MIN_FIT_ROWS = 200
MIN_CAL_ROWS = 50


@dataclass(frozen=True)
class Fold:
    index: int
    train_start: int
    cal_start: int
    test_start: int
    test_end: int


def holdout_start(last_ts: int, holdout_days: int) -> int:
    """First bar of the holdout window (exclusive end of everything this stage may touch)."""
    return last_ts + HOUR_MS - holdout_days * DAY_MS


def make_folds(first_ts: int, end_ms: int, p: WalkForwardParams) -> list[Fold]:
    """Test windows [a, b) from first_ts + min_train_days, every test_days, up to end_ms (exclusive)."""
    folds: list[Fold] = []
    a = first_ts + p.min_train_days * DAY_MS
    k = 0
    while a < end_ms:
        b = min(a + p.test_days * DAY_MS, end_ms)
        train_start = first_ts if p.scheme == "expanding" else max(first_ts, a - p.rolling_train_days * DAY_MS)
        cal_start = a - int((a - train_start) * p.calibration_share)
        folds.append(Fold(k, train_start, cal_start, a, b))
        a = b
        k += 1
    return folds


def train_mask(ts: np.ndarray, t1: np.ndarray, start: int, end: int, embargo_ms: int) -> np.ndarray:
    """Rows usable for training on [start, end) ahead of a window starting at `end`: purged and embargoed."""
    return (ts >= start) & (ts < end - embargo_ms) & (t1 >= 0) & (t1 <= end)


@dataclass
class WalkForwardResult:
    predictions: pd.DataFrame  # ts, fold, p_dir, p_touch, p_up, p_down, calibration, target, label, t1, ret
    folds: pd.DataFrame
    holdout_start: int
    importance: pd.Series  # mean gain of the direction model per feature over folds


def _fit(X: np.ndarray, y: np.ndarray, m: ModelParams):  # noqa: ANN202 - xgboost type
    from xgboost import XGBClassifier

    clf = XGBClassifier(
        n_estimators=m.n_estimators,
        max_depth=m.max_depth,
        learning_rate=m.learning_rate,
        subsample=m.subsample,
        colsample_bytree=m.colsample_bytree,
        min_child_weight=m.min_child_weight,
        reg_lambda=m.reg_lambda,
        tree_method="hist",
        n_jobs=1,
        random_state=m.seed,
        eval_metric="logloss",
        verbosity=0,
    )
    clf.fit(X, y)
    return clf


class _Calibrator:
    def __init__(self, kind: str, raw: np.ndarray, y: np.ndarray) -> None:
        self.kind = "identity"
        if len(y) >= MIN_CAL_ROWS and len(np.unique(y)) == 2:
            if kind == "isotonic":
                self.iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
                self.kind = "isotonic"
            else:
                lr = LogisticRegression(C=1e6).fit(_logit(raw)[:, None], y)
                # a calibration map must not reverse the model's ranking: a non-positive Platt slope on a
                # noisy calibration slice would flip every prediction; keep the raw scores then
                if float(lr.coef_[0, 0]) > 0:
                    self.lr = lr
                    self.kind = "sigmoid"

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        if self.kind == "isotonic":
            return np.asarray(self.iso.predict(raw), dtype=float)
        if self.kind == "sigmoid":
            return np.asarray(self.lr.predict_proba(_logit(raw)[:, None])[:, 1], dtype=float)
        return raw

    def to_dict(self) -> dict[str, Any]:
        """The fitted map as plain numbers (:func:`apply_calibration` applies it)."""
        if self.kind == "isotonic":
            return {"kind": "isotonic", "x": self.iso.X_thresholds_.tolist(), "y": self.iso.y_thresholds_.tolist(),
                    "x_min": float(self.iso.X_min_), "x_max": float(self.iso.X_max_),
                    "dtype": str(self.iso.X_thresholds_.dtype)}
        if self.kind == "sigmoid":
            return {"kind": "sigmoid", "coef": float(self.lr.coef_[0, 0]), "intercept": float(self.lr.intercept_[0]),
                    "dtype": str(self.lr.coef_.dtype)}
        return {"kind": "identity"}


def apply_calibration(cal: dict[str, Any], raw: np.ndarray) -> np.ndarray:
    """A calibration map exported by :meth:`_Calibrator.to_dict`, applied to raw scores: bit for bit the fitted
    scikit-learn map (the same interpolation and arithmetic, in the dtype the map was fitted in)."""
    from scipy.interpolate import interp1d
    from scipy.special import expit

    if cal["kind"] == "isotonic":
        dt = np.dtype(cal.get("dtype", "float64"))
        x, y = np.asarray(cal["x"], dt), np.asarray(cal["y"], dt)
        t = np.clip(np.asarray(raw, dt), dt.type(cal["x_min"]), dt.type(cal["x_max"]))
        return np.asarray(interp1d(x, y, kind="linear", bounds_error=False)(t).astype(dt), dtype=float)
    if cal["kind"] == "sigmoid":
        dt = np.dtype(cal.get("dtype", "float64"))
        z = _logit(np.asarray(raw, dt)) * dt.type(cal["coef"]) + dt.type(cal["intercept"])
        return np.asarray(expit(z), dtype=float)
    return np.asarray(raw, dtype=float)


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def walk_forward(
    dataset: pd.DataFrame,
    features: list[str],
    wf: WalkForwardParams,
    model: ModelParams,
    end_ms: int | None = None,
) -> WalkForwardResult:
    """Out-of-sample predictions for every test window before the holdout (see module docstring).

    `dataset` needs ts, t1, label (+1/-1/0, NaN = unlabeled), target and the `features` columns.
    `end_ms` overrides the holdout start (tests use it to switch the holdout off).
    """
    data = FoldData.of(dataset, features)
    hs = holdout_start(int(data.ts[-1]), wf.holdout_days) if end_ms is None else end_ms
    preds: list[pd.DataFrame] = []
    rows: list[dict[str, object]] = []
    gains: list[pd.Series] = []
    for f in make_folds(int(data.ts[0]), hs, wf):
        fp = predict_fold(data, f, wf, model)
        rows.append(fp.row)
        if fp.predictions is None:
            continue
        preds.append(fp.predictions)
        if fp.gain is not None:
            gains.append(fp.gain)
    ds = data.frame
    pred = pd.concat(preds, ignore_index=True) if preds else pd.DataFrame(
        columns=["ts", "fold", "p_dir", "p_touch", "p_up", "p_down", "calibration"])
    pred = pred.merge(ds[["ts", "target", "label", "t1", "ret"]], on="ts", how="left")
    imp = pd.Series(dtype=float)
    if gains:
        g = pd.concat(gains, axis=1).fillna(0.0).mean(axis=1)
        names = {f"f{i}": n for i, n in enumerate(features)}
        imp = g.rename(index=lambda k: names.get(k, k)).sort_values(ascending=False)
    return WalkForwardResult(pred, pd.DataFrame(rows), hs, imp)


@dataclass
class FoldData:
    """A dataset's arrays, sorted by ts, ready for any number of folds (built once per dataset)."""

    frame: pd.DataFrame
    ts: np.ndarray
    t1: np.ndarray
    label: np.ndarray
    X: np.ndarray

    @classmethod
    def of(cls, dataset: pd.DataFrame, features: list[str]) -> FoldData:
        ds = dataset.sort_values("ts").reset_index(drop=True)
        return cls(ds, ds["ts"].to_numpy(np.int64), ds["t1"].to_numpy(np.int64), ds["label"].to_numpy(float),
                   ds[features].to_numpy(np.float32))


@dataclass
class FoldPrediction:
    predictions: pd.DataFrame | None  # ts, fold, p_dir, p_dir_raw, p_touch, p_up, p_down, calibration (None: skipped)
    row: dict[str, object]  # the fold's line of the folds table
    gain: pd.Series | None


def predict_fold(data: FoldData, f: Fold, wf: WalkForwardParams, model: ModelParams) -> FoldPrediction:
    """Out-of-sample predictions of one fold's test window (fit, calibrate, refit: the module docstring)."""
    ts, t1, label, X = data.ts, data.t1, data.label, data.X
    emb = wf.embargo_hours * HOUR_MS
    labeled = ~np.isnan(label)
    test = (ts >= f.test_start) & (ts < f.test_end)
    fit = train_mask(ts, t1, f.train_start, f.cal_start, emb) & labeled
    cal = train_mask(ts, t1, f.cal_start, f.test_start, emb) & labeled
    full = train_mask(ts, t1, f.train_start, f.test_start, emb) & labeled if wf.refit_full else None
    if fit.sum() < MIN_FIT_ROWS or not test.any():
        return FoldPrediction(None, {"fold": f.index, "test_start": f.test_start, "test_end": f.test_end,
                                     "n_fit": int(fit.sum()), "n_cal": int(cal.sum()), "n_test": int(test.sum()),
                                     "skipped": "too few training rows" if test.any() else "empty test window"}, None)
    out = pd.DataFrame({"ts": ts[test], "fold": f.index})
    touched = (label == 1.0) | (label == -1.0)
    # direction: P(upper first | a horizontal barrier is touched) — the tradeable part
    p_dir, kind_dir, gain = _model(X, fit & touched, cal & touched, test, label == 1.0, wf.calibration, model,
                                   None if full is None else full & touched)
    # touch: P(a horizontal barrier is touched within the horizon) — a volatility-type forecast
    p_touch, _kind, _g = _model(X, fit, cal, test, touched, wf.calibration, model, full)
    out["p_dir"], out["p_dir_raw"] = p_dir[:, 0], p_dir[:, 1]
    out["p_touch"] = p_touch[:, 0]
    out["p_up"] = p_touch[:, 0] * p_dir[:, 0]
    out["p_down"] = p_touch[:, 0] * (1.0 - p_dir[:, 0])
    out["calibration"] = kind_dir
    auc = directional_auc(label[test], out["p_dir"].to_numpy())
    row = {"fold": f.index, "train_start": f.train_start, "cal_start": f.cal_start, "test_start": f.test_start,
           "test_end": f.test_end, "n_fit": int(fit.sum()), "n_cal": int(cal.sum()),
           "n_refit": int(full.sum()) if full is not None else 0, "n_test": int(test.sum()), "auc_dir": auc,
           "calibration": kind_dir, "skipped": ""}
    return FoldPrediction(out, row, gain)


def directional_auc(label: np.ndarray, spread: np.ndarray) -> float:
    """AUC of the probability spread p_up - p_down for "upper first" among rows where a horizontal
    barrier was touched (label +1 / -1). Vertical outcomes carry no direction and are left out, so a
    model that only predicts *whether* a barrier is touched (a volatility forecast) scores 0.5 here."""
    m = (label == 1.0) | (label == -1.0)
    return _auc((label[m] == 1.0).astype(float), spread[m])


def fit_calibrated(
    X: np.ndarray,
    fit: np.ndarray,
    cal: np.ndarray,
    positive: np.ndarray,
    calibration: str,
    params: ModelParams,
    full: np.ndarray | None = None,
) -> tuple[Any, _Calibrator | None, float]:
    """Fit on `fit` rows, learn the calibration map on `cal` rows (held out), then (when `full` is given and
    holds both classes) refit on the `full` rows -> (classifier, calibrator, constant). When the fit rows hold
    one class there is no classifier: (None, None, the fit rows' positive rate) -- a constant prediction."""
    y_fit = positive[fit].astype(int)
    if len(y_fit) == 0 or len(np.unique(y_fit)) < 2:
        return None, None, float(y_fit.mean()) if len(y_fit) else 0.5
    clf = _fit(X[fit], y_fit, params)
    raw_cal = clf.predict_proba(X[cal])[:, 1] if cal.any() else np.array([])
    calib = _Calibrator(calibration, raw_cal, positive[cal].astype(int))
    if full is not None and len(np.unique(positive[full].astype(int))) == 2:
        clf = _fit(X[full], positive[full].astype(int), params)
    return clf, calib, float("nan")


def _model(
    X: np.ndarray,
    fit: np.ndarray,
    cal: np.ndarray,
    test: np.ndarray,
    positive: np.ndarray,
    calibration: str,
    params: ModelParams,
    full: np.ndarray | None = None,
) -> tuple[np.ndarray, str, pd.Series | None]:
    """:func:`fit_calibrated`, then predict `test` rows -> columns (calibrated, raw), the calibration kind and
    the classifier's gain per feature."""
    clf, calib, base = fit_calibrated(X, fit, cal, positive, calibration, params, full)
    if clf is None or calib is None:
        return np.full((int(test.sum()), 2), base), "constant", None
    raw_test = clf.predict_proba(X[test])[:, 1]
    gain = pd.Series(clf.get_booster().get_score(importance_type="gain"))
    return np.column_stack([calib(raw_test), raw_test]), calib.kind, gain


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    if len(y) < 2 or len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, p))


def calibration_report(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, object]:
    """Brier score, AUC and reliability bins (mean predicted vs observed frequency) of labeled rows."""
    ok = ~np.isnan(y) & ~np.isnan(p)
    y, p = y[ok], p[ok]
    if len(y) == 0:
        return {"n": 0, "brier": float("nan"), "auc": float("nan"), "bins": []}
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rel = []
    for b in range(bins):
        m = idx == b
        if m.any():
            rel.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "n": int(m.sum()),
                        "mean_pred": float(p[m].mean()), "observed": float(y[m].mean())})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        brier = float(brier_score_loss(y, p))
    return {"n": int(len(y)), "brier": brier, "auc": _auc(y, p), "base_rate": float(y.mean()), "bins": rel}
