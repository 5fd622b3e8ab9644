"""Features stage: `features`, `labels`, `ml_dataset` per coin (research window from the `research` resource).

Each body loads its inputs, calls one cryptoalgo_core function and returns metadata. Files:
data/features/<COIN>.parquet|.csv, data/features/<COIN>.meta.json (the feature set actually built, groups
left out and why, the input spans), data/labels/<COIN>.parquet, data/ml/<COIN>.parquet.
"""


from typing import Any

import dagster as dg

from cryptoalgo_core.errors import ConfigError
from cryptoalgo_core.timeutil import ms_to_iso
from partitions import coin_from_coin_quarter, coin_partitions
from resources.dagster_resources import (
    ArtifactsResource,
    MarketStoreResource,
    ProjectConfigResource,
    ResearchResource,
)

COINS = coin_partitions()
RAW = {name: dg.AssetDep(name, partition_mapping=coin_from_coin_quarter())
       for name in ("ohlcv", "funding", "open_interest")}

# Keep the research data fresh after new market data: like eager(), but a coin's quarters that were never
# ingested (most of the calendar) must not hold it back, so `any_deps_missing` is not a blocker here.
FRESH = (
    (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("fresh after new market data")


def _bounds(research: ResearchResource, store: Any, coin: str, profile_days: int) -> Any:
    try:
        return research.bounds(store, coin, profile_days)
    except ConfigError as exc:
        raise dg.Failure(f"{exc}; run `cryptoalgo ingest --coins {coin}` first") from exc


def load_panel(store: Any, coins: list[str], window: tuple[int | None, int | None]) -> Any:
    """Stored history of `coins` inside the research window (shared features need the whole basket)."""
    from cryptoalgo_core.features.build import MarketPanel

    lo, hi = window
    return MarketPanel(
        ohlcv={c: store.load("ohlcv", c, lo, hi)[["ts", "open", "high", "low", "close", "volume"]] for c in coins},
        funding={c: store.load("funding", c, lo, hi)[["ts", "rate"]] for c in coins},
        open_interest={c: store.load("open_interest", c, lo, hi)[["ts", "value"]] for c in coins},
    )


@dg.asset(
    partitions_def=COINS,
    deps=[RAW["ohlcv"], RAW["funding"], RAW["open_interest"]],
    group_name="features",
    kinds={"pandas", "parquet"},
    automation_condition=FRESH,
    description="Causal shared (basket) + coin features; optional inputs without data (open interest) are left "
                "out with a warning. Registry: cryptoalgo_core/features/registry.py.",
)
def features(
    context: dg.AssetExecutionContext,
    market_store: MarketStoreResource,
    project: ProjectConfigResource,
    research: ResearchResource,
    artifacts: ArtifactsResource,
) -> dg.MaterializeResult:
    from cryptoalgo_core.features.plan import feature_plan

    coin = context.partition_key
    coins = project.coins()
    store = market_store.store()
    bounds = _bounds(research, store, coin, coins[coin].profile.walk_forward.holdout_days)
    seen = (bounds.start, bounds.holdout_start)  # research never loads the holdout
    panel = load_panel(store, project.panel_coins(coin), seen)
    if panel.ohlcv[coin].empty:
        raise dg.Failure(f"{coin}: no OHLCV before the holdout ({bounds.as_dict()['holdout']}); "
                         f"ingest more history or shorten the holdout (--holdout-days)")
    missing = [c for c, df in panel.ohlcv.items() if df.empty]
    panel = panel.without(missing)
    panel_coins = panel.coins
    plan = feature_plan(panel, coin, coins[coin].features, seen, missing_basket=missing, bounds=bounds)
    df = plan.build(panel)
    art = artifacts.store()
    path = art.write_parquet(df, "features", f"{coin}.parquet")
    art.write_json(plan.as_dict(), "features", f"{coin}.meta.json")
    for group, why in plan.dropped.items():
        context.log.warning(f"{coin}: feature group {group} left out: {why}")
    context.log.info(f"{coin}: {len(df)} rows x {len(plan.names)} features -> {path}")
    return dg.MaterializeResult(
        metadata={
            "rows": len(df),
            "warmup_rows": int(df["warmup"].sum()),
            "n_features": len(plan.names),
            "first_ts": ms_to_iso(int(df["ts"].min())),
            "last_ts": ms_to_iso(int(df["ts"].max())),
            "basket": ",".join(panel_coins),
            "holdout": bounds.as_dict()["holdout"],
            "dropped_groups": "; ".join(f"{g}: {w}" for g, w in plan.dropped.items()) or "none",
            "path": dg.MetadataValue.path(str(path)),
            "groups": dg.MetadataValue.md(
                "| group | features |\n|---|---|\n" + "\n".join(f"| {g} | {n} |" for g, n in plan.by_group().items())
            ),
        }
    )


@dg.asset(
    partitions_def=COINS,
    deps=[RAW["ohlcv"]],
    group_name="features",
    kinds={"pandas", "parquet"},
    automation_condition=FRESH,
    description="Triple-barrier labels (label, target, t1, ret, barrier) from the coin's profile.",
)
def labels(
    context: dg.AssetExecutionContext,
    market_store: MarketStoreResource,
    project: ProjectConfigResource,
    research: ResearchResource,
    artifacts: ArtifactsResource,
) -> dg.MaterializeResult:
    from cryptoalgo_core.features.dataset import labels_for_coin

    coin = context.partition_key
    spec = project.coins()[coin]
    store = market_store.store()
    bounds = _bounds(research, store, coin, spec.profile.walk_forward.holdout_days)
    # candles up to the holdout only: a label whose horizon reaches into the holdout stays unlabeled
    params = spec.label
    out = labels_for_coin(store.load("ohlcv", coin, bounds.start, bounds.holdout_start), params)
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
            "barrier_shares": dg.MetadataValue.json({str(k): float(v) for k, v in shares.items()}),
            "path": dg.MetadataValue.path(str(path)),
        }
    )


@dg.asset(
    partitions_def=COINS,
    deps=[features, labels],
    group_name="features",
    kinds={"pandas", "parquet", "csv"},
    automation_condition=FRESH,
    description="Post-warm-up features + labels + t1 (for purging); Parquet ML dataset and a CSV export.",
)
def ml_dataset(context: dg.AssetExecutionContext, artifacts: ArtifactsResource) -> dg.MaterializeResult:
    from cryptoalgo_core.features.dataset import build_ml_dataset

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


ASSETS = [features, labels, ml_dataset]
defs = dg.Definitions(assets=ASSETS)
