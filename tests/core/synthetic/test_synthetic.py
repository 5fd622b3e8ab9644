"""Tests for the deterministic synthetic market simulator (cryptoalgo_core.synthetic package)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from cryptoalgo_core import synthetic as S
from cryptoalgo_core.config import config_dir
from cryptoalgo_core.errors import ConfigError
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS, parse_date_ms

EDGED = ("ETH", "SOL")
NOISE = ("BTC", "XRP", "DOGE")
DRIVERS = {
    "funding_reversal": "funding_driver",
    "lead_lag": "lead_driver",
    "regime_momentum": "momentum_driver",
    "hidden_interaction": "hidden_driver",
}
DEFAULT_OFF = ("hidden_interaction",)  # planted on no coin by default (benchmarks switch it on)


@pytest.fixture(scope="module")
def cfg() -> S.SyntheticConfig:
    return S.load_synthetic_config()


@pytest.fixture(scope="module")
def full(cfg: S.SyntheticConfig) -> dict[str, S.SyntheticSeries]:
    o, e = S.calendar_bounds(cfg)
    return S.generate(cfg, list(cfg.coin_names), o, e)


@pytest.fixture(scope="module")
def obs(cfg: S.SyntheticConfig) -> dict[str, pd.DataFrame]:
    o, e = S.calendar_bounds(cfg)
    return S.observables(cfg, list(cfg.coin_names), o, e)


def _log_returns(s: S.SyntheticSeries) -> np.ndarray:
    d = s.ohlcv
    return np.diff(np.log(np.r_[d["open"].iloc[0], d["close"].to_numpy()]))


def _acf(x: np.ndarray, lag: int) -> float:
    x = x - x.mean()
    return float((x[:-lag] * x[lag:]).sum() / (x * x).sum())


def _assert_series_equal(a: S.SyntheticSeries, b: S.SyntheticSeries) -> None:
    for name in ("ohlcv", "funding", "open_interest"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)


# ------------------------------------------------------------------------------ calendar/determinism
def test_default_calendar(cfg: S.SyntheticConfig, full: dict[str, S.SyntheticSeries]) -> None:
    o, e = S.calendar_bounds(cfg)
    assert o == parse_date_ms("2020-01-01") and e == parse_date_ms("2026-01-01")
    ts = full["BTC"].ohlcv["ts"].to_numpy()
    assert ts[0] == o and ts[-1] == e - HOUR_MS and (np.diff(ts) == HOUR_MS).all()
    assert list(cfg.coin_names) == ["BTC", "ETH", "SOL", "XRP", "DOGE"]


def test_same_seed_identical_different_seed_differs(cfg: S.SyntheticConfig) -> None:
    o = cfg.origin_ms
    a = S.generate(cfg, ["ETH"], o, o + 30 * DAY_MS)["ETH"]
    S._simulate.cache_clear()
    S._full_frames.cache_clear()
    b = S.generate(cfg, ["ETH"], o, o + 30 * DAY_MS)["ETH"]
    _assert_series_equal(a, b)
    other = S.generate(dataclasses.replace(cfg, seed=cfg.seed + 1), ["ETH"], o, o + 30 * DAY_MS)["ETH"]
    assert not np.array_equal(a.ohlcv["close"].to_numpy(), other.ohlcv["close"].to_numpy())
    assert not np.array_equal(a.funding["rate"].to_numpy(), other.funding["rate"].to_numpy())


def test_sub_window_equals_slice_across_chunk_boundary(
    cfg: S.SyntheticConfig, full: dict[str, S.SyntheticSeries]
) -> None:
    boundary = cfg.origin_ms + cfg.chunk_hours * HOUR_MS  # first hour drawn from chunk 1
    start, end = boundary - 37 * HOUR_MS, boundary + 3 * DAY_MS + 5 * HOUR_MS
    sub = S.generate(cfg, ["SOL", "BTC"], start, end)
    for coin in ("SOL", "BTC"):
        f = full[coin]
        for name in ("ohlcv", "funding", "open_interest"):
            big = getattr(f, name)
            want = big[(big["ts"] >= start) & (big["ts"] < end)].reset_index(drop=True)
            pd.testing.assert_frame_equal(getattr(sub[coin], name), want, check_exact=True)
    # funding rows are the 8-hourly settlements inside the window
    assert sub["SOL"].funding["ts"].iloc[0] == start + 5 * HOUR_MS  # boundary - 37 h is 03:00 UTC
    o_sub = S.observables(cfg, ["SOL"], start, end)["SOL"]
    o_all = S.observables(cfg, ["SOL"], *S.calendar_bounds(cfg))["SOL"]
    want_obs = o_all[(o_all["ts"] >= start) & (o_all["ts"] < end)].reset_index(drop=True)
    pd.testing.assert_frame_equal(o_sub, want_obs, check_exact=True)


def test_extending_calendar_keeps_history(cfg: S.SyntheticConfig, full: dict[str, S.SyntheticSeries]) -> None:
    short = dataclasses.replace(cfg, end_ms=cfg.origin_ms + 200 * DAY_MS)  # ends mid-chunk
    got = S.generate(short, list(cfg.coin_names), *S.calendar_bounds(short))
    for coin in cfg.coin_names:
        for name in ("ohlcv", "funding", "open_interest"):
            big = getattr(full[coin], name)
            want = big[big["ts"] < short.end_ms].reset_index(drop=True)
            pd.testing.assert_frame_equal(getattr(got[coin], name), want, check_exact=True)


def test_window_clipping_and_empty(cfg: S.SyntheticConfig) -> None:
    o, e = S.calendar_bounds(cfg)
    before = S.generate(cfg, ["BTC"], o - 10 * DAY_MS, o + 2 * HOUR_MS)["BTC"]
    assert before.ohlcv["ts"].tolist() == [o, o + HOUR_MS]
    assert before.funding["ts"].tolist() == [o]
    after = S.generate(cfg, ["BTC"], e - HOUR_MS, e + 10 * DAY_MS)["BTC"]
    assert after.ohlcv["ts"].tolist() == [e - HOUR_MS] and after.funding.empty
    empty = S.generate(cfg, ["BTC"], e + DAY_MS, e + 2 * DAY_MS)["BTC"]
    assert empty.ohlcv.empty and list(empty.ohlcv.columns) == ["ts", "open", "high", "low", "close", "volume"]
    assert empty.ohlcv["ts"].dtype == np.int64
    odd = S.generate(cfg, ["BTC"], o + 30 * 60_000, o + 3 * HOUR_MS)["BTC"]  # non-aligned start
    assert odd.ohlcv["ts"].tolist() == [o + HOUR_MS, o + 2 * HOUR_MS]


def test_returned_frames_do_not_alias_cache(cfg: S.SyntheticConfig) -> None:
    o = cfg.origin_ms
    a = S.generate(cfg, ["ETH"], o, o + DAY_MS)["ETH"]
    before = float(a.ohlcv["close"].iloc[0])
    a.ohlcv.loc[0, "close"] = -1.0
    a.funding.loc[0, "rate"] = 99.0
    b = S.generate(cfg, ["ETH"], o, o + DAY_MS)["ETH"]
    assert float(b.ohlcv["close"].iloc[0]) == before and float(b.funding["rate"].iloc[0]) != 99.0


def test_unknown_coin(cfg: S.SyntheticConfig) -> None:
    with pytest.raises(ConfigError, match=r"ADA.*BTC.*ETH"):
        S.generate(cfg, ["BTC", "ADA"], cfg.origin_ms, cfg.origin_ms + DAY_MS)
    with pytest.raises(ConfigError, match="ADA"):
        S.observables(cfg, ["ADA"], cfg.origin_ms, cfg.origin_ms + DAY_MS)


def test_repeated_day_calls_slice_the_one_cached_path(cfg: S.SyntheticConfig) -> None:
    """A day-by-day backfill never re-simulates: every call is a cache hit on the same full frames, and the
    days put together are the year asked for at once. (How fast that is: benchmarks/bench_ingest.py.)"""
    o = cfg.origin_ms
    S.generate(cfg, ["BTC"], o, o + DAY_MS)  # warm the cache
    frames = S._full_frames(cfg)
    sims, hits = S._simulate.cache_info(), S._full_frames.cache_info()
    days = {coin: [S.generate(cfg, [coin], o + d * DAY_MS, o + (d + 1) * DAY_MS)[coin] for d in range(365)]
            for coin in cfg.coin_names}
    after = S._full_frames.cache_info()
    assert S._simulate.cache_info().misses == sims.misses and after.misses == hits.misses
    assert after.hits - hits.hits == 5 * 365
    assert S._full_frames(cfg) is frames
    year = S.generate(cfg, ["ETH"], o, o + 365 * DAY_MS)["ETH"]
    pd.testing.assert_frame_equal(
        pd.concat([d.ohlcv for d in days["ETH"]], ignore_index=True), year.ohlcv, check_exact=True
    )


# ------------------------------------------------------------------------------------------ realism
def test_volatility_correlation_tails_clustering(
    cfg: S.SyntheticConfig, full: dict[str, S.SyntheticSeries]
) -> None:
    rets = {c: _log_returns(full[c]) for c in cfg.coin_names}
    for i, c in enumerate(cfg.coins):
        r = rets[c.name]
        ann = r.std() * np.sqrt(8760)
        assert abs(ann / c.annual_vol - 1) < 0.20, (c.name, ann)
        rho = np.corrcoef(r, rets["BTC"])[0, 1]
        assert abs(rho - cfg.correlation[i][0]) < 0.1, (c.name, rho)
        assert pd.Series(r).kurt() > 3, c.name
        assert _acf(np.abs(r), 1) > 0.1, c.name
        assert _acf(np.abs(r), 24) > 0.05, c.name


def test_ohlcv_invariants(full: dict[str, S.SyntheticSeries]) -> None:
    for coin, s in full.items():
        d = s.ohlcv
        assert list(d.columns) == ["ts", "open", "high", "low", "close", "volume"]
        assert d["ts"].dtype == np.int64
        assert all(d[c].dtype == np.float64 for c in ("open", "high", "low", "close", "volume"))
        o, h, lo, c, v = (d[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
        assert np.isfinite(d[["open", "high", "low", "close", "volume"]].to_numpy()).all(), coin
        assert (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all(), coin
        assert (lo > 0).all() and (v > 0).all(), coin
        assert (o[1:] == c[:-1]).all(), coin  # continuous: open = previous close
        med_range = np.median((h - lo) / o)
        assert 0.002 < med_range < 0.02, (coin, med_range)
        vol_ratio = np.corrcoef(np.log(v), np.abs(np.log(c / o)))[0, 1]
        assert vol_ratio > 0.1, coin  # volume rises with |return|


def test_funding_and_open_interest(cfg: S.SyntheticConfig, full: dict[str, S.SyntheticSeries]) -> None:
    for c in cfg.coins:
        f = full[c.name].funding
        assert list(f.columns) == ["ts", "rate"] and f["ts"].dtype == np.int64
        assert (f["ts"] % (8 * HOUR_MS) == 0).all() and (np.diff(f["ts"]) == 8 * HOUR_MS).all()
        assert set(((f["ts"] % DAY_MS) // HOUR_MS).unique()) == {0, 8, 16}
        rate = f["rate"].to_numpy()
        assert abs(rate.mean() - c.funding_mean) < 0.5 * c.funding_std, c.name
        assert 0.75 < rate.std() / c.funding_std < 1.25, c.name
        assert np.abs(rate).max() < 0.01, c.name  # the market-data gate's funding_abs_max
        oi = full[c.name].open_interest
        assert list(oi.columns) == ["ts", "value", "unit"] and (oi["unit"] == "usd").all()
        assert (oi["ts"].to_numpy() == full[c.name].ohlcv["ts"].to_numpy()).all()
        assert (oi["value"] > 0).all()
        # value known at ts: the snapshot uses the price at ts (= open of the candle starting at ts)
        lc = np.log(full[c.name].ohlcv["open"].to_numpy())
        assert np.corrcoef(np.log(oi["value"].to_numpy()), lc)[0, 1] > 0.5


# ------------------------------------------------------------------------------------ planted edge
def test_planted_truth_matches_config(cfg: S.SyntheticConfig) -> None:
    truth = S.planted_truth(cfg)
    assert set(truth) == set(cfg.coin_names)
    for coin in NOISE:
        assert truth[coin] == {k: 0.0 for k in S.MECHANISMS}
    for coin in EDGED:
        assert all((v == 0) if m in DEFAULT_OFF else (v > 0) for m, v in truth[coin].items()), truth[coin]
    assert truth["ETH"] == cfg.coin("ETH").edge.as_dict()
    text = S.describe_planted_truth(cfg)
    assert "BTC: pure noise" in text and "funding_reversal" in text


def test_drivers_are_observable_from_published_data(
    cfg: S.SyntheticConfig, full: dict[str, S.SyntheticSeries], obs: dict[str, pd.DataFrame]
) -> None:
    """Recompute every driver from generate() output only: nothing latent leaks into the edge."""
    shape = cfg.edge_shape
    btc = full["BTC"].ohlcv
    btc_r = np.log(btc["close"] / btc["open"]).to_numpy()
    sig_btc = cfg.coin("BTC").annual_vol / np.sqrt(8760)
    for coin in ("ETH", "XRP"):
        ob = obs[coin]
        d = full[coin].ohlcv
        r = np.log(d["close"] / d["open"]).to_numpy()
        np.testing.assert_allclose(ob["log_return"], r, rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            ob["lead_driver"], np.clip(btc_r / sig_btc, -shape.lead_clip, shape.lead_clip), rtol=0, atol=1e-9
        )
        w = shape.trend_window_h
        lc = np.log(d["close"].to_numpy())
        r24 = pd.Series(r).rolling(w).sum().to_numpy()
        er = np.abs(r24) / pd.Series(np.abs(r)).rolling(w).sum().to_numpy()
        np.testing.assert_allclose(ob["ret_24h"].to_numpy()[w:], (lc[w:] - lc[:-w]), rtol=0, atol=1e-9)
        np.testing.assert_allclose(ob["efficiency_ratio"].to_numpy()[w:], er[w:], rtol=0, atol=1e-9)
        # hysteresis trend state from the efficiency ratio
        state, states = 0.0, np.zeros(len(er))
        for t, e in enumerate(er):
            if np.isfinite(e):
                state = (
                    1.0
                    if (state == 0 and e >= shape.trend_enter_er) or (state == 1 and e >= shape.trend_exit_er)
                    else 0.0
                )
            states[t] = state
        agree = (states == ob["trend_state"].to_numpy()).mean()
        assert agree > 0.999, agree  # rounding of ER exactly at a threshold may flip a few bars
        # funding z-score from the settled rates known at each bar's close (ts + 1 h)
        f = full[coin].funding
        zw = cfg.funding.zscore_window
        roll = f["rate"].rolling(zw)
        z = ((f["rate"] - roll.mean()) / roll.std()).to_numpy()
        idx = (ob["ts"].to_numpy() + HOUR_MS - cfg.origin_ms) // (8 * HOUR_MS)  # last settlement <= close
        np.testing.assert_allclose(
            ob["funding_z"].to_numpy()[idx < len(z)], z[idx[idx < len(z)]], rtol=0, atol=1e-6, equal_nan=True
        )
        drive = np.clip(
            (np.abs(ob["funding_z"]) - shape.funding_z_enter)
            / (shape.funding_z_full - shape.funding_z_enter),
            0,
            1,
        ) * -np.sign(ob["funding_z"])
        np.testing.assert_allclose(ob["funding_driver"], np.nan_to_num(drive), rtol=0, atol=1e-9)


def test_planted_drift_is_exactly_the_linear_model(
    cfg: S.SyntheticConfig, obs: dict[str, pd.DataFrame]
) -> None:
    for coin, strengths in S.planted_truth(cfg).items():
        ob = obs[coin]
        drift = 1e-4 * sum(s * ob[DRIVERS[m]] for m, s in strengths.items())
        np.testing.assert_allclose(ob["planted_drift_next"], drift, rtol=0, atol=1e-15)
        if coin in NOISE:
            assert (ob["planted_drift_next"] == 0).all()


def _wls(ob: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Next-bar return (bps) on the three drivers, weighted by the true next-bar vol; HC0 SEs."""
    y = ob["log_return"].shift(-1).to_numpy() * 1e4
    sig = ob["sigma"].shift(-1).to_numpy() * 1e4
    x = np.column_stack([np.ones(len(ob))] + [ob[DRIVERS[m]].to_numpy() for m in S.MECHANISMS])
    m = np.isfinite(y) & np.isfinite(x).all(axis=1)
    y, x, sig = y[m] / sig[m], x[m] / sig[m, None], sig[m]
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    res = y - x @ beta
    xtx_inv = np.linalg.inv(x.T @ x)
    cov = xtx_inv @ (x.T * res**2) @ x @ xtx_inv
    return beta[1:], np.sqrt(np.diag(cov))[1:]


def test_planted_effect_measurable_at_configured_size(
    cfg: S.SyntheticConfig, obs: dict[str, pd.DataFrame]
) -> None:
    truth = S.planted_truth(cfg)
    for coin in cfg.coin_names:
        beta, se = _wls(obs[coin])
        for (mech, strength), b, s in zip(truth[coin].items(), beta, se, strict=True):
            assert abs(b - strength) < 4 * s, (coin, mech, b, s, strength)
            if strength > 0:
                assert b / s > 3, (coin, mech, b, s)  # clearly present
            else:
                assert abs(b / s) < 3.5, (coin, mech, b, s)  # indistinguishable from 0


def test_edge_survives_costs_when_held(cfg: S.SyntheticConfig, obs: dict[str, pd.DataFrame]) -> None:
    """A full-strength funding / momentum signal held 8 h beats ~20 bps round-trip costs on average."""
    hold = 8
    for coin in EDGED:
        ob = obs[coin]
        drift = ob["planted_drift_next"].to_numpy()  # row t: expected log return of bar t + 1
        r = ob["log_return"].to_numpy()
        for col in ("funding_driver", "momentum_driver"):
            drv = ob[col].to_numpy()
            on = np.flatnonzero(np.abs(drv[: -hold - 1]) >= 1.0)  # signal known at the close of bar t
            side = np.sign(drv[on])
            expected = np.mean([drift[t : t + hold].sum() for t in on] * side) * 1e4
            realised = np.mean([r[t + 1 : t + 1 + hold].sum() for t in on] * side) * 1e4
            assert expected > 20, (coin, col, expected)
            assert realised > 10, (coin, col, realised)


def test_zero_planted_edge_is_a_price_martingale(cfg: S.SyntheticConfig) -> None:
    """Noise coins have zero expected gross return in PRICE (E[close_t / close_t-1] = 1), not in log price
    (which would drift up by sigma^2 / 2 and pay a long-only book a free edge).

    Claim, over 60 seeds x 3 noise coins x 2 years of hours: the grand mean simple hourly return is within
    4 standard errors of 0 (a false failure has probability ~6e-5 if the model is right). Power check on
    the same data: without the compensation the mean is ~sigma^2/2, expected ~9 standard errors above 0, and
    must be > 6 (failure probability ~2e-3), so the test tells the two conventions apart."""
    one_year = dataclasses.replace(cfg, end_ms=cfg.origin_ms + 730 * DAY_MS)
    comp_means, raw_means = [], []
    for seed in range(60):
        c = dataclasses.replace(one_year, seed=10_000 + seed)
        o, e = S.calendar_bounds(c)
        obs = S.observables(c, list(NOISE), o, e)
        for coin in NOISE:
            r = obs[coin]["log_return"].to_numpy()
            sig = obs[coin]["sigma"].to_numpy()
            comp_means.append(np.expm1(r).mean())
            raw_means.append(np.expm1(r + 0.5 * sig**2).mean())  # ~ the return without the compensation
    comp, raw = np.asarray(comp_means), np.asarray(raw_means)
    se = comp.std(ddof=1) / np.sqrt(comp.size)
    assert abs(comp.mean()) < 4 * se, (comp.mean(), se)
    assert raw.mean() > 6 * se, (raw.mean(), se)


# ---------------------------------------------------------------------------------------- config
def _base_yaml() -> dict[str, Any]:
    return yaml.safe_load((config_dir() / "synthetic.yaml").read_text())


def _load(tmp_path: Path, data: dict[str, Any]) -> S.SyntheticConfig:
    p = tmp_path / "synthetic.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return S.load_synthetic_config(p)


def test_config_roundtrip_and_hashable(tmp_path: Path, cfg: S.SyntheticConfig) -> None:
    again = _load(tmp_path, _base_yaml())
    assert again == cfg and hash(again) == hash(cfg)


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda d: d.update(colour="red"), r"unknown key.*colour"),
        (lambda d: d["coins"]["ETH"].update(anual_vol=0.5), r"coins\.ETH.*unknown key.*anual_vol"),
        (lambda d: d["volatility"].update(slow_hl=3), r"volatility.*unknown key.*slow_hl"),
        (lambda d: d["coins"]["SOL"].update(annual_vol=-0.3), r"coins\.SOL\.annual_vol.*> 0"),
        (lambda d: d["coins"]["SOL"].update(funding_std=-1e-4), r"coins\.SOL\.funding_std"),
        (lambda d: d["correlation"]["BTC"].update(ETH=1.3), r"correlation\.BTC\.ETH.*not in \[-1, 1\]"),
        (lambda d: d["correlation"]["BTC"].update(ADA=0.5), r"correlation\.BTC\.ADA.*unknown coin"),
        (lambda d: d["correlation"].update(ADA={"BTC": 0.5}), r"correlation\.ADA.*unknown coin"),
        (lambda d: d["correlation"]["XRP"].pop("DOGE"), r"missing pair.*XRP-DOGE"),
        (
            lambda d: d["correlation"].update(
                BTC={"ETH": 0.95, "SOL": 0.95, "XRP": 0.6, "DOGE": 0.69},
                ETH={"SOL": -0.9, "XRP": 0.58, "DOGE": 0.66},
            ),
            r"correlation.*not positive definite",
        ),
        (
            lambda d: d["coins"]["ETH"]["edge"].update(lead_lag=50),
            r"coins\.ETH\.edge\.lead_lag.*out of range",
        ),
        (lambda d: d["coins"]["ETH"]["edge"].update(regime_momentum=-1), r"regime_momentum.*out of range"),
        (lambda d: d["coins"]["ETH"]["edge"].update(momentum=1), r"coins\.ETH\.edge.*unknown key.*momentum"),
        (lambda d: d["coins"]["BTC"]["edge"].update(lead_lag=1), r"coins\.BTC\.edge\.lead_lag.*lead coin"),
        (lambda d: d.update(lead_coin="ADA"), r"lead_coin.*ADA"),
        (lambda d: d["coins"].update(btc2=d["coins"]["BTC"]), r"coins\.btc2.*upper-case"),
        (lambda d: d["calendar"].update(origin="2020-01-01T05:00"), r"calendar\.origin.*midnight"),
        (lambda d: d["calendar"].update(start="2020-01-01"), r"calendar.*unknown key.*start"),
        (lambda d: d["volatility"].update(tail_dof=2.0), r"volatility.*tail_dof"),
        (lambda d: d["funding"].update(persistence=1.0), r"funding.*persistence"),
    ],
)
def test_config_errors(tmp_path: Path, mutate: Any, pattern: str) -> None:
    data = copy.deepcopy(_base_yaml())
    mutate(data)
    with pytest.raises(ConfigError, match=pattern) as info:
        _load(tmp_path, data)
    assert str(tmp_path / "synthetic.yaml") in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        S.load_synthetic_config(tmp_path / "nope.yaml")
