"""The hidden_interaction mechanism (off by default, not a feature verbatim) and the planted-net-Sharpe oracle."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from cryptoalgo_core import synthetic as S
from cryptoalgo_core.config import config_dir
from cryptoalgo_core.errors import ConfigError
from cryptoalgo_core.features.plan import feature_plan
from cryptoalgo_core.features.registry import FeatureSelection
from cryptoalgo_core.research import scaled_synthetic_config, synthetic_panel
from cryptoalgo_core.synthetic.oracle import _evaluate
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS

# sha256 of the default market's generate() frames, 5 coins, first 60 days, recorded BEFORE hidden_interaction
# was added to the simulator: a strength of 0 must leave every bit of the default path as it was. (Bit-identical
# results need the same numpy/libm build - the same container image - see docs/SYNTHETIC.md.)
DEFAULT_60D_SHA256 = "734fa0d1a63bcd79a74faa29a786c148119a9c162ceb3ec1679f37fb58a3f49a"
HIDDEN_COLUMNS = ("hidden_z", "volume_gate", "hidden_driver")


def _frames_digest(cfg: S.SyntheticConfig, start: int, end: int) -> str:
    h = hashlib.sha256()
    g = S.generate(cfg, list(cfg.coin_names), start, end)
    for coin in cfg.coin_names:
        for df in (g[coin].ohlcv, g[coin].funding, g[coin].open_interest):
            for col in df.columns:
                if col == "unit":
                    h.update("|".join(df[col].astype(str)).encode())
                else:
                    h.update(np.ascontiguousarray(df[col].to_numpy()).tobytes())
    return h.hexdigest()


def _eth_only(seed: int, strength: float, years: float = 3.0) -> S.SyntheticConfig:
    """Every coin pure noise except ETH, which carries only hidden_interaction at `strength` bps."""
    base = scaled_synthetic_config(seed, 0.0, years)
    coins = tuple(
        dataclasses.replace(c, edge=dataclasses.replace(c.edge, hidden_interaction=strength)) if c.name == "ETH"
        else c
        for c in base.coins
    )
    return dataclasses.replace(base, coins=coins)


@pytest.fixture(scope="module")
def cfg() -> S.SyntheticConfig:
    return S.load_synthetic_config()


# ------------------------------------------------------------------------------------ the default market
def test_default_market_is_bit_identical_to_before(cfg: S.SyntheticConfig) -> None:
    assert all(c.edge.hidden_interaction == 0 for c in cfg.coins)
    o = cfg.origin_ms
    assert _frames_digest(cfg, o, o + 60 * DAY_MS) == DEFAULT_60D_SHA256


def test_zero_strength_changes_nothing_but_a_strength_does(cfg: S.SyntheticConfig) -> None:
    """Planting hidden_interaction on ETH changes ETH's path from the first bar after the warm-up and no other
    coin's; the random draws (chunk layout) are untouched, so an unplanted coin is bit-identical."""
    o = cfg.origin_ms
    planted = _eth_only(cfg.seed, 8.0, years=1.0)
    noise = _eth_only(cfg.seed, 0.0, years=1.0)
    a = S.generate(planted, list(cfg.coin_names), o, o + 60 * DAY_MS)
    b = S.generate(noise, list(cfg.coin_names), o, o + 60 * DAY_MS)
    for coin in ("BTC", "SOL", "XRP", "DOGE"):
        pd.testing.assert_frame_equal(a[coin].ohlcv, b[coin].ohlcv, check_exact=True)
    ra = np.log(a["ETH"].ohlcv["close"] / a["ETH"].ohlcv["open"]).to_numpy()
    rb = np.log(b["ETH"].ohlcv["close"] / b["ETH"].ohlcv["open"]).to_numpy()
    warm = max(cfg.edge_shape.hidden_window_h, cfg.edge_shape.hidden_volume_slow_h)  # first driven bar
    assert np.array_equal(ra[:warm], rb[:warm]) and not np.array_equal(ra[warm:], rb[warm:])


# ------------------------------------------------------------------------------------------- the driver
def test_hidden_driver_is_causal_truncation() -> None:
    """A market simulated only up to t (calendar end = t) has exactly the full run's observables and data before
    t, the hidden columns included, with the mechanism switched on: nothing after t feeds a value at t."""
    full = _eth_only(5, 8.0, years=1.0)
    t = full.origin_ms + 200 * DAY_MS  # mid-chunk
    cut = dataclasses.replace(full, end_ms=t)
    a = full.origin_ms + 150 * DAY_MS
    got = S.observables(cut, ["ETH", "SOL"], a, t)
    want = S.observables(full, ["ETH", "SOL"], *S.calendar_bounds(full))
    for coin in ("ETH", "SOL"):
        w = want[coin][(want[coin]["ts"] >= a) & (want[coin]["ts"] < t)].reset_index(drop=True)
        assert len(w) == 50 * 24
        pd.testing.assert_frame_equal(got[coin], w, check_exact=True)
    g_cut = S.generate(cut, ["ETH"], a, t)["ETH"].ohlcv
    g_full = S.generate(full, ["ETH"], a, t)["ETH"].ohlcv
    pd.testing.assert_frame_equal(g_cut, g_full, check_exact=True)


def test_hidden_driver_recomputed_from_published_data() -> None:
    """The driver from generate() output alone, with trailing windows only (so: observable and causal)."""
    c = _eth_only(2, 8.0, years=1.0)
    sh = c.edge_shape
    o, e = S.calendar_bounds(c)
    d = S.generate(c, ["ETH"], o, e)["ETH"].ohlcv
    ob = S.observables(c, ["ETH"], o, e)["ETH"]
    r = np.log(d["close"] / d["open"])
    z = r.rolling(sh.hidden_window_h).sum() / np.sqrt((r * r).rolling(sh.hidden_window_h).sum())
    np.testing.assert_allclose(ob["hidden_z"], z, rtol=0, atol=1e-9, equal_nan=True)
    log_usd = np.log(d["volume"] * (d["high"] + d["low"] + d["close"]) / 3.0)
    fast = log_usd.rolling(sh.hidden_volume_fast_h).mean()
    slow = log_usd.rolling(sh.hidden_volume_slow_h).mean()
    gate = np.where(slow.isna(), np.nan, np.where(fast > slow, 1.0, sh.hidden_quiet_gate))
    agree = (gate[slow.notna()] == ob["volume_gate"].to_numpy()[slow.notna()]).mean()
    assert agree > 0.999, agree  # rounding exactly at the fast == slow boundary may flip a bar
    assert np.isnan(ob["volume_gate"].to_numpy()[: sh.hidden_volume_slow_h - 1]).all()
    x = z / sh.hidden_z_scale
    drv = np.nan_to_num(x / np.sqrt(1.0 + x * x) * ob["volume_gate"])
    np.testing.assert_allclose(ob["hidden_driver"], drv, rtol=0, atol=1e-9)
    assert (ob["hidden_driver"].abs() < 1).all() and (ob["hidden_driver"] != 0).mean() > 0.98
    np.testing.assert_allclose(ob["planted_drift_next"], 8e-4 * ob["hidden_driver"], rtol=0, atol=1e-15)


def _signed_next_return(ob: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sign of the driver at t, simple return of bar t + 1 in bps, planted drift of bar t + 1 in bps)."""
    d = ob["hidden_driver"].to_numpy()[:-1]
    y = np.expm1(ob["log_return"].to_numpy()[1:]) * 1e4  # simple: zero mean under the martingale convention
    return np.sign(d), y, ob["planted_drift_next"].to_numpy()[:-1] * 1e4


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size))


def test_planted_hidden_interaction_moves_the_next_return() -> None:
    """ETH with only hidden_interaction = 8 bps, 3 years (~26 000 bars).

    The next-bar simple return conditional on the sign of the driver: E[y | side] = E[mu | side] ~ +-2.5 bps with
    an SE of ~0.6 bps per side, so each side alone has an expected |z| of only ~4; the claims are
    (1) each side's mean is within 4 SE of its exact planted expectation (false failure ~6e-5 per side),
    (2) the pooled signed mean E[sign(d) y] (~2.5 bps, SE ~0.42) is positive with z > 3: its expected z is ~5.7
        (3.6 .. 8.9 over seeds 1-12), so a false failure has probability ~0.4 % (P(N(5.7, 1) < 3)).
    With strength 0 (same seed) the same statistics are indistinguishable from 0: |z| < 4 (~6e-5)."""
    for strength in (8.0, 0.0):
        c = _eth_only(1, strength)
        ob = S.observables(c, ["ETH"], *S.calendar_bounds(c))["ETH"]
        side, y, mu = _signed_next_return(ob)
        for sgn in (1.0, -1.0):
            m, se = _mean_se(y[side == sgn])
            expected = float(mu[side == sgn].mean())
            if strength:
                assert np.sign(expected) == sgn and abs(expected) > 2.0, expected
                assert abs(m - expected) < 4 * se, (sgn, m, se, expected)
            else:
                assert expected == 0.0 and abs(m / se) < 4, (sgn, m, se)
        m, se = _mean_se(side[side != 0] * y[side != 0])
        if strength:
            assert m / se > 3, (m, se)
        else:
            assert abs(m / se) < 4, (m, se)


def test_no_feature_is_the_hidden_driver() -> None:
    """Every registry feature of ETH (all groups, lead-lag included) vs hidden_driver: none is the driver
    (max |Pearson| < 0.9), yet the feature set is related to it (max |Pearson| > 0.3: a model can learn part)."""
    c = _eth_only(11, 8.0, years=1.0)
    o, e = S.calendar_bounds(c)
    panel = synthetic_panel(c, list(c.coin_names), o, e)
    plan = feature_plan(panel, "ETH", FeatureSelection(), (None, None))
    feats = plan.build(panel)
    ob = S.observables(c, ["ETH"], o, e)["ETH"]
    m = feats.merge(ob[["ts", "hidden_driver"]], on="ts", how="inner")
    assert len(m) == len(ob) and len(plan.names) > 40
    m = m[m["ts"] >= o + 30 * DAY_MS]  # past every feature's and the driver's warm-up (< 745 h)
    cors = {n: abs(float(m[n].corr(m["hidden_driver"]))) for n in plan.names if m[n].std() > 0}
    name, top = max(((n, v) for n, v in cors.items() if math.isfinite(v)), key=lambda kv: kv[1])
    assert top < 0.9, f"feature {name} has |corr| {top:.3f} with hidden_driver"
    assert top > 0.3, f"max |corr| {top:.3f} ({name}): the mechanism is unrelated to every feature"


# ---------------------------------------------------------------------------------------------- config
def _base_yaml() -> dict[str, Any]:
    return yaml.safe_load((config_dir() / "synthetic.yaml").read_text())


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda d: d["coins"]["ETH"]["edge"].update(hidden_interaction=25), r"ETH\.edge\.hidden_interaction.*range"),
        (lambda d: d["coins"]["SOL"]["edge"].update(hidden_interaction=-1), r"SOL\.edge\.hidden_interaction.*range"),
        (lambda d: d["edge_shape"].update(hidden_window_h=1), r"edge_shape.*hidden_window_h"),
        (lambda d: d["edge_shape"].update(hidden_z_scale=0), r"edge_shape.*hidden_z_scale"),
        (lambda d: d["edge_shape"].update(hidden_volume_fast_h=96), r"edge_shape.*hidden_volume_fast_h"),
        (lambda d: d["edge_shape"].update(hidden_quiet_gate=1.5), r"edge_shape.*hidden_quiet_gate"),
    ],
)
def test_hidden_config_errors(tmp_path: Path, mutate: Any, pattern: str) -> None:
    data = copy.deepcopy(_base_yaml())
    mutate(data)
    p = tmp_path / "synthetic.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=pattern):
        S.load_synthetic_config(p)


def test_hidden_in_truth_and_description(cfg: S.SyntheticConfig) -> None:
    assert "hidden_interaction" in S.MECHANISMS
    assert all(t["hidden_interaction"] == 0.0 for t in S.planted_truth(cfg).values())
    c = _eth_only(1, 6.0, years=0.1)
    assert S.planted_truth(c)["ETH"] == {"funding_reversal": 0.0, "lead_lag": 0.0, "regime_momentum": 0.0,
                                         "hidden_interaction": 6.0}
    text = S.describe_planted_truth(c)
    assert "ETH: hidden_interaction=6 bps" in text and "hidden_interaction: " in text


def test_scaled_config_with_mechanisms(cfg: S.SyntheticConfig) -> None:
    plain = scaled_synthetic_config(7, 2.0, 1.0)
    for c in plain.coins:  # unchanged behaviour: every strength times 2
        assert c.edge.as_dict() == {k: 2.0 * v for k, v in cfg.coin(c.name).edge.as_dict().items()}
    hid = scaled_synthetic_config(7, 2.0, 1.0, mechanisms={"hidden_interaction": 6.0})
    for c in hid.coins:
        want = 12.0 if c.name in ("ETH", "SOL") else 0.0
        assert c.edge.as_dict() == {"funding_reversal": 0.0, "lead_lag": 0.0, "regime_momentum": 0.0,
                                    "hidden_interaction": want}, c.name
    both = scaled_synthetic_config(7, 0.5, 1.0, mechanisms={"lead_lag": 4.0, "hidden_interaction": 2.0})
    assert both.coin("SOL").edge.as_dict()["lead_lag"] == 2.0 and both.coin("BTC").edge.as_dict()["lead_lag"] == 0
    assert (hid.seed, hid.end_ms) == (plain.seed, plain.end_ms) == (7, cfg.origin_ms + 365 * DAY_MS)
    with pytest.raises(ValueError, match="hidden_interation"):
        scaled_synthetic_config(7, 1.0, 1.0, mechanisms={"hidden_interation": 1.0})


# ------------------------------------------------------------------------------------------------ oracle
def test_oracle_arithmetic_on_a_constructed_case() -> None:
    """mu (bps) 5, 5, -5, 0, 0 at theta 1: long over bars 1-2, flip to short over bar 3, flat after. Costs 10 bps
    round trip = 5 bps per unit of position change: 1 (enter) + 2 (flip) + 1 (exit) units."""
    mu = np.array([5.0, 5.0, -5.0, 0.0, 0.0])
    ret = np.array([0.5, 0.01, 0.02, -0.01, 0.03])  # bar 0's return is never held
    day = np.array([0, 0, 0, 1, 1])
    res = _evaluate(mu, ret, day, 1.0, 10.0)
    daily = np.array([0.01 - 5e-4 + 0.02, 0.01 - 1e-3 - 5e-4])
    assert res["sharpe_annual"] == pytest.approx(daily.mean() / daily.std(ddof=1) * math.sqrt(365), rel=1e-12)
    assert res["trades"] == 2 and res["trades_per_day"] == 1.0 and res["days"] == 2
    assert res["gross_bps_per_trade"] == pytest.approx(200.0) and res["net_bps_per_trade"] == pytest.approx(190.0)
    assert res["exposure"] == pytest.approx(0.6) and res["net_bps_per_day"] == pytest.approx(190.0)
    assert _evaluate(mu, ret, day, 6.0, 10.0)["trades"] == 0  # |mu| < theta: never trades


def test_oracle_noise_coin_never_trades(cfg: S.SyntheticConfig) -> None:
    c = scaled_synthetic_config(3, 1.0, 3.0)
    o, e = S.calendar_bounds(c)
    for coin in ("BTC", "XRP"):
        res = S.planted_net_sharpe(c, coin, o, e)
        assert res["sharpe_annual"] == 0.0 and res["trades"] == 0 and res["trades_per_day"] == 0.0, res
        assert res["exposure"] == 0.0 and math.isnan(res["gross_bps_per_trade"])
        assert res["days"] == (e - o) // DAY_MS


def test_oracle_sharpe_grows_with_strength_and_is_deterministic() -> None:
    """ETH at the default profile times k = 1, 2, 4, 3-year markets, mean over 3 seeds (seed sd ~0.5-1.9)."""
    means = []
    for k in (1.0, 2.0, 4.0):
        sh = []
        for seed in (1, 2, 3):
            c = scaled_synthetic_config(seed, k, 3.0)
            sh.append(S.planted_net_sharpe(c, "ETH", *S.calendar_bounds(c), cost_bps=10.0)["sharpe_annual"])
        means.append(float(np.mean(sh)))
    assert means[0] > 0.5 and means[0] < means[1] < means[2], means
    c = scaled_synthetic_config(2, 1.0, 3.0)
    first = S.planted_net_sharpe(c, "SOL", *S.calendar_bounds(c))
    S._simulate.cache_clear()
    S._full_frames.cache_clear()
    assert S.planted_net_sharpe(c, "SOL", *S.calendar_bounds(c)) == first
    assert first["threshold_bps"] in (0.5, 1, 2, 3, 5, 8) and first["trades"] > 0


def test_oracle_threshold_is_the_best_and_costs_cost(cfg: S.SyntheticConfig) -> None:
    c = _eth_only(4, 10.0, years=1.0)
    o, e = S.calendar_bounds(c)
    best = S.planted_net_sharpe(c, "ETH", o, e, cost_bps=10.0)
    each = {t: S.oracle_performance(c, "ETH", o, e, t, cost_bps=10.0) for t in (0.5, 1, 2, 3, 5, 8)}
    assert best == each[best["threshold_bps"]]
    assert best["sharpe_annual"] == max(r["sharpe_annual"] for r in each.values()) > 0
    free = S.oracle_performance(c, "ETH", o, e, best["threshold_bps"], cost_bps=0.0)
    assert free["sharpe_annual"] > best["sharpe_annual"]
    assert free["gross_bps_per_trade"] == pytest.approx(best["gross_bps_per_trade"])
    assert best["net_bps_per_trade"] == pytest.approx(best["gross_bps_per_trade"] - 10.0)
    window = S.planted_net_sharpe(c, "ETH", o + 100 * DAY_MS + 5 * HOUR_MS, o + 200 * DAY_MS)
    assert window["days"] == 100  # UTC days with at least one bar in the window
    with pytest.raises(ValueError, match="thresholds"):
        S.planted_net_sharpe(c, "ETH", o, e, thresholds_bps=(0.0, 1.0))
