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
from cryptoalgo_core.model.walkforward import make_folds, train_mask, walk_forward
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


def test_no_training_label_overlaps_its_test_window_random_configs() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(500, 3000))
        ts = np.arange(n, dtype=np.int64) * HOUR_MS
        horizon = rng.integers(1, 96, size=n)
        t1 = ts + (horizon + 1) * HOUR_MS
        t1[rng.random(n) < 0.05] = -1  # unlabeled rows
        p = WalkForwardParams(
            scheme=str(rng.choice(["expanding", "rolling"])),
            min_train_days=int(rng.integers(3, 30)),
            rolling_train_days=int(rng.integers(5, 60)),
            test_days=int(rng.integers(1, 15)),
            embargo_hours=int(rng.integers(0, 72)),
            calibration_share=float(rng.uniform(0.05, 0.45)),
            holdout_days=int(rng.integers(0, 10)),
        )
        end = int(ts[-1]) + HOUR_MS - p.holdout_days * DAY_MS
        emb = p.embargo_hours * HOUR_MS
        for f in make_folds(int(ts[0]), end, p):
            assert f.train_start <= f.cal_start <= f.test_start < f.test_end <= end
            fit = train_mask(ts, t1, f.train_start, f.cal_start, emb)
            cal = train_mask(ts, t1, f.cal_start, f.test_start, emb)
            used = fit | cal
            # purging: every training/calibration label is decided before the test window opens ...
            assert (t1[used] >= 0).all() and (t1[used] <= f.test_start).all()
            # ... the fitted rows' labels are decided before the calibration slice opens ...
            assert (t1[fit] <= f.cal_start).all()
            # ... and no row inside the embargo is used; nothing from the test window or later
            assert (ts[used] < f.test_start - emb).all()
            assert not (used & (ts >= f.test_start)).any()


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
