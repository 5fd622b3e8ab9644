"""Research-data stage: `features`, `labels`, `ml_dataset`, `data_qa` per coin, plus the QA gate checks.

Each body loads its inputs (market store / artifacts), calls one cryptoalgo_core function and returns
metadata. Files: data/features/<COIN>.parquet|.csv, data/labels/<COIN>.parquet, data/ml/<COIN>.parquet,
data/qa/<COIN>.json and data/qa/summary.csv.
"""

import json
from typing import Any

import dagster as dg
import pandas as pd

from cryptoalgo_core.data_qa import qa_markdown, qa_report
from cryptoalgo_core.dataset import build_ml_dataset, labels_for_coin
from cryptoalgo_core.features.build import MarketPanel, build_features, feature_names
from cryptoalgo_core.features.registry import registry
from cryptoalgo_core.timeutil import ms_to_iso
from partitions import coin_from_coin_day, coin_partitions
from resources.artifacts import ArtifactStore
from resources.dagster_resources import ArtifactsResource, MarketStoreResource, ProjectConfigResource
from resources.store import MarketStore

COINS = coin_partitions()
_RAW = {name: dg.AssetDep(name, partition_mapping=coin_from_coin_day()) for name in ("ohlcv", "funding", "open_interest")}


def load_panel(store: MarketStore, coins: list[str]) -> MarketPanel:
    """Every configured coin's stored history (shared features need the whole market)."""
    return MarketPanel(
        ohlcv={c: store.load("ohlcv", c)[["ts", "open", "high", "low", "close", "volume"]] for c in coins},
        funding={c: store.load("funding", c)[["ts", "rate"]] for c in coins},
        open_interest={c: store.load("open_interest", c)[["ts", "value"]] for c in coins},
    )


@dg.asset(
    partitions_def=COINS,
    deps=[_RAW["ohlcv"], _RAW["funding"], _RAW["open_interest"]],
    group_name="research_data",
    kinds={"pandas", "parquet"},
    description="Causal shared + coin features (registry in cryptoalgo_core/features/registry.py).",
)
def features(
    context: dg.AssetExecutionContext,
    market_store: MarketStoreResource,
    project: ProjectConfigResource,
    artifacts: ArtifactsResource,
) -> dg.MaterializeResult:
    coin = context.partition_key
    coins = project.coins()
    panel = load_panel(market_store.store(), list(coins))
    if panel.ohlcv[coin].empty:
        raise dg.Failure(f"{coin}: no OHLCV in the market store; run `cryptoalgo ingest --coins {coin}` first")
    df = build_features(panel, coin, coins[coin].features)
    path = artifacts.store().write_parquet(df, "features", f"{coin}.parquet")
    names = feature_names(list(coins), coin, coins[coin].features)
    specs = registry(list(coins), coin)
    by_group: dict[str, int] = {}
    for n in names:
        by_group[specs[n].group] = by_group.get(specs[n].group, 0) + 1
    context.log.info(f"{coin}: {len(df)} rows x {len(names)} features -> {path}")
    return dg.MaterializeResult(
        metadata={
            "rows": len(df),
            "warmup_rows": int(df["warmup"].sum()),
            "n_features": len(names),
            "first_ts": ms_to_iso(int(df["ts"].min())),
            "last_ts": ms_to_iso(int(df["ts"].max())),
            "path": dg.MetadataValue.path(str(path)),
            "groups": dg.MetadataValue.md(
                "| group | features |\n|---|---|\n" + "\n".join(f"| {g} | {n} |" for g, n in by_group.items())
            ),
        }
    )


@dg.asset(
    partitions_def=COINS,
    deps=[_RAW["ohlcv"]],
    group_name="research_data",
    kinds={"pandas", "parquet"},
    description="Triple-barrier labels (label, target, t1, ret, barrier) from the coin's profile.",
)
def labels(
    context: dg.AssetExecutionContext,
    market_store: MarketStoreResource,
    project: ProjectConfigResource,
    artifacts: ArtifactsResource,
) -> dg.MaterializeResult:
    coin = context.partition_key
    params = project.coins()[coin].label
    out = labels_for_coin(market_store.store().load("ohlcv", coin), params)
    path = artifacts.store().write_parquet(out, "labels", f"{coin}.parquet")
    lab = out.dropna(subset=["label"])
    shares = lab["barrier"].value_counts(normalize=True).round(4).to_dict() if len(lab) else {}
    return dg.MaterializeResult(
        metadata={
            "rows": len(out),
            "labeled": len(lab),
            "positive_rate": float(lab["target"].mean()) if len(lab) else float("nan"),
            "forward_hours": params.forward_hours,
            "vol_target": params.vol_target,
            "barrier_shares": dg.MetadataValue.json(shares),
            "path": dg.MetadataValue.path(str(path)),
        }
    )


@dg.asset(
    partitions_def=COINS,
    deps=[features, labels],
    group_name="research_data",
    kinds={"pandas", "parquet", "csv"},
    description="Post-warm-up features + labels + t1 (for purging); Parquet ML dataset and a CSV export.",
)
def ml_dataset(context: dg.AssetExecutionContext, artifacts: ArtifactsResource) -> dg.MaterializeResult:
    coin = context.partition_key
    art = artifacts.store()
    ds = build_ml_dataset(art.read_parquet("features", f"{coin}.parquet"), art.read_parquet("labels", f"{coin}.parquet"))
    pq = art.write_parquet(ds, "ml", f"{coin}.parquet")
    csv = art.write_csv(ds, "features", f"{coin}.csv")
    return dg.MaterializeResult(
        metadata={
            "rows": len(ds),
            "labeled_rows": int(ds["target"].notna().sum()),
            "columns": len(ds.columns),
            "parquet": dg.MetadataValue.path(str(pq)),
            "csv": dg.MetadataValue.path(str(csv)),
        }
    )


QA_CHECKS = [
    ("qa_gaps", True, "Severe gaps in the dataset span block training (gates.yaml data_qa.max_gap_hours, max_missing_share)."),
    ("qa_target", True, "Broken targets block training: constant, too few labels, positive rate outside the band."),
    ("qa_missingness", True, "A used feature missing too often blocks training."),
    ("qa_drift", False, "Recent 30 d vs prior 90 d drift per feature (PSI, KS): a warning."),
]


@dg.asset(
    partitions_def=COINS,
    deps=[ml_dataset, _RAW["ohlcv"]],
    group_name="research_data",
    kinds={"json"},
    check_specs=[dg.AssetCheckSpec(n, asset="data_qa", blocking=b, description=d) for n, b, d in QA_CHECKS],
    description="Per-symbol QA artifact (data/qa/<COIN>.json, summary.csv); its checks gate the model stages.",
)
def data_qa(
    context: dg.AssetExecutionContext,
    market_store: MarketStoreResource,
    project: ProjectConfigResource,
    artifacts: ArtifactsResource,
) -> dg.MaterializeResult:
    coin = context.partition_key
    coins = project.coins()
    art = artifacts.store()
    ds = art.read_parquet("ml", f"{coin}.parquet")
    names = feature_names(list(coins), coin, coins[coin].features)
    ts = market_store.store().load_ts("ohlcv", coin)
    report, outcomes = qa_report(coin, pd.Series(ts, dtype="int64").to_numpy(), ds, names, project.gates().data_qa)
    art.write_json(report, "qa", f"{coin}.json")
    write_qa_summary(art)
    checks = [
        dg.AssetCheckResult(
            check_name=o.name,
            passed=o.passed,
            severity=dg.AssetCheckSeverity.ERROR if o.severity == "ERROR" else dg.AssetCheckSeverity.WARN,
            description=o.description,
            metadata={k: v for k, v in o.metadata.items() if isinstance(v, (int, float, str))},
        )
        for o in outcomes
    ]
    return dg.MaterializeResult(
        metadata={
            "rows": report["rows"],
            "labeled_rows": report["labeled_rows"],
            "positive_rate": float(report["target"].get("positive_rate") or float("nan")),
            "largest_gap_hours": report["gaps"]["largest_gap_hours"],
            "drift_flagged": sum(1 for d in report["drift"] if d.get("flagged")),
            "qa": dg.MetadataValue.md(qa_markdown(report)),
        },
        check_results=checks,
    )


def qa_summary_rows(art: ArtifactStore) -> list[dict[str, Any]]:
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


def write_qa_summary(art: ArtifactStore) -> None:
    """Rebuild qa/summary.csv from every qa/<COIN>.json, under a lock (coins run concurrently)."""
    with art.lock("qa_summary"):
        art.write_csv(pd.DataFrame(qa_summary_rows(art)), "qa", "summary.csv")


ASSETS = [features, labels, ml_dataset, data_qa]
