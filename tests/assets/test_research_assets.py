"""Research-data assets: features -> labels -> ml_dataset -> data_qa through Dagster; the QA gate blocks."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from click.testing import CliRunner

from cryptoalgo_assets.cli import main
from cryptoalgo_assets.defs import research_data
from cryptoalgo_core.timeutil import HOUR_MS
from resources.dagster_resources import ArtifactsResource, MarketStoreResource, ProjectConfigResource
from resources.store import MarketStore
from tests.conftest import fill_synthetic_store

COINS = ["BTC", "ETH", "SOL", "XRP", "DOGE"]


@pytest.fixture
def synthetic_store(tmp_path: Path) -> str:
    db = f"sqlite:///{tmp_path / 'syn.db'}"
    fill_synthetic_store(db, 100)
    return db


def test_research_assets_materialize_and_write_artifacts(synthetic_store: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    res = dg.materialize(
        research_data.ASSETS,
        partition_key="ETH",
        instance=dg.DagsterInstance.ephemeral(),
        resources={
            "market_store": MarketStoreResource(db_url=synthetic_store),
            "project": ProjectConfigResource(),
            "artifacts": ArtifactsResource(data_dir=str(data_dir)),
        },
    )
    assert res.success
    for rel in ("features/ETH.parquet", "features/ETH.csv", "labels/ETH.parquet", "ml/ETH.parquet",
                "qa/ETH.json", "qa/summary.csv"):
        assert (data_dir / rel).exists(), rel
    ds = pd.read_parquet(data_dir / "ml" / "ETH.parquet")
    assert {"t1", "target", "label", "ret_24", "funding_z_90"} <= set(ds.columns)
    labeled = ds[ds["target"].notna()]
    assert (labeled["t1"] > labeled["ts"]).all()
    assert (labeled["t1"] <= labeled["ts"] + (12 + 1) * HOUR_MS).all()  # ETH forward_hours = 12
    checks = {e.check_name: e for e in res.get_asset_check_evaluations()}
    assert checks["qa_gaps"].passed and checks["qa_target"].passed and checks["qa_missingness"].passed
    qa = json.loads((data_dir / "qa" / "ETH.json").read_text())
    assert qa["coin"] == "ETH" and qa["labeled_rows"] == len(labeled)
    summary = pd.read_csv(data_dir / "qa" / "summary.csv")
    assert summary["coin"].tolist() == ["ETH"]


def test_cli_features_exits_nonzero_naming_coin_and_check(synthetic_store: str, tmp_path: Path) -> None:
    store = MarketStore(synthetic_store)
    ts = store.load_ts("ohlcv", "SOL")
    cut = ts[len(ts) // 2]
    with store.engine.begin() as conn:  # a 13-hour outage in SOL's history
        conn.exec_driver_sql(
            "DELETE FROM ohlcv WHERE coin='SOL' AND ts >= ? AND ts < ?", (cut, cut + 13 * HOUR_MS)
        )
    res = CliRunner().invoke(
        main, ["features", "--coins", "ETH,SOL", "--db-path", synthetic_store, "--no-progress", "--workers", "1"]
    )
    assert res.exit_code == 3, res.output
    assert "SOL: data_qa.qa_gaps" in res.output
    assert "ETH: data_qa" not in res.output


def test_cli_features_without_data_is_a_named_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["features", "--coins", "BTC", "--db-path", str(tmp_path / "empty.db")])
    assert res.exit_code == 2 and "no OHLCV stored for ['BTC']" in res.output
