"""Model stage through Dagster: walk-forward + backtest artifacts that add up, and the QA gate."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from cryptoalgo_assets.defs import model
from resources.dagster_resources import (
    ArtifactsResource,
    MarketStoreResource,
    ProjectConfigResource,
    ResearchResource,
)
from tests.assets.test_features_qa import materialize
from tests.conftest import fill_synthetic_store


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """300 synthetic days in a store, and the research artifacts of ETH."""
    root = tmp_path_factory.mktemp("model")
    db = f"sqlite:///{root / 'syn.db'}"
    fill_synthetic_store(db, 300)
    data_dir = root / "data"
    assert materialize(db, data_dir, research=ResearchResource(holdout_days=30)).success
    return db, data_dir


def _resources(db: str, data_dir: Path, cohort: str = "t") -> dict:
    return {
        "market_store": MarketStoreResource(db_url=db),
        "project": ProjectConfigResource(),
        "artifacts": ArtifactsResource(data_dir=str(data_dir), cohort=cohort),
        "research": ResearchResource(),
    }


def test_model_assets_write_diagnostics_that_add_up(prepared: tuple[str, Path]) -> None:
    db, data_dir = prepared
    res = dg.materialize(
        model.ASSETS,
        partition_key="ETH",
        instance=dg.DagsterInstance.ephemeral(),
        resources=_resources(db, data_dir),
    )
    assert res.success
    run = data_dir / "runs" / "t" / "ETH"
    for f in ("predictions.parquet", "folds.csv", "importance.csv", "walk_forward.json", "trades.csv", "diagnostics.json", "report.html"):
        assert (run / f).exists(), f
    wf = json.loads((run / "walk_forward.json").read_text())
    pred = pd.read_parquet(run / "predictions.parquet")
    assert pred["ts"].max() < wf["holdout_start"] and wf["holdout_days"] == 30
    trades = pd.read_csv(run / "trades.csv")
    assert len(trades) > 0
    assert (trades["exit_ts"] <= wf["holdout_start"]).all()  # no trade reaches into the holdout
    np.testing.assert_allclose(
        trades["net"], trades["gross"] - trades["fees"] - trades["slippage"] - trades["funding"], atol=1e-15
    )
    d = json.loads((run / "diagnostics.json").read_text())
    e = d["edge"]
    assert e["trades"] == len(trades)
    assert e["net_bps"] == pytest.approx(e["gross_bps"] - e["fees_bps"] - e["slippage_bps"] - e["funding_bps"])
    assert sum(d["exits"]["shares"].values()) == pytest.approx(1.0)
    assert d["calibration"]["direction"]["n"] > 0
    ci = d["edge_uncertainty"]["per_trade"]
    for k in ("gross", "fees", "slippage", "funding", "net"):
        assert ci[k]["lo"] <= ci[k]["mean"] <= ci[k]["hi"] and ci[k]["se"] > 0 and ci[k]["n"] == len(trades)
    assert ci["net"]["mean"] == pytest.approx(e["net_bps"])
    folds = d["folds"]
    assert len(folds["by_fold"]) >= 2 and folds["auc"]["n"] == len([f for f in folds["by_fold"] if f["auc"] == f["auc"]])
    assert folds["auc"]["lo"] <= folds["auc"]["mean"] <= folds["auc"]["hi"]
    assert sum(f["trades"] for f in folds["by_fold"]) == len(trades)
    mats = res.asset_materializations_for_node("backtest")
    assert "edge_decomposition" in mats[0].metadata
    man = json.loads((run / "manifest.json").read_text())
    assert man["coin"] == "ETH" and man["cohort"] == "t" and man["git_commit"]
    assert len(man["inputs"]["ml_dataset"]["sha256"]) == 64
    assert set(man["artifacts"]) >= {"trades.csv", "diagnostics.json", "predictions.parquet"}
    assert man["profile"]["exits"]["max_hold_hours"] == 12


def test_training_refuses_data_that_failed_blocking_qa(prepared: tuple[str, Path], tmp_path: Path) -> None:
    db, data_dir = prepared
    qa_path = data_dir / "qa" / "ETH.json"
    original = qa_path.read_text()
    bad = json.loads(original)
    bad["checks"]["qa_gaps"] = {"passed": False, "severity": "ERROR", "detail": "planted"}
    qa_path.write_text(json.dumps(bad))
    try:
        res = dg.materialize(
            [model.walk_forward_model], partition_key="ETH", instance=dg.DagsterInstance.ephemeral(),
            resources=_resources(db, data_dir), raise_on_error=False,
        )
    finally:
        qa_path.write_text(original)
    assert not res.success
    msgs = [e.step_failure_data.error.message for e in res.all_events if e.is_step_failure]
    assert any("ETH: blocking data QA failed (qa_gaps)" in m for m in msgs)
