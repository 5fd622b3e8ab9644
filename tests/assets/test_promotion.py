"""`staged_model` stages a registry version only for coins whose checklist verdict (and the portfolio's) is PASS;
the version holds the model trained on every row the validation judged, the resolved profile, the feature plan,
validation metrics, the verdict, the cohort and verified hashes. The retrain cadence runs only while paper
metrics stay aligned with validation."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from cryptoalgo_assets.defs.features import load_panel
from cryptoalgo_assets.defs.live import retrain_due
from cryptoalgo_assets.defs.promotion import staged_model, staging_decision
from cryptoalgo_core.config import load_coins
from cryptoalgo_core.features.plan import feature_plan, research_bounds
from cryptoalgo_core.live.model import ProductionModel
from cryptoalgo_core.live.tick import train_for_staging
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS
from resources.artifacts import ArtifactStore
from resources.paper import PaperStore
from resources.store import MarketStore
from tests.assets import live_world as lw


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return lw.build(tmp_path_factory.mktemp("promo_base"))


def _checklist(verdict: str, coins: dict[str, str]) -> dict:
    return {"schema": "cryptoalgo.checklist/1", "cohort": "c1", "verdict": verdict, "exit_code": 0,
            "coins": [{"coin": c, "verdict": v, "tier": "PILOT" if v == "PASS" else "PAPER", "score": 80.0,
                       "mode": "full", "reason": "tier PILOT" if v == "PASS" else "tier PAPER (score 50.0)",
                       "failed_gates": []} for c, v in coins.items()]}


def test_staging_decision() -> None:
    assert staging_decision(_checklist("PASS", {"ETH": "PASS", "SOL": "PASS"}), "ETH")[0]
    ok, why = staging_decision(_checklist("PASS", {"ETH": "PASS", "SOL": "FAIL"}), "SOL")
    assert not ok and "checklist FAIL" in why
    ok, why = staging_decision(_checklist("FAIL", {"ETH": "PASS"}), "ETH")
    assert not ok and "portfolio does not" in why
    assert not staging_decision(_checklist("PASS", {"ETH": "PASS"}), "BTC")[0]


def _cohort(w: dict) -> tuple[dict, object]:
    """A validated cohort's artifacts for ETH and SOL (what launch + validate write)."""
    art = ArtifactStore(str(w["data"]))
    store = MarketStore(w["url"])
    coins = load_coins()
    last = int(store.load_ts("ohlcv", "ETH")[-1])
    bounds = research_bounds((None, None), last - 20 * DAY_MS, 40)
    for coin in ("ETH", "SOL"):
        panel = load_panel(store, list(coins), (None, bounds.holdout_start))
        plan = feature_plan(panel, coin, coins[coin].features, (None, bounds.holdout_start), bounds=bounds)
        art.write_json(plan.as_dict(), "features", f"{coin}.meta.json")
        run = ("runs", "c1", coin)
        art.write_json({"params": {}, "chosen_trial": 7, "study": f"s-{coin}"}, *run, "optimized_profile.json")
        art.write_json({"end": bounds.end, "result_sha256": "feed"}, *run, "holdout.json")
        art.write_json({"tier": "PILOT"}, *run, "robustness.json")
        art.write_csv(pd.DataFrame({"net": [0.002, -0.001, 0.003], "gross": [0.004, 0.001, 0.005],
                                    "fees": 0.001, "slippage": 0.0005, "funding": 0.0005, "size": 0.5,
                                    "exit_reason": "time"}), *run, "cv_trades.csv")
    return {"bounds": bounds}, art


def test_staged_model_only_for_passing_coins(base: dict, tmp_path: Path) -> None:
    w = lw.copy(base, tmp_path / "w")
    info, art = _cohort(w)
    art.write_json(_checklist("PASS", {"ETH": "PASS", "SOL": "FAIL", "BTC": "FAIL"}), "checklist.json")
    inst, res = dg.DagsterInstance.get(), lw.resources(w)
    reg = lw.registry(w)
    for coin in ("ETH", "SOL"):
        out = dg.materialize([staged_model], partition_key=coin, instance=inst, resources=res)
        md = out.asset_materializations_for_node("staged_model")[0].metadata
        assert md["staged"].value is (coin == "ETH"), md["reason"].value
    assert reg.staged("SOL") == [] and len(reg.staged("ETH")) == 1
    v = reg.staged("ETH")[0]
    man = reg.staged_manifest("ETH", v)  # verified against its sha256s
    b = info["bounds"]
    assert (man["cohort"], man["verdict"], man["tier"], man["gates_passed"]) == ("c1", "PASS", "PILOT", True)
    assert man["trained"]["end"] == b.end and man["chosen_trial"] == 7 and man["holdout_sha256"] == "feed"
    assert 0.15 < man["metrics"]["brier"] < 0.35 and man["metrics"]["cv_trades"] == 3
    assert set(man["files"]) >= {"model.json", "profile.json", "plan.json", "direction.xgb.json", "touch.xgb.json"}
    # the staged model is the chosen profile trained on research + holdout rows
    d = Path(w["models"]) / "staging" / "ETH" / v
    staged = ProductionModel.from_files({n: (d / n).read_bytes() for n in man["files"]})
    store = MarketStore(w["url"])
    spec = load_coins()["ETH"]
    panel = load_panel(store, list(load_coins()), (None, b.end))
    plan = feature_plan(panel.before(b.holdout_start), "ETH", spec.features, (None, b.holdout_start), bounds=b)
    ref = train_for_staging(spec, plan, panel, b.end)
    feats = plan.build(panel)
    rows = feats[feats["ts"] >= b.end - 5 * DAY_MS]
    np.testing.assert_array_equal(staged.predict(rows)["p_dir"], ref.predict(rows)["p_dir"])
    # the portfolio fails now: nothing new is staged
    art.write_json(_checklist("FAIL", {"ETH": "PASS"}), "checklist.json")
    dg.materialize([staged_model], partition_key="ETH", instance=inst, resources=res)
    assert len(reg.staged("ETH")) == 1


def test_retrain_only_while_paper_metrics_align(base: dict, tmp_path: Path) -> None:
    w = lw.copy(base, tmp_path / "w")
    reg = lw.registry(w)
    lw.stage(w, "ETH")
    reg.promote("ETH", None, "test", "test")
    paper = PaperStore(MarketStore(w["url"]).engine)
    now = int(reg.production("ETH")["created_ms"]) + 40 * DAY_MS
    assert retrain_due(paper, reg, "ETH", 30, now) == (False, "not paper trading")
    paper.start("ETH", w["cut"], "v", "test", "test")
    ok = [{"name": "max_daily_drawdown", "status": "ok"}, {"name": "min_win_rate", "status": "insufficient"}]
    paper.record_tick("ETH", w["cut"] + HOUR_MS, "ACTIVE", 1.01, {"switches": ok})
    assert retrain_due(paper, reg, "ETH", 30, now)[0]
    assert not retrain_due(paper, reg, "ETH", 30, now - 20 * DAY_MS)[0]  # not due yet
    warn = [{"name": "max_daily_drawdown", "status": "warn"}]
    paper.record_tick("ETH", w["cut"] + 2 * HOUR_MS, "ACTIVE", 1.0, {"switches": warn})
    due, why = retrain_due(paper, reg, "ETH", 30, now)
    assert not due and "max_daily_drawdown" in why
    paper.set_state("ETH", "HALTED", "test", "test", halted_at=w["cut"])
    due, why = retrain_due(paper, reg, "ETH", 30, now)
    assert not due and "HALTED" in why
    assert json.loads(paper.ticks("ETH")["summary"].iloc[-1])["switches"] == warn


def test_retrain_schedule_requests_only_aligned_coins(base: dict, tmp_path: Path) -> None:
    import datetime as dt

    from cryptoalgo_assets.defs.live import retrain_schedule

    w = lw.copy(base, tmp_path / "w")
    reg = lw.registry(w)
    paper = PaperStore(MarketStore(w["url"]).engine)
    for coin in ("ETH", "SOL"):
        lw.stage(w, coin)
        reg.promote(coin, None, "test", "test")
        paper.start(coin, w["cut"], "v", "test", "test")
        paper.record_tick(coin, w["cut"] + HOUR_MS, "ACTIVE", 1.0, {"switches": [{"name": "x", "status": "ok"}]})
    paper.set_state("SOL", "HALTED", "a kill switch", "test", halted_at=w["cut"])
    when = dt.datetime.fromtimestamp(int(reg.production("ETH")["created_ms"]) / 1000 + 31 * 86400, tz=dt.UTC)
    ctx = dg.build_schedule_context(scheduled_execution_time=when, resources=lw.resources(w))
    reqs = list(retrain_schedule(ctx))
    assert [(r.partition_key, r.run_config["ops"]["staged_model"]["config"]["retrain"]) for r in reqs] == [
        ("ETH", True)]


def test_live_schedule_requests_one_run_per_tick_over_the_production_coins(base: dict, tmp_path: Path) -> None:
    import datetime as dt

    from cryptoalgo_assets.defs.live import live_schedule

    w = lw.copy(base, tmp_path / "w")
    res = lw.resources(w)
    when = dt.datetime(2025, 12, 20, 7, 5, tzinfo=dt.UTC)
    assert list(live_schedule(dg.build_schedule_context(scheduled_execution_time=when, resources=res))) == []
    reg = lw.registry(w)
    for coin in ("ETH", "SOL"):
        lw.stage(w, coin)
        reg.promote(coin, None, "test", "test")
    (req,) = live_schedule(dg.build_schedule_context(scheduled_execution_time=when, resources=res))
    assert req.run_key == "live-2025-12-20T07:00:00"
    assert req.tags["dagster/asset_partition_range_start"] == "ETH"
    assert req.tags["dagster/asset_partition_range_end"] == "SOL"
    assert req.run_config["ops"]["live_tick"]["config"] == {"at": "2025-12-20T07:00:00", "coins": ["ETH", "SOL"]}
