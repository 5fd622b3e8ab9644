"""Features: causal by truncation for every feature (synthetic and real data), gaps never bridged,
as-of joins, EMA warm-up, registry selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryptoalgo_core import synthetic as syn
from cryptoalgo_core.errors import ConfigError
from cryptoalgo_core.features.build import MarketPanel, build_features, feature_names
from cryptoalgo_core.features.registry import GROUPS, FeatureSelection, registry, validate_selection
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS

COINS = ["BTC", "ETH", "SOL", "XRP", "DOGE"]


@pytest.fixture(scope="module")
def panel() -> MarketPanel:
    cfg = syn.load_synthetic_config()
    _, end = syn.calendar_bounds(cfg)
    g = syn.generate(cfg, COINS, end - 90 * DAY_MS, end)
    return MarketPanel(
        {c: g[c].ohlcv for c in COINS},
        {c: g[c].funding for c in COINS},
        {c: g[c].open_interest[["ts", "value"]] for c in COINS},
    )


def _assert_rows_equal(full: pd.DataFrame, trunc: pd.DataFrame, t: int) -> None:
    a = full[full["ts"] == t].drop(columns=["warmup"]).iloc[0]
    b = trunc[trunc["ts"] == t].drop(columns=["warmup"]).iloc[0]
    assert list(a.index) == list(b.index)
    for name in a.index:
        x, y = float(a[name]), float(b[name])
        assert (np.isnan(x) and np.isnan(y)) or x == pytest.approx(y, rel=1e-9, abs=1e-12), (name, t, x, y)


def _truncation_check(panel: MarketPanel, coin: str, n_cuts: int, seed: int) -> None:
    full = build_features(panel, coin)
    rng = np.random.default_rng(seed)
    ts = full["ts"].to_numpy()
    for t in rng.choice(ts[len(ts) // 4 :], size=n_cuts, replace=False):
        trunc = build_features(panel.known_by(int(t) + HOUR_MS), coin)
        assert trunc["ts"].iloc[-1] == t
        _assert_rows_equal(full, trunc, int(t))


@pytest.mark.parametrize("coin", ["ETH", "BTC"])
def test_every_feature_is_causal_by_truncation_synthetic(panel: MarketPanel, coin: str) -> None:
    _truncation_check(panel, coin, n_cuts=25, seed=1)


def test_every_feature_is_causal_by_truncation_real(real_data_dir: Path) -> None:
    from resources.sources.replay import ReplaySource

    src = ReplaySource(real_data_dir)
    end = (src.now_ms() // DAY_MS) * DAY_MS - 200 * DAY_MS  # a window where OI exists too
    start = end - 120 * DAY_MS
    start_oi = start - 5 * DAY_MS
    p = MarketPanel(
        {c: src.fetch_ohlcv(c, start, end) for c in COINS},
        {c: src.fetch_funding(c, start, end) for c in COINS},
        {c: src.fetch_open_interest(c, start_oi, end)[["ts", "value"]] for c in COINS},
    )
    _truncation_check(p, "SOL", n_cuts=20, seed=2)
    _truncation_check(p, "BTC", n_cuts=10, seed=3)


def test_no_feature_is_entirely_missing_after_warmup(panel: MarketPanel) -> None:
    df = build_features(panel, "SOL")
    post = df[~df["warmup"]]
    assert len(post) > 0
    assert post.drop(columns=["ts", "warmup"]).isna().mean().max() < 0.01


def test_return_across_a_missing_hour_is_missing(panel: MarketPanel) -> None:
    ohlcv = panel.ohlcv["ETH"]
    gap_ts = int(ohlcv["ts"].iloc[1000])
    holed = MarketPanel({**panel.ohlcv, "ETH": ohlcv[ohlcv["ts"] != gap_ts]}, panel.funding, panel.open_interest)
    df = build_features(holed, "ETH").set_index("ts")
    assert gap_ts not in df.index  # the missing bar has no row
    after = gap_ts + HOUR_MS
    assert np.isnan(df.loc[after, "ret_1"])  # not a 2-hour return
    assert np.isnan(df.loc[after, "ret_24"]) and np.isnan(df.loc[after + 23 * HOUR_MS, "ret_24"])
    assert not np.isnan(df.loc[after + 24 * HOUR_MS, "ret_24"])
    assert np.isnan(df.loc[after + 5 * HOUR_MS, "rv_24"])
    assert not np.isnan(df.loc[after + 5 * HOUR_MS, "rv_168"])  # long windows tolerate <= 10 % missing


def test_funding_joins_asof_bar_close() -> None:
    t0 = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS
    n = 60 * 24
    ts = t0 + np.arange(n) * HOUR_MS
    close = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, n)))
    o = pd.DataFrame({"ts": ts, "open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1.0})
    fts = t0 + np.arange(0, n, 8) * HOUR_MS
    fund = pd.DataFrame({"ts": fts, "rate": np.arange(len(fts), dtype=float) * 1e-5})
    df = build_features(MarketPanel({"BTC": o}, {"BTC": fund}), "BTC").set_index("ts")
    k = 30
    settle = int(fts[k])
    # the bar opening 1 h before a settlement closes at it: it knows the new rate
    assert df.loc[settle - HOUR_MS, "funding_rate"] == pytest.approx(k * 1e-5)
    assert df.loc[settle - 2 * HOUR_MS, "funding_rate"] == pytest.approx((k - 1) * 1e-5)
    assert df.loc[settle - HOUR_MS, "funding_cum_24h"] == pytest.approx((3 * k - 3) * 1e-5)
    # stale funding (no settlement for > 24 h) is missing, not forward-filled forever
    gap = fund[(fund["ts"] < settle) | (fund["ts"] > settle + 3 * DAY_MS)]
    df2 = build_features(MarketPanel({"BTC": o}, {"BTC": gap}), "BTC").set_index("ts")
    assert np.isnan(df2.loc[settle + 2 * DAY_MS, "funding_rate"])


def test_ema_warmup_makes_start_irrelevant(panel: MarketPanel) -> None:
    """Recursive features: after their registered warm-up, the data start no longer matters (< 1e-3)."""
    spec = registry(COINS, "ETH")["ema_ratio_24_168"]
    late_start = int(panel.ohlcv["ETH"]["ts"].iloc[200])
    late = MarketPanel({c: d[d["ts"] >= late_start] for c, d in panel.ohlcv.items()})
    sel = FeatureSelection(disabled_groups=tuple(g for g in GROUPS if g != "trend"))
    full = build_features(MarketPanel(panel.ohlcv), "ETH", sel).set_index("ts")
    short = build_features(late, "ETH", sel).set_index("ts")
    t_after = late_start + spec.warmup_hours * HOUR_MS
    common = short.index[short.index >= t_after]
    rel = (full.loc[common, "ema_ratio_24_168"] - short.loc[common, "ema_ratio_24_168"]).abs()
    assert rel.max() < 1e-3
    assert short.loc[t_after - HOUR_MS, "warmup"]
    assert not short.loc[t_after, "warmup"]
    # and before the warm-up the start does matter (the warm-up is not vacuous)
    early = short.index[(short.index > late_start + 24 * HOUR_MS) & (short.index < late_start + 100 * HOUR_MS)]
    assert (full.loc[early, "ema_ratio_24_168"] - short.loc[early, "ema_ratio_24_168"]).abs().max() > 1e-3


def test_disabled_group_and_excluded_feature_disappear(panel: MarketPanel) -> None:
    sel = FeatureSelection(disabled_groups=("funding", "shared"), exclude=("ret_72",))
    df = build_features(panel, "ETH", sel)
    assert not any(c.startswith("funding_") or c.startswith("btc_") or c.startswith("leadlag_") for c in df.columns)
    assert "ret_72" not in df.columns and "ret_24" in df.columns
    assert list(df.columns) == ["ts", *feature_names(COINS, "ETH", sel), "warmup"]


def test_unknown_feature_or_group_is_a_clear_error() -> None:
    known = registry(COINS, "ETH")
    with pytest.raises(ConfigError, match=r"unknown feature 'rv_169' \(did you mean 'rv_168'\?\)"):
        validate_selection(FeatureSelection(exclude=("rv_169",)), known, "coins.yaml: coins.ETH.features")
    with pytest.raises(ConfigError, match="unknown feature group 'sentiment'"):
        validate_selection(FeatureSelection(disabled_groups=("sentiment",)), known, "x")


def test_unknown_feature_in_coins_yaml(tmp_path: Path) -> None:
    from cryptoalgo_core.config import load_coins

    p = tmp_path / "coins.yaml"
    p.write_text("coins:\n  ETH:\n    symbols: {coinbase: ETH-USD}\n    features: {exclude: [rv_25]}\n")
    with pytest.raises(ConfigError, match=r"coins.ETH.features: unknown feature 'rv_25'"):
        load_coins(p)
