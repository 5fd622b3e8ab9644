"""Causal feature builder: the value at bar t uses only data known at the close of t.

Conventions
- Bars are hourly, `ts` = open time; a bar is known at its close, ts + 1 h.
- Every coin is put on a full hourly grid; a missing hour is NaN. A return across a missing hour is
  NaN (never a silent 2-hour return). Rolling windows of <= 24 bars need every bar; longer windows need
  >= 90 % of their bars.
- Funding and open interest join as-of on the bar's close (ts + 1 h) from their own timestamps and go
  stale (NaN) when the last value is older than `FUNDING_STALE_MS` / `OI_STALE_MS`.
- No statistic uses data after t: no full-sample normalisation, only trailing windows. Recursive
  indicators (EMA) depend on the data start; their warm-up hours make that dependence < 1e-3.
Rows of the output are the coin's existing bars; `warmup` marks rows before the longest enabled
warm-up has elapsed since the coin's first bar.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cryptoalgo_core.features.registry import (
    LEADLAG_PREFIX,
    FeatureSelection,
    FeatureSpec,
    registry,
    selected,
)
from cryptoalgo_core.grid import hourly_grid, reindex_on_grid
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS

FUNDING_STALE_MS = 24 * HOUR_MS
OI_STALE_MS = 48 * HOUR_MS
TREND_ER = 0.35


@dataclass
class MarketPanel:
    """Raw market frames per coin (as stored): ohlcv ts/open/high/low/close/volume; funding ts/rate;
    open_interest ts/value."""

    ohlcv: dict[str, pd.DataFrame]
    funding: dict[str, pd.DataFrame] = field(default_factory=dict)
    open_interest: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def coins(self) -> list[str]:
        return list(self.ohlcv)

    def without(self, coins: list[str]) -> MarketPanel:
        """The panel without `coins` (e.g. basket coins with no data in the research window)."""
        drop = set(coins)

        def keep(d: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
            return {k: v for k, v in d.items() if k not in drop}

        return MarketPanel(keep(self.ohlcv), keep(self.funding), keep(self.open_interest))

    def known_by(self, t_ms: int) -> MarketPanel:
        """The panel as known at time `t_ms`: candles closed by then (ts + 1 h <= t_ms), funding and OI
        with ts <= t_ms. For causality tests: features at bar t must equal those computed from
        `known_by(t + 1 h)`."""

        def cut(d: dict[str, pd.DataFrame], lag: int) -> dict[str, pd.DataFrame]:
            return {k: v[v["ts"] + lag <= t_ms].reset_index(drop=True) for k, v in d.items()}

        return MarketPanel(cut(self.ohlcv, HOUR_MS), cut(self.funding, 0), cut(self.open_interest, 0))

    def before(self, ts: int) -> MarketPanel:
        """Only the rows with ``ts`` strictly before ``ts`` (every coin, every input): the research view of a
        panel whose holdout starts at ``ts``."""
        return MarketPanel(*({c: f[f["ts"] < ts].reset_index(drop=True) for c, f in d.items()}
                             for d in (self.ohlcv, self.funding, self.open_interest)))


def _minp(window: int) -> int:
    return window if window <= 24 else int(np.ceil(0.9 * window))


def _sum(x: pd.Series, w: int) -> pd.Series:
    return x.rolling(w, min_periods=w).sum()


def _std(x: pd.Series, w: int) -> pd.Series:
    return x.rolling(w, min_periods=_minp(w)).std()


def _coin_grid(panel: MarketPanel, coin: str) -> np.ndarray:
    """The coin's full hourly grid from its first to its last bar (empty without bars)."""
    ts = panel.ohlcv[coin]["ts"].to_numpy(np.int64)
    if ts.size == 0:
        return ts
    return hourly_grid(int(ts.min()), int(ts.max()) + HOUR_MS)


def _asof(events: pd.DataFrame | None, col: str, known_at: np.ndarray, stale_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of the last event with ts <= known_at (or -1) and its value (NaN if none or stale)."""
    if events is None or events.empty:
        return np.full(known_at.size, -1), np.full(known_at.size, np.nan)
    ets = events["ts"].to_numpy(np.int64)
    vals = events[col].to_numpy(float)
    idx = np.searchsorted(ets, known_at, side="right") - 1
    ok = idx >= 0
    out = np.full(known_at.size, np.nan)
    out[ok] = vals[idx[ok]]
    stale = ok & (known_at - ets[np.clip(idx, 0, None)] > stale_ms)
    out[stale] = np.nan
    return idx, out


def _coin_returns(panel: MarketPanel, grid: np.ndarray) -> dict[str, pd.Series]:
    out = {}
    for c, df in panel.ohlcv.items():
        close = reindex_on_grid(df, grid, ["close"])["close"]
        out[c] = np.log(close).diff()
    return out


def build_features(panel: MarketPanel, coin: str, selection: FeatureSelection | None = None) -> pd.DataFrame:
    """Features of `coin` from the panel. Columns: ts, <features...>, warmup. One row per existing bar."""
    sel = selection or FeatureSelection()
    specs = selected(registry(panel.coins, coin), sel)
    grid = _coin_grid(panel, coin)
    if grid.size == 0:
        return pd.DataFrame({"ts": pd.Series(dtype="int64"), "warmup": pd.Series(dtype=bool)})
    bars = reindex_on_grid(panel.ohlcv[coin], grid, ["open", "high", "low", "close", "volume"])
    present = bars["close"].notna().to_numpy()
    close, high, low = bars["close"], bars["high"], bars["low"]
    r = np.log(close).diff()
    known_at = grid + HOUR_MS
    groups = {s.group for s in specs}
    f: dict[str, pd.Series | np.ndarray] = {}

    # returns, volatility (used by several groups)
    rets = {k: _sum(r, k) for k in (1, 4, 12, 24, 72)}
    rv = {k: _std(r, k) for k in (24, 72, 168)}
    if "returns" in groups:
        for k, v in rets.items():
            f[f"ret_{k}"] = v
    if "volatility" in groups:
        for k, v in rv.items():
            f[f"rv_{k}"] = v
        f["rv_ratio_24_168"] = rv[24] / rv[168]
    if "momentum" in groups:
        f["mom_mag_24"] = rets[24].abs() / (rv[24] * np.sqrt(24))
        f["mom_mag_72"] = rets[72].abs() / (rv[72] * np.sqrt(72))
    if "range" in groups:
        prev_close = close.shift(1)
        tr = pd.concat([high, prev_close], axis=1).max(axis=1, skipna=False) - pd.concat(
            [low, prev_close], axis=1
        ).min(axis=1, skipna=False)
        atr = (tr / close).rolling(24, min_periods=24).mean()
        f["range_hl"] = np.log(high / low)
        f["atr_24"] = atr
        f["range_to_atr"] = np.log(high / low) / atr
    if "volume" in groups:
        lv = np.log1p(bars["volume"])
        mu = lv.rolling(168, min_periods=_minp(168)).mean()
        sd = lv.rolling(168, min_periods=_minp(168)).std()
        f["volume_z_168"] = (lv - mu) / sd.where(sd > 0)
    if "calendar" in groups:
        hour = (grid // HOUR_MS) % 24
        dow = ((grid // DAY_MS) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        f["hour_sin"], f["hour_cos"] = np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24)
        f["dow_sin"], f["dow_cos"] = np.sin(2 * np.pi * dow / 7), np.cos(2 * np.pi * dow / 7)
    er = _sum(r, 24).abs() / _sum(r.abs(), 24)
    if "trend" in groups:
        roll_hi = high.rolling(168, min_periods=_minp(168)).max()
        roll_lo = low.rolling(168, min_periods=_minp(168)).min()
        f["dist_high_168"] = np.log(close / roll_hi)
        f["dist_low_168"] = np.log(close / roll_lo)
        t_idx = pd.Series(np.arange(grid.size, dtype=float))
        lc = np.log(close)
        cov = t_idx.rolling(72, min_periods=_minp(72)).cov(lc)
        var = t_idx.where(lc.notna()).rolling(72, min_periods=_minp(72)).var()
        f["trend_slope_72"] = (cov / var) / rv[72]
        f["er_24"] = er
        ema24 = close.ewm(span=24, adjust=False, ignore_na=True).mean()
        ema168 = close.ewm(span=168, adjust=False, ignore_na=True).mean()
        f["ema_ratio_24_168"] = np.log(ema24 / ema168).where(close.notna())
    if "regime" in groups:
        med = rv[24].rolling(720, min_periods=_minp(720)).median()
        ratio = rv[24] / med
        vb = pd.Series(np.where(ratio < 0.8, 0.0, np.where(ratio > 1.25, 2.0, 1.0)))
        vb[ratio.isna()] = np.nan
        tb = pd.Series(np.where(er >= TREND_ER, 1.0 + np.sign(rets[24]), 1.0))
        tb[er.isna() | rets[24].isna()] = np.nan
        f["vol_bucket"], f["trend_bucket"], f["regime_state"] = vb, tb, 3 * vb + tb
    if "funding" in groups:
        fdf = panel.funding.get(coin)
        if fdf is not None and not fdf.empty:
            fdf = fdf.sort_values("ts").reset_index(drop=True)
            rate = fdf["rate"].astype(float)
            z = (rate - rate.rolling(90, min_periods=_minp(90)).mean()) / rate.rolling(90, min_periods=_minp(90)).std()
            chg = rate.diff()
            ev = fdf.assign(z=z, chg=chg, cum=rate.cumsum())
            idx, f["funding_rate"] = _asof(ev, "rate", known_at, FUNDING_STALE_MS)
            _, f["funding_z_90"] = _asof(ev, "z", known_at, FUNDING_STALE_MS)
            _, f["funding_chg"] = _asof(ev, "chg", known_at, FUNDING_STALE_MS)
            _, cum_now = _asof(ev, "cum", known_at, FUNDING_STALE_MS)
            idx_24 = np.searchsorted(ev["ts"].to_numpy(np.int64), known_at - 24 * HOUR_MS, side="right") - 1
            cumv = ev["cum"].to_numpy(float)
            cum_then = np.where(idx_24 >= 0, cumv[np.clip(idx_24, 0, None)], 0.0)
            f["funding_cum_24h"] = cum_now - cum_then
        else:
            for n in ("funding_rate", "funding_z_90", "funding_chg", "funding_cum_24h"):
                f[n] = np.full(grid.size, np.nan)
    if "open_interest" in groups:
        odf = panel.open_interest.get(coin)
        if odf is not None and not odf.empty:
            odf = odf.sort_values("ts").reset_index(drop=True)
            _, oi_now = _asof(odf, "value", known_at, OI_STALE_MS)
            _, oi_then = _asof(odf, "value", known_at - 24 * HOUR_MS, OI_STALE_MS)
            chg = np.log(oi_now / oi_then)
            f["oi_chg_24"] = chg
            f["oi_price_div_24"] = chg - rets[24].to_numpy()
        else:
            f["oi_chg_24"] = np.full(grid.size, np.nan)
            f["oi_price_div_24"] = np.full(grid.size, np.nan)
    if "shared" in groups:
        f.update(_shared(panel, coin, grid, rets))

    names = [s.name for s in specs]
    out = pd.DataFrame({"ts": grid})
    for n in names:
        v = f[n]
        out[n] = np.asarray(v, dtype=float)
    warm = max((s.warmup_hours for s in specs), default=0)
    out["warmup"] = (grid - grid[0]) < warm * HOUR_MS
    return out[present].reset_index(drop=True)


def _shared(panel: MarketPanel, coin: str, grid: np.ndarray, own: dict[int, pd.Series]) -> dict[str, pd.Series]:
    r = _coin_returns(panel, grid)
    f: dict[str, pd.Series] = {}
    btc = r.get("BTC")
    nan = pd.Series(np.full(grid.size, np.nan))
    for k in (1, 4, 24):
        f[f"btc_ret_{k}"] = _sum(btc, k) if btc is not None else nan
    f["btc_rv_24"] = _std(btc, 24) if btc is not None else nan
    mat = pd.DataFrame(r)
    basket = mat.mean(axis=1, skipna=True).where(mat.notna().any(axis=1))
    for k in (1, 4, 24):
        f[f"basket_ret_{k}"] = _sum(basket, k)
    f["basket_rv_24"] = _std(basket, 24)
    f["rel_ret_24"] = own[24] - f["basket_ret_24"]
    r24 = pd.DataFrame({c: _sum(s, 24) for c, s in r.items()})
    f["xs_rank_ret_1"] = mat.rank(axis=1, pct=True)[coin].where(mat[coin].notna())
    f["xs_rank_ret_24"] = r24.rank(axis=1, pct=True)[coin].where(r24[coin].notna())
    f["dispersion_24"] = r24.std(axis=1, skipna=True).where(r24.notna().sum(axis=1) >= 2)
    for c, s in r.items():
        if c != coin:
            f[f"{LEADLAG_PREFIX}{c}"] = s
    return f


def feature_names(panel_coins: list[str], coin: str, selection: FeatureSelection | None = None) -> list[str]:
    return [s.name for s in selected(registry(panel_coins, coin), selection or FeatureSelection())]


def specs_for(panel_coins: list[str], coin: str, selection: FeatureSelection | None = None) -> list[FeatureSpec]:
    return selected(registry(panel_coins, coin), selection or FeatureSelection())
