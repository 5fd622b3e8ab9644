"""The code location: it validates with Dagster's own CLI, and its shape (assets, groups, checks, jobs,
schedules, sensors) matches a snapshot, so renames are deliberate. Update SNAPSHOT when you mean it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parents[2]

SNAPSHOT = {
    "assets": {
        "ohlcv": ("market_data", "coin|quarter"),
        "funding": ("market_data", "coin|quarter"),
        "open_interest": ("market_data", "coin|quarter"),
        "features": ("features", "coin"),
        "labels": ("features", "coin"),
        "ml_dataset": ("features", "coin"),
        "data_qa": ("data_qa", "coin"),
        "walk_forward_model": ("model", "coin"),
        "backtest": ("model", "coin"),
        "optimized_profile": ("optimize", "coin"),
        "holdout_evaluation": ("optimize", "coin"),
        "robustness_report": ("robustness", "coin"),
        "portfolio_readiness": ("robustness", "NoneType"),
        "deployment_checklist": ("robustness", "NoneType"),
        "staged_model": ("promotion", "coin"),
        "production_model": ("promotion", "coin"),
        "signals": ("live", "coin"),
        "paper_book": ("live", "coin"),
        "paper_performance": ("live", "coin"),
    },
    "checks": {
        "ohlcv": {"hourly_continuity", "ohlc_invariants", "freshness", "source_reconciliation"},
        "funding": {"funding_continuity", "funding_plausible"},
        "open_interest": {"oi_continuity", "oi_valid"},
        "data_qa": {"qa_gaps", "qa_target", "qa_missingness", "qa_feature_set", "qa_drift"},
        "holdout_evaluation": {"holdout_gate"},
        "robustness_report": {"robustness_gate"},
        "portfolio_readiness": {"portfolio_gate"},
        "paper_performance": {"max_daily_drawdown", "min_win_rate", "calibration_drift", "fee_edge_expansion",
                              "replay_drift"},
    },
    "blocking": {"ohlcv.hourly_continuity", "ohlcv.ohlc_invariants", "funding.funding_plausible",
                 "open_interest.oi_valid", "data_qa.qa_gaps", "data_qa.qa_target", "data_qa.qa_missingness",
                 "holdout_evaluation.holdout_gate", "robustness_report.robustness_gate",
                 "portfolio_readiness.portfolio_gate"},
    "jobs": {"market_data_job", "market_data_oi_job", "research_data_job", "model_job", "optimize_job",
             "optimize_celery_job", "validate_job", "portfolio_job", "checklist_job", "stage_job", "promote_job",
             "live_job"},
    "schedules": {"daily_market_data_schedule": "20 0 * * *", "hourly_market_data_schedule": "5 * * * *",
                  "live_schedule": "5 * * * *", "retrain_schedule": "30 2 * * *"},
    "sensors": {"research_automation_sensor", "promotion_sensor", "oncall_check_alerts", "oncall_run_failures",
                "oncall_run_recoveries"},
    "resources": {"market_store", "market_source", "project", "artifacts", "research", "optimize", "model_registry",
                  "alerting"},
}


def _partition_shape(pdef: dg.PartitionsDefinition | None) -> str:
    if isinstance(pdef, dg.MultiPartitionsDefinition):
        return "|".join(d.name for d in pdef.partitions_defs)
    return "coin" if isinstance(pdef, dg.StaticPartitionsDefinition) else str(type(pdef).__name__)


def test_definitions_match_the_snapshot() -> None:
    from cryptoalgo_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    assets = {}
    checks: dict[str, set[str]] = {}
    blocking = set()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assets[key.to_user_string()] = (node.group_name, _partition_shape(node.partitions_def))
    for ck in graph.asset_check_keys:
        checks.setdefault(ck.asset_key.to_user_string(), set()).add(ck.name)
        spec = graph.get_check_spec(ck)
        if spec.blocking:
            blocking.add(f"{ck.asset_key.to_user_string()}.{ck.name}")
    assert assets == SNAPSHOT["assets"]
    assert checks == SNAPSHOT["checks"]
    assert blocking == SNAPSHOT["blocking"]
    repo = defs.get_repository_def()
    assert {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")} == SNAPSHOT["jobs"]
    assert {s.name: s.cron_schedule for s in repo.schedule_defs} == SNAPSHOT["schedules"]
    assert {s.name for s in repo.sensor_defs} == SNAPSHOT["sensors"]
    assert set(defs.resources or {}) == SNAPSHOT["resources"]


def test_every_check_partitioned_like_its_asset() -> None:
    from cryptoalgo_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    for ck in graph.asset_check_keys:
        spec = graph.get_check_spec(ck)
        assert spec.partitions_def == graph.get(ck.asset_key).partitions_def, ck


def test_definitions_validate_with_the_dagster_cli() -> None:
    out = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
