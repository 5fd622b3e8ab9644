"""The paper state, the model registry and the alert outbox on the real PostgreSQL server (the same tables and
transactions as on SQLite): idempotent signal log and fills, state history, promotion and rollback, one alert per
transition. Skips with a message where no server is configured (CI sets one and requires it)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from resources.alerting import Alert, AlertSender
from resources.paper import PaperStore
from resources.registry import FileTableRegistry

H = 3_600_000
T0 = 1_767_225_600_000


def test_paper_registry_and_alerts_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    engine = sa.create_engine(pg_url)
    paper = PaperStore(engine)
    paper.start("ETH", T0, "v1", "first", "test")
    sig = pd.DataFrame({"ts": [T0, T0 + H], "p_dir": [0.61, float("nan")], "p_up": [0.3, float("nan")],
                        "p_down": [0.2, float("nan")], "signal": [1, 0], "sigma": [0.01, float("nan")],
                        "size": [0.2, 0.0], "scale": 1.0, "state": "ACTIVE", "note": ["", "no candle"]})
    assert paper.add_signals("ETH", sig, "v1", T0 + 2 * H) == 2
    assert paper.add_signals("ETH", sig, "v1", T0 + 2 * H) == 0
    got = paper.signals("ETH")
    assert list(got["note"]) == ["", "no candle"] and got["p_dir"].isna().tolist() == [False, True]
    trade = pd.DataFrame([{"entry_ts": T0 + H, "exit_ts": T0 + 4 * H, "side": 1, "size": 0.2, "entry_price": 100.0,
                           "exit_price": 101.0, "exit_reason": "time", "net": 0.008}])
    assert paper.write_fills("ETH", T0, trade, None) == (1, [])
    assert paper.write_fills("ETH", T0, trade, None) == (0, [])
    assert paper.set_state("ETH", "HALTED", "replay_drift", "kill_switch", halted_at=T0 + 5 * H)
    assert not paper.set_state("ETH", "HALTED", "again", "kill_switch")
    paper.record_tick("ETH", T0 + 5 * H, "HALTED", 1.0016, {"switches": []})
    assert paper.enable("ETH", T0 + 5 * H, "checked", "test")["state"] == "ACTIVE"
    assert [e["to_state"] for e in paper.events("ETH")] == ["ACTIVE", "HALTED", "ACTIVE"]

    reg = FileTableRegistry(tmp_path / "models", engine)
    a = reg.stage("ETH", "c1", "PASS", {"model.json": b"a"}, {"tier": "PILOT"})
    b = reg.stage("ETH", "c1", "PASS", {"model.json": b"b"}, {"tier": "PILOT"})
    assert reg.staged("ETH") == [a, b]
    reg.promote("ETH", a, "first", "test")
    reg.promote("ETH", None, "newest", "test")
    assert reg.production("ETH")["version"] == b
    assert reg.rollback("ETH", "drift", "test")["to_version"] == a

    sender = AlertSender(engine, [], tmp_path / "alerts.jsonl", echo=None)
    alert = Alert("check:paper_performance:replay_drift:ETH", "replay drift", "critical")
    assert [sender.update(alert, f) for f in (True, True, False, False)] == [
        "triggered", "unchanged", "resolved", "unchanged"]
    assert sender.firing() == [] and sender.pending() == 0
    engine.dispose()
