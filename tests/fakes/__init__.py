"""Fake exchange HTTP servers (real HTTP on 127.0.0.1, ephemeral port) with scriptable faults.

Shared machinery for fake_coinbase.FakeCoinbase and fake_binance.FakeBinance:

    with FakeCoinbase({"BTC-USD": frame}) as server:
        server.script = [Fault("429", retry_after=1), Fault("500"), Fault("truncated")]
        source = CoinbaseSource(CoinbaseConfig(base_url=server.url), sleep=...)

Fault kinds (`Fault(kind, ...)`), applied to the next request that matches `path` (substring of the
request path, None = any) and `when` (predicate on the Request, None = any); a fault is used `times`
times (None = forever) and then removed from `server.script`. The script is scanned in order and the
FIRST matching fault is applied, so `[Fault("429"), Fault("500")]` answers 429 then 500.

- "429"                      HTTP 429 with `Retry-After: <retry_after>` (default 1) and an error body
- "500" / "502" / "503" / "504" / "status"   that HTTP status (`status=` for "status") + error body
- "delay"                    sleep `delay_s` then answer normally (use delay_s > client timeout for a
                             timeout; the wait is interrupted by close())
- "drop"                     close the connection without answering (connection reset)
- "empty"                    answer 200 with an empty JSON array
- "truncated"                answer 200 with the real body cut in half (valid Content-Length)
- "duplicate"                the real page with every row repeated (and a changed duplicate last)
- "shuffle"                  the real page in shuffled order (seeded)
- "reverse"                  the real page in reverse order
- "mutate"                   the real page passed through `mutate(rows) -> rows` (wire-format rows)
- "body"                     answer `status` (default 200) with the raw `body` string

`server.latency_s` adds a delay to every request (benchmarks); `server.requests` is the request log
(`Request` objects; `str(req)` is "path?query"); `server.paths()` lists "path?query" strings;
`server.count(substr)` counts requests whose path contains substr.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

__all__ = ["FakeHTTPServer", "Fault", "Request", "Response", "hourly_ohlcv", "funding_frame", "oi_frame"]

HOUR_MS = 3_600_000

DATA_FAULTS = ("duplicate", "shuffle", "reverse", "mutate")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    raw: str  # "path?query" exactly as received
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.raw


@dataclass
class Response:
    status: int
    body: Any  # JSON-serialisable payload, or str for a raw body
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"


@dataclass
class Fault:
    kind: str
    retry_after: float | None = 1
    status: int | None = None
    delay_s: float = 0.0
    body: str | None = None
    mutate: Callable[[list[Any]], list[Any]] | None = None
    path: str | None = None
    when: Callable[[Request], bool] | None = None
    times: int | None = 1
    seed: int = 7

    def matches(self, req: Request) -> bool:
        if self.path is not None and self.path not in req.path:
            return False
        return self.when is None or bool(self.when(req))


class FakeHTTPServer:
    """Base: subclasses implement route(req) -> Response and error_body(status) -> payload."""

    def __init__(self) -> None:
        self.script: list[Fault] = []
        self.requests: list[Request] = []
        self.latency_s = 0.0
        self.faults_applied: list[tuple[str, str]] = []  # (kind, request raw path)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                outer._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        host, port = self._httpd.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.02,), name=type(self).__name__, daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):  # noqa: ANN204
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ log helpers
    def paths(self) -> list[str]:
        with self._lock:
            return [r.raw for r in self.requests]

    def count(self, path_contains: str = "") -> int:
        with self._lock:
            return sum(1 for r in self.requests if path_contains in r.path)

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.faults_applied.clear()

    # ------------------------------------------------------------ to override
    def route(self, req: Request) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        """Payload of an injected error response (str = raw body, sent as text/html)."""
        return {"message": message}

    # ------------------------------------------------------------ machinery
    def _next_fault(self, req: Request) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self.script):
                if fault.matches(req):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            del self.script[i]
                    self.faults_applied.append((fault.kind, req.raw))
                    return fault
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        req = Request(
            method=h.command, path=parts.path, query=query, raw=h.path, headers=dict(h.headers.items())
        )
        with self._lock:
            self.requests.append(req)
        if self.latency_s > 0 and self._closing.wait(self.latency_s):
            return
        fault = self._next_fault(req)
        resp: Response
        if fault is None:
            resp = self._safe_route(req)
        elif fault.kind == "drop":
            h.close_connection = True
            try:
                h.connection.shutdown(2)
            except OSError:
                pass
            return
        elif fault.kind == "delay":
            if self._closing.wait(fault.delay_s):
                return
            resp = self._safe_route(req)
        elif fault.kind == "429":
            headers = {} if fault.retry_after is None else {"Retry-After": _fmt_num(fault.retry_after)}
            resp = _error_response(429, self.error_body(429, "Too Many Requests"), headers)
        elif fault.kind in ("500", "502", "503", "504", "status"):
            status = int(fault.status or fault.kind) if fault.kind == "status" else int(fault.kind)
            resp = _error_response(status, self.error_body(status, "Internal Server Error"))
        elif fault.kind == "empty":
            resp = Response(200, [])
        elif fault.kind == "body":
            resp = Response(fault.status or 200, fault.body or "")
        elif fault.kind == "truncated":
            real = self._safe_route(req)
            text = real.body if isinstance(real.body, str) else json.dumps(real.body)
            resp = Response(200, text[: max(1, len(text) // 2)], real.headers)
        elif fault.kind in DATA_FAULTS:
            real = self._safe_route(req)
            rows = real.body if isinstance(real.body, list) else []
            if fault.kind == "duplicate":
                rows = [r for r in rows for _ in (0, 1)]
            elif fault.kind == "shuffle":
                rows = list(rows)
                random.Random(fault.seed).shuffle(rows)
            elif fault.kind == "reverse":
                rows = list(reversed(rows))
            elif fault.mutate is not None:
                rows = fault.mutate(list(rows))
            resp = Response(real.status, rows if real.status == 200 else real.body, real.headers)
        else:
            resp = Response(500, self.error_body(500, f"fake: unknown fault kind {fault.kind!r}"))
        self._send(h, resp)

    def _safe_route(self, req: Request) -> Response:
        try:
            return self.route(req)
        except (ValueError, KeyError, TypeError) as exc:
            return Response(400, self.error_body(400, f"bad request: {exc}"))

    def _send(self, h: BaseHTTPRequestHandler, resp: Response) -> None:
        text = resp.body if isinstance(resp.body, str) else json.dumps(resp.body, allow_nan=False)
        data = text.encode()
        try:
            h.send_response(resp.status)
            h.send_header("Content-Type", resp.content_type)
            h.send_header("Content-Length", str(len(data)))
            for k, v in resp.headers.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)


def _error_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    if isinstance(body, str):
        return Response(status, body, headers or {}, content_type="text/html")
    return Response(status, body, headers or {})


def _fmt_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def nan_to_none(x: Any) -> Any:
    """float NaN -> None (JSON null); other values unchanged."""
    if isinstance(x, float) and x != x:
        return None
    return x


# ---------------------------------------------------------------- data builders for tests / benchmarks
def hourly_ohlcv(start_ms: int, n: int, seed: int = 0, price: float = 100.0) -> pd.DataFrame:
    """n valid hourly candles from start_ms (floored to the hour): a random walk, 8-decimal rounded."""
    rng = np.random.default_rng(seed)
    start = (int(start_ms) // HOUR_MS) * HOUR_MS
    ts = start + np.arange(n, dtype="int64") * HOUR_MS
    close = price * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.concatenate([[price], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.005, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.005, n))
    volume = rng.uniform(1, 100, n)
    frame = pd.DataFrame(
        {"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume}
    )
    for col in ("open", "high", "low", "close", "volume"):
        frame[col] = frame[col].round(8)
    return frame


def funding_frame(start_ms: int, n: int, interval_h: int = 8, seed: int = 1) -> pd.DataFrame:
    """n funding settlements every interval_h hours from start_ms (floored to the hour)."""
    rng = np.random.default_rng(seed)
    start = (int(start_ms) // HOUR_MS) * HOUR_MS
    ts = start + np.arange(n, dtype="int64") * interval_h * HOUR_MS
    return pd.DataFrame({"ts": ts, "rate": rng.normal(0.0001, 0.0002, n).round(8)})


def oi_frame(start_ms: int, n: int, period_ms: int = HOUR_MS, seed: int = 2) -> pd.DataFrame:
    """n open-interest points: amount (base units) and value (USD notional)."""
    rng = np.random.default_rng(seed)
    start = (int(start_ms) // HOUR_MS) * HOUR_MS
    ts = start + np.arange(n, dtype="int64") * period_ms
    amount = rng.uniform(1000, 2000, n).round(3)
    return pd.DataFrame({"ts": ts, "amount": amount, "value": (amount * 30000.0).round(2)})
