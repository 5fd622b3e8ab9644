"""Typed, validated configuration loaded from the YAML files in config/.

One module per file: :mod:`.coins` (coins.yaml, with :mod:`.profile` for each coin's CoinProfile),
:mod:`.costs` (costs.yaml), :mod:`.sources` (sources.yaml), :mod:`.gates` (gates.yaml); :mod:`.io` reads
YAML and holds :func:`build_dataclass`, the one mechanism that parses every section into frozen dataclasses.
Every loader raises ConfigError naming the file, the key and what is wrong; unknown keys are errors.

Light by design: importing this package loads yaml and the standard library only (a test enforces that
numba, scipy, sklearn and xgboost stay out).
"""

from cryptoalgo_core.config.coins import (
    COIN_KEYS,
    CoinDefaults,
    CoinEntry,
    CoinSpec,
    LabelParams,
    load_basket,
    load_coins,
    resolve_coins,
)
from cryptoalgo_core.config.costs import FeeTier, Venue, load_venues, tier_for_volume
from cryptoalgo_core.config.gates import DataQaGates, Gates, MarketDataGates, load_gates
from cryptoalgo_core.config.io import build_dataclass, config_dir, deep_merge, derived, read_yaml
from cryptoalgo_core.config.profile import (
    PROFILE_SECTIONS,
    TIERS,
    TREND_STATES,
    CoinProfile,
    CostParams,
    EntryParams,
    ExitParams,
    FilterParams,
    ModelParams,
    SizingParams,
    WalkForwardParams,
    parse_profile,
    resolve_profile,
)
from cryptoalgo_core.config.sources import (
    SOURCES,
    CcxtConfig,
    CoinbaseConfig,
    ReplayConfig,
    SourcesConfig,
    load_sources,
)
from cryptoalgo_core.errors import ConfigError, UnknownCoinError

__all__ = [
    "COIN_KEYS",
    "PROFILE_SECTIONS",
    "SOURCES",
    "TIERS",
    "TREND_STATES",
    "CcxtConfig",
    "CoinDefaults",
    "CoinEntry",
    "CoinProfile",
    "CoinSpec",
    "CoinbaseConfig",
    "ConfigError",
    "CostParams",
    "DataQaGates",
    "EntryParams",
    "ExitParams",
    "FeeTier",
    "FilterParams",
    "Gates",
    "LabelParams",
    "MarketDataGates",
    "ModelParams",
    "ReplayConfig",
    "SizingParams",
    "SourcesConfig",
    "UnknownCoinError",
    "Venue",
    "WalkForwardParams",
    "build_dataclass",
    "config_dir",
    "deep_merge",
    "derived",
    "load_basket",
    "load_coins",
    "load_gates",
    "load_sources",
    "load_venues",
    "parse_profile",
    "read_yaml",
    "resolve_coins",
    "resolve_profile",
    "tier_for_volume",
]
