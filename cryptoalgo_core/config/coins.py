"""config/coins.yaml: the coins the platform knows, their symbols per source, labels, features and profile.

``defaults`` applies to every coin; a coin's own keys override it (nested mappings merge key by key). Each
coin's merged mapping is parsed by :func:`~cryptoalgo_core.config.io.build_dataclass` into a :class:`CoinEntry`
and then checked and resolved (fees from costs.yaml; a null ``exits.max_hold_hours`` = the coin's
``label.forward_hours``) into a :class:`CoinSpec`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptoalgo_core.config.costs import FeeTier, Venue, load_venues
from cryptoalgo_core.config.io import build_dataclass, config_dir, deep_merge, read_yaml
from cryptoalgo_core.config.profile import CoinProfile, resolve_profile
from cryptoalgo_core.errors import ConfigError, UnknownCoinError
from cryptoalgo_core.features.registry import FeatureSelection, registry, validate_selection

__all__ = [
    "COIN_KEYS",
    "SYMBOL_SOURCES",
    "CoinDefaults",
    "CoinEntry",
    "CoinSpec",
    "LabelParams",
    "load_basket",
    "load_coins",
    "resolve_coins",
]

_COIN_RE = re.compile(r"^[A-Z0-9]{2,15}$")
#: the sources a coin may name a symbol for
SYMBOL_SOURCES = ("coinbase", "ccxt", "ccxt_perp", "replay", "synthetic")
#: used when there is no costs.yaml next to coins.yaml
_FALLBACK_VENUES = {"binance_usdm": Venue(kind="perp", tiers={"vip0": FeeTier(0.0, 2.0, 5.0)})}


@dataclass(frozen=True)
class LabelParams:
    """Triple-barrier parameters (see :mod:`cryptoalgo_core.features.labels`).

    ``forward_hours``: vertical barrier ``H`` in bars (>= 1). ``vol_target``: barrier width multiplier ``k > 0``.
    ``vol_window_hours``: number of 1-h returns in the realized-vol window known at ``t``. ``min_vol``: floor on the
    hourly vol (keeps barriers from collapsing onto the close in flat stretches). The defaults are the coins.yaml
    defaults.
    """

    forward_hours: int = 12
    vol_target: float = 1.0
    vol_window_hours: int = 24
    min_vol: float = 1e-5

    def __post_init__(self) -> None:
        if int(self.forward_hours) != self.forward_hours or self.forward_hours < 1:
            raise ValueError(f"forward_hours must be an integer >= 1, got {self.forward_hours!r}")
        if not (math.isfinite(self.vol_target) and self.vol_target > 0):
            raise ValueError(f"vol_target must be finite and > 0, got {self.vol_target!r}")
        if int(self.vol_window_hours) != self.vol_window_hours or self.vol_window_hours < 2:
            raise ValueError(f"vol_window_hours must be an integer >= 2, got {self.vol_window_hours!r}")
        if not (math.isfinite(self.min_vol) and self.min_vol >= 0):
            raise ValueError(f"min_vol must be finite and >= 0, got {self.min_vol!r}")


@dataclass(frozen=True)
class CoinSpec:
    name: str
    symbols: dict[str, str]
    label: LabelParams = field(default_factory=LabelParams)
    features: FeatureSelection = field(default_factory=FeatureSelection)
    profile: CoinProfile = field(default_factory=CoinProfile)

    def symbol(self, source: str) -> str:
        try:
            return self.symbols[source]
        except KeyError:
            raise ConfigError(
                f"coins.yaml: coin {self.name} has no symbol for source {source!r} "
                f"(has: {sorted(self.symbols)})"
            ) from None


@dataclass(frozen=True)
class CoinDefaults(CoinProfile):
    """coins.yaml ``defaults``: the profile keys plus the label and feature selection."""

    label: LabelParams = field(default_factory=LabelParams)
    features: FeatureSelection = field(default_factory=FeatureSelection)


@dataclass(frozen=True)
class CoinEntry(CoinDefaults):
    """One coin's mapping in coins.yaml after merging ``defaults``: the defaults' keys plus its symbols."""

    symbols: dict[str, str] = field(default_factory=dict)


#: the keys a coin (or ``defaults``) may hold
COIN_KEYS = frozenset(f.name for f in dataclasses.fields(CoinEntry))
_PROFILE_FIELDS = tuple(f.name for f in dataclasses.fields(CoinProfile))


@dataclass(frozen=True)
class _CoinsFile:
    """The shape of coins.yaml; each coin's mapping is merged over ``defaults`` before it is parsed."""

    coins: dict[str, dict[str, Any]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    # the coins behind the shared market features (BTC and basket returns/vol, dispersion, lead-lag); empty =
    # every configured coin. Explicit, so that adding a coin for research does not change other coins' features.
    basket: list[str] = field(default_factory=list)


def _basket(f: _CoinsFile, path: Path) -> list[str]:
    if not f.basket:
        return list(f.coins)
    unknown = [c for c in f.basket if c not in f.coins]
    if unknown:
        raise ConfigError(f"{path}: basket names unknown coin(s) {unknown}; configured coins: {list(f.coins)}")
    if len(set(f.basket)) != len(f.basket):
        raise ConfigError(f"{path}: basket lists a coin twice: {f.basket}")
    return list(f.basket)


def load_basket(path: Path | None = None) -> list[str]:
    """coins.yaml ``basket``: the coins the shared market features are built from (default: all coins)."""
    path = path or config_dir() / "coins.yaml"
    return _basket(build_dataclass(_CoinsFile, read_yaml(path), str(path)), path)


def load_coins(path: Path | None = None, costs_path: Path | None = None) -> dict[str, CoinSpec]:
    """coins.yaml (default ``config_dir()/coins.yaml``) with fees from costs.yaml next to it -> coin -> spec."""
    path = path or config_dir() / "coins.yaml"
    costs_path = costs_path or path.parent / "costs.yaml"
    venues = load_venues(costs_path) if costs_path.exists() else _FALLBACK_VENUES
    f = build_dataclass(_CoinsFile, read_yaml(path), str(path))
    build_dataclass(CoinDefaults, f.defaults, f"{path}: defaults")  # names a bad key where it is written
    coins = f.coins
    if not coins:
        raise ConfigError(f"{path}: 'coins' must be a non-empty mapping of coin -> settings")
    basket = _basket(f, path)
    out: dict[str, CoinSpec] = {}
    for name, spec in coins.items():
        where = f"{path}: coins.{name}"
        if not _COIN_RE.match(name):
            raise ConfigError(f"{path}: coin name {name!r} must be 2-15 upper-case letters/digits")
        entry = build_dataclass(CoinEntry, deep_merge(f.defaults, spec), where)
        if not all(entry.symbols.values()):
            raise ConfigError(f"{where}.symbols must map source -> non-empty symbol string")
        bad = sorted(set(entry.symbols) - set(SYMBOL_SOURCES))
        if bad:
            raise ConfigError(f"{where}.symbols: unknown source(s) {bad}")
        panel = basket if name in basket else [*basket, name]
        validate_selection(entry.features, registry(panel, name), f"{where}.features")
        profile = CoinProfile(**{k: getattr(entry, k) for k in _PROFILE_FIELDS})
        out[name] = CoinSpec(
            name=name,
            symbols=dict(entry.symbols),
            label=entry.label,
            features=entry.features,
            # a null exits.max_hold_hours (the default) follows this coin's label horizon
            profile=resolve_profile(profile, where, venues, label_hours=entry.label.forward_hours),
        )
    return out


def resolve_coins(requested: str | list[str] | None, coins: dict[str, CoinSpec]) -> list[str]:
    """'BTC,ETH' / ['BTC'] / None (= all configured) -> validated list; UnknownCoinError otherwise."""
    if requested is None or requested == "" or requested == []:
        return list(coins)
    items = requested.split(",") if isinstance(requested, str) else list(requested)
    names = [c.strip().upper() for c in items if c.strip()]
    unknown = [c for c in names if c not in coins]
    if unknown:
        raise UnknownCoinError(f"unknown coin(s) {unknown}; configured in coins.yaml: {list(coins)}")
    return list(dict.fromkeys(names))
