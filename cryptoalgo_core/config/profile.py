"""CoinProfile: everything a coin's research and (paper) trading needs, validated with named errors.

Parsed from config/coins.yaml (defaults merged with the coin's own keys) by
:func:`~cryptoalgo_core.config.io.build_dataclass`; :func:`resolve_profile` checks the values across fields and
resolves the fees from config/costs.yaml. Every error names the file, the coin, the field and what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from cryptoalgo_core.config.costs import Venue
from cryptoalgo_core.config.io import build_dataclass, derived
from cryptoalgo_core.errors import ConfigError

__all__ = [
    "PROFILE_SECTIONS",
    "TIERS",
    "TREND_STATES",
    "CoinProfile",
    "CostParams",
    "EntryParams",
    "ExitParams",
    "FilterParams",
    "ModelParams",
    "SizingParams",
    "WalkForwardParams",
    "parse_profile",
    "resolve_profile",
]

TIERS = ("REJECT", "RESEARCH", "PAPER", "PILOT", "FULL")
TREND_STATES = ("down", "chop", "up")


@dataclass(frozen=True)
class ModelParams:
    """Deliberately strong regularisation: hourly rows with overlapping labels have far fewer effective
    samples than rows, and slow features (vol, funding levels) let a flexible model memorise periods."""

    n_estimators: int = 150
    max_depth: int = 2
    learning_rate: float = 0.03
    subsample: float = 0.7
    colsample_bytree: float = 0.5
    min_child_weight: float = 20.0
    reg_lambda: float = 10.0
    seed: int = 7


@dataclass(frozen=True)
class WalkForwardParams:
    scheme: str = "expanding"  # expanding | rolling
    min_train_days: int = 120  # first test window starts this long after the data start
    rolling_train_days: int = 365  # train window length when scheme = rolling
    test_days: int = 30  # retrain cadence = length of each out-of-sample test window
    embargo_hours: int = 24  # training rows within this many hours before a test window are dropped
    calibration: str = "sigmoid"  # sigmoid (Platt: monotone, keeps the ranking) | isotonic (needs more data)
    calibration_share: float = 0.25  # last share of each train window held out (purged) to calibrate
    refit_full: bool = True  # after learning the calibration map, refit on the whole purged training span
    holdout_days: int = 90  # final days of the research window, kept for the one holdout evaluation


@dataclass(frozen=True)
class EntryParams:
    mode: str = "probability"  # probability: p_dir >= long_threshold ; spread: p_up - p_down >= min_spread
    long_threshold: float = 0.55  # calibrated P(up first | a barrier is touched)
    short_threshold: float = 0.55  # 1 - p_dir >= short_threshold (long/short only)
    min_spread: float = 0.03  # probability-spread gate (both modes): p_up - p_down >= min_spread
    long_only: bool = True


@dataclass(frozen=True)
class FilterParams:
    min_vol_24h: float = 0.0  # hourly realized vol bounds (rv_24) for taking a trade
    max_vol_24h: float = 1.0
    min_momentum_magnitude: float = 0.0  # mom_mag_24 >= this
    trend_states: tuple[str, ...] = TREND_STATES  # allowed trend_bucket states at the signal bar


@dataclass(frozen=True)
class ExitParams:
    vol_mult_sl: float = 1.0  # stop distance = vol_mult_sl * sigma * sqrt(max_hold_hours)
    vol_mult_tp: float = 1.0
    # null (the default) follows the label horizon: label.forward_hours, resolved when coins.yaml is loaded
    # (:func:`resolve_profile` with ``label_hours``); an explicit integer wins. Resolved profiles hold an int.
    max_hold_hours: int | None = None
    flip_exit: bool = False
    # a take-profit fills only when the price trades THROUGH the level by this many bps (a bare touch of a
    # resting limit is not a fill: the queue ahead of it may absorb the prints at that price)
    tp_through_bps: float = 2.0

    @property
    def hold_hours(self) -> int:
        """``max_hold_hours`` of a resolved profile (ValueError while it still follows an unknown label)."""
        if self.max_hold_hours is None:
            raise ValueError("exits.max_hold_hours is unresolved (null follows label.forward_hours; "
                             "load the profile through load_coins or pass label_hours to resolve_profile)")
        return self.max_hold_hours

    @property
    def tp_through(self) -> float:
        return self.tp_through_bps / 1e4


@dataclass(frozen=True)
class SizingParams:
    target_vol_annual: float = 0.5  # position fraction = (target hourly vol / sigma), capped
    max_fraction: float = 1.0
    position_scale: float = 1.0  # e.g. 0.25 for a reduced-scale paper rollout
    # venue cap on the position as a multiple of equity: perps allow up to max_leverage, spot venues always
    # cap at 1x (no borrowing); applied after max_fraction and position_scale
    max_leverage: float = 1.0


@dataclass(frozen=True)
class CostParams:
    venue: str = "binance_usdm"
    fee_tier: str = "vip0"
    entry_order: str = "taker"  # taker | maker
    tp_order: str = "maker"  # take-profit as a resting limit order
    slippage_bps: float = 2.0  # per market-type fill, fixed part
    # per market-type fill, volatility part: + slippage_vol_mult * sigma (the trade's hourly vol at its signal)
    slippage_vol_mult: float = 0.03
    funding: bool = True  # charge perp funding while positions are open
    # resolved from costs.yaml (not keys of coins.yaml):
    maker_bps: float = derived(0.0)
    taker_bps: float = derived(0.0)
    venue_kind: str = derived("perp")

    @property
    def fee_entry(self) -> float:
        return (self.maker_bps if self.entry_order == "maker" else self.taker_bps) / 1e4

    @property
    def fee_exit_tp(self) -> float:
        return (self.maker_bps if self.tp_order == "maker" else self.taker_bps) / 1e4

    @property
    def fee_exit_other(self) -> float:
        return self.taker_bps / 1e4

    @property
    def slippage(self) -> float:
        """The fixed part of the market-fill slippage, as a fraction (the engine adds ``slippage_vol_mult * sigma``)."""
        return self.slippage_bps / 1e4


@dataclass(frozen=True)
class CoinProfile:
    tier: str = "RESEARCH"
    model: ModelParams = field(default_factory=ModelParams)
    walk_forward: WalkForwardParams = field(default_factory=WalkForwardParams)
    entry: EntryParams = field(default_factory=EntryParams)
    filters: FilterParams = field(default_factory=FilterParams)
    exits: ExitParams = field(default_factory=ExitParams)
    sizing: SizingParams = field(default_factory=SizingParams)
    costs: CostParams = field(default_factory=CostParams)

    @property
    def max_position(self) -> float:
        """The venue's cap on a position, in multiples of equity: ``sizing.max_leverage`` on a perp venue, at most
        1x on a spot venue (no borrowing)."""
        lev = self.sizing.max_leverage
        return min(lev, 1.0) if self.costs.venue_kind == "spot" else lev


PROFILE_SECTIONS: dict[str, type] = {
    "model": ModelParams,
    "walk_forward": WalkForwardParams,
    "entry": EntryParams,
    "filters": FilterParams,
    "exits": ExitParams,
    "sizing": SizingParams,
    "costs": CostParams,
}


def _require(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{where}: {msg}")


def parse_profile(
    data: dict[str, Any], where: str, venues: dict[str, Venue], label_hours: int | None = None
) -> CoinProfile:
    """`data`: the coin's merged mapping (tier + PROFILE_SECTIONS keys); `venues`: costs.yaml venues;
    `label_hours`: the coin's label.forward_hours (what a null exits.max_hold_hours follows)."""
    return resolve_profile(build_dataclass(CoinProfile, data, where), where, venues, label_hours)


def resolve_profile(
    profile: CoinProfile, where: str, venues: dict[str, Venue], label_hours: int | None = None
) -> CoinProfile:
    """Check a parsed profile across fields, fill in its fees from the venue's tier in costs.yaml and resolve a
    null ``exits.max_hold_hours`` to ``label_hours`` (the coin's label.forward_hours)."""
    tier = profile.tier
    _require(tier in TIERS, f"{where}.tier", f"{tier!r} is not one of {list(TIERS)}")
    m = profile.model
    _require(m.n_estimators >= 1, f"{where}.model.n_estimators", "must be >= 1")
    _require(1 <= m.max_depth <= 12, f"{where}.model.max_depth", "must be in 1..12")
    _require(0 < m.learning_rate <= 1, f"{where}.model.learning_rate", "must be in (0, 1]")
    for k in ("subsample", "colsample_bytree"):
        _require(0 < getattr(m, k) <= 1, f"{where}.model.{k}", "must be in (0, 1]")
    _require(m.min_child_weight >= 0 and m.reg_lambda >= 0, f"{where}.model", "min_child_weight and reg_lambda >= 0")
    wf = profile.walk_forward
    _require(wf.scheme in ("expanding", "rolling"), f"{where}.walk_forward.scheme", f"{wf.scheme!r}: expanding | rolling")
    _require(wf.calibration in ("isotonic", "sigmoid"), f"{where}.walk_forward.calibration", "isotonic | sigmoid")
    _require(0 < wf.calibration_share < 0.5, f"{where}.walk_forward.calibration_share", "must be in (0, 0.5)")
    for k in ("min_train_days", "test_days", "rolling_train_days"):
        _require(getattr(wf, k) >= 1, f"{where}.walk_forward.{k}", "must be >= 1")
    _require(wf.embargo_hours >= 0 and wf.holdout_days >= 0, f"{where}.walk_forward", "embargo_hours, holdout_days >= 0")
    e = profile.entry
    _require(e.mode in ("probability", "spread"), f"{where}.entry.mode", f"{e.mode!r}: probability | spread")
    for k in ("long_threshold", "short_threshold", "min_spread"):
        _require(0 <= getattr(e, k) <= 1, f"{where}.entry.{k}", f"{getattr(e, k)} is outside [0, 1]")
    f = profile.filters
    _require(0 <= f.min_vol_24h <= f.max_vol_24h, f"{where}.filters", "need 0 <= min_vol_24h <= max_vol_24h")
    _require(f.min_momentum_magnitude >= 0, f"{where}.filters.min_momentum_magnitude", "must be >= 0")
    bad = [s for s in f.trend_states if s not in TREND_STATES]
    _require(not bad and len(f.trend_states) > 0, f"{where}.filters.trend_states", f"{bad or '[]'}; use {list(TREND_STATES)}")
    x = profile.exits
    _require(x.vol_mult_sl > 0, f"{where}.exits.vol_mult_sl", f"must be > 0, got {x.vol_mult_sl}")
    _require(x.vol_mult_tp > 0, f"{where}.exits.vol_mult_tp", f"must be > 0, got {x.vol_mult_tp}")
    if x.max_hold_hours is None:
        _require(label_hours is not None, f"{where}.exits.max_hold_hours",
                 "null follows label.forward_hours, which is not known here; set an integer")
        x = replace(x, max_hold_hours=label_hours)
    _require(x.hold_hours >= 1, f"{where}.exits.max_hold_hours", f"must be >= 1, got {x.max_hold_hours}")
    _require(0 <= x.tp_through_bps < 1e4, f"{where}.exits.tp_through_bps", f"must be in [0, 10000), got {x.tp_through_bps}")
    s = profile.sizing
    _require(s.target_vol_annual > 0, f"{where}.sizing.target_vol_annual", "must be > 0")
    _require(0 < s.max_fraction <= 10, f"{where}.sizing.max_fraction", "must be in (0, 10]")
    _require(0 < s.position_scale <= 1, f"{where}.sizing.position_scale", "must be in (0, 1]")
    _require(0 < s.max_leverage <= 100, f"{where}.sizing.max_leverage", f"must be in (0, 100], got {s.max_leverage}")
    c = profile.costs
    _require(c.venue in venues, f"{where}.costs.venue", f"{c.venue!r} not in costs.yaml venues {sorted(venues)}")
    v = venues[c.venue]
    _require(c.fee_tier in v.tiers, f"{where}.costs.fee_tier", f"{c.fee_tier!r} not a tier of {c.venue}: {sorted(v.tiers)}")
    for k in ("entry_order", "tp_order"):
        _require(getattr(c, k) in ("maker", "taker"), f"{where}.costs.{k}", "maker | taker")
    _require(c.slippage_bps >= 0, f"{where}.costs.slippage_bps", "must be >= 0")
    _require(0 <= c.slippage_vol_mult <= 10, f"{where}.costs.slippage_vol_mult",
             f"must be in [0, 10], got {c.slippage_vol_mult}")
    _require(not (c.funding and v.kind != "perp"), f"{where}.costs.funding", f"funding applies to perp venues; {c.venue} is {v.kind}")
    _require(e.long_only or v.kind == "perp", f"{where}.entry.long_only", f"shorting needs a perp venue; {c.venue} is {v.kind}")
    _require(s.max_leverage <= 1 or v.kind == "perp", f"{where}.sizing.max_leverage",
             f"{s.max_leverage} > 1 needs a perp venue; {c.venue} is {v.kind} (positions are capped at 1x equity)")
    row = v.tiers[c.fee_tier]
    c = replace(c, maker_bps=float(row.maker_bps), taker_bps=float(row.taker_bps), venue_kind=v.kind)
    return replace(profile, exits=x, costs=c)
