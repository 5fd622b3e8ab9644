"""Market-data stage: `ohlcv`, `funding`, `open_interest` (coin x quarter), their checks, job and schedules.

One multi-asset step ingests every selected dataset for every coin x quarter partition of its run (a backfill
is one run), then records, for EACH partition, its own materialization (rows, gaps, rejects, covered span,
a data version that changes only when its rows change) and its own check evaluations. The fetch window
is what the store's fetch coverage lacks, clipped to the run's optional [start, end) config.
"""


import datetime as dt
import warnings
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dagster as dg

from cryptoalgo_assets.checks import latest_materializations, to_evaluation
from cryptoalgo_core.timeutil import quarter_key
from partitions import coin_quarter_key, coin_quarter_partitions, split_key
from resources.dagster_resources import MarketSourceResource, MarketStoreResource, ProjectConfigResource

PARTITIONS = coin_quarter_partitions()
KINDS = ("ohlcv", "funding", "open_interest")

# name, blocking, evaluated on: "every" partition or only each coin's "newest" partition of the run
CHECKS: dict[str, list[tuple[str, bool, str, str]]] = {
    "ohlcv": [
        ("hourly_continuity", True, "every", "Gaps inside the fetched span of the quarter; ERROR at gates.market_data.gap_error_hours."),
        ("ohlc_invariants", True, "every", "Finite, prices > 0, low <= min(o,c), high >= max(o,c), volume >= 0; quarantined rejects warn."),
        ("freshness", False, "newest", "Newest candle vs the source's now (each coin's newest quarter of the run)."),
        ("source_reconciliation", False, "newest", "Coinbase vs CCXT closes over the last hours (source auto)."),
    ],
    "funding": [
        ("funding_continuity", False, "every", "Settlements on the funding grid (8 h) inside the fetched span."),
        ("funding_plausible", True, "every", "Finite rates within gates.market_data.funding_abs_max."),
    ],
    "open_interest": [
        ("oi_continuity", False, "every", "Gaps at the series' own cadence (hourly or daily)."),
        ("oi_valid", True, "every", "Finite, non-negative values with a unit."),
    ],
}
BLOCKING = {(kind, name): b for kind, rows in CHECKS.items() for name, b, _w, _d in rows}
DESCRIPTIONS = {
    "ohlcv": "Hourly OHLCV candles (closed bars) in the market store, one partition per coin x UTC quarter.",
    "funding": "Perpetual funding rates (fraction per 8 h settlement) per coin x UTC quarter.",
    "open_interest": "Open interest (USD notional where the venue gives it) per coin x UTC quarter; optional.",
}


class MarketDataConfig(dg.Config):
    """Optional clip of the fetch window inside the run's quarters (the CLI passes its exact --start/--end)."""

    start: str = ""  # UTC date or ISO datetime, inclusive; empty = the first quarter's start
    end: str = ""  # exclusive; empty = the last quarter's end (never beyond the source's now)


def _group(partition_keys: list[Any]) -> dict[str, list[str]]:
    quarters: dict[str, set[str]] = defaultdict(set)
    for key in partition_keys:
        coin, quarter = split_key(key)
        quarters[coin].add(quarter)
    return {c: sorted(m) for c, m in quarters.items()}


def _check_specs() -> list[dg.AssetCheckSpec]:
    with warnings.catch_warnings():  # partitioned checks are a Dagster preview feature, used deliberately
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [dg.AssetCheckSpec(name, asset=kind, blocking=b, description=d, partitions_def=PARTITIONS)
                for kind, rows in CHECKS.items() for name, b, _w, d in rows]


@dg.multi_asset(
    name="market_data",
    specs=[dg.AssetSpec(k, description=DESCRIPTIONS[k], partitions_def=PARTITIONS, group_name="market_data",
                        kinds={"sql"}, skippable=True) for k in KINDS],
    check_specs=_check_specs(),
    partitions_def=PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=True,
    description="Ingest OHLCV, funding and open interest for the run's coin x quarter partitions.",
)
def market_data(
    context: dg.AssetExecutionContext,
    config: MarketDataConfig,
    market_store: MarketStoreResource,
    market_source: MarketSourceResource,
    project: ProjectConfigResource,
):  # noqa: ANN201 - yields one AssetMaterialization per partition (no outputs)
    from resources.ingest import ingest_quarters  # heavy (pandas, sources): only where a run executes

    sources = market_source.source_set(project.sources())
    store = market_store.store()
    coins, gates = project.coins(), project.gates().market_data
    work = [(kind, coin, quarters) for kind in KINDS if dg.AssetKey(kind) in context.selected_asset_keys
            for coin, quarters in _group(list(context.partition_keys)).items()]
    # Fetching + checking the next dataset (a worker thread) overlaps recording the previous one's events.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest") as pool:
        futures = [pool.submit(ingest_quarters, k, c, m, (config.start, config.end), store, sources, coins[c], gates)
                   for k, c, m in work]
        try:
            for fut in futures:
                yield from _record(context, fut.result())
        finally:
            for fut in futures:
                fut.cancel()


def _record(context: dg.AssetExecutionContext, batch: Any) -> Iterator[dg.AssetMaterialization]:
    """Each partition's materialization (yielded, so it is stored before its checks point at it), then each
    partition's check evaluations."""
    for msg in batch.logs:
        context.log.info(msg)
    keys = [coin_quarter_key(batch.coin, r.quarter) for r in batch.reports]
    for key, r in zip(keys, batch.reports, strict=True):
        yield dg.AssetMaterialization(asset_key=batch.kind, partition=key, metadata=r.metadata,
                                      tags={"dagster/data_version": r.data_version})
    targets = latest_materializations(context.instance, batch.kind, keys)
    for key, r in zip(keys, batch.reports, strict=True):
        for o in r.outcomes:
            context.log_event(to_evaluation(o, batch.kind, key, BLOCKING[(batch.kind, o.name)], targets.get(key)))


MARKET_JOB = "market_data_job"
MARKET_OI_JOB = "market_data_oi_job"

market_data_job = dg.define_asset_job(
    MARKET_JOB, selection=dg.AssetSelection.assets("ohlcv", "funding"), executor_def=dg.in_process_executor,
    description="OHLCV + funding for a coin x quarter partition range (with their checks).")
market_data_oi_job = dg.define_asset_job(
    MARKET_OI_JOB, selection=dg.AssetSelection.assets(*KINDS), executor_def=dg.in_process_executor,
    description="OHLCV + funding + open interest for a coin x quarter partition range (with their checks).")


def selected_kinds(project: ProjectConfigResource) -> list[dg.AssetKey]:
    """What the schedules ingest: OHLCV and funding, plus open interest when sources.yaml include_oi."""
    kinds = ["ohlcv", "funding"] + (["open_interest"] if project.sources().include_oi else [])
    return [dg.AssetKey(k) for k in kinds]


def range_tags(coins: list[str], first_quarter: str, last_quarter: str) -> dict[str, str]:
    """Run tags of one run over the rectangle coins[0]..coins[-1] x first..last quarter (coins contiguous in
    the configured order)."""
    return {"dagster/asset_partition_range_start": coin_quarter_key(coins[0], first_quarter),
            "dagster/asset_partition_range_end": coin_quarter_key(coins[-1], last_quarter)}


def _tick_request(context: dg.ScheduleEvaluationContext, day: dt.datetime, key: str) -> dg.RunRequest:
    project = ProjectConfigResource()
    coins = list(project.coins())
    quarter = quarter_key(int(day.timestamp() * 1000))
    return dg.RunRequest(run_key=key, tags=range_tags(coins, quarter, quarter), asset_selection=selected_kinds(project))


@dg.schedule(job=market_data_oi_job, cron_schedule="20 0 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Daily: every coin's quarter holding the previous UTC day (complete by then); "
                         "open interest when sources.yaml include_oi.")
def daily_market_data_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    day = context.scheduled_execution_time - dt.timedelta(days=1)
    return _tick_request(context, day, f"daily|{day:%Y-%m-%d}")


@dg.schedule(job=market_data_oi_job, cron_schedule="5 * * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Hourly: the current quarter of every coin picks up the candle that just closed.")
def hourly_market_data_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    t = context.scheduled_execution_time
    return _tick_request(context, t, f"hourly|{t:%Y-%m-%dT%H}")


defs = dg.Definitions(
    assets=[market_data],
    jobs=[market_data_job, market_data_oi_job],
    schedules=[daily_market_data_schedule, hourly_market_data_schedule],
)
