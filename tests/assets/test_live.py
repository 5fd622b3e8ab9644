"""The promotion sensor, the hourly tick and the kill switches through Dagster (the real instance on disk): a
staged version is promoted once and a rollback is honoured; a re-run tick never decides or fills twice; a
kill switch that fails halts only its coin (signals stop, the position closes at the next bar), pages on-call
through a loopback receiver once, and resolves after `enable`; no secret reaches logs, metadata or files."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from cryptoalgo_assets.defs import alerts, promotion
from cryptoalgo_assets.defs.live import load_live
from cryptoalgo_core.config import load_gates
from cryptoalgo_core.live.tick import decisions
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS
from resources.dagster_resources import AlertingResource
from resources.paper import PaperStore
from resources.store import MarketStore
from tests.assets import live_world as lw
from tests.resources.test_alerting import Receiver, _start_receiver


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return lw.build(tmp_path_factory.mktemp("live_base"))


@pytest.fixture
def world(base: dict, tmp_path: Path) -> dict:
    return lw.copy(base, tmp_path / "w")


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch):
    for v in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(v, raising=False)
    rec = _start_receiver()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


def _paper(w: dict) -> PaperStore:
    return PaperStore(MarketStore(w["url"]).engine)


def test_promotion_sensor_promotes_once_and_rollback_holds(world: dict) -> None:
    inst = dg.DagsterInstance.get()
    res = lw.resources(world)
    assert lw.promote_by_sensor(world, inst, res) == []  # nothing staged
    v1 = lw.stage(world, "ETH")
    assert lw.promote_by_sensor(world, inst, res) == ["ETH"]
    assert lw.promote_by_sensor(world, inst, res) == []  # already production
    v2 = lw.stage(world, "ETH")
    bad = lw.registry(world).stage("ETH", "c1", "FAIL", world["files"]["ETH"], {"tier": "PAPER", "gates_passed": False})
    assert lw.promote_by_sensor(world, inst, res) == []  # the newest staged version did not pass its gates
    world_reg = lw.registry(world)
    assert world_reg.production("ETH")["version"] == v1 and bad > v2
    out = dg.materialize([promotion.production_model], partition_key="ETH", instance=inst, resources=res,
                         run_config={"ops": {"production_model": {"config": {"version": v2, "reason": "by hand"}}}})
    assert out.success and world_reg.production("ETH")["version"] == v2
    dg.materialize([promotion.production_model], partition_key="ETH", instance=inst, resources=res,
                   run_config={"ops": {"production_model": {"config": {"action": "rollback", "reason": "drift"}}}})
    assert world_reg.production("ETH")["version"] == v1
    assert lw.promote_by_sensor(world, inst, res) == []  # a rolled-back version is not promoted again
    hist = world_reg.history("ETH")
    assert [(h["to_version"], h["actor"]) for h in hist] == [(v1, "promotion_sensor"), (v2, "cli"), (v1, "cli")]
    assert "passed its gates" in hist[0]["reason"] and hist[2]["reason"] == "rollback: drift"


def test_a_rerun_tick_never_decides_or_fills_twice(world: dict) -> None:
    inst = dg.DagsterInstance.get()
    res = lw.resources(world)
    lw.stage(world, "ETH")
    lw.promote_by_sensor(world, inst, res)
    for k in range(1, 97):  # hourly, four days
        lw.tick(world, "ETH", world["cut"] + k * HOUR_MS, inst, res)
    paper = _paper(world)
    seg = int(paper.state("ETH")["segment"])
    sig, fills = paper.signals("ETH"), paper.fills("ETH", seg)
    assert len(sig) == 96 and (sig["note"] == "").all() and len(fills) >= 1  # one bar decided per tick
    again = lw.tick(world, "ETH", world["cut"] + 96 * HOUR_MS, inst, res)
    sig_md = next(m for m in again.asset_materializations_for_node("live_tick") if m.asset_key.path == ["signals"])
    assert sig_md.metadata["decided"].value == 0 and sig_md.partition == "ETH"
    assert paper.signals("ETH").equals(sig)
    assert paper.fills("ETH", seg).drop(columns=[]).equals(fills)
    assert len(paper.ticks("ETH")) == 96  # the tick row was rewritten, not added
    older = lw.tick(world, "ETH", world["cut"] + 50 * HOUR_MS, inst, res)  # an older hour: nothing moves back
    assert older.success and paper.state("ETH")["last_tick_ms"] == world["cut"] + 96 * HOUR_MS
    assert paper.signals("ETH").equals(sig) and len(paper.ticks("ETH")) == 96


def _fake_decision(world: dict, coin: str, after: int) -> int:
    """Log a long decision the model would not take, for a bar the live tick has not decided yet (as if the tick
    had seen other data): the paper book trades it, the backtest replay does not."""
    gates = load_gates().live
    reg = lw.registry(world)
    live = load_live(reg, coin, gates)
    store = MarketStore(world["url"])
    from cryptoalgo_assets.defs.features import load_panel

    end = after + 24 * HOUR_MS
    panel = load_panel(store, list(live.plan.panel_coins), (end - gates.history_days * DAY_MS, end + 1))
    rows = decisions(live, panel, end, after, after - HOUR_MS, 1.0, "ACTIVE", 72)
    b = next(int(r.ts) for r in rows.itertuples() if r.signal == 0 and r.ts > after + 2 * HOUR_MS)
    fake = rows[rows["ts"] == b].assign(signal=1, size=0.2)
    assert _paper(world).add_signals(coin, fake, live.version, b) == 1
    return b


def test_kill_switch_halts_only_its_coin_pages_once_and_resolves(world: dict, receiver: Receiver) -> None:
    inst = dg.DagsterInstance.get()
    alerting = AlertingResource(webhook_url=receiver.url("/oncall"), log_path=str(world["data"] / "alerts.jsonl"),
                                timeout_s=2, attempts=2)
    res = lw.resources(world, alerting=alerting)
    for c in lw.COINS:
        lw.stage(world, c)
    assert sorted(lw.promote_by_sensor(world, inst, res)) == ["ETH", "SOL"]
    t = world["cut"] + HOUR_MS
    first = lw.tick_all(world, list(lw.COINS), t, inst, res)  # one run per tick, each coin on its partition
    parts = {(m.asset_key.path[0], m.partition) for m in first.asset_materializations_for_node("live_tick")}
    assert parts == {(a, c) for a in ("signals", "paper_book", "paper_performance") for c in lw.COINS}
    bar = _fake_decision(world, "ETH", t)
    paper = _paper(world)
    for k in range(1, 31):  # until the fake trade has closed and been replayed
        lw.tick_all(world, list(lw.COINS), t + k * HOUR_MS, inst, res)
        if paper.state("ETH")["state"] == "HALTED":
            break
    halted_at = t + k * HOUR_MS
    assert paper.state("ETH")["state"] == "HALTED" and "replay_drift" in paper.state("ETH")["reason"]
    assert paper.state("SOL")["state"] == "ACTIVE"  # only the coin whose switch failed
    assert bar < halted_at
    failed = set()
    for run in inst.get_runs():
        for e in inst.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            data = e.dagster_event.asset_check_evaluation_data
            if not data.passed:
                failed.add((data.check_name, data.partition))
    assert failed == {("replay_drift", "ETH")}
    # on-call: one trigger for the failing switch, none for the passing ones; a second evaluation sends nothing
    ctx = dg.build_sensor_context(instance=inst, resources=res)
    alerts.oncall_check_alerts(ctx)
    triggers = [b for b in receiver.bodies if b["event"] == "trigger"]
    assert [b["key"] for b in triggers] == ["check:paper_performance:replay_drift:ETH"]
    assert "KILL SWITCH" in triggers[0]["summary"] and triggers[0]["severity"] == "critical"
    alerts.oncall_check_alerts(dg.build_sensor_context(instance=inst, resources=res, cursor=ctx.cursor))
    assert len(receiver.bodies) == 1
    # halted: every later decision is flat, and the position (if any) closes at the next bar's open
    for k in range(1, 4):
        lw.tick(world, "ETH", halted_at + k * HOUR_MS, inst, res)
    later = paper.signals("ETH", since=halted_at)  # bars decided after the halt
    assert len(later) == 3 and (later["signal"] == 0).all() and (later["state"] == "HALTED").all()
    seg = int(paper.state("ETH")["segment"])
    assert (paper.fills("ETH", seg)["status"] == "closed").all()
    # re-enabled explicitly (once flat): a new flat segment; its checks pass, so the alert resolves
    paper.enable("ETH", halted_at + 3 * HOUR_MS, "investigated", "test")
    lw.tick(world, "ETH", halted_at + 4 * HOUR_MS, inst, res)
    assert paper.state("ETH")["state"] == "ACTIVE"
    alerts.oncall_check_alerts(dg.build_sensor_context(instance=inst, resources=res, cursor=ctx.cursor))
    assert [b["event"] for b in receiver.bodies] == ["trigger", "resolve"]
    events = [(e["from_state"], e["to_state"], e["actor"]) for e in paper.events("ETH")]
    assert events == [(None, "ACTIVE", "live"), ("ACTIVE", "HALTED", "kill_switch"), ("HALTED", "ACTIVE", "test")]


def test_no_secret_reaches_logs_metadata_or_files(world: dict, receiver: Receiver,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    secret_path = "/hook/SECRET-5f3a9c"
    monkeypatch.setenv("CRYPTOALGO_ALERT_WEBHOOK_URL", receiver.url(secret_path))
    monkeypatch.setenv("CRYPTOALGO_ALERT_PAGERDUTY_ROUTING_KEY", "RK-SECRET-77d1")
    monkeypatch.setenv("CRYPTOALGO_ALERT_PAGERDUTY_URL", receiver.url("/pd"))
    monkeypatch.setenv("COINBASE_API_SECRET", "CB-SECRET-0c4e")  # an exchange key in the environment
    from resources.dagster_resources import default_alerting

    alerting = default_alerting()
    assert isinstance(alerting.webhook_url, dg.EnvVar)  # wired through dg.EnvVar, not a value
    inst = dg.DagsterInstance.get()
    res = lw.resources(world, alerting=alerting)
    lw.stage(world, "ETH")
    lw.promote_by_sensor(world, inst, res)
    t = world["cut"] + HOUR_MS
    lw.tick(world, "ETH", t, inst, res)
    _fake_decision(world, "ETH", t)
    for k in range(1, 31):
        out = lw.tick(world, "ETH", t + k * HOUR_MS, inst, res)
        if _paper(world).state("ETH")["state"] == "HALTED":
            break
    alerts.oncall_check_alerts(dg.build_sensor_context(instance=inst, resources=res))
    assert any(p == secret_path for p, _, _ in receiver.requests)  # the secret URL was used ...
    pd_body = next(b for p, _, b in receiver.requests if p == "/pd")
    assert pd_body["routing_key"] == "RK-SECRET-77d1"
    secrets = ("SECRET-5f3a9c", "RK-SECRET-77d1", "CB-SECRET-0c4e")
    texts = []  # ... and appears nowhere else: run logs and metadata, files, the store's tables
    for run in inst.get_runs():
        for entry in inst.all_logs(run.run_id):
            texts.append(str(entry))
        texts.append(json.dumps(run.run_config, default=str))
    texts.append(str(out.all_events))
    for p in Path(world["data"]).rglob("*"):
        if p.is_file() and p.suffix in (".json", ".jsonl", ".csv", ".txt", ""):
            texts.append(p.read_text(errors="replace"))
    eng = MarketStore(world["url"]).engine
    with eng.connect() as c:
        for table in sa.inspect(eng).get_table_names():
            texts.extend(str(r) for r in c.execute(sa.text(f'SELECT * FROM "{table}"')))
    blob = "\n".join(texts)
    assert "replay_drift" in blob and len(blob) > 10_000
    for s in secrets:
        assert s not in blob, s


def test_a_new_production_version_closes_the_old_position_and_starts_flat(world: dict) -> None:
    inst = dg.DagsterInstance.get()
    res = lw.resources(world)
    v1 = lw.stage(world, "ETH")
    lw.promote_by_sensor(world, inst, res)
    paper = _paper(world)
    t = world["cut"] + HOUR_MS
    for k in range(0, 200):  # tick until a position is open
        lw.tick(world, "ETH", t + k * HOUR_MS, inst, res)
        fills = paper.fills("ETH")
        if len(fills) and (fills["status"] == "open").any():
            break
    assert (fills["status"] == "open").any(), "no position opened in 200 hours"
    switch_at = t + (k + 1) * HOUR_MS
    old_seg = int(paper.state("ETH")["segment"])
    v2 = lw.stage(world, "ETH")
    assert lw.promote_by_sensor(world, inst, res) == ["ETH"]
    lw.tick(world, "ETH", switch_at, inst, res)
    st = paper.state("ETH")
    assert st["model_version"] == v2 != v1 and int(st["segment"]) == switch_at - HOUR_MS
    old = paper.fills("ETH", old_seg)
    assert (old["status"] == "closed").all() and old["exit_reason"].iloc[-1] == "switch"
    assert int(old["exit_ts"].iloc[-1]) == switch_at  # closed at the close of the last bar before the switch
    new = paper.fills("ETH", int(st["segment"]))
    assert len(new) == 0 or (new["entry_ts"] >= switch_at).all()  # the new version starts flat


def test_a_failed_run_pages_once_and_resolves_when_it_succeeds_again(world: dict, receiver: Receiver) -> None:
    inst = dg.DagsterInstance.get()
    alerting = AlertingResource(webhook_url=receiver.url("/runs"), log_path=str(world["data"] / "alerts.jsonl"),
                                timeout_s=2, attempts=2)
    res = lw.resources(world, alerting=alerting)
    lw.stage(world, "ETH")
    lw.promote_by_sensor(world, inst, res)
    bad = lw.tick(world, "ETH", world["cut"] - HOUR_MS, inst, res, raise_on_error=False)  # inside the training data
    assert not bad.success
    run = inst.get_run_by_id(bad.run_id)
    failure = next(e for e in bad.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    ctx = dg.build_run_status_sensor_context("oncall_run_failures", failure, inst, run, resources=res)
    alerts.oncall_run_failures(ctx.for_run_failure())
    alerts.oncall_run_failures(ctx.for_run_failure())  # the same failure again: no second page
    good = lw.tick(world, "ETH", world["cut"] + HOUR_MS, inst, res)
    ok = next(e for e in good.all_events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)
    alerts.oncall_run_recoveries(dg.build_run_status_sensor_context(
        "oncall_run_recoveries", ok, inst, inst.get_run_by_id(good.run_id), resources=res))
    assert [(b["event"], b["key"]) for b in receiver.bodies] == [
        ("trigger", "run:__ephemeral_asset_job__:ETH"), ("resolve", "run:__ephemeral_asset_job__:ETH")]
    assert "inside the data production model" in receiver.bodies[0]["summary"]
    log = [json.loads(x) for x in (world["data"] / "alerts.jsonl").read_text().splitlines()]
    assert [x.get("action") for x in log if x.get("action")] == ["trigger", "resolve"]
