"""Data-QA stage: `data_qa` per coin and its gate checks; the research job (features -> data QA) and the
sensor that keeps it fresh after new market data.

data/qa/<COIN>.json and data/qa/summary.csv; blocking checks gate the model stage.
"""


import json
import warnings
from typing import Any

import dagster as dg

from cryptoalgo_assets.checks import to_result
from cryptoalgo_assets.defs.features import COINS, FRESH, RAW, ml_dataset
from resources.dagster_resources import (
    ArtifactsResource,
    MarketStoreResource,
    ProjectConfigResource,
    ResearchResource,
)

QA_CHECKS = [
    ("qa_gaps", True, "Severe gaps in the dataset span block training (gates.yaml data_qa.max_gap_hours, max_missing_share)."),
    ("qa_target", True, "Broken targets block training: constant, too few labels, positive rate outside the band."),
    ("qa_missingness", True, "A used feature missing too often blocks training (the hint names the cause and the fix)."),
    ("qa_feature_set", False, "Optional feature groups left out for lack of data (open interest): a warning."),
    ("qa_drift", False, "Recent vs prior window drift per feature (PSI, KS, autocorrelation-aware): a warning."),
]


def qa_check_specs() -> list[dg.AssetCheckSpec]:
    with warnings.catch_warnings():  # partitioned checks are a Dagster preview feature, used deliberately
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [dg.AssetCheckSpec(n, asset="data_qa", blocking=b, description=d, partitions_def=COINS)
                for n, b, d in QA_CHECKS]


@dg.asset(
    partitions_def=COINS,
    deps=[ml_dataset, RAW["ohlcv"]],
    group_name="data_qa",
    kinds={"json"},
    automation_condition=FRESH,
    check_specs=qa_check_specs(),
    description="Per-symbol QA artifact (data/qa/<COIN>.json, summary.csv); its checks gate the model stage.",
)
def data_qa(
    context: dg.AssetExecutionContext,
    market_store: MarketStoreResource,
    project: ProjectConfigResource,
    research: ResearchResource,
    artifacts: ArtifactsResource,
) -> dg.MaterializeResult:
    from cryptoalgo_core.data_qa import qa_markdown, qa_report
    from cryptoalgo_core.features.plan import FeaturePlan

    coin = context.partition_key
    art = artifacts.store()
    ds = art.read_parquet("ml", f"{coin}.parquet")
    plan = FeaturePlan.from_dict(art.read_json("features", f"{coin}.meta.json"))
    lo, hs = plan.window  # [start, holdout_start): QA and its drift window never read the holdout
    ts = market_store.store().load_ts("ohlcv", coin, lo, hs)
    import numpy as np

    report, outcomes = qa_report(coin, np.asarray(ts, dtype=np.int64), ds, list(plan.names),
                                 project.gates().data_qa, plan=plan)
    art.write_json(report, "qa", f"{coin}.json")
    write_qa_summary(art)
    return dg.MaterializeResult(
        metadata={
            "rows": report["rows"],
            "labeled_rows": report["labeled_rows"],
            "positive_rate": float(report["target"].get("positive_rate") or float("nan")),
            "largest_gap_hours": report["gaps"]["largest_gap_hours"],
            "drift_flagged": sum(1 for d in report["drift"] if d.get("flagged")),
            "qa": dg.MetadataValue.md(qa_markdown(report)),
        },
        check_results=[to_result(o) for o in outcomes],
    )


def qa_summary_rows(art: Any) -> list[dict[str, Any]]:
    rows = []
    for p in sorted(art.path("qa").glob("*.json")):
        r = json.loads(p.read_text())
        rows.append(
            {
                "coin": r["coin"],
                "rows": r["rows"],
                "labeled_rows": r["labeled_rows"],
                "positive_rate": r["target"].get("positive_rate"),
                "n_gaps": r["gaps"]["n_gaps"],
                "largest_gap_hours": r["gaps"]["largest_gap_hours"],
                "worst_missing": max(r["missingness_top"].values(), default=0.0),
                "drift_flagged": sum(1 for d in r["drift"] if d.get("flagged")),
                **{f"check_{k}": ("PASS" if v["passed"] else f"FAIL_{v['severity']}") for k, v in r["checks"].items()},
            }
        )
    return rows


def write_qa_summary(art: Any) -> None:
    """Rebuild qa/summary.csv from every qa/<COIN>.json, under a lock (coins run concurrently)."""
    import pandas as pd

    with art.lock("qa_summary"):
        art.write_csv(pd.DataFrame(qa_summary_rows(art)), "qa", "summary.csv")


def blocking_failures(art: Any, coin: str) -> list[str] | None:
    """Blocking QA checks that failed for `coin` (None: no QA report yet)."""
    path = art.path("qa", f"{coin}.json")
    if not path.exists():
        return None
    checks = json.loads(path.read_text())["checks"]
    return [k for k, v in checks.items() if not v["passed"] and v["severity"] == "ERROR"]


RESEARCH_JOB = "research_data_job"
research_data_job = dg.define_asset_job(
    RESEARCH_JOB,
    selection=dg.AssetSelection.groups("features", "data_qa"),
    executor_def=dg.in_process_executor,
    description="Features, labels, ML dataset and data QA for one coin.",
)

research_automation_sensor = dg.AutomationConditionSensorDefinition(
    "research_automation_sensor",
    target=dg.AssetSelection.groups("features", "data_qa"),
    default_status=dg.DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=60,
    description="Keeps features -> labels -> ML dataset -> data QA fresh after new market data (e.g. the daily "
                "market-data schedule). Turn it on together with the schedules.",
)

defs = dg.Definitions(assets=[data_qa], jobs=[research_data_job], sensors=[research_automation_sensor])
