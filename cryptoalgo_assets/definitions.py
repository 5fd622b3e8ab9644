"""The Dagster code location `cryptoalgo`: each stage's Definitions (defs/<stage>.py, in data-flow order)
merged, plus the resources they share.

Stages: market_data (ohlcv, funding, open_interest: coin x quarter) -> features (features, labels, ml_dataset)
-> data_qa (gate) -> model (walk_forward_model, backtest) -> optimize (optimized_profile, holdout_evaluation)
-> robustness (robustness_report per coin; portfolio_readiness, deployment_checklist) -> promotion (staged_model,
production_model; promotion sensor) -> live (signals, paper_book, paper_performance + kill-switch checks; hourly
schedule, retrain schedule) -> alerts (on-call sensors).

The market-store URL comes from the environment only: `TRADER_DB_URL` through `dg.EnvVar` when it is set
(the CLI sets it for the code server it starts), else TRADER_DB_PATH / $TRADER_DATA_DIR/trading.db. It is
never part of run config, so it is never stored in the instance.
"""

from __future__ import annotations

import os
import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)
os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")  # one planned event per range

from cryptoalgo_assets.defs import (  # noqa: E402
    alerts,
    data_qa,
    features,
    live,
    market_data,
    model,
    optimize,
    promotion,
    robustness,
)
from resources.dagster_resources import (  # noqa: E402
    AlertingResource,
    ArtifactsResource,
    MarketSourceResource,
    MarketStoreResource,
    ModelRegistryResource,
    OptimizeResource,
    ProjectConfigResource,
    ResearchResource,
    default_alerting,
)

STAGES = (market_data, features, data_qa, model, optimize, robustness, promotion, live, alerts)
MARKET_JOB = market_data.MARKET_JOB
MARKET_OI_JOB = market_data.MARKET_OI_JOB
RESEARCH_JOB = data_qa.RESEARCH_JOB
MODEL_JOB = model.MODEL_JOB
OPTIMIZE_JOB = optimize.OPTIMIZE_JOB
OPTIMIZE_CELERY_JOB = optimize.OPTIMIZE_CELERY_JOB
VALIDATE_JOB = robustness.VALIDATE_JOB
PORTFOLIO_JOB = robustness.PORTFOLIO_JOB
CHECKLIST_JOB = robustness.CHECKLIST_JOB
STAGE_JOB = promotion.STAGE_JOB
PROMOTE_JOB = promotion.PROMOTE_JOB
LIVE_JOB = live.LIVE_JOB


def default_market_store() -> MarketStoreResource:
    if os.environ.get("TRADER_DB_URL"):
        return MarketStoreResource(db_url=dg.EnvVar("TRADER_DB_URL"))
    return MarketStoreResource()


def build_definitions(
    market_store: MarketStoreResource | None = None,
    market_source: MarketSourceResource | None = None,
    project: ProjectConfigResource | None = None,
    artifacts: ArtifactsResource | None = None,
    research: ResearchResource | None = None,
    optimize_settings: OptimizeResource | None = None,
    model_registry: ModelRegistryResource | None = None,
    alerting: AlertingResource | None = None,
) -> dg.Definitions:
    resources = dg.Definitions(resources={
        "market_store": market_store or default_market_store(),
        "market_source": market_source or MarketSourceResource(),
        "project": project or ProjectConfigResource(),
        "artifacts": artifacts or ArtifactsResource(),
        "research": research or ResearchResource(),
        "optimize": optimize_settings or OptimizeResource(),
        "model_registry": model_registry or ModelRegistryResource(),
        "alerting": alerting or default_alerting(),
    })
    return dg.Definitions.merge(*(s.defs for s in STAGES), resources)


defs = build_definitions()
