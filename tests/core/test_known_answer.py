"""Known answer on the synthetic default: out of sample, the pipeline finds the planted edge in ETH and SOL
and nothing in the pure-noise coins (BTC, XRP, DOGE).

Full 6-year synthetic calendar, default profiles, walk-forward retrained every 90 days (the default is 30;
90 keeps this test around a minute). Measured on this seed (for the closing note): directional AUC
ETH 0.529, SOL 0.548, BTC 0.487, XRP 0.499, DOGE 0.494; net bps/trade ETH -4.8, SOL +14.6,
BTC -22.2, XRP -11.0, DOGE -14.7 (fees eat most of ETH's gross +8 bps: the reality the product reports).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cryptoalgo_core import synthetic as syn
from cryptoalgo_core.backtest.report import backtest_coin
from cryptoalgo_core.config import load_coins
from cryptoalgo_core.features.build import MarketPanel, build_features, feature_names
from cryptoalgo_core.features.dataset import build_ml_dataset, labels_for_coin
from cryptoalgo_core.model.walkforward import calibration_report, directional_auc, walk_forward

COINS = ["BTC", "ETH", "SOL", "XRP", "DOGE"]
EDGED, NOISE = ("ETH", "SOL"), ("BTC", "XRP", "DOGE")
NOISE_BAND = 0.025  # |AUC - 0.5| for a coin without edge (overlapping labels: ~3x the iid standard error)


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, float]]:
    cfg = syn.load_synthetic_config()
    start, end = syn.calendar_bounds(cfg)
    truth = syn.planted_truth(cfg)
    assert all(sum(truth[c].values()) > 0 for c in EDGED) and all(sum(truth[c].values()) == 0 for c in NOISE)
    g = syn.generate(cfg, COINS, start, end)
    panel = MarketPanel({c: g[c].ohlcv for c in COINS}, {c: g[c].funding for c in COINS},
                        {c: g[c].open_interest[["ts", "value"]] for c in COINS})
    spec = load_coins()
    out: dict[str, dict[str, float]] = {}
    for c in COINS:
        feats = build_features(panel, c)
        ds = build_ml_dataset(feats, labels_for_coin(panel.ohlcv[c], spec[c].label))
        prof = spec[c].profile
        r = walk_forward(ds, feature_names(COINS, c), replace(prof.walk_forward, test_days=90), prof.model)
        p = r.predictions
        bt = backtest_coin(c, p, feats, panel.ohlcv[c], panel.funding[c], prof, r.holdout_start)
        label = p["label"].to_numpy(float)
        cal = calibration_report(np.where(label == 1, 1.0, np.where(label == -1, 0.0, np.nan)), p["p_dir"].to_numpy(float))
        out[c] = {
            "auc": directional_auc(label, p["p_dir"].to_numpy(float)),
            "brier": cal["brier"],
            "net_bps": bt.diagnostics["edge"]["net_bps"],
            "gross_bps": bt.diagnostics["edge"]["gross_bps"],
            "trades": bt.diagnostics["edge"]["trades"],
        }
    print({c: {k: round(v, 4) for k, v in r.items()} for c, r in out.items()})
    return out


def test_noise_coins_auc_stays_in_the_noise_band(results) -> None:
    for c in NOISE:
        assert abs(results[c]["auc"] - 0.5) < NOISE_BAND, (c, results[c])


def test_edged_coins_have_better_calibrated_auc(results) -> None:
    worst_edged = min(results[c]["auc"] for c in EDGED)
    best_noise = max(results[c]["auc"] for c in NOISE)
    assert worst_edged > 0.52 and worst_edged > best_noise + 0.02, results


def test_edged_coins_have_better_edge_after_costs(results) -> None:
    for c in EDGED:
        assert results[c]["trades"] > 500
        assert results[c]["net_bps"] > max(results[n]["net_bps"] for n in NOISE), results
        assert results[c]["gross_bps"] > max(results[n]["gross_bps"] for n in NOISE), results
    assert all(results[n]["net_bps"] < 0 for n in NOISE)  # costs make trading noise a loss
