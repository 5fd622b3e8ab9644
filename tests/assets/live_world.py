"""A paper-trading world for the Dagster-level tests: a synthetic market store, production models for ETH and
SOL trained before a cut (staged through the registry as `staged_model` would stage them), and the resources the
live assets run with. Building the store and the models is done once per session; each test copies them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import dagster as dg

from cryptoalgo_assets.defs import live, promotion
from cryptoalgo_assets.defs.features import load_panel
from cryptoalgo_core.config import load_coins
from cryptoalgo_core.features.plan import feature_plan
from cryptoalgo_core.live.model import spec_to_dict
from cryptoalgo_core.live.tick import train_for_staging
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS, ms_to_iso
from resources.dagster_resources import (
    AlertingResource,
    ArtifactsResource,
    MarketSourceResource,
    MarketStoreResource,
    ModelRegistryResource,
    ProjectConfigResource,
)
from resources.registry import FileTableRegistry
from resources.store import MarketStore
from tests.conftest import fill_synthetic_store

COINS = ("ETH", "SOL")
DAYS = 330
PAPER_DAYS = 20
BASELINE = {"brier": 0.25, "fee_edge_ratio": 0.6, "win_rate": 0.5, "net_bps": 5.0}


def build(root: Path, coins_to_stage: tuple[str, ...] = COINS, days: int = DAYS) -> dict[str, Any]:
    """The market store and, per coin, the staged model files (built once)."""
    root.mkdir(parents=True, exist_ok=True)
    db = root / "market.db"
    fill_synthetic_store(f"sqlite:///{db}", days, kinds=("ohlcv", "funding"))
    store = MarketStore(f"sqlite:///{db}")
    end = int(store.load_ts("ohlcv", "BTC")[-1]) + HOUR_MS
    cut = end - PAPER_DAYS * DAY_MS
    coins = load_coins()
    files = {}
    for coin in coins_to_stage:
        spec = coins[coin]
        panel = load_panel(store, list(coins), (None, cut))
        plan = feature_plan(panel, coin, spec.features, (None, cut))
        model = train_for_staging(spec, plan, panel, cut)
        files[coin] = {**model.to_files(), "profile.json": json.dumps(spec_to_dict(spec)).encode(),
                       "plan.json": json.dumps(plan.as_dict(), default=str).encode()}
    store.dispose()
    return {"db": db, "cut": cut, "end": end, "files": files}


def copy(base: dict[str, Any], tmp: Path) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    db = tmp / "market.db"
    shutil.copy(base["db"], db)
    return {**base, "db": db, "url": f"sqlite:///{db}", "data": tmp / "data", "models": tmp / "data" / "models"}


def registry(w: dict[str, Any]) -> FileTableRegistry:
    return FileTableRegistry(w["models"], MarketStore(w["url"]).engine)


def stage(w: dict[str, Any], coin: str, tier: str = "PILOT") -> str:
    return registry(w).stage(coin, "c1", "PASS", w["files"][coin], {
        "tier": tier, "score": 80.0, "gates_passed": True, "metrics": BASELINE, "trained": {"end": w["cut"]}})


def resources(w: dict[str, Any], config_dir: str = "", alerting: AlertingResource | None = None) -> dict[str, Any]:
    return {"market_store": MarketStoreResource(db_url=w["url"]),
            "market_source": MarketSourceResource(source="synthetic"),
            "project": ProjectConfigResource(config_dir=config_dir),
            "artifacts": ArtifactsResource(data_dir=str(w["data"])),
            "model_registry": ModelRegistryResource(root=str(w["models"])),
            "alerting": alerting or AlertingResource(log_path=str(w["data"] / "alerts.jsonl"))}


def promote_by_sensor(w: dict[str, Any], instance: dg.DagsterInstance, res: dict[str, Any]) -> list[str]:
    """Evaluate the real promotion sensor and execute the runs it requests; the promoted coins."""
    ctx = dg.build_sensor_context(instance=instance, resources=res)
    result = promotion.promotion_sensor(ctx)
    done = []
    for req in result.run_requests or []:
        out = dg.materialize([promotion.production_model], partition_key=req.partition_key,
                             run_config=req.run_config, instance=instance, resources=res, tags=req.tags)
        assert out.success
        done.append(req.partition_key)
    return done


def tick(w: dict[str, Any], coin: str, at_ms: int, instance: dg.DagsterInstance, res: dict[str, Any],
         raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    """One coin's tick (a run over its partition)."""
    return dg.materialize([live.live_tick], partition_key=coin, run_config=live.tick_run_config(ms_to_iso(at_ms)),
                          instance=instance, resources=res, raise_on_error=raise_on_error)


def tick_all(w: dict[str, Any], coins: list[str], at_ms: int, instance: dg.DagsterInstance, res: dict[str, Any],
             raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    """One tick of ``coins`` in one run over their partition range (what the schedule and the CLI submit)."""
    return dg.materialize([live.live_tick], run_config=live.tick_run_config(ms_to_iso(at_ms), coins),
                          tags=live.tick_tags(coins), instance=instance, resources=res, raise_on_error=raise_on_error)
