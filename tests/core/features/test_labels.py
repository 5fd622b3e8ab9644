"""Triple-barrier labels (cryptoalgo_core.features.labels): hand-computed cases, causality/truncation, one compiled kernel."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cryptoalgo_core.features import label_kernels
from cryptoalgo_core.features.labels import (
    LabelParams,
    realized_vol,
    triple_barrier,
    triple_barrier_from_sigma,
)
from cryptoalgo_core.timeutil import HOUR_MS

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
NAN = float("nan")


def _grid(n: int) -> np.ndarray:
    return T0 + np.arange(n, dtype=np.int64) * HOUR_MS


def _flat_bars(n: int, price: float = 100.0) -> dict[str, np.ndarray]:
    """n quiet bars: open = close = price, high/low +-0.5 % (inside a 2 % barrier)."""
    return {
        "open_": np.full(n, price),
        "high": np.full(n, price * 1.005),
        "low": np.full(n, price * 0.995),
        "close": np.full(n, price),
    }


# sigma 1 %, H = 4, k = 1  ->  width = 0.01 * sqrt(4) = 0.02
H = 4
K = 1.0
W = 0.02
UP = 100.0 * math.exp(W)
LO = 100.0 * math.exp(-W)


def _label_row0(bars: dict[str, np.ndarray]) -> pd.Series:
    n = bars["close"].shape[0]
    sigma = np.full(n, NAN)
    sigma[0] = 0.01  # only row 0 is labelable: isolates the case
    out = triple_barrier_from_sigma(_grid(n), bars["open_"], bars["high"], bars["low"], bars["close"],
                                    sigma, H, K)
    assert out["label"].iloc[1:].isna().all()
    return out.iloc[0]


def test_barrier_prices() -> None:
    r = _label_row0(_flat_bars(8))
    assert r["upper"] == pytest.approx(UP, rel=1e-12)
    assert r["lower"] == pytest.approx(LO, rel=1e-12)
    assert r["vol"] == 0.01


def test_upper_touched_first() -> None:
    b = _flat_bars(8)
    b["high"][2] = 103.0  # upper 102.02 touched in bar 2
    b["low"][3] = 90.0  # lower later: irrelevant
    r = _label_row0(b)
    assert (r["label"], r["target"], r["barrier"]) == (1.0, 1.0, "upper")
    assert r["ret"] == pytest.approx(W, abs=1e-12)
    assert r["t1"] == T0 + 2 * HOUR_MS + HOUR_MS


def test_lower_touched_first() -> None:
    b = _flat_bars(8)
    b["low"][1] = 97.0
    b["high"][3] = 110.0
    r = _label_row0(b)
    assert (r["label"], r["target"], r["barrier"]) == (-1.0, 0.0, "lower")
    assert r["ret"] == pytest.approx(-W, abs=1e-12)
    assert r["t1"] == T0 + 2 * HOUR_MS


def test_vertical_barrier() -> None:
    b = _flat_bars(8)
    b["close"][H] = 101.0
    r = _label_row0(b)
    assert (r["label"], r["target"], r["barrier"]) == (0.0, 0.0, "vertical")
    assert r["ret"] == pytest.approx(math.log(101.0 / 100.0), abs=1e-12)
    assert r["t1"] == T0 + H * HOUR_MS + HOUR_MS


def test_touch_on_last_horizon_bar_beats_vertical() -> None:
    b = _flat_bars(8)
    b["high"][H] = 102.5
    r = _label_row0(b)
    assert r["barrier"] == "upper" and r["t1"] == T0 + (H + 1) * HOUR_MS


def test_both_in_one_bar_is_lower() -> None:
    b = _flat_bars(8)
    b["high"][2] = 104.0
    b["low"][2] = 96.0
    r = _label_row0(b)
    assert (r["label"], r["barrier"]) == (-1.0, "lower")
    assert r["ret"] == pytest.approx(-W, abs=1e-12)
    assert r["t1"] == T0 + 3 * HOUR_MS


def test_gap_through_barrier_fills_at_open() -> None:
    b = _flat_bars(8)
    b["open_"][2], b["high"][2], b["close"][2] = 103.5, 104.0, 103.8
    r = _label_row0(b)
    assert r["label"] == 1.0 and r["ret"] == pytest.approx(math.log(1.035), abs=1e-12)
    b = _flat_bars(8)
    b["open_"][3], b["low"][3], b["close"][3] = 95.0, 94.0, 95.5
    r = _label_row0(b)
    assert r["label"] == -1.0 and r["ret"] == pytest.approx(math.log(0.95), abs=1e-12)
    # an open inside the barriers fills at the barrier even if the bar moves far beyond it
    b = _flat_bars(8)
    b["open_"][2], b["high"][2] = 100.5, 120.0
    assert _label_row0(b)["ret"] == pytest.approx(W, abs=1e-12)


def test_open_beyond_upper_wins_even_if_the_bar_later_touches_lower() -> None:
    """The open is the bar's first price: a bar that opens above the upper barrier touched it first."""
    b = _flat_bars(8)
    b["open_"][2], b["high"][2], b["low"][2], b["close"][2] = 104.0, 104.5, 95.0, 99.0
    r = _label_row0(b)
    assert (r["label"], r["barrier"]) == (1.0, "upper")
    assert r["ret"] == pytest.approx(math.log(1.04), abs=1e-12)


@pytest.mark.parametrize("col", ["high", "low", "close"])
def test_gap_before_touch_is_unlabeled(col: str) -> None:
    b = _flat_bars(8)
    b[col][2] = NAN  # any of high/low/close missing makes the bar missing
    b["high"][3] = 105.0  # a touch after the gap must not be used
    r = _label_row0(b)
    assert math.isnan(r["label"]) and math.isnan(r["target"]) and math.isnan(r["ret"])
    assert r["t1"] == -1 and r["barrier"] == ""
    assert r["upper"] == pytest.approx(UP)  # barriers are still reported


def test_gap_on_vertical_bar_is_unlabeled() -> None:
    b = _flat_bars(8)
    for c in b:
        b[c][H] = NAN
    assert math.isnan(_label_row0(b)["label"])


def test_touch_before_gap_is_labeled() -> None:
    b = _flat_bars(8)
    b["low"][1] = 97.0
    for c in b:
        b[c][2] = NAN
    r = _label_row0(b)
    assert (r["label"], r["barrier"], r["t1"]) == (-1.0, "lower", T0 + 2 * HOUR_MS)


def test_last_h_rows_never_labeled_even_with_early_touch() -> None:
    n = 12
    b = _flat_bars(n)
    b["high"][n - 3] = 110.0  # a touch right after rows n-4, n-5, ... (upper for any t < n-3)
    sigma = np.full(n, 0.01)
    out = triple_barrier_from_sigma(_grid(n), b["open_"], b["high"], b["low"], b["close"], sigma, H, K)
    assert out["label"].iloc[-H:].isna().all()
    assert (out["t1"].iloc[-H:] == -1).all() and (out["barrier"].iloc[-H:] == "").all()
    assert out["label"].iloc[: n - H].notna().all()
    assert out["label"].iloc[n - H - 1] == 1.0  # t = n-5: touch at n-3, inside its full horizon
    assert out["upper"].notna().all()  # barriers are still reported on the unlabeled tail


def test_nan_close_or_sigma_at_t_is_unlabeled() -> None:
    b = _flat_bars(8)
    b["close"][0] = NAN
    r = _label_row0(b)
    assert math.isnan(r["label"]) and math.isnan(r["upper"]) and math.isnan(r["vol"])


def test_output_schema() -> None:
    b = _flat_bars(10)
    out = triple_barrier(_grid(10), b["open_"], b["high"], b["low"], b["close"], LabelParams(2, 1.0, 3))
    assert list(out.columns) == ["ts", "label", "target", "t1", "ret", "barrier", "upper", "lower", "vol"]
    assert out["ts"].dtype == np.int64 and out["t1"].dtype == np.int64
    assert out["label"].dtype == np.float64 and out["target"].dtype == np.float64
    assert pd.api.types.is_string_dtype(out["barrier"]) or out["barrier"].dtype == object
    # flat closes: vol = 0 -> floored at min_vol
    assert out["vol"].iloc[3:].eq(1e-5).all() and out["vol"].iloc[:3].isna().all()


def test_bad_inputs() -> None:
    b = _flat_bars(5)
    ts = _grid(5)
    ts[3] += 1
    with pytest.raises(ValueError, match="full hourly grid"):
        triple_barrier(ts, b["open_"], b["high"], b["low"], b["close"], LabelParams(2, 1.0))
    with pytest.raises(ValueError, match="forward_hours"):
        LabelParams(0, 1.0)
    with pytest.raises(ValueError, match="vol_target"):
        LabelParams(3, 0.0)
    with pytest.raises(ValueError, match="rows"):
        triple_barrier(_grid(5), b["open_"][:4], b["high"], b["low"], b["close"], LabelParams(2, 1.0))


# ------------------------------------------------------------------------------------------ realized vol


def test_realized_vol_known_value_and_window() -> None:
    a = 0.01
    r = np.array([a if i % 2 == 0 else -a for i in range(40)])
    close = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(r)]))
    v = realized_vol(close, 24)
    assert np.isnan(v[:24]).all()  # needs 24 returns = closes t-24 .. t
    np.testing.assert_allclose(v[24:], a * math.sqrt(24 / 23), rtol=1e-9)


def test_realized_vol_matches_pandas_and_nan_rule() -> None:
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 500)))
    close[[100, 101, 300]] = NAN
    v = realized_vol(close, 24)
    ref = np.log(pd.Series(close)).diff().rolling(24, min_periods=24).std().to_numpy()
    np.testing.assert_allclose(v, ref, rtol=1e-9, equal_nan=True)
    assert np.isnan(v[100:126]).all() and np.isfinite(v[126])  # returns at 100..102 missing
    assert np.isnan(v[300:325]).all() and np.isfinite(v[325])


def test_labels_via_realized_vol() -> None:
    """End-to-end through triple_barrier: alternating +-a returns give sigma = a*sqrt(W/(W-1))."""
    a, window, h, k = 0.01, 4, 4, 1.0
    r = [a, -a, a, -a]
    close = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(r)]))  # rows 0..4, close[4] = 100
    close = np.concatenate([close, np.full(5, 100.0)])
    n = close.size
    high, low = close * 1.001, close * 0.999
    high[6] = 103.0
    out = triple_barrier(_grid(n), close.copy(), high, low, close, LabelParams(h, k, window))
    sigma = a * math.sqrt(4 / 3)
    r4 = out.iloc[4]
    assert r4["vol"] == pytest.approx(sigma, rel=1e-12)
    assert r4["upper"] == pytest.approx(100 * math.exp(k * sigma * 2), rel=1e-12)
    assert (r4["label"], r4["t1"]) == (1.0, T0 + 7 * HOUR_MS)
    assert r4["ret"] == pytest.approx(k * sigma * 2, rel=1e-12)


# ------------------------------------------------------------------------------------------ causality


def _random_market(n: int, seed: int, gaps: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.standard_t(4, n) * 0.006))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.004, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.004, n)))
    if gaps:
        for start in rng.choice(n - 10, 8, replace=False):
            for a in (open_, high, low, close):
                a[start : start + rng.integers(1, 6)] = NAN
    return {"open_": open_, "high": high, "low": low, "close": close}


def test_realized_vol_is_causal_under_truncation() -> None:
    m = _random_market(3000, 11)
    full = realized_vol(m["close"], 24)
    rng = np.random.default_rng(0)
    for t in rng.integers(0, 3000, 300):
        trunc = realized_vol(m["close"][: t + 1], 24)
        assert np.array_equal(trunc[t], full[t], equal_nan=True)


def test_labels_need_data_only_up_to_t_plus_h() -> None:
    n = 3000
    m = _random_market(n, 12)
    ts = _grid(n)
    params = LabelParams(forward_hours=12, vol_target=1.5, vol_window_hours=24)
    full = triple_barrier(ts, m["open_"], m["high"], m["low"], m["close"], params)
    assert full["label"].notna().sum() > 2000
    assert set(full["barrier"]) == {"", "upper", "lower", "vertical"}
    rng = np.random.default_rng(1)
    for t in rng.integers(0, n - params.forward_hours, 200):
        e = t + params.forward_hours + 1
        trunc = triple_barrier(ts[:e], *(m[c][:e] for c in ("open_", "high", "low", "close")), params)
        pd.testing.assert_series_equal(trunc.iloc[t], full.iloc[t])
        # and the barriers at t need data up to t only
        short = triple_barrier(ts[: t + 1], *(m[c][: t + 1] for c in ("open_", "high", "low", "close")), params)
        assert np.array_equal(short[["upper", "lower", "vol"]].iloc[t].to_numpy(float),
                              full[["upper", "lower", "vol"]].iloc[t].to_numpy(float), equal_nan=True)
    # decision time is after t and no later than t+H's close
    lab = full[full["label"].notna()]
    assert ((lab["t1"] > lab["ts"] + HOUR_MS - 1) & (lab["t1"] <= lab["ts"] + (params.forward_hours + 1) * HOUR_MS)).all()


def test_five_coins_three_years_reuse_one_compiled_kernel() -> None:
    """Five coins x three years of hours reuse the kernels compiled for the first call (no per-call
    compilation). How fast that is: benchmarks/bench_features.py."""
    n = 3 * 8760
    markets = [_random_market(n, s) for s in range(5)]
    ts = _grid(n)
    params = LabelParams(forward_hours=72, vol_target=2.0)
    small = triple_barrier(ts[:200], *(markets[0][c][:200] for c in ("open_", "high", "low", "close")), params)
    kernels = (label_kernels.barrier_kernel, label_kernels.realized_vol_kernel)
    compiled = [list(k.signatures) for k in kernels]
    outs = [triple_barrier(ts, m["open_"], m["high"], m["low"], m["close"], params) for m in markets]
    assert [list(k.signatures) for k in kernels] == compiled  # no new specialisation for any coin
    assert all(len(o) == n and o["label"].notna().sum() > n // 2 for o in outs)
    assert all(o["label"].isna().iloc[-72:].all() for o in outs)  # the last H rows never get a label
    pd.testing.assert_frame_equal(outs[0].iloc[:128], small.iloc[:128])  # the head is causal: same rows
