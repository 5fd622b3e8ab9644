"""The Dagster code location: assets, checks, jobs, schedules and resources of cryptoalgo."""


import datetime as dt

import dagster as dg

from cryptoalgo_assets.defs import market_data, model, research_data
from cryptoalgo_core.config import load_coins, load_sources
from partitions import coin_day_key
from resources.dagster_resources import (
    ArtifactsResource,
    MarketSourceResource,
    MarketStoreResource,
    ProjectConfigResource,
)

MARKET_JOB = "market_data_job"
MARKET_OI_JOB = "market_data_oi_job"
RESEARCH_JOB = "research_data_job"
MODEL_JOB = "model_job"

market_data_job = dg.define_asset_job(
    MARKET_JOB,
    selection=dg.AssetSelection.assets("ohlcv", "funding"),
    description="OHLCV + funding for a coin x day partition range (with their checks).",
)
market_data_oi_job = dg.define_asset_job(
    MARKET_OI_JOB,
    selection=dg.AssetSelection.assets("ohlcv", "funding", "open_interest"),
    description="OHLCV + funding + open interest for a coin x day partition range (with their checks).",
)


research_data_job = dg.define_asset_job(
    RESEARCH_JOB,
    selection=dg.AssetSelection.assets(*[a.key for a in research_data.ASSETS]),
    description="Features, labels, ML dataset and data QA for one coin.",
)


model_job = dg.define_asset_job(
    MODEL_JOB,
    selection=dg.AssetSelection.assets(*[a.key for a in model.ASSETS]),
    description="Walk-forward model and cost-aware backtest for one coin.",
)


def _job_for_schedules() -> str:
    return MARKET_OI_JOB if load_sources().include_oi else MARKET_JOB


@dg.schedule(
    job_name=_job_for_schedules(),
    cron_schedule="20 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Daily: every coin's previous UTC day (complete by then).",
)
def daily_market_data_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    day = (context.scheduled_execution_time - dt.timedelta(days=1)).strftime("%Y-%m-%d")
    return [dg.RunRequest(run_key=f"{c}|{day}", partition_key=coin_day_key(c, day)) for c in load_coins()]


@dg.schedule(
    job_name=_job_for_schedules(),
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Hourly: today's partition of every coin picks up the candle that just closed.",
)
def hourly_market_data_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    t = context.scheduled_execution_time
    day = t.strftime("%Y-%m-%d")
    return [
        dg.RunRequest(run_key=f"{c}|{t:%Y-%m-%dT%H}", partition_key=coin_day_key(c, day)) for c in load_coins()
    ]


def build_definitions(
    market_store: MarketStoreResource | None = None,
    market_source: MarketSourceResource | None = None,
    project: ProjectConfigResource | None = None,
    artifacts: ArtifactsResource | None = None,
) -> dg.Definitions:
    return dg.Definitions(
        assets=[*market_data.ASSETS, *research_data.ASSETS, *model.ASSETS],
        jobs=[market_data_job, market_data_oi_job, research_data_job, model_job],
        schedules=[daily_market_data_schedule, hourly_market_data_schedule],
        resources={
            "market_store": market_store or MarketStoreResource(),
            "market_source": market_source or MarketSourceResource(),
            "project": project or ProjectConfigResource(),
            "artifacts": artifacts or ArtifactsResource(),
        },
    )


defs = build_definitions()
