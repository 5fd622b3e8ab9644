"""`cryptoalgo launch` and `cryptoalgo runs` end to end (a reduced launch: two coins, the quick preset): flags map
onto the runs, bad input exits 2 before anything runs, the artifacts are complete, a re-launch of the same cohort
resumes its studies, the trial ledger counts every trial, a short history is warned about with the numbers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from cryptoalgo_assets.cli import main
from cryptoalgo_core.config import load_coins
from tests.conftest import fill_synthetic_store


def _run(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _one_line(output: str) -> str:
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    assert "Traceback" not in output and len(lines) == 1, output
    return lines[0]


@pytest.fixture
def store(tmp_path: Path) -> str:
    db = f"sqlite:///{tmp_path / 'l.db'}"
    fill_synthetic_store(db, 200)
    return db


@pytest.mark.parametrize(("args", "message"), [
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--coins", "ETH,NOPE"], "unknown coin(s) ['NOPE']"),
    (["--storage", "postgresql+psycopg2://u:secret@127.0.0.1/db"], "export CRYPTOALGO_OPTUNA_STORAGE"),
    (["--holdout-days", "190"], "190-day holdout"),
    (["--cohort", "../x"], "cohort '../x'"),
])
def test_bad_input_exits_2_before_any_run(store: str, args: list[str], message: str) -> None:
    res = _run(["launch", "--coins", "ETH", "--preset", "quick", "--db-path", store, "--no-progress", *args])
    assert res.exit_code == 2, res.output
    assert message in _one_line(res.output)
    assert "secret" not in res.output
    assert dg.DagsterInstance.get().get_runs() == []


def test_reduced_launch_artifacts_resume_and_ledger(store: str) -> None:
    args = ["launch", "--coins", "ETH,SOL", "--trials", "8", "--preset", "quick", "--holdout-days", "30",
            "--cohort", "c1", "--require-holdout-pass", "--db-path", store, "--no-progress"]
    res = _run(args)
    assert res.exit_code in (0, 3), res.output  # 3: a holdout gate blocked (ERROR, --require-holdout-pass)
    data = Path(os.environ["TRADER_DATA_DIR"])
    runs = dg.DagsterInstance.get().get_runs(filters=dg.RunsFilter(job_name="optimize_job"))
    assert sorted(r.tags["dagster/partition"] for r in runs) == ["ETH", "SOL"]
    for r in runs:  # the flags reach the run's config; the cohort its tags
        cfg = r.run_config["resources"]["optimize"]["config"]
        assert (cfg["preset"], cfg["trials"], cfg["require_holdout_pass"]) == ("quick", 8, True)
        assert r.tags["cryptoalgo/cohort"] == "c1"
    for coin in ("ETH", "SOL"):
        opt = json.loads((data / "runs" / "c1" / coin / "optimized_profile.json").read_text())
        assert opt["trial_counts"]["complete"] + opt["trial_counts"]["pruned"] == 8
        assert opt["preset"]["holdout_days"] == 30 and opt["params"] and opt["top_k"]
        assert set(opt["terms"]["terms"]) >= {"objective", "edge", "dispersion", "few_trades", "stop_loss",
                                               "fee_edge", "churn"}
        assert set(opt["profile_fragment"]) <= {"label", "model", "entry", "exits", "filters"}
        hold = json.loads((data / "runs" / "c1" / coin / "holdout.json").read_text())
        conds = {c["condition"] for c in hold["gate"]["conditions"]}
        assert conds == {"holdout_return", "holdout_sharpe", "holdout_trades", "stop_loss_share", "fee_edge_ratio"}
        assert hold["chosen"] == opt["chosen_trial"]  # the study's best, decided before the holdout was read
        assert hold["holdout_start"] == opt["holdout_start"]
        page = (data / "runs" / "c1" / coin / "optimization.html").read_text()
        for text in ("optimization history", "chosen candidate per CV fold", "holdout gate", "../plotly.min.js"):
            assert text in page, text
        gate_failed = not hold["gate"]["passed"]
        if gate_failed:
            assert res.exit_code == 3 and f"{coin} holdout_evaluation.holdout_gate" in res.output
    assert "optimization launch — cohort c1" in res.output
    assert (data / "runs" / "c1" / "plotly.min.js").stat().st_size > 1_000_000  # the page's plotly, once per cohort

    # a second launch of the same cohort resumes: no new trials, the same choice
    before = {c: json.loads((data / "runs" / "c1" / c / "optimized_profile.json").read_text()) for c in ("ETH", "SOL")}
    again = _run(args)
    assert again.exit_code == res.exit_code, again.output
    for coin in ("ETH", "SOL"):
        opt = json.loads((data / "runs" / "c1" / coin / "optimized_profile.json").read_text())
        assert opt["trial_counts"]["trials"] == before[coin]["trial_counts"]["trials"]
        assert opt["params"] == before[coin]["params"]
    # extending the budget continues the same study
    more = _run([a if a != "8" else "11" for a in args])
    assert more.exit_code in (0, 3), more.output
    opt = json.loads((data / "runs" / "c1" / "ETH" / "optimized_profile.json").read_text())
    assert opt["trial_counts"]["complete"] + opt["trial_counts"]["pruned"] == 11

    listed = _run(["runs", "--db-path", store])
    assert listed.exit_code == 0 and "c1" in listed.output and "ETH,SOL" in listed.output
    detail = _run(["runs", "--cohort", "c1", "--db-path", store])
    assert detail.exit_code == 0 and opt["data_fingerprint"][:16] in detail.output

    from resources.experiments import Tracker
    from resources.store import MarketStore

    st = MarketStore(store)
    # 11 trials in the study + 3 holdout reads of (top-k <= 3 candidates + the baseline)
    total = Tracker(st.engine).total_trials("ETH")
    hold = json.loads((data / "runs" / "c1" / "ETH" / "holdout.json").read_text())
    assert total == 11 + 3 * hold["evaluations"]
    st.dispose()


def test_short_history_is_warned_with_the_numbers(store: str) -> None:
    assert "ETH" in load_coins()
    res = _run(["launch", "--coins", "ETH", "--trials", "2", "--preset", "quick", "--n-cv-folds", "10",
                "--cohort", "w", "--db-path", store, "--no-progress"])
    assert res.exit_code in (0, 1, 3), res.output
    assert "ETH: 200 days of data, but holdout 30 d + min_train_days 90 d + 10 folds x 14 d = 260 d" in res.output
