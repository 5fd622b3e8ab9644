"""The data-QA report catches planted problems: a 12-hour gap, a block of NaNs, a constant target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryptoalgo_core import synthetic as syn
from cryptoalgo_core.config import DataQaGates, LabelParams
from cryptoalgo_core.data_qa import qa_markdown, qa_report
from cryptoalgo_core.features.build import MarketPanel, build_features, feature_names
from cryptoalgo_core.features.dataset import build_ml_dataset, labels_for_coin
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS

COINS = ["BTC", "ETH", "SOL", "XRP", "DOGE"]
G = DataQaGates()


@pytest.fixture(scope="module")
def clean() -> tuple[MarketPanel, pd.DataFrame]:
    cfg = syn.load_synthetic_config()
    _, end = syn.calendar_bounds(cfg)
    g = syn.generate(cfg, COINS, end - 150 * DAY_MS, end)
    panel = MarketPanel({c: g[c].ohlcv for c in COINS}, {c: g[c].funding for c in COINS},
                        {c: g[c].open_interest[["ts", "value"]] for c in COINS})
    return panel, _dataset(panel)


def _dataset(panel: MarketPanel, coin: str = "ETH") -> pd.DataFrame:
    feats = build_features(panel, coin)
    labels = labels_for_coin(panel.ohlcv[coin], LabelParams(forward_hours=12, vol_target=1.0))
    return build_ml_dataset(feats, labels)


def _run(panel: MarketPanel, ds: pd.DataFrame) -> dict[str, object]:
    report, outcomes = qa_report("ETH", panel.ohlcv["ETH"]["ts"].to_numpy(), ds, feature_names(COINS, "ETH"), G)
    assert "data QA" in qa_markdown(report)
    return {o.name: o for o in outcomes} | {"_report": report}


def test_clean_synthetic_passes_blocking_checks(clean) -> None:
    panel, ds = clean
    r = _run(panel, ds)
    for name in ("qa_gaps", "qa_target", "qa_missingness"):
        assert r[name].passed, r[name].description
    rep = r["_report"]
    assert rep["gaps"]["n_gaps"] == 0 and rep["labeled_rows"] > 2000
    assert 0.15 < rep["target"]["positive_rate"] < 0.85
    assert len(rep["missingness_top"]) == G.top_features


def test_injected_12_hour_gap_blocks(clean) -> None:
    panel, _ = clean
    o = panel.ohlcv["ETH"]
    t0 = int(o["ts"].iloc[2500])
    holed = o[(o["ts"] < t0) | (o["ts"] >= t0 + 12 * HOUR_MS)]
    p2 = MarketPanel({**panel.ohlcv, "ETH": holed}, panel.funding, panel.open_interest)
    r = _run(p2, _dataset(p2))
    assert not r["qa_gaps"].passed and r["qa_gaps"].severity == "ERROR"
    assert r["_report"]["gaps"]["largest_gap_hours"] == 12


def test_block_of_nans_blocks(clean) -> None:
    panel, ds = clean
    bad = ds.copy()
    bad.loc[100:100 + int(0.08 * len(bad)), "funding_z_90"] = np.nan
    r = _run(panel, bad)
    assert not r["qa_missingness"].passed and "funding_z_90" in r["qa_missingness"].description


def test_constant_target_blocks(clean) -> None:
    panel, ds = clean
    bad = ds.assign(target=np.where(ds["target"].notna(), 1.0, np.nan))
    r = _run(panel, bad)
    assert not r["qa_target"].passed and "constant" in r["qa_target"].description


def test_drift_flags_a_level_shift_in_one_feature(clean) -> None:
    panel, ds = clean
    shifted = ds.copy()
    recent = shifted["ts"] > shifted["ts"].max() - 30 * DAY_MS
    shifted.loc[recent, "hour_sin"] = shifted.loc[recent, "hour_sin"] + 3.0
    r = _run(panel, shifted)
    flagged = {d["feature"] for d in r["_report"]["drift"] if d["flagged"]}
    assert "hour_sin" in flagged
    base = {d["feature"] for d in _run(panel, ds)["_report"]["drift"] if d["flagged"]}
    assert "hour_sin" not in base  # calendar features are stationary by construction


def test_missing_open_interest_blocks_with_a_hint(clean) -> None:
    panel, ds = clean
    no_oi = ds.assign(oi_chg_24=np.nan, oi_price_div_24=np.nan)
    r = _run(panel, no_oi)
    assert not r["qa_missingness"].passed
    assert "oi_chg_24 100.0%" in r["qa_missingness"].description
    assert "--include-oi" in r["qa_missingness"].description
