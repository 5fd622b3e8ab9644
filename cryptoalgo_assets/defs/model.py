"""Model stage: `walk_forward_model` (purged walk-forward XGBoost, calibrated) and `backtest` (cost-aware
engine, edge decomposition, exit diagnostics) per coin, and the model job. Files under data/runs/<cohort>/<COIN>/.
"""


from dataclasses import replace
from typing import Any

import dagster as dg

from cryptoalgo_assets.defs.data_qa import blocking_failures, data_qa
from cryptoalgo_assets.defs.features import COINS, RAW, features, ml_dataset
from cryptoalgo_core.timeutil import ms_to_iso
from resources.dagster_resources import (
    ArtifactsResource,
    MarketStoreResource,
    ProjectConfigResource,
)

TRAINING_POOL = "model_training"  # dagster_home/dagster.yaml caps concurrent training steps across runs


def qa_gate(art: Any, coin: str) -> None:
    """Refuse to train on data whose blocking QA failed (also when this run did not include data_qa)."""
    failed = blocking_failures(art, coin)
    if failed is None:
        raise dg.Failure(f"{coin}: no data QA report; materialize data_qa first (cryptoalgo features)")
    if failed:
        raise dg.Failure(f"{coin}: blocking data QA failed ({', '.join(failed)}); fix the data before training")


@dg.asset(
    partitions_def=COINS,
    deps=[ml_dataset, data_qa],
    group_name="model",
    kinds={"xgboost", "parquet"},
    pool=TRAINING_POOL,
    description="Purged, embargoed walk-forward XGBoost with calibrated probabilities; the holdout is untouched.",
)
def walk_forward_model(
    context: dg.AssetExecutionContext,
    project: ProjectConfigResource,
    artifacts: ArtifactsResource,
) -> dg.MaterializeResult:
    import numpy as np

    from cryptoalgo_core.features.plan import FeaturePlan
    from cryptoalgo_core.model.walkforward import calibration_report, directional_auc, walk_forward

    coin = context.partition_key
    profile = project.coins()[coin].profile
    art, run = artifacts.store(), ("runs", artifacts.cohort_name(), coin)
    qa_gate(art, coin)
    ds = art.read_parquet("ml", f"{coin}.parquet")  # built by the features stage, ends at the holdout
    plan = FeaturePlan.from_dict(art.read_json("features", f"{coin}.meta.json"))
    names, hs = list(plan.names), plan.holdout_start
    wf = replace(profile.walk_forward, holdout_days=int(plan.holdout["holdout_days"]))
    res = walk_forward(ds, names, wf, profile.model, end_ms=hs)
    if res.predictions.empty:
        raise dg.Failure(f"{coin}: no out-of-sample predictions (too little data before the holdout?)")
    art.write_parquet(res.predictions, *run, "predictions.parquet")
    art.write_csv(res.folds, *run, "folds.csv")
    art.write_csv(res.importance.rename("gain").reset_index().rename(columns={"index": "feature"}), *run, "importance.csv")
    label = res.predictions["label"].to_numpy(float)
    auc = directional_auc(label, res.predictions["p_dir"].to_numpy(float))
    cal = calibration_report(np.where(label == 1, 1.0, np.where(label == -1, 0.0, np.nan)),
                             res.predictions["p_dir"].to_numpy(float))
    meta = {"holdout_start": res.holdout_start, "holdout_days": wf.holdout_days, "features": names,
            "folds": int((res.folds.get("skipped", "") == "").sum()), "directional_auc": auc,
            "brier": cal["brier"], "model": profile.model.__dict__, "walk_forward": wf.__dict__,
            "window": {"start": plan.window[0], "end": hs}, "holdout": plan.holdout}
    art.write_json(meta, *run, "walk_forward.json")
    top = res.importance.head(10)
    return dg.MaterializeResult(
        metadata={
            "oos_rows": len(res.predictions),
            "folds": meta["folds"],
            "directional_auc": float(auc),
            "brier_direction": float(cal["brier"]),
            "holdout_start": ms_to_iso(res.holdout_start),
            "oos_span": f"{ms_to_iso(int(res.predictions['ts'].min()))} .. {ms_to_iso(int(res.predictions['ts'].max()))}",
            "top_features": dg.MetadataValue.md(
                "| feature | gain |\n|---|---|\n" + "\n".join(f"| {k} | {v:.2f} |" for k, v in top.items())
            ),
        }
    )


@dg.asset(
    partitions_def=COINS,
    deps=[walk_forward_model, features, RAW["ohlcv"], RAW["funding"]],
    group_name="model",
    kinds={"numba", "csv"},
    description="Cost-aware backtest of the out-of-sample signals: edge decomposition and exit diagnostics.",
)
def backtest(
    context: dg.AssetExecutionContext,
    market_store: MarketStoreResource,
    project: ProjectConfigResource,
    artifacts: ArtifactsResource,
) -> dg.MaterializeResult:
    import numpy as np

    from cryptoalgo_core.backtest.html import render_report
    from cryptoalgo_core.backtest.report import backtest_coin
    from resources.store import redact_url
    from resources.tracking import run_manifest

    coin = context.partition_key
    profile = project.coins()[coin].profile
    art, run = artifacts.store(), ("runs", artifacts.cohort_name(), coin)
    wfm = art.read_json(*run, "walk_forward.json")
    store = market_store.store()
    lo, hs = wfm["window"]["start"], int(wfm["holdout_start"])  # never a holdout bar
    ohlcv = store.load("ohlcv", coin, lo, hs)
    if ohlcv.empty:
        raise dg.Failure(f"{coin}: no OHLCV in the market store {redact_url(market_store.url())}; the backtest needs "
                         f"the bars the model was trained on (same --db-path as `cryptoalgo ingest`)")
    bt = backtest_coin(coin, art.read_parquet(*run, "predictions.parquet"), art.read_parquet("features", f"{coin}.parquet"),
                       ohlcv, store.load("funding", coin, lo, hs), profile, hs)
    art.write_csv(bt.trades, *run, "trades.csv")
    art.write_json(bt.diagnostics, *run, "diagnostics.json")
    report = art.write_text(render_report(bt.diagnostics, bt.result.equity), *run, "report.html")
    names = ("predictions.parquet", "folds.csv", "importance.csv", "walk_forward.json", "trades.csv",
             "diagnostics.json", "report.html")
    manifest = run_manifest(
        coin,
        artifacts.cohort_name(),
        profile,
        inputs={"ml_dataset": art.path("ml", f"{coin}.parquet"), "features": art.path("features", f"{coin}.parquet"),
                "data_qa": art.path("qa", f"{coin}.json")},
        artifacts={n: art.path(*run, n) for n in names},
        extra={"holdout_start": ms_to_iso(int(wfm["holdout_start"])), "dagster_run_id": context.run.run_id},
    )
    art.write_json(manifest, *run, "manifest.json")
    e, x = bt.diagnostics["edge"], bt.diagnostics["exits"]
    return dg.MaterializeResult(
        metadata={
            "trades": e["trades"],
            "net_bps_per_trade": e["net_bps"],
            "net_bps_95ci": _ci_text(bt.diagnostics),
            "auc_folds": _folds_text(bt.diagnostics),
            "gross_bps_per_trade": e["gross_bps"],
            "fee_edge_ratio": e["fee_edge_ratio"] if np.isfinite(e["fee_edge_ratio"]) else -1.0,
            "stop_loss_share": x["shares"]["stop_loss"],
            "win_rate": x["win_rate"],
            "total_return": bt.diagnostics["performance"]["total_return"],
            "max_drawdown": bt.diagnostics["performance"]["max_drawdown"],
            "edge_decomposition": dg.MetadataValue.md(edge_markdown(bt.diagnostics)),
            "report": dg.MetadataValue.path(str(report)),
            "git_commit": manifest["git_commit"],
            "dataset_sha256": manifest["inputs"].get("ml_dataset", {}).get("sha256", ""),
        }
    )


def _ci_text(d: dict[str, Any]) -> str:
    ci = (d.get("edge_uncertainty") or {}).get("per_trade", {}).get("net")
    return f"{ci['mean']:.1f} [{ci['lo']:.1f}, {ci['hi']:.1f}] (se {ci['se']:.1f}, n {ci['n']})" if ci else "-"


def _folds_text(d: dict[str, Any]) -> str:
    a = (d.get("folds") or {}).get("auc") or {}
    return f"mean {a['mean']:.3f} sd {a['std']:.3f} over {a['n']} folds [{a['lo']:.3f}, {a['hi']:.3f}]" if a.get("n") else "-"


def _ratio_md(r: float) -> str:
    import math

    return f"{r:.2f}" if math.isfinite(r) else "n/a"


def edge_markdown(d: dict[str, Any]) -> str:
    e, x = d["edge"], d["exits"]
    lines = ["| gross | fees | slippage | funding | net | fee/edge | trades |", "|---|---|---|---|---|---|---|",
             f"| {e['gross_bps']:.1f} | {e['fees_bps']:.1f} | {e['slippage_bps']:.1f} | {e['funding_bps']:.1f} | "
             f"{e['net_bps']:.1f} | {_ratio_md(e['fee_edge_ratio'])} | {e['trades']} |", "",
             "| exit reason | share | net bps | avg hold h |", "|---|---|---|---|"]
    for r, s in x["shares"].items():
        b = x["by_reason"][r]
        lines.append(f"| {r} | {s:.1%} | {b['net_bps']:.1f} | {b['avg_hold_hours']:.1f} |")
    return "\n".join(lines)


MODEL_JOB = "model_job"
ASSETS = [walk_forward_model, backtest]
model_job = dg.define_asset_job(
    MODEL_JOB,
    selection=dg.AssetSelection.assets(*[a.key for a in ASSETS]),
    executor_def=dg.in_process_executor,
    description="Walk-forward model and cost-aware backtest for one coin.",
)

defs = dg.Definitions(assets=ASSETS, jobs=[model_job])
