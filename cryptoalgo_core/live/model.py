"""The production model of a coin (pure): the research model, trained once on every labeled row before ``end``,
kept as files (XGBoost's own JSON model format + the calibration maps as numbers), so a staged version is
inspectable, hash-verifiable and loads without pickle.

Training is the walk-forward fold's (:func:`cryptoalgo_core.model.walkforward.predict_fold`) with the test window
moved to ``end``: the same purge and embargo, the same calibration slice (the last ``calibration_share`` of the
training span), the same refit on the whole span, the same two heads (direction given a touch, touch). A test
proves the predictions equal a fold's whose test window starts at ``end``. Causal: every row used has ``ts <
end - embargo`` and its label decided (``t1``) by ``end``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cryptoalgo_core.config.coins import CoinSpec
from cryptoalgo_core.config.io import build_dataclass
from cryptoalgo_core.model.walkforward import FoldData, apply_calibration, fit_calibrated, train_mask
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS

__all__ = ["Head", "ProductionModel", "fit_production_model", "spec_from_dict", "spec_to_dict"]

_DERIVED_COSTS = ("maker_bps", "taker_bps", "venue_kind")


@dataclass
class Head:
    """One classifier head: an XGBoost model (JSON bytes) and its calibration map, or a constant."""

    booster: bytes | None
    calibration: dict[str, Any]
    constant: float = float("nan")
    _clf: Any = field(default=None, repr=False, compare=False)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(calibrated, raw) probabilities for the rows of ``X`` (float32, the feature order of the model)."""
        if self.booster is None:
            c = np.full(X.shape[0], self.constant)
            return c, c
        if self._clf is None:
            from xgboost import XGBClassifier

            clf = XGBClassifier()
            clf.load_model(bytearray(self.booster))
            self._clf = clf
        raw = self._clf.predict_proba(X)[:, 1]  # float32, as in the walk-forward
        return apply_calibration(self.calibration, raw), np.asarray(raw, dtype=float)


def _head(clf: Any, calib: Any, constant: float) -> Head:
    if clf is None:
        return Head(None, {"kind": "constant"}, constant)
    return Head(bytes(clf.get_booster().save_raw("json")), calib.to_dict(), float("nan"), clf)


@dataclass
class ProductionModel:
    coin: str
    features: list[str]
    direction: Head
    touch: Head
    trained: dict[str, Any]  # span and row counts

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """ts, p_dir, p_dir_raw, p_touch, p_up, p_down for each row of ``features`` (a frame with ts + the model's
        features; rows with a missing feature are predicted as XGBoost does, NaN = missing)."""
        missing = [c for c in self.features if c not in features.columns]
        if missing:
            raise ValueError(f"{self.coin}: features missing for the production model: {missing[:5]}")
        X = features[self.features].to_numpy(np.float32)
        p_dir, p_dir_raw = self.direction.predict(X)
        p_touch, _raw = self.touch.predict(X)
        return pd.DataFrame({"ts": features["ts"].to_numpy(np.int64), "p_dir": p_dir, "p_dir_raw": p_dir_raw,
                             "p_touch": p_touch, "p_up": p_touch * p_dir, "p_down": p_touch * (1.0 - p_dir)})

    def to_files(self) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        heads: dict[str, Any] = {}
        for name, h in (("direction", self.direction), ("touch", self.touch)):
            if h.booster is not None:
                files[f"{name}.xgb.json"] = h.booster
            heads[name] = {"calibration": h.calibration, "constant": None if h.booster is not None else h.constant}
        files["model.json"] = json.dumps({"coin": self.coin, "features": self.features, "heads": heads,
                                          "trained": self.trained}, sort_keys=True, indent=1).encode()
        return files

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> ProductionModel:
        doc = json.loads(files["model.json"])
        heads = {}
        for name in ("direction", "touch"):
            h = doc["heads"][name]
            booster = files.get(f"{name}.xgb.json")
            heads[name] = Head(booster, h["calibration"], float("nan") if booster is not None else float(h["constant"]))
        return cls(doc["coin"], list(doc["features"]), heads["direction"], heads["touch"], doc["trained"])


def fit_production_model(spec: CoinSpec, dataset: pd.DataFrame, names: list[str], end: int) -> ProductionModel:
    """Train ``spec``'s two heads on every labeled row of ``dataset`` before ``end`` (module docstring)."""
    data = FoldData.of(dataset, names)
    wf, prof = spec.profile.walk_forward, spec.profile
    first = int(data.ts[0])
    train_start = first if wf.scheme == "expanding" else max(first, end - wf.rolling_train_days * DAY_MS)
    cal_start = end - int((end - train_start) * wf.calibration_share)
    emb = wf.embargo_hours * HOUR_MS
    ts, t1, label, X = data.ts, data.t1, data.label, data.X
    labeled = ~np.isnan(label)
    fit = train_mask(ts, t1, train_start, cal_start, emb) & labeled
    cal = train_mask(ts, t1, cal_start, end, emb) & labeled
    full = train_mask(ts, t1, train_start, end, emb) & labeled if wf.refit_full else None
    if fit.sum() < 200:
        raise ValueError(f"{spec.name}: {int(fit.sum())} labeled rows before {end} are too few to train on")
    touched = (label == 1.0) | (label == -1.0)
    d = fit_calibrated(X, fit & touched, cal & touched, label == 1.0, wf.calibration, prof.model,
                       None if full is None else full & touched)
    t = fit_calibrated(X, fit, cal, touched, wf.calibration, prof.model, full)
    trained = {"train_start": train_start, "cal_start": cal_start, "end": end, "n_fit": int(fit.sum()),
               "n_cal": int(cal.sum()), "n_refit": int(full.sum()) if full is not None else 0}
    return ProductionModel(spec.name, list(names), _head(*d), _head(*t), trained)


def spec_to_dict(spec: CoinSpec) -> dict[str, Any]:
    """The resolved CoinSpec as JSON-able data (fees resolved from costs.yaml included)."""
    return json.loads(json.dumps(dataclasses.asdict(spec)))


def spec_from_dict(doc: dict[str, Any]) -> CoinSpec:
    """Inverse of :func:`spec_to_dict`: the exact spec, independent of today's coins.yaml and costs.yaml."""
    d = json.loads(json.dumps(doc))
    costs = d["profile"]["costs"]
    derived = {k: costs.pop(k) for k in _DERIVED_COSTS}
    spec = build_dataclass(CoinSpec, d, "model profile.json")
    c = dataclasses.replace(spec.profile.costs, **derived)
    return dataclasses.replace(spec, profile=dataclasses.replace(spec.profile, costs=c))
