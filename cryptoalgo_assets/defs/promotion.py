"""Promotion stage: `staged_model` (a registry staging version, written only for coins the deployment checklist
passes) -> `production_model` (an atomic promotion or a rollback), the promotion sensor and the stage /
promote jobs. Registry files under data/models/{staging,production}/<COIN>/; tables model_versions and
model_promotions in the market store's database.
"""


from typing import Any

import dagster as dg

from cryptoalgo_assets.defs.features import COINS, load_panel
from cryptoalgo_assets.defs.optimize import _plan
from cryptoalgo_assets.defs.robustness import deployment_checklist
from cryptoalgo_core.timeutil import ms_to_iso
from resources.dagster_resources import (
    ArtifactsResource,
    MarketStoreResource,
    ModelRegistryResource,
    ProjectConfigResource,
)

STAGE_JOB = "stage_job"
PROMOTE_JOB = "promote_job"


class StageConfig(dg.Config):
    retrain: bool = False  # train through the newest stored bar (the retrain schedule) instead of the holdout end


def staging_decision(checklist: dict[str, Any], coin: str) -> tuple[bool, str]:
    """(stage?, why): a coin is staged only when its checklist verdict and the portfolio's are PASS."""
    row = next((c for c in checklist.get("coins", []) if c["coin"] == coin), None)
    if row is None:
        return False, f"{coin} is not in the checklist of cohort {checklist.get('cohort')}"
    if row["verdict"] != "PASS":
        return False, f"checklist FAIL: {row['reason']}"
    if checklist.get("verdict") != "PASS":
        return False, "the coin passes but the portfolio does not (deployment needs a passing basket)"
    return True, f"checklist PASS ({row['reason']}), portfolio PASS"


@dg.asset(
    partitions_def=COINS,
    deps=[deployment_checklist],
    group_name="promotion",
    kinds={"xgboost", "json"},
    description="A new staging version in the model registry -- the chosen profile's model trained on every row "
                "the validation judged (research + holdout), with the resolved CoinProfile, the feature plan, "
                "validation metrics, the verdict, the cohort and file hashes -- only when the coin and the "
                "portfolio pass the deployment checklist.",
)
def staged_model(
    context: dg.AssetExecutionContext,
    config: StageConfig,
    market_store: MarketStoreResource,
    project: ProjectConfigResource,
    artifacts: ArtifactsResource,
    model_registry: ModelRegistryResource,
) -> dg.MaterializeResult:
    import json

    import pandas as pd

    from cryptoalgo_core.live.model import spec_to_dict
    from cryptoalgo_core.live.tick import train_for_staging
    from cryptoalgo_core.live.validation import validation_baseline
    from cryptoalgo_core.optimize.space import apply_params

    coin, art = context.partition_key, artifacts.store()
    if not art.path("checklist.json").exists():
        raise dg.Failure("no deployment checklist; run `cryptoalgo checklist` first")
    checklist = art.read_json("checklist.json")
    ok, why = staging_decision(checklist, coin)
    if not ok:
        context.log.info(f"{coin}: not staged: {why}")
        return dg.MaterializeResult(metadata={"staged": False, "reason": why, "cohort": checklist.get("cohort", "")})
    cohort = checklist["cohort"]
    run = ("runs", cohort, coin)
    opt, holdout = art.read_json(*run, "optimized_profile.json"), art.read_json(*run, "holdout.json")
    robust = art.read_json(*run, "robustness.json")
    spec = apply_params(project.coins()[coin], opt["params"])
    plan = _plan(art, coin)
    store = market_store.store()
    end = int(holdout["end"])
    if config.retrain:
        end = int(store.load_ts("ohlcv", coin)[-1]) + 3_600_000
    panel = load_panel(store, list(plan.panel_coins), (plan.window[0], end))
    try:
        model = train_for_staging(spec, plan, panel, end)
        baseline = validation_baseline(spec, plan, panel, plan.holdout_start,
                                       pd.read_csv(art.path(*run, "cv_trades.csv")))
    except ValueError as exc:
        raise dg.Failure(f"{coin}: {exc}") from exc
    row = next(c for c in checklist["coins"] if c["coin"] == coin)
    files = {**model.to_files(),
             "profile.json": json.dumps(spec_to_dict(spec), sort_keys=True, indent=1).encode(),
             "plan.json": json.dumps(plan.as_dict(), sort_keys=True, default=str).encode()}
    info = {"tier": row["tier"], "score": row["score"], "gates_passed": True, "reason": why,
            "metrics": baseline, "trained": model.trained, "retrain": config.retrain,
            "chosen_trial": opt["chosen_trial"], "study": opt["study"],
            "holdout_sha256": holdout.get("result_sha256", ""), "robustness_tier": robust.get("tier")}
    version = model_registry.registry(store.engine, artifacts.data_dir or None).stage(coin, cohort, "PASS", files, info)
    context.log.info(f"{coin}: staged {version} (tier {row['tier']}, trained to {ms_to_iso(end)})")
    return dg.MaterializeResult(metadata={
        "staged": True, "version": version, "cohort": cohort, "tier": row["tier"], "reason": why,
        "trained_to": ms_to_iso(end), "validation_brier": float(baseline.get("brier") or float("nan")),
        "validation_fee_edge": float(baseline.get("fee_edge_ratio") or float("nan"))})


class PromoteConfig(dg.Config):
    action: str = "promote"  # promote | rollback
    version: str = ""  # promote: the staged version (empty = the newest)
    reason: str = ""
    actor: str = "cli"


@dg.asset(
    partitions_def=COINS,
    deps=[staged_model],
    group_name="promotion",
    kinds={"json"},
    description="The coin's production model: a staged version promoted atomically (copied and verified first, "
                "then one pointer switch, then the history row), or a rollback to the previous version.",
)
def production_model(
    context: dg.AssetExecutionContext,
    config: PromoteConfig,
    market_store: MarketStoreResource,
    artifacts: ArtifactsResource,
    model_registry: ModelRegistryResource,
) -> dg.MaterializeResult:
    from resources.registry import RegistryError

    coin = context.partition_key
    reg = model_registry.registry(market_store.store().engine, artifacts.data_dir or None)
    if config.action not in ("promote", "rollback"):
        raise dg.Failure(f"action must be promote or rollback, got {config.action!r}")
    try:
        if config.action == "promote":
            rec = reg.promote(coin, config.version or None, config.reason or "promoted by hand", config.actor)
        else:
            rec = reg.rollback(coin, config.reason or "rolled back by hand", config.actor)
    except RegistryError as exc:
        raise dg.Failure(str(exc)) from exc
    man = reg.production(coin) or {}
    context.log.info(f"{coin}: production {rec['from_version']} -> {rec['to_version']} ({rec['reason']})")
    hist = reg.history(coin)[-10:]
    table = "| when | from | to | why | who |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {ms_to_iso(h['at_ms'])} | {h['from_version'] or '-'} | {h['to_version']} | {h['reason']} | {h['actor']} |"
        for h in hist)
    return dg.MaterializeResult(metadata={
        "version": rec["to_version"], "previous": rec["from_version"] or "-", "reason": rec["reason"],
        "actor": rec["actor"], "tier": str(man.get("tier", "")), "cohort": str(man.get("cohort", "")),
        "history": dg.MetadataValue.md(table)})


stage_job = dg.define_asset_job(STAGE_JOB, selection=dg.AssetSelection.assets(staged_model),
                                executor_def=dg.in_process_executor,
                                description="Stage a coin's model (only when the checklist passes it).")
promote_job = dg.define_asset_job(PROMOTE_JOB, selection=dg.AssetSelection.assets(production_model),
                                  executor_def=dg.in_process_executor,
                                  description="Promote a staged model to production, or roll back.")


def promotion_requests(reg: Any, coins: list[str]) -> list[dg.RunRequest]:
    """A promote run for each coin whose newest staged version passed its gates, was never production and was
    staged after the coin's last promotion or rollback (a version a person chose not to promote stays staged)."""
    out = []
    for coin in coins:
        staged = reg.staged(coin)
        if not staged:
            continue
        v = staged[-1]
        man = reg.staged_manifest(coin, v)
        if man.get("verdict") != "PASS" or not man.get("gates_passed") or v in reg.promoted(coin):
            continue
        hist = reg.history(coin)
        if hist and int(man["created_ms"]) < int(hist[-1]["at_ms"]):
            continue  # staged before the last promotion or rollback: a deliberate choice stands
        reason = f"promotion_sensor: staged {v} passed its gates (cohort {man['cohort']}, tier {man.get('tier')})"
        out.append(dg.RunRequest(run_key=f"promote-{coin}-{v}", partition_key=coin, run_config={"ops": {
            "production_model": {"config": {"action": "promote", "version": v, "reason": reason,
                                            "actor": "promotion_sensor"}}}}))
    return out


@dg.sensor(job=promote_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Promotes a new staged model version whose gates passed (atomically, recorded).")
def promotion_sensor(
    context: dg.SensorEvaluationContext,
    market_store: MarketStoreResource,
    project: ProjectConfigResource,
    artifacts: ArtifactsResource,
    model_registry: ModelRegistryResource,
) -> dg.SensorResult:
    reg = model_registry.registry(market_store.store().engine, artifacts.data_dir or None)
    reqs = promotion_requests(reg, list(project.coins()))
    return dg.SensorResult(run_requests=reqs, skip_reason=None if reqs else dg.SkipReason("no new staged version"))


defs = dg.Definitions(assets=[staged_model, production_model], jobs=[stage_job, promote_job],
                      sensors=[promotion_sensor])

__all__ = ["PROMOTE_JOB", "STAGE_JOB", "defs", "staging_decision"]
