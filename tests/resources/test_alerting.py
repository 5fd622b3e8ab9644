"""Alert delivery against real loopback HTTP receivers: formats, dedupe, outbox retries, ordering, secrets."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from resources import alerting
from resources.alerting import Alert, AlertConfigError, AlertSender, Target, targets_from_env

FAST: dict[str, Any] = {"attempts": 2, "backoff_s": 0.01, "timeout_s": 1.0}
URL_SECRET = "SECRET-abc123"
RK_SECRET = "RK-SECRET-xyz"


@dataclass
class Receiver:
    """A loopback HTTP server recording every POST; `status` is what it answers (switchable)."""

    server: ThreadingHTTPServer
    status: int = 200
    delay_s: float = 0.0
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    @property
    def bodies(self) -> list[Any]:
        with self.lock:
            return [body for _, _, body in self.requests]


def _start_receiver() -> Receiver:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            rec = holder["rec"]
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with rec.lock:
                rec.requests.append((self.path, dict(self.headers.items()), json.loads(raw)))
                status, delay = rec.status, rec.delay_s
            if delay:
                time.sleep(delay)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder["rec"] = Receiver(server=server)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return holder["rec"]


@pytest.fixture
def receivers() -> Iterator[Callable[[], Receiver]]:
    started: list[Receiver] = []

    def make() -> Receiver:
        started.append(_start_receiver())
        return started[-1]

    yield make
    for rec in started:
        rec.server.shutdown()
        rec.server.server_close()


@pytest.fixture
def receiver(receivers: Callable[[], Receiver]) -> Receiver:
    return receivers()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'alerts.db'}")
    yield eng
    eng.dispose()


@pytest.fixture
def echoed() -> list[str]:
    return []


def _dead_url(path: str = "/hook") -> str:
    """A loopback URL with nothing listening (bind, read the port, close)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}{path}"


def _sender(
    engine: sa.Engine, targets: list[Target], tmp_path: Path, echoed: list[str], **kw: Any
) -> AlertSender:
    return AlertSender(
        engine, targets, tmp_path / "logs" / "alerts.jsonl", echo=echoed.append, **{**FAST, **kw}
    )


def _log(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "logs" / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


ALERT = Alert(
    key="check:paper_performance:max_daily_drawdown:ETH",
    summary="ETH paper drawdown 7.1% > 5%",
    severity="critical",
    details={"drawdown": 0.071, "limit": 0.05},
    url="http://dagster.local/runs/abc",
)


def test_generic_webhook_format(
    engine: sa.Engine, receiver: Receiver, tmp_path: Path, echoed: list[str]
) -> None:
    sender = _sender(engine, [Target("webhook", receiver.url())], tmp_path, echoed)
    assert sender.update(ALERT, failing=True) == "triggered"
    assert sender.update(ALERT, failing=False) == "resolved"
    assert len(receiver.requests) == 2
    path, headers, body = receiver.requests[0]
    assert path == "/hook" and headers["Content-Type"] == "application/json"
    assert body["event"] == "trigger" and body["key"] == ALERT.key and body["summary"] == ALERT.summary
    assert body["severity"] == "critical" and body["source"] == "cryptoalgo" and body["url"] == ALERT.url
    assert body["details"] == {"drawdown": 0.071, "limit": 0.05}
    assert body["at"].endswith("Z") and body["at"].startswith("20")
    assert receiver.requests[1][2]["event"] == "resolve"
    assert sender.pending() == 0


def test_slack_format(engine: sa.Engine, receiver: Receiver, tmp_path: Path, echoed: list[str]) -> None:
    sender = _sender(engine, [Target("slack", receiver.url("/services/T/B/x"))], tmp_path, echoed)
    sender.update(ALERT, failing=True)
    sender.update(ALERT, failing=False)
    (_, headers, trig), (_, _, res) = receiver.requests
    assert headers["Content-Type"] == "application/json"
    escaped = ALERT.summary.replace(">", "&gt;")  # Slack mrkdwn control characters are escaped
    assert trig["text"] == f":rotating_light: [CRITICAL] {escaped}"
    assert res["text"] == f":white_check_mark: RESOLVED {escaped}"
    assert trig["blocks"][0]["type"] == "section" and trig["blocks"][0]["text"]["type"] == "mrkdwn"
    fields = [b for b in trig["blocks"] if "fields" in b][0]["fields"]
    assert len(fields) == 2 and "drawdown" in fields[0]["text"]
    many = Alert(key="k", summary="s", details={f"d{i}": i for i in range(25)})
    blocks = alerting.payload(Target("slack", receiver.url()), many, "trigger")["blocks"]
    assert len([b for b in blocks if "fields" in b][0]["fields"]) == 10


def test_pagerduty_format(engine: sa.Engine, receiver: Receiver, tmp_path: Path, echoed: list[str]) -> None:
    receiver.status = 202
    target = Target("pagerduty", receiver.url("/v2/enqueue"), routing_key="rk-123")
    sender = _sender(engine, [target], tmp_path, echoed)
    long_alert = Alert(key=ALERT.key, summary="x" * 2000, details=ALERT.details, url=ALERT.url)
    sender.update(long_alert, failing=True)
    sender.update(long_alert, failing=False)
    (path, headers, trig), (_, _, res) = receiver.requests
    assert path == "/v2/enqueue" and headers["Content-Type"] == "application/json"
    assert (
        trig["routing_key"] == "rk-123"
        and trig["event_action"] == "trigger"
        and trig["dedup_key"] == ALERT.key
    )
    assert len(trig["payload"]["summary"]) == 1024
    assert trig["payload"]["source"] == "cryptoalgo" and trig["payload"]["severity"] == "error"
    assert trig["payload"]["custom_details"] == {"drawdown": 0.071, "limit": 0.05}
    assert trig["links"] == [{"href": ALERT.url, "text": "Dagster"}]
    assert res == {"routing_key": "rk-123", "event_action": "resolve", "dedup_key": ALERT.key}
    assert sender.pending() == 0
    assert Target("pagerduty", "", routing_key="k").url == alerting.PAGERDUTY_URL


def test_dedupe_by_transition(
    engine: sa.Engine, receiver: Receiver, tmp_path: Path, echoed: list[str]
) -> None:
    sender = _sender(engine, [Target("webhook", receiver.url())], tmp_path, echoed)
    assert sender.update(ALERT, failing=False) == "unchanged"  # unknown and passing: nothing
    assert sender.update(ALERT, failing=True) == "triggered"
    assert sender.update(ALERT, failing=True) == "unchanged"
    assert sender.firing() == [ALERT.key]
    assert sender.update(ALERT, failing=False) == "resolved"
    assert sender.update(ALERT, failing=False) == "unchanged"
    assert sender.firing() == []
    assert sender.update(ALERT, failing=True) == "triggered"
    assert [b["event"] for b in receiver.bodies] == ["trigger", "resolve", "trigger"]
    assert [r["action"] for r in _log(tmp_path)] == ["trigger", "resolve", "trigger"]
    assert echoed[0] == f"ALERT trigger [critical] {ALERT.summary} ({ALERT.key})"
    # the state survives a new sender (a restarted sensor process)
    assert _sender(engine, [], tmp_path, echoed).firing() == [ALERT.key]


def test_zero_targets_logs_locally(engine: sa.Engine, tmp_path: Path, echoed: list[str]) -> None:
    sender = _sender(engine, [], tmp_path, echoed)
    assert sender.update(ALERT, failing=True) == "triggered"
    (rec,) = _log(tmp_path)
    assert rec["key"] == ALERT.key and rec["action"] == "trigger" and rec["targets"] == []
    assert rec["severity"] == "critical" and rec["details"] == {"drawdown": 0.071, "limit": 0.05}
    assert len(echoed) == 1 and sender.pending() == 0


def test_receiver_500_then_recovers(
    engine: sa.Engine, receiver: Receiver, tmp_path: Path, echoed: list[str]
) -> None:
    receiver.status = 500
    sender = _sender(engine, [Target("webhook", receiver.url(), name="ops")], tmp_path, echoed)
    assert sender.update(ALERT, failing=True) == "triggered"  # no raise
    assert sender.pending() == 1 and len(receiver.requests) == 2  # attempts=2
    failed = [r for r in _log(tmp_path) if r["event"] == "delivery_failed"]
    assert failed and failed[0]["error"] == "HTTP 500" and failed[0]["target"] == "ops"
    assert any("delivery_failed" in line for line in echoed)
    receiver.status = 200
    assert sender.flush() == {"sent": 1, "pending": 0, "dropped": 0}
    assert sender.flush() == {"sent": 0, "pending": 0, "dropped": 0}
    assert len(receiver.requests) == 3 and [b["event"] for b in receiver.bodies] == ["trigger"] * 3


def test_receiver_down_then_other_sender_delivers(
    engine: sa.Engine, receiver: Receiver, tmp_path: Path, echoed: list[str]
) -> None:
    """Robust "comes back" without reusing a port: a second sender over the same database has the same target
    name pointing at a live receiver, and delivers the rows the first one could not."""
    down = _sender(engine, [Target("webhook", _dead_url(), name="hook")], tmp_path, echoed)
    assert down.update(ALERT, failing=True) == "triggered"
    assert down.flush() == {"sent": 0, "pending": 1, "dropped": 0}
    errors = [r["error"] for r in _log(tmp_path) if r["event"] == "delivery_failed"]
    assert errors and all("ConnectionRefused" in e for e in errors)
    up = _sender(engine, [Target("webhook", receiver.url(), name="hook")], tmp_path, echoed)
    assert up.flush() == {"sent": 1, "pending": 0, "dropped": 0}
    assert [b["event"] for b in receiver.bodies] == ["trigger"]
    # a sender without that target name leaves foreign rows alone
    other = _sender(engine, [Target("webhook", _dead_url(), name="other")], tmp_path, echoed)
    assert other.flush()["pending"] == 0


def test_timeout_is_a_failure(
    engine: sa.Engine, receiver: Receiver, tmp_path: Path, echoed: list[str]
) -> None:
    receiver.delay_s = 0.5
    sender = _sender(engine, [Target("webhook", receiver.url())], tmp_path, echoed, timeout_s=0.1, attempts=1)
    assert sender.update(ALERT, failing=True) == "triggered"
    assert sender.pending() == 1
    assert "timed out" in _log(tmp_path)[-1]["error"]


def test_ordering_blocks_same_target_only(
    engine: sa.Engine, receivers: Callable[[], Receiver], tmp_path: Path, echoed: list[str]
) -> None:
    bad, good = receivers(), receivers()
    bad.status = 500
    targets = [Target("webhook", bad.url(), name="bad"), Target("webhook", good.url(), name="good")]
    sender = _sender(engine, targets, tmp_path, echoed)
    sender.update(ALERT, failing=True)
    sender.update(ALERT, failing=False)
    assert [b["event"] for b in good.bodies] == ["trigger", "resolve"]  # the other target continues
    assert {b["event"] for b in bad.bodies} == {"trigger"}  # the resolve waited behind the failed trigger
    assert sender.pending() == 2
    bad.status = 200
    assert sender.flush() == {"sent": 2, "pending": 0, "dropped": 0}
    assert [b["event"] for b in bad.bodies][-2:] == ["trigger", "resolve"]
    assert [b["event"] for b in good.bodies] == ["trigger", "resolve"]


def test_dropped_after_max_attempts(
    engine: sa.Engine, receiver: Receiver, tmp_path: Path, echoed: list[str]
) -> None:
    receiver.status = 503
    sender = _sender(engine, [Target("webhook", receiver.url())], tmp_path, echoed, max_outbox_attempts=4)
    sender.update(ALERT, failing=True)
    assert sender.flush() == {"sent": 0, "pending": 0, "dropped": 1}
    assert len(receiver.requests) == 4
    assert [r["event"] for r in _log(tmp_path)][-1] == "dropped"
    assert any("DROPPED" in line for line in echoed)
    receiver.status = 200
    assert sender.update(ALERT, failing=False) == "resolved"  # a dropped row no longer blocks its target
    assert receiver.bodies[-1]["event"] == "resolve" and sender.pending() == 0


def _dump_tables(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        rows = [
            *conn.execute(sa.text("SELECT * FROM alert_state")),
            *conn.execute(sa.text("SELECT * FROM alert_outbox")),
        ]
    return "\n".join(repr(tuple(r)) for r in rows)


def test_secrets_never_leak(
    engine: sa.Engine,
    receivers: Callable[[], Receiver],
    tmp_path: Path,
    echoed: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    hook, pd = receivers(), receivers()
    targets = [
        Target("webhook", hook.url(f"/hook/{URL_SECRET}"), name="hook"),
        Target("slack", _dead_url(f"/services/{URL_SECRET}"), name="slack"),
        Target("pagerduty", pd.url(f"/enqueue/{URL_SECRET}"), routing_key=RK_SECRET, name="pd"),
    ]
    sender = _sender(engine, targets, tmp_path, echoed)
    printing = AlertSender(engine, targets, tmp_path / "logs" / "alerts.jsonl", **FAST)  # default echo=print
    hook.status = 500
    sender.update(ALERT, failing=True)
    hook.status, pd.status = 200, 500
    sender.update(ALERT, failing=False)
    printing.flush()
    pd.status = 202
    printing.update(Alert(key="run:live_job:ETH", summary="live_job failed"), failing=True)
    assert pd.bodies[-1]["routing_key"] == RK_SECRET  # it is sent ...
    assert sender.pending() > 0  # (the slack target is down)
    texts = {
        "log": (tmp_path / "logs" / "alerts.jsonl").read_text(),
        "echo": "\n".join(echoed),
        "stdout": capsys.readouterr().out,
        "db": _dump_tables(engine),
        "repr": repr(targets),
    }
    assert "delivery_failed" in texts["log"] and "ALERT" in texts["stdout"]
    for env in (
        {alerting.ENV_WEBHOOK: f"ftp://h/{URL_SECRET}"},
        {alerting.ENV_SLACK: f"file:///{URL_SECRET}"},
        {alerting.ENV_PD_KEY: RK_SECRET, alerting.ENV_PD_URL: f"gopher://x/{URL_SECRET}"},
    ):
        with pytest.raises(AlertConfigError) as err:
            targets_from_env(env)
        texts[f"error {list(env)}"] = str(err.value) + repr(err.value)
    for where, text in texts.items():  # ... but stored, logged and reported nowhere
        assert URL_SECRET not in text, where
        assert RK_SECRET not in text, where


def test_targets_from_env() -> None:
    assert targets_from_env({}) == []
    assert (
        targets_from_env({alerting.ENV_WEBHOOK: "", alerting.ENV_SLACK: "  ", alerting.ENV_PD_KEY: ""}) == []
    )
    (t,) = targets_from_env({alerting.ENV_WEBHOOK: "https://example.com/h"})
    assert (t.kind, t.url, t.name) == ("webhook", "https://example.com/h", "webhook")
    (t,) = targets_from_env({alerting.ENV_SLACK: "https://hooks.slack.com/services/x"})
    assert t.kind == "slack"
    (t,) = targets_from_env({alerting.ENV_PD_KEY: "rk"})
    assert (t.kind, t.url, t.routing_key) == ("pagerduty", alerting.PAGERDUTY_URL, "rk")
    (t,) = targets_from_env({alerting.ENV_PD_KEY: "rk", alerting.ENV_PD_URL: "http://127.0.0.1:9/pd"})
    assert t.url == "http://127.0.0.1:9/pd"
    assert (
        len(
            targets_from_env(
                {
                    alerting.ENV_WEBHOOK: "http://a/b",
                    alerting.ENV_SLACK: "http://c/d",
                    alerting.ENV_PD_KEY: "rk",
                }
            )
        )
        == 3
    )
    with pytest.raises(AlertConfigError, match=alerting.ENV_SLACK):
        targets_from_env({alerting.ENV_SLACK: "ftp://hooks/x"})
    with pytest.raises(AlertConfigError, match=alerting.ENV_PD_URL):
        targets_from_env({alerting.ENV_PD_KEY: "rk", alerting.ENV_PD_URL: "nope"})


def test_validation() -> None:
    with pytest.raises(AlertConfigError):
        Alert(key="k", summary="s", severity="fatal")
    with pytest.raises(AlertConfigError):
        Alert(key="", summary="s")
    with pytest.raises(AlertConfigError):
        Target("email", "http://x/y")
    with pytest.raises(AlertConfigError):
        Target("pagerduty", "http://x/y")  # no routing key
    with pytest.raises(AlertConfigError):
        Target("webhook", "ftp://x/y")
    with pytest.raises(AlertConfigError):
        alerting.payload(Target("webhook", "http://x/y"), ALERT, "ack")


def test_duplicate_target_names_refused(engine: sa.Engine, tmp_path: Path, echoed: list[str]) -> None:
    with pytest.raises(AlertConfigError):
        _sender(engine, [Target("webhook", "http://a/b"), Target("webhook", "http://c/d")], tmp_path, echoed)


def test_enqueue_is_transactional(
    engine: sa.Engine,
    receivers: Callable[[], Receiver],
    tmp_path: Path,
    echoed: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one, two = receivers(), receivers()
    targets = [Target("webhook", one.url(), name="one"), Target("webhook", two.url(), name="two")]
    sender = _sender(engine, targets, tmp_path, echoed)
    real_dumps = alerting._dumps
    calls = {"n": 0}

    def flaky(obj: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 2:  # the second target's outbox row: the first one is already inserted
            raise RuntimeError("simulated crash mid-enqueue")
        return real_dumps(obj)

    monkeypatch.setattr(alerting, "_dumps", flaky)
    with pytest.raises(RuntimeError, match="simulated crash"):
        sender.update(ALERT, failing=True)
    # neither the state flip nor the first target's row survived
    assert sender.firing() == [] and sender.pending() == 0
    assert one.requests == [] and two.requests == [] and _log(tmp_path) == []
    assert sender.update(ALERT, failing=True) == "triggered"  # a later update still triggers, once per target
    assert [len(one.requests), len(two.requests)] == [1, 1]
