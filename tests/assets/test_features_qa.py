"""Features -> labels -> ml_dataset -> data_qa through Dagster: artifacts, the QA gate, optional open interest,
the research window, and the explicit basket behind the shared features."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from cryptoalgo_assets.defs import data_qa, features
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS, ms_to_date, parse_date_ms
from resources.dagster_resources import (
    ArtifactsResource,
    MarketSourceResource,
    MarketStoreResource,
    ProjectConfigResource,
    ResearchResource,
)
from resources.store import MarketStore
from tests.conftest import fill_synthetic_store

REPO = Path(__file__).resolve().parents[2]
ASSETS = [*features.ASSETS, data_qa.data_qa]


def materialize(db: str, data_dir: Path, coin: str = "ETH", research: ResearchResource | None = None,
                project: ProjectConfigResource | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        partition_key=coin,
        instance=dg.DagsterInstance.ephemeral(),
        resources={
            "market_store": MarketStoreResource(db_url=db),
            "project": project or ProjectConfigResource(),
            "research": research or ResearchResource(holdout_days=10),
            "artifacts": ArtifactsResource(data_dir=str(data_dir)),
        },
        raise_on_error=False,
    )


def checks(res: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in res.get_asset_check_evaluations()}


@pytest.fixture(scope="module")
def full_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    db = f"sqlite:///{tmp_path_factory.mktemp('fq') / 'syn.db'}"
    fill_synthetic_store(db, 100)
    return db


def test_research_assets_materialize_and_write_artifacts(full_store: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    res = materialize(full_store, data_dir)
    assert res.success
    for rel in ("features/ETH.parquet", "features/ETH.csv", "features/ETH.meta.json", "labels/ETH.parquet",
                "ml/ETH.parquet", "qa/ETH.json", "qa/summary.csv"):
        assert (data_dir / rel).exists(), rel
    ds = pd.read_parquet(data_dir / "ml" / "ETH.parquet")
    assert {"t1", "target", "label", "ret_24", "funding_z_90", "oi_chg_24"} <= set(ds.columns)
    labeled = ds[ds["target"].notna()]
    assert (labeled["t1"] > labeled["ts"]).all()
    assert (labeled["t1"] <= labeled["ts"] + (12 + 1) * HOUR_MS).all()  # ETH forward_hours = 12
    c = checks(res)
    assert all(c[n].passed for n in ("qa_gaps", "qa_target", "qa_missingness", "qa_feature_set"))
    assert c["qa_gaps"].partition == "ETH"
    qa = json.loads((data_dir / "qa" / "ETH.json").read_text())
    assert qa["coin"] == "ETH" and qa["labeled_rows"] == len(labeled)
    assert pd.read_csv(data_dir / "qa" / "summary.csv")["coin"].tolist() == ["ETH"]


def test_coin_without_any_open_interest_trains_without_oi_features(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'nooi.db'}"
    fill_synthetic_store(db, 100, kinds=("ohlcv", "funding"))
    res = materialize(db, tmp_path / "data")
    assert res.success
    c = checks(res)
    assert c["qa_missingness"].passed and c["qa_gaps"].passed  # not blocked
    fs = c["qa_feature_set"]
    assert not fs.passed and fs.severity == dg.AssetCheckSeverity.WARN
    assert "open_interest left out: no open interest stored for ETH" in (fs.description or "")
    meta = json.loads((tmp_path / "data" / "features" / "ETH.meta.json").read_text())
    assert "open_interest" in meta["dropped"] and not any(f.startswith("oi_") for f in meta["features"])
    mat = res.asset_materializations_for_node("features")[0]
    assert "open_interest" in mat.metadata["dropped_groups"].value


def test_open_interest_that_ends_early_blocks_with_a_window_that_fixes_it(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'oiend.db'}"
    fill_synthetic_store(db, 120)
    store = MarketStore(db)
    last = store.stats("ohlcv", "ETH")["last_ts"]
    cut = last - 30 * DAY_MS
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM open_interest WHERE ts >= ?", (cut,))
    res = materialize(db, tmp_path / "data")
    miss = checks(res)["qa_missingness"]
    assert not miss.passed and miss.severity == dg.AssetCheckSeverity.ERROR
    last_oi = cut - HOUR_MS
    stop = ms_to_date(last_oi - last_oi % DAY_MS + DAY_MS)  # the day after the last OI value (exclusive end)
    text = miss.description or ""
    assert "open interest ends at" in text and f"cryptoalgo features --end {stop}" in text
    assert "[open_interest]" not in text or "disabled_groups: [open_interest]" in text
    fixed = materialize(db, tmp_path / "data2", research=ResearchResource(end=stop, holdout_days=10))
    assert fixed.success and checks(fixed)["qa_missingness"].passed
    ds = pd.read_parquet(tmp_path / "data2" / "ml" / "ETH.parquet")
    assert ds["ts"].max() < parse_date_ms(stop)


def test_a_single_coin_on_its_own_works(tmp_path: Path) -> None:
    """Only BTC ingested: its features use what the basket has (BTC), with a warning, and the gate passes."""
    from cryptoalgo_core.config import load_coins, load_sources
    from resources.ingest import SourceSet, ingest_dataset

    db = f"sqlite:///{tmp_path / 'one.db'}"
    store = MarketStore(db)
    sources = SourceSet("synthetic", load_sources())
    end = sources.now_ms("ohlcv")
    for kind in ("ohlcv", "funding"):
        ingest_dataset(kind, load_coins()["BTC"], sources, store, end - 100 * DAY_MS, end, 0.01)
    res = materialize(db, tmp_path / "data", coin="BTC")
    assert res.success
    fs = checks(res)["qa_feature_set"]
    assert not fs.passed and fs.severity == dg.AssetCheckSeverity.WARN
    assert "no OHLCV for basket coin(s) ETH, SOL, XRP, DOGE" in (fs.description or "")
    meta = json.loads((tmp_path / "data" / "features" / "BTC.meta.json").read_text())
    assert meta["panel_coins"] == ["BTC"] and not any(f.startswith("leadlag_") for f in meta["features"])


def test_basket_is_explicit_adding_a_coin_changes_no_other_coin(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    for f in (REPO / "config").glob("*.yaml"):
        (cfg / f.name).write_text(f.read_text())
    text = (cfg / "coins.yaml").read_text()
    (cfg / "coins.yaml").write_text(text + "  ADA:\n    symbols: {coinbase: ADA-USD, replay: ADA}\n")
    from cryptoalgo_core.features.build import feature_names

    base = ProjectConfigResource()
    more = ProjectConfigResource(config_dir=str(cfg))
    assert "ADA" in more.coins()
    assert more.panel_coins("BTC") == base.panel_coins("BTC") == ["BTC", "ETH", "SOL", "XRP", "DOGE"]
    assert more.panel_coins("ADA") == ["BTC", "ETH", "SOL", "XRP", "DOGE", "ADA"]
    assert feature_names(more.panel_coins("BTC"), "BTC") == feature_names(base.panel_coins("BTC"), "BTC")
    (cfg / "coins.yaml").write_text(text.replace("basket: [BTC, ETH, SOL, XRP, DOGE]", "basket: [BTC, NOPE]"))
    from cryptoalgo_core.config import ConfigError, load_basket

    with pytest.raises(ConfigError, match=r"basket names unknown coin\(s\) \['NOPE'\]"):
        load_basket(cfg / "coins.yaml")


def test_research_automation_requests_research_after_new_market_data(full_store: str, tmp_path: Path) -> None:
    from cryptoalgo_assets.definitions import build_definitions
    from cryptoalgo_assets.defs import market_data

    defs = build_definitions(market_store=MarketStoreResource(db_url=full_store),
                             artifacts=ArtifactsResource(data_dir=str(tmp_path / "data")))
    instance = dg.DagsterInstance.ephemeral()
    dg.materialize(ASSETS, partition_key="ETH", instance=instance, resources={
        "market_store": MarketStoreResource(db_url=full_store), "project": ProjectConfigResource(),
        "research": ResearchResource(holdout_days=10), "artifacts": ArtifactsResource(data_dir=str(tmp_path / "data"))})
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    store = MarketStore(full_store)
    from cryptoalgo_core.timeutil import quarter_key

    quarter = quarter_key(int(store.stats("ohlcv", "ETH")["last_ts"]))
    res = dg.materialize([market_data.market_data], selection=["ohlcv"], instance=instance,
                         partition_key=f"ETH|{quarter}", resources={
                             "market_store": MarketStoreResource(db_url=full_store),
                             "market_source": MarketSourceResource(source="synthetic"),
                             "project": ProjectConfigResource()})
    assert res.success
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert after.get_requested_partitions(dg.AssetKey("features")) == {"ETH"}
    assert after.get_requested_partitions(dg.AssetKey("labels")) == {"ETH"}
    assert after.get_requested_partitions(dg.AssetKey("walk_forward_model")) == set()  # the model stays manual
