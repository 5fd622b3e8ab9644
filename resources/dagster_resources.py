"""Dagster ConfigurableResources wrapping the plain I/O layer (store, sources, project config)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from cryptoalgo_core.config import (
    SOURCES,
    CoinSpec,
    ConfigError,
    Gates,
    SourcesConfig,
    load_coins,
    load_gates,
    load_sources,
)

if TYPE_CHECKING:  # the I/O layer (pandas, SQLAlchemy, exchange clients) loads only where a run executes
    from resources.artifacts import ArtifactStore
    from resources.ingest import SourceSet
    from resources.store import MarketStore


@lru_cache(maxsize=8)
def _store(url: str) -> MarketStore:
    from resources.store import MarketStore

    return MarketStore(url)


class MarketStoreResource(dg.ConfigurableResource):
    """The market store. Empty `db_url` -> TRADER_DB_URL, TRADER_DB_PATH, or $TRADER_DATA_DIR/trading.db."""

    db_url: str = ""

    def url(self) -> str:
        from resources.store import default_db_url

        return default_db_url(self.db_url or None)

    def store(self) -> MarketStore:
        return _store(self.url())


class ProjectConfigResource(dg.ConfigurableResource):
    """The YAML configuration (coins, sources, gates). Empty `config_dir` -> CRYPTOALGO_CONFIG_DIR or ./config."""

    config_dir: str = ""

    def _dir(self) -> Path | None:
        return Path(self.config_dir) if self.config_dir else None

    def coins(self) -> dict[str, CoinSpec]:
        d = self._dir()
        return load_coins(d / "coins.yaml" if d else None)

    def sources(self) -> SourcesConfig:
        d = self._dir()
        return load_sources(d / "sources.yaml" if d else None)

    def gates(self) -> Gates:
        d = self._dir()
        return load_gates(d / "gates.yaml" if d else None)

    def basket(self) -> list[str]:
        """The coins behind the shared market features (coins.yaml `basket`, default: every coin)."""
        from cryptoalgo_core.config import load_basket

        d = self._dir()
        return load_basket(d / "coins.yaml" if d else None)

    def panel_coins(self, coin: str) -> list[str]:
        """The market panel a coin's features are built from: the basket, plus the coin itself."""
        basket = self.basket()
        return basket if coin in basket else [*basket, coin]


class ResearchResource(dg.ConfigurableResource):
    """The research window and the holdout. Every research stage (features, labels, QA, model, backtest) sees
    only market data in [start, holdout_start), holdout_start = end - holdout_days (end = `end`, or the end of
    the coin's stored candles). Empty start/end = the whole stored history; dates are UTC 'YYYY-MM-DD' (or ISO
    datetimes); holdout_days -1 = the coin profile's walk_forward.holdout_days."""

    start: str = ""
    end: str = ""
    holdout_days: int = -1

    def bounds(self, store: MarketStore, coin: str, profile_holdout_days: int) -> Any:
        """The coin's ResearchBounds (cryptoalgo_core.features.plan) from its stored candles."""
        from cryptoalgo_core.features.plan import research_bounds

        lo, hi = self.window()
        ts = store.load_ts("ohlcv", coin, lo, hi)
        if not ts:
            raise ConfigError(f"{coin}: no OHLCV stored inside the research window")
        days = profile_holdout_days if self.holdout_days < 0 else self.holdout_days
        try:
            return research_bounds((lo, hi), int(ts[-1]), days, first_bar_ts=int(ts[0]))
        except ValueError as exc:
            raise ConfigError(f"{coin}: {exc}") from exc

    def window(self) -> tuple[int | None, int | None]:
        from cryptoalgo_core.timeutil import parse_date_ms

        try:
            lo = parse_date_ms(self.start) if self.start else None
            hi = parse_date_ms(self.end) if self.end else None
        except ValueError as exc:
            raise ConfigError(f"research window: {exc}") from exc
        if lo is not None and hi is not None and hi <= lo:
            raise ConfigError(f"research window: end {self.end} must be after start {self.start}")
        return lo, hi


class MarketSourceResource(dg.ConfigurableResource):
    """Which source feeds the raw assets. Empty fields fall back to the environment, then config:
    `source` <- CRYPTOALGO_SOURCE <- sources.yaml default_source; `replay_dir` <- CRYPTOALGO_REPLAY_DIR;
    `coinbase_url` <- CRYPTOALGO_COINBASE_URL; `ccxt_url` <- CRYPTOALGO_CCXT_URL (endpoint overrides, e.g. a
    proxy or the loopback fakes the tests use).
    """

    source: str = ""
    replay_dir: str = ""
    coinbase_url: str = ""
    ccxt_url: str = ""

    def source_name(self, cfg: SourcesConfig) -> str:
        name = self.source or os.environ.get("CRYPTOALGO_SOURCE", "") or cfg.default_source
        if name not in SOURCES:
            raise ConfigError(f"unknown source {name!r}; choose one of {list(SOURCES)}")
        return name

    def source_set(self, cfg: SourcesConfig) -> SourceSet:
        from dataclasses import replace

        coinbase_url = self.coinbase_url or os.environ.get("CRYPTOALGO_COINBASE_URL", "")
        ccxt_url = self.ccxt_url or os.environ.get("CRYPTOALGO_CCXT_URL", "")
        if coinbase_url:
            cfg = replace(cfg, coinbase=replace(cfg.coinbase, base_url=coinbase_url))
        if ccxt_url:
            cfg = replace(cfg, ccxt=replace(cfg.ccxt, urls={"*": ccxt_url}))
        replay_dir = self.replay_dir or os.environ.get("CRYPTOALGO_REPLAY_DIR", "") or None
        from resources.ingest import SourceSet

        return SourceSet(self.source_name(cfg), cfg, replay_dir=replay_dir)


class ArtifactsResource(dg.ConfigurableResource):
    """Files under the data dir. Empty `data_dir` -> TRADER_DATA_DIR (default ./data); empty `cohort`
    (the experiment name under data/runs/) -> CRYPTOALGO_COHORT, else "default"."""

    data_dir: str = ""
    cohort: str = ""

    def store(self) -> ArtifactStore:
        from resources.artifacts import ArtifactStore

        return ArtifactStore(self.data_dir or None)

    def cohort_name(self) -> str:
        return validate_cohort(self.cohort or os.environ.get("CRYPTOALGO_COHORT", "") or "default")


def validate_cohort(name: str) -> str:
    """A cohort is one directory under data/runs/: letters, digits, '-', '_' and '.', never a path."""
    ok = bool(name) and len(name) <= 100 and name not in (".", "..") and all(
        ch.isalnum() or ch in "-_." for ch in name) and not name.startswith(".")
    if not ok:
        raise ConfigError(f"cohort {name!r}: use 1-100 letters, digits, '-', '_' or '.' (it names a directory "
                          f"under data/runs/ and may not be a path)")
    return name


class OptimizeResource(dg.ConfigurableResource):
    """The optimization launch's settings (config/presets.yaml holds the preset). `trials` is the launch's
    budget before tier scaling; `n_cv_folds` -1 = the preset's; `storage` empty = CRYPTOALGO_OPTUNA_STORAGE, else
    the cohort's Optuna journal file (data/runs/<cohort>/optuna.journal). A storage URL with a password belongs
    in the environment (CRYPTOALGO_OPTUNA_STORAGE), never in run config."""

    preset: str = "robust180"
    trials: int = 900
    n_cv_folds: int = -1
    require_holdout_pass: bool = False
    storage: str = ""

    def storage_target(self, runs_dir: Any) -> str:
        return self.storage or os.environ.get("CRYPTOALGO_OPTUNA_STORAGE", "") or str(runs_dir / "optuna.journal")


class ModelRegistryResource(dg.ConfigurableResource):
    """The model registry (resources/registry.py): files under `root` (empty -> <data dir>/models) and its
    tables in the market store's database."""

    root: str = ""

    def registry(self, engine: Any, data_dir: str | Path | None = None) -> Any:
        from resources.artifacts import ArtifactStore
        from resources.registry import FileTableRegistry

        root = Path(self.root) if self.root else ArtifactStore(str(data_dir) if data_dir else None).path("models")
        return FileTableRegistry(root, engine)


class AlertingResource(dg.ConfigurableResource):
    """On-call alert delivery (resources/alerting.py). Every alert goes to the local alert log (`log_path`,
    empty -> <data dir>/alerts.jsonl) and stdout; the targets come from the environment only, through
    dg.EnvVar (CRYPTOALGO_ALERT_WEBHOOK_URL, CRYPTOALGO_ALERT_SLACK_WEBHOOK_URL,
    CRYPTOALGO_ALERT_PAGERDUTY_ROUTING_KEY [+ CRYPTOALGO_ALERT_PAGERDUTY_URL]): never run config, logs or metadata."""

    webhook_url: str = ""
    slack_webhook_url: str = ""
    pagerduty_routing_key: str = ""
    pagerduty_url: str = ""
    log_path: str = ""
    timeout_s: float = 5.0
    attempts: int = 3

    def sender(self, engine: Any, data_dir: str | Path | None = None, echo: Any = print, attempts: int = 0) -> Any:
        """The sender; ``attempts`` (0 = this resource's) tries per row and flush."""
        from resources.alerting import AlertSender, targets_from_env
        from resources.artifacts import ArtifactStore

        targets = targets_from_env({
            "CRYPTOALGO_ALERT_WEBHOOK_URL": self.webhook_url,
            "CRYPTOALGO_ALERT_SLACK_WEBHOOK_URL": self.slack_webhook_url,
            "CRYPTOALGO_ALERT_PAGERDUTY_ROUTING_KEY": self.pagerduty_routing_key,
            "CRYPTOALGO_ALERT_PAGERDUTY_URL": self.pagerduty_url,
        })
        log = Path(self.log_path) if self.log_path else ArtifactStore(str(data_dir) if data_dir else None).path(
            "alerts.jsonl")
        log.parent.mkdir(parents=True, exist_ok=True)
        return AlertSender(engine, targets, log, echo=echo, timeout_s=self.timeout_s,
                           attempts=attempts or self.attempts)


ALERT_ENV = {"webhook_url": "CRYPTOALGO_ALERT_WEBHOOK_URL", "slack_webhook_url": "CRYPTOALGO_ALERT_SLACK_WEBHOOK_URL",
             "pagerduty_routing_key": "CRYPTOALGO_ALERT_PAGERDUTY_ROUTING_KEY",
             "pagerduty_url": "CRYPTOALGO_ALERT_PAGERDUTY_URL"}


def default_alerting() -> AlertingResource:
    """The alerting resource with each target that is set in the environment wired through dg.EnvVar."""
    return AlertingResource(**{k: dg.EnvVar(v) for k, v in ALERT_ENV.items() if os.environ.get(v)})
