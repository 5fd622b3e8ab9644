"""`cryptoalgo validate` and `cryptoalgo checklist` end to end through the instance: a reduced launch with the
paper screen, the artifacts and the checklist schema; checklist exit codes on constructed cohorts whose
portfolio verdict is known (two independent pilot-ready coins pass; one coin, or a perfectly correlated pair,
is blocked); bad input exits 2 before any run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from cryptoalgo_assets.cli import main
from tests.conftest import fill_synthetic_store

CHECKLIST_KEYS = {"schema", "cohort", "generated_utc", "verdict", "exit_code", "coins", "portfolio"}
COIN_KEYS = {"coin", "verdict", "tier", "score", "mode", "reason", "failed_gates"}


def _run(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _data() -> Path:
    return Path(os.environ["TRADER_DATA_DIR"])


def _check_schema(doc: dict) -> None:
    assert set(doc) == CHECKLIST_KEYS and doc["schema"] == "cryptoalgo.checklist/1"
    assert doc["verdict"] in ("PASS", "FAIL") and doc["exit_code"] == (0 if doc["verdict"] == "PASS" else 3)
    for c in doc["coins"]:
        assert set(c) == COIN_KEYS and c["verdict"] in ("PASS", "FAIL")
        for g in c["failed_gates"]:
            assert set(g) == {"gate", "value", "threshold"}
    assert set(doc["portfolio"]) == {"verdict", "basket", "dropped", "failed", "conditions"}


def test_launch_with_screen_then_validate_and_checklist(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'v.db'}"
    fill_synthetic_store(db, 240)
    res = _run(["launch", "--coins", "ETH,BTC", "--trials", "10", "--preset", "quick", "--holdout-days", "30",
                "--cohort", "v1", "--screen-threshold", "0", "--db-path", db, "--no-progress"])
    assert res.exit_code in (0, 3), res.output
    assert "paper screen (score >= 0)" in res.output and "deployment checklist" in res.output
    run = _data() / "runs" / "v1"
    for coin in ("ETH", "BTC"):  # threshold 0: every coin goes on to the full validation
        for name in ("robustness_screen.json", "robustness.json", "robustness.html", "cv_daily.csv"):
            assert (run / coin / name).exists(), (name, res.output)
        doc = json.loads((run / coin / "robustness.json").read_text())
        mc = doc["monte_carlo"]
        assert doc["mode"] == "full"
        assert mc["bootstrap"]["n_paths"] == 10_000 if doc["track"]["trades"] >= 2 else "nothing to resample" in mc[
            "reason"]
        dsr = doc["stats"]["dsr"]
        assert dsr["n_trials"] >= 10 + 1  # the ledger: the study's trials plus the holdout reads
        assert 0 <= doc["score"] <= 100 and doc["tier"] in ("REJECT", "RESEARCH", "PAPER", "PILOT", "FULL")
    check = json.loads((run / "checklist.json").read_text())
    _check_schema(check)
    assert res.exit_code == check["exit_code"]
    assert (run / "index.html").exists() and (_data() / "checklist.json").exists()
    # the runs are the code location's jobs, on the instance
    inst = dg.DagsterInstance.get()
    jobs = {r.job_name for r in inst.get_runs()}
    assert {"optimize_job", "validate_job", "portfolio_job", "checklist_job"} <= jobs
    # validate again (screen only, one coin) and checklist --json
    res = _run(["validate", "--coins", "ETH", "--mode", "screen", "--cohort", "v1", "--db-path", db,
                "--no-progress"])
    assert res.exit_code == 0, res.output  # the screen warns, it does not block
    res = _run(["checklist", "--json", "--cohort", "v1", "--db-path", db])
    doc = json.loads(res.stdout)
    _check_schema(doc)
    assert res.exit_code == doc["exit_code"]


def _fake_cohort(name: str, returns: dict[str, np.ndarray], tier: str = "PILOT") -> None:
    """A cohort whose coins have full robustness reports at ``tier`` and the given daily CV returns."""
    days = pd.date_range("2025-01-01", periods=len(next(iter(returns.values()))), freq="D", tz="UTC")
    day_ms = (days.asi8 // 1_000_000).astype(np.int64)
    for coin, r in returns.items():
        d = _data() / "runs" / name / coin
        d.mkdir(parents=True, exist_ok=True)
        doc = {"coin": coin, "mode": "full", "tier": tier, "score": 70.0, "passed": tier in ("PILOT", "FULL"),
               "gates": [{"gate": "dsr", "value": 0.95, "threshold": ">= 0.9", "passed": True, "hard": False}],
               "failed": [], "capped_by": [], "regimes": []}
        (d / "robustness.json").write_text(json.dumps(doc))
        pd.DataFrame({"day": day_ms, "ret": r, "fold": 0}).to_csv(d / "cv_daily.csv", index=False)
        hours = np.arange(day_ms[0], day_ms[-1] + 86_400_000, 3_600_000, dtype=np.int64)
        side = np.zeros(hours.size, np.int8)
        side[: hours.size // 10] = 1 if coin == "ETH" else 0
        pd.DataFrame({"ts": hours, "side": side}).to_parquet(d / "cv_exposure.parquet", index=False)


@pytest.mark.parametrize(("case", "verdict"), [("independent", "PASS"), ("single", "FAIL"), ("copies", "FAIL")])
def test_checklist_exit_code_follows_the_portfolio_verdict(tmp_path: Path, case: str, verdict: str) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    fill_synthetic_store(db, 3, kinds=("ohlcv",))
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.001, 0.01, 200), rng.normal(0.001, 0.01, 200)
    returns = {"independent": {"ETH": a, "SOL": b}, "single": {"ETH": a}, "copies": {"ETH": a, "SOL": a.copy()}}
    _fake_cohort(f"k-{case}", returns[case])
    res = _run(["checklist", "--json", "--cohort", f"k-{case}", "--db-path", db])
    doc = json.loads(res.stdout)
    _check_schema(doc)
    assert doc["verdict"] == verdict and res.exit_code == (0 if verdict == "PASS" else 3)
    failed = doc["portfolio"]["failed"]
    if case == "single":
        assert "coins" in failed
    if case == "copies":  # the copy is dropped for the correlation; one coin left is not a portfolio
        assert doc["portfolio"]["basket"] in (["ETH"], ["SOL"], ["ETH", "SOL"])
        assert "coins" in failed or "max_pair_correlation" in failed
    if verdict == "PASS":
        assert doc["portfolio"]["basket"] == ["ETH", "SOL"]
        assert {c["coin"]: c["verdict"] for c in doc["coins"]}["ETH"] == "PASS"
        assert {c["coin"]: c["verdict"] for c in doc["coins"]}["BTC"] == "FAIL"  # never validated


@pytest.mark.parametrize(("args", "message"), [
    (["validate", "--coins", "NOPE"], "unknown coin(s) ['NOPE']"),
    (["validate", "--all", "--coins", "ETH"], "use --all or --coins"),
    (["validate", "--cohort", "../x"], "cohort '../x'"),
    (["validate"], "no launch under"),
    (["checklist"], "no launch under"),
])
def test_bad_input_exits_2_before_any_run(args: list[str], message: str) -> None:
    res = _run([*args, "--no-progress"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output and message in lines[0], res.output
    assert dg.DagsterInstance.get().get_runs() == []
