"""Typed, validated configuration loaded from the YAML files in config/.

Every loader raises ConfigError naming the file, the key and what is wrong. Unknown keys are errors
(a typo must not silently fall back to a default).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from cryptoalgo_core.errors import ConfigError, UnknownCoinError
from cryptoalgo_core.features.registry import FeatureSelection, registry, validate_selection
from cryptoalgo_core.labels import LabelParams
from cryptoalgo_core.profile import PROFILE_SECTIONS, CoinProfile, load_venues, parse_profile

SOURCES = ("auto", "coinbase", "ccxt", "replay", "synthetic")
_COIN_RE = re.compile(r"^[A-Z0-9]{2,15}$")


def config_dir() -> Path:
    """CRYPTOALGO_CONFIG_DIR, else the repository's config/ next to the packages."""
    env = os.environ.get("CRYPTOALGO_CONFIG_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "config"


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


T = TypeVar("T")


def build_dataclass(cls: type[T], data: Any, where: str) -> T:
    """Construct dataclass `cls` from a mapping, checking unknown keys and basic types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        f = known[name]
        ftype = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        if value is not None:
            if ftype.startswith("float") and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = float(value)
            elif ftype.startswith("int") and not (isinstance(value, int) and not isinstance(value, bool)):
                raise ConfigError(f"{where}.{name}: expected an integer, got {value!r}")
            elif ftype.startswith("float") and not isinstance(value, float):
                raise ConfigError(f"{where}.{name}: expected a number, got {value!r}")
            elif ftype.startswith("str") and not isinstance(value, str):
                raise ConfigError(f"{where}.{name}: expected a string, got {value!r}")
            elif ftype.startswith("bool") and not isinstance(value, bool):
                raise ConfigError(f"{where}.{name}: expected true/false, got {value!r}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


# ---------------------------------------------------------------- coins
@dataclass(frozen=True)
class CoinSpec:
    name: str
    symbols: dict[str, str]
    label: LabelParams = field(default_factory=lambda: LabelParams(forward_hours=12, vol_target=1.0))
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


COIN_KEYS = {"symbols", "label", "features", "tier", *PROFILE_SECTIONS}
DEFAULT_LABEL: dict[str, Any] = {"forward_hours": 12, "vol_target": 1.0}


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_coins(path: Path | None = None, costs_path: Path | None = None) -> dict[str, CoinSpec]:
    path = path or config_dir() / "coins.yaml"
    data = read_yaml(path)
    costs_path = costs_path or path.parent / "costs.yaml"
    venues = load_venues(costs_path) if costs_path.exists() else {
        "binance_usdm": {"kind": "perp", "tiers": {"vip0": {"min_volume_usd": 0, "maker_bps": 2.0, "taker_bps": 5.0}}}
    }
    coins = data.get("coins")
    extra = sorted(set(data) - {"coins", "defaults"})
    if extra:
        raise ConfigError(f"{path}: unknown top-level key(s) {extra}; allowed: ['coins', 'defaults']")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or set(defaults) - (COIN_KEYS - {"symbols"}):
        raise ConfigError(f"{path}: 'defaults' may hold only {sorted(COIN_KEYS - {'symbols'})}")
    if not isinstance(coins, dict) or not coins:
        raise ConfigError(f"{path}: 'coins' must be a non-empty mapping of coin -> settings")
    out: dict[str, CoinSpec] = {}
    for name, spec in coins.items():
        if not isinstance(name, str) or not _COIN_RE.match(name):
            raise ConfigError(f"{path}: coin name {name!r} must be 2-15 upper-case letters/digits")
        if not isinstance(spec, dict):
            raise ConfigError(f"{path}: coins.{name} must be a mapping")
        unknown = sorted(set(spec) - COIN_KEYS)
        if unknown:
            raise ConfigError(f"{path}: coins.{name}: unknown key(s) {unknown}; allowed: {sorted(COIN_KEYS)}")
        spec = deep_merge(defaults, spec)
        symbols = spec.get("symbols") or {}
        if not isinstance(symbols, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in symbols.items()
        ):
            raise ConfigError(f"{path}: coins.{name}.symbols must map source -> non-empty symbol string")
        bad = sorted(set(symbols) - {"coinbase", "ccxt", "ccxt_perp", "replay", "synthetic"})
        if bad:
            raise ConfigError(f"{path}: coins.{name}.symbols: unknown source(s) {bad}")
        label = build_dataclass(
            LabelParams, {**DEFAULT_LABEL, **(spec.get("label") or {})}, f"{path}: coins.{name}.label"
        )
        feats = spec.get("features") or {}
        if not isinstance(feats, dict) or set(feats) - {"disabled_groups", "exclude"}:
            raise ConfigError(f"{path}: coins.{name}.features may hold only disabled_groups and exclude")
        groups, excl = feats.get("disabled_groups") or [], feats.get("exclude") or []
        if not isinstance(groups, list) or not isinstance(excl, list):
            raise ConfigError(f"{path}: coins.{name}.features.disabled_groups / exclude must be lists")
        selection = FeatureSelection(tuple(map(str, groups)), tuple(map(str, excl)))
        validate_selection(selection, registry(list(coins), name), f"{path}: coins.{name}.features")
        profile = parse_profile(spec, f"{path}: coins.{name}", venues)
        out[name] = CoinSpec(name=name, symbols=dict(symbols), label=label, features=selection, profile=profile)
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


# ---------------------------------------------------------------- sources
@dataclass(frozen=True)
class CoinbaseConfig:
    base_url: str = "https://api.exchange.coinbase.com"
    max_candles_per_request: int = 300
    timeout_s: float = 10.0
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_candles_per_request <= 300:
            raise ValueError("max_candles_per_request must be in 1..300 (Coinbase limit)")
        if self.max_retries < 0 or self.timeout_s <= 0:
            raise ValueError("max_retries must be >= 0 and timeout_s > 0")


@dataclass(frozen=True)
class CcxtConfig:
    ohlcv_exchange: str = "binance"
    perp_exchange: str = "binanceusdm"
    timeout_ms: int = 10000
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    ohlcv_page_limit: int = 1000
    funding_page_limit: int = 1000
    oi_page_limit: int = 500
    oi_period: str = "1h"
    urls: dict[str, str] | None = None  # override exchange API URLs (tests point them at loopback)
    # {"*": base} or {"<exchange id>": base}: every urls['api'] entry keeps its path, host -> base;
    # {"<exchange id>.<api key>": url}: that one entry set verbatim (see resources/sources/ccxt_source.py)
    enable_rate_limit: bool = True  # ccxt's client-side throttle (tests against a local fake turn it off)

    def __post_init__(self) -> None:
        if self.oi_period not in ("1h", "1d"):
            raise ValueError("oi_period must be '1h' or '1d'")
        for name in ("ohlcv_page_limit", "funding_page_limit", "oi_page_limit"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


@dataclass(frozen=True)
class SourcesConfig:
    default_source: str = "synthetic"
    calendar_start: str = "2020-01-01"
    coinbase: CoinbaseConfig = field(default_factory=CoinbaseConfig)
    ccxt: CcxtConfig = field(default_factory=CcxtConfig)
    replay_dir: str | None = None
    include_oi: bool = False


def load_sources(path: Path | None = None) -> SourcesConfig:
    path = path or config_dir() / "sources.yaml"
    data = read_yaml(path)
    allowed = {"default_source", "calendar_start", "coinbase", "ccxt", "replay", "include_oi"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    default_source = data.get("default_source", "synthetic")
    if default_source not in SOURCES:
        raise ConfigError(f"{path}: default_source {default_source!r} is not one of {list(SOURCES)}")
    cal = str(data.get("calendar_start", "2020-01-01"))
    if not re.match(r"^\d{4}-\d{2}-\d{2}$", cal):
        raise ConfigError(f"{path}: calendar_start {cal!r} must be YYYY-MM-DD")
    replay = data.get("replay") or {}
    if not isinstance(replay, dict) or set(replay) - {"dir"}:
        raise ConfigError(f"{path}: replay must be a mapping with the single key 'dir'")
    return SourcesConfig(
        default_source=default_source,
        calendar_start=cal,
        coinbase=build_dataclass(CoinbaseConfig, data.get("coinbase"), f"{path}: coinbase"),
        ccxt=build_dataclass(CcxtConfig, data.get("ccxt"), f"{path}: ccxt"),
        replay_dir=replay.get("dir"),
        include_oi=_bool(data.get("include_oi", False), f"{path}: include_oi"),
    )


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    return value


# ---------------------------------------------------------------- gates
@dataclass(frozen=True)
class MarketDataGates:
    gap_warn_hours: int = 1
    gap_error_hours: int = 24
    freshness_warn_hours: int = 48
    funding_abs_max: float = 0.01
    funding_interval_hours: int = 8
    reconcile_tolerance_bps: float = 100.0
    reconcile_sample_hours: int = 48

    def __post_init__(self) -> None:
        if self.gap_warn_hours < 1 or self.gap_error_hours < self.gap_warn_hours:
            raise ValueError("need 1 <= gap_warn_hours <= gap_error_hours")
        if self.funding_abs_max <= 0:
            raise ValueError("funding_abs_max must be > 0")


@dataclass(frozen=True)
class DataQaGates:
    max_gap_hours: int = 12
    max_missing_share: float = 0.02
    max_feature_missing: float = 0.05
    target_rate_min: float = 0.15
    target_rate_max: float = 0.85
    min_labeled_rows: int = 500
    drift_psi_warn: float = 0.25
    drift_ks_warn: float = 0.2
    drift_recent_days: int = 30
    drift_reference_days: int = 90
    top_features: int = 20

    def __post_init__(self) -> None:
        if not 0 <= self.target_rate_min < self.target_rate_max <= 1:
            raise ValueError("need 0 <= target_rate_min < target_rate_max <= 1")
        for name in ("max_missing_share", "max_feature_missing"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.drift_recent_days < 1 or self.drift_reference_days < 1 or self.top_features < 1:
            raise ValueError("drift windows and top_features must be >= 1")


@dataclass(frozen=True)
class Gates:
    market_data: MarketDataGates = field(default_factory=MarketDataGates)
    data_qa: DataQaGates = field(default_factory=DataQaGates)


def load_gates(path: Path | None = None) -> Gates:
    path = path or config_dir() / "gates.yaml"
    data = read_yaml(path)
    unknown = sorted(set(data) - {"market_data", "data_qa"})
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}")
    return Gates(
        market_data=build_dataclass(MarketDataGates, data.get("market_data"), f"{path}: market_data"),
        data_qa=build_dataclass(DataQaGates, data.get("data_qa"), f"{path}: data_qa"),
    )
