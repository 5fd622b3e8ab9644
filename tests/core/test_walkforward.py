"""Walk-forward: purging/embargo property over random configurations, causal predictions (truncation),
determinism (same seed -> identical predictions and trades)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from cryptoalgo_core import synthetic as syn
from cryptoalgo_core.backtest.report import backtest_coin
from cryptoalgo_core.config import LabelParams, ModelParams, WalkForwardParams, load_coins
from cryptoalgo_core.features.build import MarketPanel, build_features, feature_names
from cryptoalgo_core.features.dataset import build_ml_dataset, labels_for_coin
from cryptoalgo_core.model.walkforward import walk_forward
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS

COINS = ["BTC", "ETH", "SOL", "XRP", "DOGE"]
FAST = ModelParams(n_estimators=40, max_depth=2, learning_rate=0.1, min_child_weight=50)
WF = WalkForwardParams(min_train_days=60, test_days=20, embargo_hours=24, calibration_share=0.25, holdout_days=0)


@pytest.fixture(scope="module")
def panel() -> MarketPanel:
    cfg = syn.load_synthetic_config()
    _, end = syn.calendar_bounds(cfg)
    g = syn.generate(cfg, COINS, end - 200 * DAY_MS, end)
    return MarketPanel({c: g[c].ohlcv for c in COINS}, {c: g[c].funding for c in COINS},
                       {c: g[c].open_interest[["ts", "value"]] for c in COINS})


def _dataset(panel: MarketPanel, coin: str = "ETH") -> pd.DataFrame:
    return build_ml_dataset(build_features(panel, coin), labels_for_coin(panel.ohlcv[coin], LabelParams(12, 1.0)))


class _Spy:
    """Stands in for the XGBoost classifier inside walk_forward: remembers which rows it was trained on and
    which rows it was asked to score (row ids travel in feature column 0)."""

    log: list[tuple[np.ndarray, np.ndarray]] = []

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        self.rows = X[:, 0].astype(np.int64)
        self.p = float(np.mean(y))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        _Spy.log.append((self.rows, X[:, 0].astype(np.int64)))
        q = np.clip(self.p + 0.01 * np.sin(X[:, 1]), 0.01, 0.99)  # varied scores, so calibration can fit
        return np.column_stack([1 - q, q])

    def get_booster(self) -> _Spy:
        return self

    def get_score(self, importance_type: str = "gain") -> dict[str, float]:
        return {"f0": 1.0}


def test_walk_forward_never_trains_on_a_label_open_at_a_scored_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """walk_forward itself, over random configurations: every model it fits (first fit, refit) is trained only
    on rows whose label was decided before the first row it scores (its calibration slice or its test window)
    and that lie before that row minus the embargo; nothing from the holdout is scored."""
    import cryptoalgo_core.model.walkforward as W

    monkeypatch.setattr(W, "_fit", lambda X, y, m: _Spy(X, y))
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(25):
        n = int(rng.integers(1500, 3000))
        ts = np.arange(n, dtype=np.int64) * HOUR_MS
        horizon = rng.integers(1, 96, size=n)
        t1 = ts + (horizon + 1) * HOUR_MS
        label = rng.choice([-1.0, 0.0, 1.0], size=n)
        unlabeled = rng.random(n) < 0.05
        t1[unlabeled], label[unlabeled] = -1, np.nan
        ds = pd.DataFrame({"ts": ts, "t1": t1, "label": label, "target": (label == 1).astype(float),
                           "ret": 0.0, "rowid": np.arange(n, dtype=float), "x": rng.normal(size=n)})
        p = WalkForwardParams(
            scheme=str(rng.choice(["expanding", "rolling"])), min_train_days=int(rng.integers(15, 40)),
            rolling_train_days=int(rng.integers(20, 60)), test_days=int(rng.integers(3, 15)),
            embargo_hours=int(rng.integers(0, 72)), calibration_share=float(rng.uniform(0.15, 0.4)),
            refit_full=bool(rng.integers(0, 2)), holdout_days=int(rng.integers(0, 10)))
        end = int(ts[-1]) + HOUR_MS - p.holdout_days * DAY_MS
        _Spy.log = []
        res = walk_forward(ds, ["rowid", "x"], p, FAST, end_ms=end)
        emb = p.embargo_hours * HOUR_MS
        for trained, scored in _Spy.log:
            first = int(ts[scored].min())
            assert (t1[trained] >= 0).all() and (t1[trained] <= first).all()  # purged
            assert (ts[trained] < first - emb).all()  # embargoed
            assert not np.isin(trained, scored).any()
            checked += 1
        assert res.predictions.empty or int(res.predictions["ts"].max()) < end  # the holdout is never scored
    assert checked > 100  # the property was exercised on many fitted models


def test_predictions_are_causal_by_truncation(panel: MarketPanel) -> None:
    full_ds = _dataset(panel)
    feats = feature_names(COINS, "ETH")
    big_end = int(full_ds["ts"].max()) + HOUR_MS
    full = walk_forward(full_ds, feats, WF, FAST, end_ms=big_end).predictions.set_index("ts")
    rng = np.random.default_rng(5)
    for t in rng.choice(full.index.to_numpy()[len(full) // 3:], size=4, replace=False):
        t = int(t)
        known = panel.known_by(t + HOUR_MS)
        ds_t = build_ml_dataset(build_features(known, "ETH"), labels_for_coin(known.ohlcv["ETH"], LabelParams(12, 1.0)))
        trunc = walk_forward(ds_t, feats, WF, FAST, end_ms=big_end).predictions.set_index("ts")
        assert trunc.index.max() == t
        for col in ("p_dir", "p_touch", "p_up", "p_down"):
            assert trunc.loc[t, col] == pytest.approx(full.loc[t, col], abs=1e-12), (t, col)


def test_same_seed_identical_predictions_and_trades(panel: MarketPanel) -> None:
    ds = _dataset(panel)
    feats = feature_names(COINS, "ETH")
    profile = load_coins()["ETH"].profile
    runs = []
    for _ in range(2):
        r = walk_forward(ds, feats, WF, FAST)
        bt = backtest_coin("ETH", r.predictions, build_features(panel, "ETH"), panel.ohlcv["ETH"],
                           panel.funding["ETH"], replace(profile, entry=replace(profile.entry, long_threshold=0.5)),
                           r.holdout_start)
        runs.append((r.predictions, bt.trades))
    pd.testing.assert_frame_equal(runs[0][0], runs[1][0])
    pd.testing.assert_frame_equal(runs[0][1], runs[1][1])
    assert len(runs[0][1]) > 0
    other = walk_forward(ds, feats, WF, replace(FAST, seed=FAST.seed + 1)).predictions
    assert not np.allclose(other["p_dir"], runs[0][0]["p_dir"])


def test_holdout_is_never_touched(panel: MarketPanel) -> None:
    ds = _dataset(panel)
    r = walk_forward(ds, feature_names(COINS, "ETH"), replace(WF, holdout_days=30), FAST)
    assert r.holdout_start == int(ds["ts"].max()) + HOUR_MS - 30 * DAY_MS
    assert r.predictions["ts"].max() < r.holdout_start
    assert (r.folds["test_end"] <= r.holdout_start).all()
