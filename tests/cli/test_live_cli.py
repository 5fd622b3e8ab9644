"""`cryptoalgo promote | live --once | paper status | enable | rollback` through the Dagster instance: each
command submits the code location's job (the runs carry their origin), prints one line on bad input (exit 2)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from cryptoalgo_assets.cli import main
from cryptoalgo_core.timeutil import HOUR_MS, ms_to_iso
from tests.assets import live_world as lw


def _run(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return lw.build(tmp_path_factory.mktemp("cli_live_base"))


def test_promote_live_status_enable_rollback(base: dict, tmp_path: Path) -> None:
    w = lw.copy(base, tmp_path / "w")
    data = Path(os.environ["TRADER_DATA_DIR"])
    w.update(data=data, models=data / "models")  # the CLI's registry: $TRADER_DATA_DIR/models
    db = ["--db-path", w["url"]]
    res = _run(["promote", "--coin", "ETH", *db, "--no-progress"])
    assert res.exit_code == 2 and "no staged model version" in res.output
    res = _run(["live", "--once", *db, "--no-progress"])
    assert res.exit_code == 2 and "no coin has a production model" in res.output
    v = lw.stage(w, "ETH")
    res = _run(["promote", "--coin", "eth", *db, "--no-progress"])
    assert res.exit_code == 0, res.output
    assert f"ETH: production - -> {v}" in res.output
    at = ms_to_iso(w["cut"] + 3 * HOUR_MS)
    res = _run(["live", "--once", "--at", at, *db, "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "paper only" in res.output and "ACTIVE" in res.output
    res = _run(["live", "--once", "--at", "yesterday-ish", *db, "--no-progress"])
    assert res.exit_code == 2 and "--at" in res.output
    res = _run(["live", "--once", "--at", ms_to_iso(w["cut"] - HOUR_MS), *db, "--no-progress"])
    assert res.exit_code == 2 and "trained on data to" in res.output
    res = _run(["paper", "status", "--json", *db])
    rows = json.loads(res.output)
    assert [(r["coin"], r["state"], r["version"]) for r in rows] == [("ETH", "ACTIVE", v)]
    assert rows[0]["last_tick"] == w["cut"] + 3 * HOUR_MS
    res = _run(["enable", "--coin", "ETH", *db])
    assert res.exit_code == 2 and "not HALTED" in res.output
    res = _run(["enable", "--coin", "DOGE", *db])
    assert res.exit_code == 2 and "not paper trading" in res.output
    res = _run(["rollback", "--coin", "ETH", *db, "--no-progress"])
    assert res.exit_code == 2 and "no earlier production version" in res.output
    res = _run(["promote", "--coin", "NOPE", *db])
    assert res.exit_code == 2
    inst = dg.DagsterInstance.get()
    for job in ("promote_job", "live_job"):
        runs = inst.get_runs(filters=dg.RunsFilter(job_name=job))
        assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.SUCCESS
        assert runs[0].remote_job_origin.location_name == "cryptoalgo"
