"""config/sources.yaml: the market-data sources and their client settings."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptoalgo_core.config.io import build_dataclass, config_dir, read_yaml

__all__ = ["SOURCES", "CcxtConfig", "CoinbaseConfig", "ReplayConfig", "SourcesConfig", "load_sources"]

SOURCES = ("auto", "coinbase", "ccxt", "replay", "synthetic")


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
class ReplayConfig:
    dir: str | None = None  # a directory of ohlcv_1h/<stem>.csv[.gz]|.parquet, funding/..., open_interest/...


@dataclass(frozen=True)
class SourcesConfig:
    default_source: str = "synthetic"
    calendar_start: str = "2020-01-01"
    coinbase: CoinbaseConfig = field(default_factory=CoinbaseConfig)
    ccxt: CcxtConfig = field(default_factory=CcxtConfig)
    replay_dir: str | None = None
    include_oi: bool = False


@dataclass(frozen=True)
class _SourcesFile:
    """The shape of sources.yaml (``replay: {dir: ...}`` becomes ``SourcesConfig.replay_dir``)."""

    default_source: str = "synthetic"
    calendar_start: str = "2020-01-01"
    coinbase: CoinbaseConfig = field(default_factory=CoinbaseConfig)
    ccxt: CcxtConfig = field(default_factory=CcxtConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    include_oi: bool = False

    def __post_init__(self) -> None:
        if self.default_source not in SOURCES:
            raise ValueError(f"default_source {self.default_source!r} is not one of {list(SOURCES)}")
        if not re.match(r"^\d{4}-\d{2}-\d{2}$", self.calendar_start):
            raise ValueError(f"calendar_start {self.calendar_start!r} must be YYYY-MM-DD")


def load_sources(path: Path | None = None) -> SourcesConfig:
    """sources.yaml (default ``config_dir()/sources.yaml``)."""
    path = path or config_dir() / "sources.yaml"
    f = build_dataclass(_SourcesFile, read_yaml(path), str(path))
    return SourcesConfig(
        default_source=f.default_source,
        calendar_start=f.calendar_start,
        coinbase=f.coinbase,
        ccxt=f.ccxt,
        replay_dir=f.replay.dir,
        include_oi=f.include_oi,
    )
