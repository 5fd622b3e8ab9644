"""On-call alert delivery: dedupe by state transition, a transactional outbox, webhook / Slack / PagerDuty.

- `AlertSender.update(alert, failing)` flips `alert_state` only on a transition (not firing -> failing sends a
  "trigger", firing -> passing sends a "resolve"); the state change and one outbox row per target are written in
  one transaction, so a crash never loses or duplicates an enqueued alert. Delivery is at-least-once.
- `flush()` POSTs undelivered outbox rows in id order (stdlib `urllib`, bounded retries with backoff). A failed
  row blocks later rows of the same target (a resolve never overtakes its trigger); other targets continue.
  After `max_outbox_attempts` HTTP tries in total a row is marked dropped and logged loudly. Delivery problems
  never raise; database errors do. Rows for a target name this sender does not know are left pending.
- Every enqueued alert, failed delivery and drop is appended to a local JSONL log and echoed as one line.
- Secrets: target URLs and PagerDuty routing keys never reach the log, the echo, the database or an error
  message; the PagerDuty routing key is added to the payload only at send time.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

SEVERITIES = ("critical", "error", "warning", "info")
KINDS = ("webhook", "slack", "pagerduty")
ACTIONS = ("trigger", "resolve")
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
ENV_WEBHOOK = "CRYPTOALGO_ALERT_WEBHOOK_URL"
ENV_SLACK = "CRYPTOALGO_ALERT_SLACK_WEBHOOK_URL"
ENV_PD_KEY = "CRYPTOALGO_ALERT_PAGERDUTY_ROUTING_KEY"
ENV_PD_URL = "CRYPTOALGO_ALERT_PAGERDUTY_URL"
MAX_BACKOFF_S = 5.0
SLACK_MAX_FIELDS = 10
HEADERS = {"Content-Type": "application/json", "User-Agent": "cryptoalgo-alerting"}

metadata = sa.MetaData()
state_table = sa.Table(
    "alert_state",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("firing", sa.Boolean, nullable=False),
    sa.Column("since_ms", sa.BigInteger, nullable=False),
    sa.Column("last_summary", sa.Text, nullable=False),
)
outbox_table = sa.Table(
    "alert_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("target_name", sa.String(128), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("delivered_ms", sa.BigInteger, nullable=True),
    sa.Column("dropped", sa.Boolean, nullable=False, default=False),
)


class AlertConfigError(ValueError):
    """A bad alert, target or environment setting (messages never contain URLs or routing keys)."""


def _is_http_url(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


@dataclass(frozen=True)
class Alert:
    """One alert condition; `key` is the dedupe key (e.g. "run:live_job:ETH")."""

    key: str
    summary: str
    severity: str = "error"
    source: str = "cryptoalgo"
    details: Mapping[str, Any] = field(default_factory=dict)
    url: str = ""

    def __post_init__(self) -> None:
        if not self.key or len(self.key) > 255:
            raise AlertConfigError("alert key must be 1..255 characters")
        if self.severity not in SEVERITIES:
            raise AlertConfigError(f"alert severity must be one of {SEVERITIES}, got {self.severity!r}")


@dataclass(frozen=True)
class Target:
    """A delivery endpoint. `url` and `routing_key` are secrets: they are kept out of repr, logs and the DB."""

    kind: str
    url: str = field(default="", repr=False)
    routing_key: str = field(default="", repr=False)
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise AlertConfigError(f"target kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "pagerduty":
            if not self.url:
                object.__setattr__(self, "url", PAGERDUTY_URL)
            if not self.routing_key:
                raise AlertConfigError(f"pagerduty target {self.label!r} needs a routing key")
        if not _is_http_url(self.url):
            raise AlertConfigError(f"{self.kind} target {self.label!r} needs an http(s) URL")

    @property
    def label(self) -> str:
        """The name used in logs and the outbox (defaults to the kind)."""
        return self.name or self.kind


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_payload(alert: Alert, action: str) -> dict[str, Any]:
    summary = _slack_escape(alert.summary)
    if action == "trigger":
        text = f":rotating_light: [{alert.severity.upper()}] {summary}"
    else:
        text = f":white_check_mark: RESOLVED {summary}"
    body = f"*{text}*\n`{_slack_escape(alert.key)}`"
    if alert.url:
        body += f"\n<{alert.url}|Open in Dagster>"
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": body[:2900]}}]
    fields = [
        {"type": "mrkdwn", "text": f"*{_slack_escape(str(k))}*\n{_slack_escape(str(v))}"[:1900]}
        for k, v in list(alert.details.items())[:SLACK_MAX_FIELDS]
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"source: {alert.source}"}]})
    return {"text": text[:3000], "blocks": blocks}


def payload(target: Target, alert: Alert, action: str, *, at_ms: int | None = None) -> dict[str, Any]:
    """The JSON body for `target` (generic webhook, Slack incoming webhook or PagerDuty Events API v2)."""
    if action not in ACTIONS:
        raise AlertConfigError(f"action must be one of {ACTIONS}, got {action!r}")
    at = _iso(_now_ms() if at_ms is None else at_ms)
    if target.kind == "slack":
        return _slack_payload(alert, action)
    if target.kind == "pagerduty":
        body: dict[str, Any] = dict(routing_key=target.routing_key, event_action=action, dedup_key=alert.key)
        if action == "trigger":
            body["payload"] = {
                "summary": alert.summary[:1024],
                "source": alert.source or "cryptoalgo",
                "severity": alert.severity,
                "timestamp": at,
                "custom_details": dict(alert.details),
            }
            if alert.url:
                body["links"] = [{"href": alert.url, "text": "Dagster"}]
        return body
    generic: dict[str, Any] = dict(
        event=action, key=alert.key, summary=alert.summary, severity=alert.severity
    )
    generic.update(source=alert.source, details=dict(alert.details), url=alert.url, at=at)
    return generic


def targets_from_env(env: Mapping[str, str] = os.environ) -> list[Target]:
    """Targets configured by CRYPTOALGO_ALERT_* variables; unset or empty variables configure nothing."""
    out: list[Target] = []
    for var, kind in ((ENV_WEBHOOK, "webhook"), (ENV_SLACK, "slack")):
        url = env.get(var, "").strip()
        if url:
            if not _is_http_url(url):
                raise AlertConfigError(f"{var} must be an http:// or https:// URL")
            out.append(Target(kind=kind, url=url, name=kind))
    key = env.get(ENV_PD_KEY, "").strip()
    if key:
        url = env.get(ENV_PD_URL, "").strip() or PAGERDUTY_URL
        if not _is_http_url(url):
            raise AlertConfigError(f"{ENV_PD_URL} must be an http:// or https:// URL")
        out.append(Target(kind="pagerduty", url=url, routing_key=key, name="pagerduty"))
    return out


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure: never re-send an alert (or its secrets) to another location."""

    def redirect_request(self, req: Any, fp: Any, code: Any, msg: Any, headers: Any, newurl: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


class AlertSender:
    """Dedupes alerts by transition and delivers them through a database outbox (SQLite or PostgreSQL)."""

    def __init__(
        self,
        engine: Engine,
        targets: Sequence[Target],
        log_path: str | Path,
        *,
        echo: Callable[[str], None] | None = print,
        timeout_s: float = 5.0,
        attempts: int = 3,
        backoff_s: float = 0.2,
        max_outbox_attempts: int = 50,
    ) -> None:
        names = [t.label for t in targets]
        if len(set(names)) != len(names):
            raise AlertConfigError(f"target names must be unique, got {names}")
        if attempts < 1 or max_outbox_attempts < 1:
            raise AlertConfigError("attempts and max_outbox_attempts must be >= 1")
        self.engine = engine
        self.targets = {t.label: t for t in targets}
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.echo = echo
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_outbox_attempts = max_outbox_attempts
        metadata.create_all(engine, checkfirst=True)

    # --- state and enqueue -----------------------------------------------------------------------------
    def update(self, alert: Alert, failing: bool, flush: bool = True) -> str:
        """Record the alert's status; on a transition enqueue (and flush, unless ``flush`` is False: a caller
        with many transitions flushes once). Returns triggered/resolved/unchanged."""
        now = _now_ms()
        action = "trigger" if failing else "resolve"
        st = state_table
        with self.engine.begin() as conn:
            firing = conn.execute(sa.select(st.c.firing).where(st.c.key == alert.key)).scalar_one_or_none()
            if failing and firing is None:
                conn.execute(
                    st.insert().values(key=alert.key, firing=True, since_ms=now, last_summary=alert.summary)
                )
            else:
                if bool(firing) == failing:
                    return "unchanged"
                res = conn.execute(
                    st.update()
                    .where(st.c.key == alert.key, st.c.firing == (not failing))
                    .values(firing=failing, since_ms=now, last_summary=alert.summary)
                )
                if res.rowcount != 1:  # another writer made the same transition first
                    return "unchanged"
            for target in self.targets.values():
                body = payload(target, alert, action, at_ms=now)
                body.pop("routing_key", None)  # added back at send time: the DB never holds it
                row = dict(key=alert.key, action=action, target_name=target.label, payload=_dumps(body))
                conn.execute(outbox_table.insert().values(**row, created_ms=now, attempts=0, dropped=False))
        record: dict[str, Any] = dict(at=_iso(now), event="alert", key=alert.key, action=action)
        record.update(severity=alert.severity, summary=alert.summary, details=dict(alert.details))
        record["targets"] = list(self.targets)
        self._log(record, f"ALERT {action} [{alert.severity}] {alert.summary} ({alert.key})")
        if flush:
            self.flush()
        return "triggered" if failing else "resolved"

    def firing(self) -> list[str]:
        """Keys currently firing, sorted."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(state_table.c.key).where(state_table.c.firing.is_(True)))
            return sorted(r[0] for r in rows)

    def pending(self) -> int:
        """Outbox rows neither delivered nor dropped (including rows for targets this sender does not know)."""
        ob = outbox_table
        with self.engine.connect() as conn:
            q = sa.select(sa.func.count()).where(ob.c.delivered_ms.is_(None), ob.c.dropped.is_(False))
            return int(conn.execute(q).scalar_one())

    # --- delivery --------------------------------------------------------------------------------------
    def flush(self) -> dict[str, int]:
        """Try every undelivered row in id order; returns counts sent / dropped in this call and still pending."""
        ob = outbox_table
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(ob.c.id, ob.c.key, ob.c.action, ob.c.target_name, ob.c.payload, ob.c.attempts)
                .where(ob.c.delivered_ms.is_(None), ob.c.dropped.is_(False))
                .order_by(ob.c.id)
            ).all()
        sent = dropped = 0
        blocked: set[str] = set()
        for row in rows:
            target = self.targets.get(row.target_name)
            if target is None or row.target_name in blocked:
                continue
            body = json.loads(row.payload)
            if target.kind == "pagerduty":
                body["routing_key"] = target.routing_key
            tries, error = self._post(target, body)
            if error is None:
                self._mark(row.id, delivered_ms=_now_ms(), attempts=ob.c.attempts + tries)
                sent += 1
                continue
            blocked.add(row.target_name)
            total = int(row.attempts) + tries
            drop = total >= self.max_outbox_attempts
            self._mark(row.id, attempts=ob.c.attempts + tries, last_error=error, dropped=drop)
            dropped += drop
            event = "dropped" if drop else "delivery_failed"
            what = f"{row.action} {row.key} -> {row.target_name} after {total} attempts: {error}"
            record = dict(
                at=_iso(_now_ms()), event=event, key=row.key, action=row.action, target=row.target_name
            )
            self._log(
                {**record, "attempts": total, "error": error}, f"ALERT {'DROPPED' if drop else event} {what}"
            )
        return {"sent": sent, "pending": self.pending(), "dropped": dropped}

    def _mark(self, row_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(outbox_table.update().where(outbox_table.c.id == row_id).values(**values))

    def _post(self, target: Target, body: Mapping[str, Any]) -> tuple[int, str | None]:
        """POST `body` up to `self.attempts` times; returns (tries made, None on success or a scrubbed error)."""
        data = json.dumps(body, default=str).encode()
        error = "not attempted"
        for i in range(self.attempts):
            if i:
                time.sleep(min(self.backoff_s * 2 ** (i - 1), MAX_BACKOFF_S))
            req = urllib.request.Request(target.url, data=data, method="POST", headers=HEADERS)
            try:
                with _OPENER.open(req, timeout=self.timeout_s) as resp:
                    resp.read(65536)
                    status = int(resp.status)
                if 200 <= status < 300:
                    return i + 1, None
                error = f"HTTP {status}"
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code}"
            except urllib.error.URLError as exc:
                why: object = exc.reason if isinstance(exc.reason, BaseException) else exc
                error = f"{type(why).__name__}: {why}"
            except (OSError, http.client.HTTPException, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            error = _scrub(error, target)
        return self.attempts, error

    def _log(self, record: Mapping[str, Any], line: str) -> None:
        try:
            with self.log_path.open("a", encoding="utf-8") as fh:
                fh.write(_dumps(record) + "\n")
        except OSError as exc:
            line += f" (alert log not writable: {type(exc).__name__})"
        if self.echo is not None:
            self.echo(line)


def _scrub(text: str, target: Target) -> str:
    """Remove the target's URL (and its parts) and routing key from an error message; keep it short."""
    parts = urllib.parse.urlsplit(target.url)
    for secret in (target.url, target.routing_key, parts.netloc + parts.path, parts.path, parts.query):
        if secret and secret != "/":
            text = text.replace(secret, "***")
    return text[:200]
