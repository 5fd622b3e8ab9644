"""Optimization stage: `optimized_profile` (the coin's Optuna study on research data) and `holdout_evaluation`
(the only reader of the holdout, with the blocking `holdout_gate` check), per coin, and the optimize job.

Files under data/runs/<cohort>/<COIN>/: optimized_profile.json, study_trials.csv, progress.json, holdout.json.
The cohort's studies live in data/runs/<cohort>/optuna.journal unless a storage URL is configured.
"""


import dataclasses
import os
import time
import warnings
from typing import Any

import dagster as dg

from cryptoalgo_assets.checks import to_result
from cryptoalgo_assets.defs.data_qa import data_qa
from cryptoalgo_assets.defs.features import COINS, load_panel, ml_dataset
from cryptoalgo_assets.defs.model import TRAINING_POOL, qa_gate
from cryptoalgo_core.errors import ConfigError
from cryptoalgo_core.timeutil import ms_to_iso
from resources.dagster_resources import (
    ArtifactsResource,
    MarketStoreResource,
    OptimizeResource,
    ProjectConfigResource,
)

MODEL_FAMILY = "xgb_triple_barrier"
# the dagster-celery queue the optimize steps go to under optimize_celery_job (the in-process job ignores it)
CELERY_QUEUE = os.environ.get("CRYPTOALGO_CELERY_QUEUE", "dagster")
# what a study decided (hashed into result_sha256): equal for the same inputs and seeds on any executor
RESULT_KEYS = ("params", "objective", "terms", "top_k", "trial_counts", "data_fingerprint", "folds", "seeds",
               "holdout_start", "trials_table")
HOLDOUT_KEYS = ("baseline", "candidates", "chosen", "holdout_start", "end", "holdout_fingerprint", "artifacts")


def _plan(art: Any, coin: str) -> Any:
    from cryptoalgo_core.features.plan import FeaturePlan

    return FeaturePlan.from_dict(art.read_json("features", f"{coin}.meta.json"))


def study_data(art: Any, store: Any, spec: Any, coin: str, preset: Any) -> Any:
    """The coin's StudyData from the research artifacts: the features the features stage wrote, and the market
    rows of its window before the holdout start (fingerprinted). The study and the robustness stage both start
    here, so they see the same rows."""
    from cryptoalgo_core.optimize.evaluate import fingerprint
    from cryptoalgo_core.optimize.study import StudyData

    plan = _plan(art, coin)
    hs, lo = plan.holdout_start, plan.window[0]
    feats = art.read_parquet("features", f"{coin}.parquet")
    ohlcv, funding = store.load("ohlcv", coin, lo, hs), store.load("funding", coin, lo, hs)
    fp = fingerprint(feats, ohlcv[["ts", "open", "high", "low", "close", "volume"]], funding[["ts", "rate"]])
    try:
        return StudyData.prepare(coin, spec, feats, list(plan.names), ohlcv, funding, hs, preset, fp)
    except ValueError as exc:
        raise dg.Failure(str(exc)) from exc


def _preset(optimize: OptimizeResource, coin: str, holdout_days: int) -> Any:
    from cryptoalgo_core.optimize.space import load_preset

    try:
        return load_preset(optimize.preset, coin, holdout_days=holdout_days,
                           n_cv_folds=optimize.n_cv_folds if optimize.n_cv_folds > 0 else None)
    except ConfigError as exc:
        raise dg.Failure(str(exc)) from exc


@dg.asset(
    partitions_def=COINS,
    deps=[ml_dataset, data_qa],
    group_name="optimize",
    kinds={"optuna", "json"},
    pool=TRAINING_POOL,
    op_tags={"dagster-celery/queue": CELERY_QUEUE},
    description="Seeded multivariate-TPE study over the preset's space (labels, model, entry, exits, regime "
                "filters) on purged CV folds before the holdout; fold objective with cost and robustness shaping.",
)
def optimized_profile(
    context: dg.AssetExecutionContext,
    market_store: MarketStoreResource,
    project: ProjectConfigResource,
    artifacts: ArtifactsResource,
    optimize: OptimizeResource,
) -> dg.MaterializeResult:
    import pandas as pd

    from cryptoalgo_core.optimize.cache import PredictionCache
    from cryptoalgo_core.optimize.evaluate import result_hash
    from cryptoalgo_core.optimize.report import parameter_importances
    from cryptoalgo_core.optimize.space import profile_fragment
    from cryptoalgo_core.optimize.study import open_storage, run_study, study_summary, trial_rows
    from resources.experiments import Tracker

    coin, cohort = context.partition_key, artifacts.cohort_name()
    spec = project.coins()[coin]
    art, run = artifacts.store(), ("runs", cohort, coin)
    qa_gate(art, coin)
    plan = _plan(art, coin)
    hs = plan.holdout_start
    preset = _preset(optimize, coin, int(plan.holdout["holdout_days"]))
    budget = preset.budget(optimize.trials)
    store = market_store.store()
    data = study_data(art, store, spec, coin, preset)
    fp = data.fingerprint
    target = optimize.storage_target(art.path("runs", cohort))
    study_name = f"{cohort}.{coin}"
    cache = PredictionCache(art.path("cache", "predictions", coin))
    started, every = time.monotonic(), max(1, budget // 10)

    def on_trial(study: Any, trial: Any) -> None:
        states = [t.state.name for t in study.get_trials(deepcopy=False)]
        done = states.count("COMPLETE") + states.count("PRUNED")
        try:
            best = study.best_value
        except ValueError:
            best = None
        art.write_json({"coin": coin, "done": done, "budget": budget, "pruned": states.count("PRUNED"),
                        "best": best, "elapsed_s": round(time.monotonic() - started, 1)}, *run, "progress.json")
        if done % every == 0 or done >= budget:
            context.log.info(f"{coin}: {done}/{budget} trials, best objective "
                             f"{'n/a' if best is None else f'{best:.2f}'}, {states.count('PRUNED')} pruned")

    context.log.info(f"{coin}: study {study_name} ({preset.name}, tier {preset.tier}, {budget} trials, "
                     f"{len(data.folds)} folds) in {_redacted(target)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = run_study(data, preset, budget, open_storage(target), study_name, cache, on_trial)
    summary = study_summary(study, preset.top_k)
    best = summary["best"]
    if best is None:
        raise dg.Failure(f"{coin}: no trial of {study_name} completed ({summary['pruned']} pruned, "
                         f"{summary['failed']} failed)")
    rows = trial_rows(study)
    table = pd.DataFrame([{**{k: v for k, v in r.items() if k != "params"}, **r["params"]} for r in rows])
    art.write_csv(table, *run, "study_trials.csv")
    counts = {k: summary[k] for k in ("trials", "complete", "pruned", "failed", "running")}
    doc = {
        "coin": coin, "cohort": cohort, "study": study_name, "preset": preset.as_dict(),
        "params": best["params"], "profile_fragment": profile_fragment(best["params"]),
        "objective": best["objective"], "terms": _terms(study, best["number"]), "chosen_trial": best["number"],
        "top_k": [{"number": r["number"], "objective": r["objective"], "params": r["params"]}
                  for r in summary["top_k"]],
        "trial_counts": {**counts, "budget": budget}, "holdout_start": hs, "holdout": plan.holdout,
        "data_fingerprint": fp, "seeds": {"sampler": preset.seed, "model": spec.profile.model.seed},
        "folds": [[f.test_start, f.test_end] for f in data.folds], "cache": {**cache.stats(), "fits": data.fits},
    }
    doc["importances"] = parameter_importances(study)
    doc["trials_table"] = [{k: r[k] for k in ("number", "state", "objective", "params")} for r in rows]
    doc["result_sha256"] = result_hash(doc, RESULT_KEYS)
    art.write_json({"study": study_name, "trials": doc.pop("trials_table")}, *run, "study_trials.json")
    path = art.write_json(doc, *run, "optimized_profile.json")
    tracker = Tracker(store.engine)
    tracker.record_study(study_name, coin, MODEL_FAMILY, cohort, counts)
    tracker.record_coin(cohort, coin, preset.name, {"preset": preset.as_dict(),
                                                    "profile": dataclasses.asdict(spec.profile),
                                                    "label": dataclasses.asdict(spec.label)}, fp, doc["seeds"],
                        {"optimized_profile.json": _sha(path), "optimized_profile.result": doc["result_sha256"]})
    return dg.MaterializeResult(metadata={
        "best_objective": float(best["objective"]), "chosen_trial": int(best["number"]),
        "trials": counts["trials"], "complete": counts["complete"], "pruned": counts["pruned"],
        "budget": budget, "tier": preset.tier, "model_fits": data.fits,
        "cache_hit_rate": float(cache.stats()["hit_rate"]), "data_fingerprint": fp[:16],
        "trials_ever_for_coin": tracker.total_trials(coin, MODEL_FAMILY),
        "params": dg.MetadataValue.json(best["params"]),
        "objective_terms": dg.MetadataValue.md(_terms_md(doc["terms"])),
        "top_k": dg.MetadataValue.md(_top_md(summary["top_k"])),
        "path": dg.MetadataValue.path(str(path)),
    })


def _terms(study: Any, number: int) -> dict[str, Any]:
    t = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    return {"terms": t.user_attrs.get("terms", {}), "folds": t.user_attrs.get("folds", [])}


def _terms_md(terms: dict[str, Any]) -> str:
    t = terms.get("terms", {})
    keys = ("objective", "edge", "dispersion", "robustness", "few_trades", "stop_loss", "fee_edge", "churn",
            "trades", "stop_loss_share", "fee_edge_ratio")
    return "| term | value |\n|---|---|\n" + "\n".join(f"| {k} | {_f(t.get(k))} |" for k in keys)


def _top_md(rows: list[dict[str, Any]]) -> str:
    lines = ["| trial | objective | edge | dispersion | trades |", "|---|---|---|---|---|"]
    lines += [f"| {r['number']} | {_f(r['objective'])} | {_f(r.get('edge'))} | {_f(r.get('dispersion'))} | "
              f"{r.get('trades')} |" for r in rows]
    return "\n".join(lines)


def _f(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _sha(path: Any) -> str:
    from resources.tracking import sha256_file

    return sha256_file(path)


def _redacted(target: str) -> str:
    from resources.store import redact_url

    return redact_url(target) if "://" in target else target


def holdout_check_specs() -> list[dg.AssetCheckSpec]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [dg.AssetCheckSpec("holdout_gate", asset="holdout_evaluation", blocking=True, partitions_def=COINS,
                                  description="The chosen candidate on the untouched holdout: return > 0, Sharpe > 0, "
                                              "enough trades, stop-loss share below the limit, fee/edge better "
                                              "than the baseline profile. ERROR (blocks) with require_holdout_pass.")]


@dg.asset(
    partitions_def=COINS,
    deps=[optimized_profile],
    group_name="optimize",
    kinds={"xgboost", "json"},
    pool=TRAINING_POOL,
    op_tags={"dagster-celery/queue": CELERY_QUEUE},
    check_specs=holdout_check_specs(),
    description="The one read of the holdout: the study's top-k candidates and the baseline profile, trained on "
                "all research data, each trade the last holdout_days once.",
)
def holdout_evaluation(
    context: dg.AssetExecutionContext,
    market_store: MarketStoreResource,
    project: ProjectConfigResource,
    artifacts: ArtifactsResource,
    optimize: OptimizeResource,
) -> dg.MaterializeResult:
    from cryptoalgo_core.optimize.evaluate import fingerprint, result_hash
    from cryptoalgo_core.optimize.holdout import evaluate_holdout, holdout_gate
    from cryptoalgo_core.optimize.space import HoldoutGateSettings
    from resources.experiments import Tracker

    coin, cohort = context.partition_key, artifacts.cohort_name()
    spec = project.coins()[coin]
    art, run = artifacts.store(), ("runs", cohort, coin)
    opt = art.read_json(*run, "optimized_profile.json")
    plan = _plan(art, coin)
    hs, lo, end = plan.holdout_start, plan.window[0], int(plan.holdout["end"])
    if int(opt["holdout_start"]) != hs:
        raise dg.Failure(f"{coin}: the study used holdout start {ms_to_iso(int(opt['holdout_start']))} but the "
                         f"features now end at {ms_to_iso(hs)}; re-run the launch")
    store = market_store.store()
    panel = load_panel(store, list(plan.panel_coins), (lo, end))
    feats = plan.build(panel)
    ohlcv, funding = panel.ohlcv[coin], panel.funding[coin]
    h_fp = fingerprint(ohlcv[ohlcv["ts"] >= hs], funding[funding["ts"] >= hs])
    try:
        kept: dict[str, Any] = {}
        result = evaluate_holdout(spec, opt["top_k"], feats, list(plan.names), ohlcv, funding, hs, keep=kept)
    except ValueError as exc:
        raise dg.Failure(str(exc)) from exc
    gate_cfg = HoldoutGateSettings(**opt["preset"]["holdout_gate"])
    outcome = holdout_gate(result, gate_cfg, optimize.require_holdout_pass)
    doc = {**result, "coin": coin, "cohort": cohort, "holdout_fingerprint": h_fp,
           "gate": {"passed": outcome.passed, "severity": outcome.severity.value, "description": outcome.description,
                    **outcome.metadata}}
    hashes = {}
    if kept:
        for name, frame in (("holdout_predictions.parquet", kept["predictions"]), ("holdout_trades.csv", kept["trades"])):
            written = art.write_parquet(frame, *run, name) if name.endswith(".parquet") else art.write_csv(frame, *run, name)
            hashes[name] = _sha(written)
    doc["artifacts"] = hashes
    doc["result_sha256"] = result_hash(doc, HOLDOUT_KEYS)
    path = art.write_json(doc, *run, "holdout.json")
    report = _write_report(art, cohort, coin, opt, doc)
    tracker = Tracker(store.engine)
    prior = tracker.holdout_evaluations(opt["study"])
    tracker.record_study(opt["study"], coin, MODEL_FAMILY, cohort, opt["trial_counts"],
                         holdout_evaluations=prior + result["evaluations"])
    tracker.record_coin(cohort, coin, opt["preset"]["name"], {"preset": opt["preset"]}, opt["data_fingerprint"],
                        opt["seeds"], {"holdout.json": _sha(path), "holdout.result": doc["result_sha256"], **hashes},
                        holdout_fingerprint=h_fp)
    chosen = result["candidates"][0] if result["candidates"] else {}
    if prior:
        context.log.warning(f"{coin}: the holdout of {opt['study']} was read {prior} time(s) before; each read "
                            f"enters the trial accounting")
    return dg.MaterializeResult(
        metadata={
            "chosen_trial": int(opt["chosen_trial"]), "holdout_days": float(result["days"]),
            "holdout_return": float(chosen.get("total_return", float("nan"))),
            "holdout_sharpe_annual": float(chosen.get("sharpe_annual", float("nan"))),
            "holdout_trades": int(chosen.get("trades", 0)),
            "holdout_stop_loss_share": float(chosen.get("stop_loss_share", float("nan"))),
            "baseline_fee_edge_ratio": str(result["baseline"]["fee_edge_ratio"]),
            "holdout_fingerprint": h_fp[:16], "gate": outcome.description,
            "candidates": dg.MetadataValue.md(_holdout_md(result)),
            "path": dg.MetadataValue.path(str(path)),
            "report": dg.MetadataValue.path(str(report)),
        },
        check_results=[to_result(outcome)],
    )


def _write_report(art: Any, cohort: str, coin: str, opt: dict[str, Any], holdout: dict[str, Any]) -> Any:
    """runs/<cohort>/<COIN>/optimization.html (plotly; plotly.min.js once per cohort directory)."""
    import pandas as pd

    from cryptoalgo_core.optimize.report import optimization_html, plotly_js

    js = art.path("runs", cohort, "plotly.min.js")
    if not js.exists():
        art.write_text(plotly_js(), "runs", cohort, "plotly.min.js")
    table = pd.read_csv(art.path("runs", cohort, coin, "study_trials.csv"))
    trials = table[["number", "state", "objective"]].to_dict("records")
    return art.write_text(optimization_html(coin, opt, trials, holdout), "runs", cohort, coin, "optimization.html")


def _holdout_md(result: dict[str, Any]) -> str:
    lines = ["| candidate | return | Sharpe (ann.) | trades | SL share | fee/edge | net bps |", "|---|---|---|---|---|---|---|"]
    for name, r in [("baseline", result["baseline"]), *((f"trial {c['number']}", c) for c in result["candidates"])]:
        lines.append(f"| {name} | {r['total_return']:.4f} | {_f(r['sharpe_annual'])} | {r['trades']} | "
                     f"{r['stop_loss_share']:.2f} | {_f(r['fee_edge_ratio'])} | {_f(r['net_bps'])} |")
    return "\n".join(lines)


OPTIMIZE_JOB = "optimize_job"
OPTIMIZE_CELERY_JOB = "optimize_celery_job"
ASSETS = [optimized_profile, holdout_evaluation]
optimize_job = dg.define_asset_job(
    OPTIMIZE_JOB,
    selection=dg.AssetSelection.assets(*[a.key for a in ASSETS]),
    executor_def=dg.in_process_executor,
    description="One coin's optimization study, then its one-shot holdout evaluation and gate.",
)


def _celery_job() -> Any:
    """The same steps executed by dagster-celery workers (`celery -A dagster_celery.app worker -Q <queue>`):
    broker from the run config's execution.config.broker, else dagster-celery's default (RabbitMQ on
    DAGSTER_CELERY_BROKER_HOST, default localhost); queue CRYPTOALGO_CELERY_QUEUE (default `dagster`, the
    assets' op tag). The instance must be one the workers share (PostgreSQL for several machines)."""
    from dagster_celery import celery_executor

    return dg.define_asset_job(
        OPTIMIZE_CELERY_JOB,
        selection=dg.AssetSelection.assets(*[a.key for a in ASSETS]),
        executor_def=celery_executor,
        description="optimize_job on dagster-celery workers (scale-out beyond one machine).",
    )


defs = dg.Definitions(assets=ASSETS, jobs=[optimize_job, _celery_job()])

__all__ = ["OPTIMIZE_CELERY_JOB", "OPTIMIZE_JOB", "defs", "holdout_evaluation", "optimized_profile", "study_data"]
