"""From calibrated predictions to signals: entry rule, pre-trade quality filters and sizing (pure, causal).

Everything at bar t uses the prediction made for bar t (out of sample) and features known at t's close.
- Entry (profile.entry): mode `probability`: long if the calibrated direction probability
  p_dir = P(up first | touched) >= long_threshold; mode `spread`: long if p_up - p_down >= min_spread.
  Both modes gate on the probability spread p_up - p_down = p_touch * (2 p_dir - 1) >= min_spread, so a
  confident direction on a bar unlikely to move enough is not traded. Shorts (long_only = false) mirror it
  with 1 - p_dir >= short_threshold.
- Filters (profile.filters): rv_24 within [min_vol_24h, max_vol_24h]; mom_mag_24 >= min_momentum_magnitude;
  the trend state at t (trend_bucket 0/1/2 = down/chop/up) in trend_states.
- Size: min(max_fraction, target hourly vol / rv_24) * position_scale, capped by the venue
  (profile.max_position): at most 1x equity on a spot venue, sizing.max_leverage on a perp venue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryptoalgo_core.config.profile import CoinProfile
from cryptoalgo_core.timeutil import HOUR_MS

TREND_CODE = {"down": 0.0, "chop": 1.0, "up": 2.0}


@dataclass
class Signals:
    ts: np.ndarray
    signal: np.ndarray  # int8 on the grid
    sigma: np.ndarray
    size: np.ndarray
    regime: np.ndarray  # regime_state at t (NaN where unknown)
    funnel: dict[str, int]  # how many candidate bars each step kept


def build_signals(
    grid_ts: np.ndarray, predictions: pd.DataFrame, features: pd.DataFrame, profile: CoinProfile
) -> Signals:
    g = pd.DataFrame({"ts": grid_ts})
    p = g.merge(predictions[["ts", "p_dir", "p_up", "p_down"]], on="ts", how="left")
    f = g.merge(features[["ts", "rv_24", "mom_mag_24", "trend_bucket", "regime_state"]], on="ts", how="left")
    signal, size, funnel = signal_arrays(
        p["p_dir"].to_numpy(float), p["p_up"].to_numpy(float), p["p_down"].to_numpy(float),
        f["rv_24"].to_numpy(float), f["mom_mag_24"].to_numpy(float), f["trend_bucket"].to_numpy(float), profile)
    return Signals(grid_ts, signal, f["rv_24"].to_numpy(float), size, f["regime_state"].to_numpy(float), funnel)


def signal_arrays(
    p_dir: np.ndarray, p_up: np.ndarray, p_down: np.ndarray, rv: np.ndarray, mom: np.ndarray, trend: np.ndarray,
    profile: CoinProfile,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """The entry rule, filters and sizing on arrays aligned to the grid (NaN prediction = no prediction):
    (signal int8, size, funnel). The optimizer calls it once per trial and fold."""
    e, flt = profile.entry, profile.filters
    spread = p_up - p_down
    has_pred = ~np.isnan(p_up)
    with np.errstate(invalid="ignore"):
        if e.mode == "probability":
            long_c = (p_dir >= e.long_threshold) & (spread >= e.min_spread)
            short_c = (1.0 - p_dir >= e.short_threshold) & (-spread >= e.min_spread)
        else:
            long_c = spread >= e.min_spread
            short_c = -spread >= e.min_spread
        long_c &= has_pred
        short_c &= has_pred & (not e.long_only)
        short_c &= ~long_c
        vol_ok = (rv >= flt.min_vol_24h) & (rv <= flt.max_vol_24h)
        mom_ok = mom >= flt.min_momentum_magnitude
    trend_ok = np.isin(trend, [TREND_CODE[s] for s in flt.trend_states])
    cand = long_c | short_c
    funnel = {
        "bars_with_prediction": int(has_pred.sum()),
        "entry_rule": int(cand.sum()),
        "after_vol_filter": int((cand & vol_ok).sum()),
        "after_momentum_filter": int((cand & vol_ok & mom_ok).sum()),
        "after_trend_filter": int((cand & vol_ok & mom_ok & trend_ok).sum()),
    }
    keep = vol_ok & mom_ok & trend_ok
    signal = np.where(long_c & keep, 1, np.where(short_c & keep, -1, 0)).astype(np.int8)
    s = profile.sizing
    target_h = s.target_vol_annual / np.sqrt(24 * 365)
    with np.errstate(divide="ignore", invalid="ignore"):
        size = np.minimum(s.max_fraction, target_h / rv) * s.position_scale
    size = np.minimum(size, profile.max_position)  # the venue's leverage cap
    size = np.where(np.isfinite(size), size, 0.0)
    return signal, size, funnel


def funding_on_grid(grid_ts: np.ndarray, funding: pd.DataFrame) -> np.ndarray:
    """Funding settled at each bar's close (ts + 1 h); 0 where none."""
    out = np.zeros(grid_ts.size)
    if funding is None or funding.empty:
        return out
    idx = np.searchsorted(grid_ts + HOUR_MS, funding["ts"].to_numpy(np.int64))
    ok = (idx < grid_ts.size) & (grid_ts[np.clip(idx, 0, grid_ts.size - 1)] + HOUR_MS == funding["ts"].to_numpy(np.int64))
    np.add.at(out, idx[ok], funding["rate"].to_numpy(float)[ok])
    return out
