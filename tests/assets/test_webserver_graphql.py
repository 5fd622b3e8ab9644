"""The code location as the Dagster UI sees it: the real `dagster-webserver` started on loopback against
workspace.yaml, queried through its GraphQL API for the promotion / live / alerting assets, the kill-switch
checks on `paper_performance`, the sensors, schedules and jobs, and one check's result per coin partition.

The instance (a temporary DAGSTER_HOME with the project's dagster.yaml) is seeded before the server starts with
runless `paper_performance` materializations for ETH and SOL and a `max_daily_drawdown` evaluation on each
(ETH failed, SOL passed), built by the project's own converter so that each targets its partition's
materialization. The server is started once for the module and always stopped at the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from cryptoalgo_assets.checks import to_evaluation
from cryptoalgo_assets.launcher import LOCATION
from cryptoalgo_core.checks import CheckOutcome, Severity

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
REPOSITORY = "__repository__"  # the single repository of a Definitions-based code location
START_TIMEOUT_S = 120.0
COINS = ["BTC", "ETH", "SOL", "XRP", "DOGE"]
ASSETS = {"staged_model", "production_model", "signals", "paper_book", "paper_performance", "robustness_report"}
SWITCHES = {"max_daily_drawdown", "min_win_rate", "calibration_drift", "fee_edge_expansion", "replay_drift"}
RUNNING_SENSORS = {"promotion_sensor", "oncall_check_alerts", "oncall_run_failures", "oncall_run_recoveries"}
SCHEDULES = {"live_schedule": "5 * * * *", "retrain_schedule": "30 2 * * *"}
JOBS = {"live_job", "promote_job", "stage_job"}
SEEDED = {"ETH": False, "SOL": True}  # partition -> max_daily_drawdown passed


class GraphQL:
    """POSTs queries to the webserver's /graphql endpoint (loopback, never through a proxy)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(self, path: str, timeout: float = 5.0) -> int:
        with self._opener.open(self.base + path, timeout=timeout) as resp:
            return int(resp.status)

    def __call__(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(self.base + "/graphql", data=body,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        with self._opener.open(req, timeout=60) as resp:
            out = json.loads(resp.read())
        assert not out.get("errors"), f"GraphQL errors: {out['errors']}\nquery: {query}"
        return out["data"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seed(home: Path) -> None:
    """Runless ETH / SOL materializations of paper_performance, each followed by its max_daily_drawdown result."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for coin, passed in SEEDED.items():
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="paper_performance", partition=coin,
                                                                        description="seeded by the test"))
            record = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("paper_performance"), asset_partitions=[coin]), limit=1
            ).records[0]
            outcome = CheckOutcome("max_daily_drawdown", passed, Severity.ERROR,
                                   f"{coin}: {'ok' if passed else 'fail'}: seeded by the test")
            instance.report_runless_asset_event(to_evaluation(outcome, "paper_performance", coin, False, record))


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def _wait_until_loaded(gql: GraphQL, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Bounded poll: the server answers, then the code location reports LOADED (fails fast if it dies)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster-webserver exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if gql.get("/server_info") == 200:
                ws = gql("{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus"
                         " locationOrLoadError { __typename ... on PythonError { message } } } } } }")
                entries = {e["name"]: e for e in ws["workspaceOrError"].get("locationEntries", [])}
                entry = entries.get(LOCATION)
                if entry is not None and entry["loadStatus"] == "LOADED":
                    err = entry["locationOrLoadError"]
                    if err and err["__typename"] == "PythonError":
                        pytest.fail(f"code location {LOCATION} failed to load: {err['message']}")
                    return
                last = f"location entries: {entries}"
        except (OSError, urllib.error.URLError) as exc:  # not listening yet
            last = repr(exc)
        time.sleep(0.5)
    pytest.fail(f"dagster-webserver not ready after {START_TIMEOUT_S:.0f} s ({last}):\n{_tail(log)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """terminate -> wait 10 s -> kill the server's own process group (the webserver and its code server)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its session only: a code-server child left behind goes too
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def gql(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraphQL]:
    root = tmp_path_factory.mktemp("webserver")
    home, data = root / "dagster_home", root / "data"
    home.mkdir()
    data.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster_home" / "dagster.yaml").read_text())
    _seed(home)

    env = {k: v for k, v in os.environ.items() if k not in ("TRADER_DB_URL", "CRYPTOALGO_SOURCE")}
    env.update(DAGSTER_HOME=str(home), TRADER_DATA_DIR=str(data), TRADER_DB_PATH=str(data / "trading.db"))
    port = _free_port()
    log = root / "webserver.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port),
             "-w", str(REPO / "workspace.yaml")],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        client = GraphQL(f"http://127.0.0.1:{port}")
        _wait_until_loaded(client, proc, log)
        yield client
    finally:
        _stop(proc)


REPO_SELECTOR = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}


def _repository(gql: GraphQL, fields: str) -> dict[str, Any]:
    data = gql("query($sel: RepositorySelector!) { repositoryOrError(repositorySelector: $sel) { __typename"
               " ... on Repository { " + fields + " } ... on PythonError { message }"
               " ... on RepositoryNotFoundError { message } } }", {"sel": REPO_SELECTOR})
    repo = data["repositoryOrError"]
    assert repo["__typename"] == "Repository", repo
    return repo


def test_assets_and_kill_switch_checks(gql: GraphQL) -> None:
    nodes = gql("{ assetNodes { assetKey { path } isPartitioned partitionKeys groupName"
                " assetChecksOrError { __typename ... on AssetChecks { checks { name blocking } } } } }")["assetNodes"]
    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    assert ASSETS <= set(by_key), sorted(ASSETS - set(by_key))
    for key in ASSETS:
        assert by_key[key]["isPartitioned"], key
        assert by_key[key]["partitionKeys"] == COINS, (key, by_key[key]["partitionKeys"])

    perf = by_key["paper_performance"]
    assert perf["groupName"] == "live"
    assert perf["assetChecksOrError"]["__typename"] == "AssetChecks", perf["assetChecksOrError"]
    checks = {c["name"]: c for c in perf["assetChecksOrError"]["checks"]}
    assert set(checks) == SWITCHES
    assert not any(c["blocking"] for c in checks.values())  # kill switches halt the coin, never the run


def test_sensors_schedules_and_jobs(gql: GraphQL) -> None:
    repo = _repository(gql, "sensors { name defaultStatus sensorState { status } }"
                            " schedules { name cronSchedule executionTimezone defaultStatus scheduleState { status } }"
                            " jobs { name }")
    sensors = {s["name"]: s for s in repo["sensors"]}
    assert RUNNING_SENSORS <= set(sensors), sorted(RUNNING_SENSORS - set(sensors))
    for name in RUNNING_SENSORS:
        assert sensors[name]["defaultStatus"] == "RUNNING", (name, sensors[name])
        assert sensors[name]["sensorState"]["status"] == "RUNNING", (name, sensors[name])

    schedules = {s["name"]: s for s in repo["schedules"]}
    assert set(SCHEDULES) <= set(schedules), sorted(set(SCHEDULES) - set(schedules))
    for name, cron in SCHEDULES.items():
        assert schedules[name]["cronSchedule"] == cron, schedules[name]
        assert schedules[name]["executionTimezone"] == "UTC", schedules[name]

    jobs = {j["name"] for j in repo["jobs"]}
    assert JOBS <= jobs, sorted(JOBS - jobs)


def test_check_result_per_partition(gql: GraphQL) -> None:
    execs = gql("query($key: AssetKeyInput!) { assetCheckExecutions(assetKey: $key, checkName: \"max_daily_drawdown\","
                " limit: 20) { status partition evaluation { success partition severity description"
                " targetMaterialization { storageId } } } }",
                {"key": {"path": ["paper_performance"]}})["assetCheckExecutions"]
    by_part: dict[str, list[dict[str, Any]]] = {}
    for e in execs:
        by_part.setdefault(e["partition"], []).append(e)
    assert set(by_part) == set(SEEDED), by_part
    for coin, passed in SEEDED.items():
        assert len(by_part[coin]) == 1, by_part[coin]
        (e,) = by_part[coin]
        assert e["status"] == ("SUCCEEDED" if passed else "FAILED"), e
        ev = e["evaluation"]
        assert ev["success"] is passed and ev["partition"] == coin and ev["severity"] == "ERROR", ev
        assert ev["description"].startswith(f"{coin}: "), ev
        assert ev["targetMaterialization"] is not None, ev  # targets its partition's materialization

    one = gql("{ assetCheckExecutions(assetKey: {path: [\"paper_performance\"]}, checkName: \"max_daily_drawdown\","
              " partition: \"ETH\", limit: 5) { status partition } }")["assetCheckExecutions"]
    assert one == [{"status": "FAILED", "partition": "ETH"}]

    node = gql("{ assetNodeOrError(assetKey: {path: [\"paper_performance\"]}) { ... on AssetNode {"
               " assetCheckOrError(checkName: \"max_daily_drawdown\") { __typename ... on AssetCheck {"
               " partitionStatuses { __typename ... on AssetCheckDefaultPartitionStatuses {"
               " succeededPartitions failedPartitions } } } } } } }")
    check = node["assetNodeOrError"]["assetCheckOrError"]
    assert check["__typename"] == "AssetCheck", check
    status = check["partitionStatuses"]
    assert status["__typename"] == "AssetCheckDefaultPartitionStatuses", status
    assert status["succeededPartitions"] == ["SOL"] and status["failedPartitions"] == ["ETH"], status

    others = gql("{ assetCheckExecutions(assetKey: {path: [\"paper_performance\"]}, checkName: \"min_win_rate\","
                 " limit: 5) { partition } }")["assetCheckExecutions"]
    assert others == []  # nothing seeded for the other switches
