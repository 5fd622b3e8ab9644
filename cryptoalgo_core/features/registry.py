"""The feature registry: every feature's name, group, inputs and warm-up length.

Config (coins.yaml, per coin) disables whole groups or single features; unknown names are errors.
Lead-lag features are generated per other coin of the panel: `leadlag_ret1_<COIN>`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptoalgo_core.errors import ConfigError

GROUPS = (
    "shared",
    "returns",
    "volatility",
    "momentum",
    "range",
    "volume",
    "calendar",
    "funding",
    "open_interest",
    "trend",
    "regime",
)
LEADLAG_PREFIX = "leadlag_ret1_"


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    group: str
    inputs: tuple[str, ...]
    warmup_hours: int
    description: str


def _f(name: str, group: str, inputs: str, warmup: int, desc: str) -> FeatureSpec:
    return FeatureSpec(name, group, tuple(inputs.split(",")), warmup, desc)


# Warm-up = hours of history the value needs before it is defined on gap-free data (EMA-based features:
# hours until the initial condition weighs < 1e-3, checked by a test).
_BASE: tuple[FeatureSpec, ...] = (
    # shared / market-wide
    _f("btc_ret_1", "shared", "ohlcv[BTC]", 1, "BTC 1 h log return"),
    _f("btc_ret_4", "shared", "ohlcv[BTC]", 4, "BTC 4 h log return"),
    _f("btc_ret_24", "shared", "ohlcv[BTC]", 24, "BTC 24 h log return"),
    _f("btc_rv_24", "shared", "ohlcv[BTC]", 25, "BTC hourly realized vol over 24 h"),
    _f("basket_ret_1", "shared", "ohlcv[all]", 1, "equal-weight basket 1 h log return"),
    _f("basket_ret_4", "shared", "ohlcv[all]", 4, "equal-weight basket 4 h log return"),
    _f("basket_ret_24", "shared", "ohlcv[all]", 24, "equal-weight basket 24 h log return"),
    _f("basket_rv_24", "shared", "ohlcv[all]", 25, "basket hourly realized vol over 24 h"),
    _f("rel_ret_24", "shared", "ohlcv[all]", 24, "coin 24 h return minus basket 24 h return"),
    _f("xs_rank_ret_1", "shared", "ohlcv[all]", 1, "cross-sectional percentile rank of the coin's 1 h return"),
    _f("xs_rank_ret_24", "shared", "ohlcv[all]", 24, "cross-sectional percentile rank of the 24 h return"),
    _f("dispersion_24", "shared", "ohlcv[all]", 24, "cross-sectional std of 24 h returns"),
    # returns
    _f("ret_1", "returns", "ohlcv", 1, "1 h log return (missing across a gap)"),
    _f("ret_4", "returns", "ohlcv", 4, "4 h log return"),
    _f("ret_12", "returns", "ohlcv", 12, "12 h log return"),
    _f("ret_24", "returns", "ohlcv", 24, "24 h log return"),
    _f("ret_72", "returns", "ohlcv", 72, "72 h log return"),
    # volatility
    _f("rv_24", "volatility", "ohlcv", 25, "hourly realized vol over 24 h"),
    _f("rv_72", "volatility", "ohlcv", 73, "hourly realized vol over 72 h"),
    _f("rv_168", "volatility", "ohlcv", 169, "hourly realized vol over 7 d"),
    _f("rv_ratio_24_168", "volatility", "ohlcv", 169, "rv_24 / rv_168"),
    # momentum
    _f("mom_mag_24", "momentum", "ohlcv", 25, "|ret_24| / (rv_24 * sqrt 24)"),
    _f("mom_mag_72", "momentum", "ohlcv", 73, "|ret_72| / (rv_72 * sqrt 72)"),
    # range
    _f("range_hl", "range", "ohlcv", 1, "log(high / low) of the bar"),
    _f("atr_24", "range", "ohlcv", 25, "mean true range over 24 h, relative to close"),
    _f("range_to_atr", "range", "ohlcv", 25, "range_hl / atr_24"),
    # volume
    _f("volume_z_168", "volume", "ohlcv", 168, "z-score of log volume vs the last 7 d"),
    # calendar
    _f("hour_sin", "calendar", "ts", 0, "sin of hour of day"),
    _f("hour_cos", "calendar", "ts", 0, "cos of hour of day"),
    _f("dow_sin", "calendar", "ts", 0, "sin of day of week"),
    _f("dow_cos", "calendar", "ts", 0, "cos of day of week"),
    # funding
    _f("funding_rate", "funding", "funding", 0, "last settled funding rate (per 8 h)"),
    _f("funding_z_90", "funding", "funding", 720, "z-score of the last rate vs the last 90 settlements"),
    _f("funding_chg", "funding", "funding", 8, "last settled rate minus the previous one"),
    _f("funding_cum_24h", "funding", "funding", 24, "sum of settlements in the last 24 h"),
    # open interest
    _f("oi_chg_24", "open_interest", "open_interest", 24, "log change of open interest over 24 h (as-of)"),
    _f("oi_price_div_24", "open_interest", "open_interest,ohlcv", 24, "oi_chg_24 - ret_24"),
    # trend
    _f("dist_high_168", "trend", "ohlcv", 168, "log(close / 7 d high)"),
    _f("dist_low_168", "trend", "ohlcv", 168, "log(close / 7 d low)"),
    _f("trend_slope_72", "trend", "ohlcv", 73, "OLS slope of log close over 72 h, in units of rv_72"),
    _f("er_24", "trend", "ohlcv", 24, "efficiency ratio |sum r| / sum |r| over 24 h"),
    _f("ema_ratio_24_168", "trend", "ohlcv", 600, "log(EMA24 / EMA168) of close (recursive)"),
    # regime
    _f("vol_bucket", "regime", "ohlcv", 745, "0/1/2: rv_24 below/around/above its 30 d median"),
    _f("trend_bucket", "regime", "ohlcv", 24, "0 down-trend, 1 chop, 2 up-trend (er_24 >= 0.35)"),
    _f("regime_state", "regime", "ohlcv", 745, "3 * vol_bucket + trend_bucket"),
)


def registry(coins: Sequence[str], coin: str) -> dict[str, FeatureSpec]:
    """All features available for `coin` in a panel of `coins` (lead-lag features per other coin)."""
    out = {s.name: s for s in _BASE}
    for other in coins:
        if other != coin:
            name = f"{LEADLAG_PREFIX}{other}"
            out[name] = FeatureSpec(name, "shared", (f"ohlcv[{other}]",), 1, f"{other} 1 h log return at t (lead-lag)")
    return out


@dataclass(frozen=True)
class FeatureSelection:
    disabled_groups: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


def validate_selection(sel: FeatureSelection, known_names: Iterable[str], where: str) -> None:
    known = set(known_names)
    for g in sel.disabled_groups:
        if g not in GROUPS:
            raise ConfigError(f"{where}: unknown feature group {g!r}; groups: {list(GROUPS)}")
    for n in sel.exclude:
        if n not in known and not n.startswith(LEADLAG_PREFIX):
            hint = difflib.get_close_matches(n, sorted(known), n=1)
            raise ConfigError(
                f"{where}: unknown feature {n!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
            )


def selected(specs: dict[str, FeatureSpec], sel: FeatureSelection) -> list[FeatureSpec]:
    return [
        s for s in specs.values() if s.group not in sel.disabled_groups and s.name not in sel.exclude
    ]
