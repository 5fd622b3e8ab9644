"""Shared retry helper for network sources (no dagster, no I/O of its own).

`call_with_retry(fn, policy=..., source=..., symbol=...)` runs `fn()` and retries it when it raises
RetryableSourceError, sleeping with exponential backoff (`backoff_base_s * 2**attempt`, capped at
`backoff_max_s`). When the error carries a server hint (`retry_after_s`, from an HTTP `Retry-After`
header) the sleep is at least that long. After `max_retries` retries the last error is re-raised as a
RetryableSourceError naming source, symbol, what was attempted and the number of attempts.
FatalSourceError (and anything else) propagates immediately.

`sleep` and `log` are injectable so tests never wait and the caller (e.g. a Dagster op) sees progress.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from resources.sources.base import RetryableSourceError

T = TypeVar("T")
_LOG = logging.getLogger(__name__)

SleepFn = Callable[[float], None]
LogFn = Callable[[str], None]


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("backoff_base_s and backoff_max_s must be >= 0")

    @classmethod
    def from_config(cls, cfg: object) -> RetryPolicy:
        """Build from any config object with max_retries / backoff_base_s / backoff_max_s attributes."""
        return cls(
            max_retries=int(cfg.max_retries),  # type: ignore[attr-defined]
            backoff_base_s=float(cfg.backoff_base_s),  # type: ignore[attr-defined]
            backoff_max_s=float(cfg.backoff_max_s),  # type: ignore[attr-defined]
        )

    def backoff_s(self, retry_index: int, retry_after_s: float | None = None) -> float:
        """Delay before retry number `retry_index` (0-based), honouring a server Retry-After hint."""
        delay = min(self.backoff_max_s, self.backoff_base_s * (2.0**retry_index))
        if retry_after_s is not None and retry_after_s > delay:
            delay = retry_after_s
        return delay


def retryable_error(message: str, retry_after_s: float | None = None) -> RetryableSourceError:
    """A RetryableSourceError carrying an optional server back-off hint (seconds)."""
    exc = RetryableSourceError(message)
    exc.retry_after_s = retry_after_s  # type: ignore[attr-defined]
    return exc


def parse_retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """Retry-After header -> seconds (delta-seconds or HTTP-date); None when absent or unparseable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        now = time.time() if now_s is None else now_s
        seconds = when.timestamp() - now
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def call_with_retry(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    source: str,
    symbol: str,
    what: str = "request",
    sleep: SleepFn = time.sleep,
    log: LogFn | None = None,
) -> T:
    """Run fn(); on RetryableSourceError retry up to policy.max_retries times, then raise."""
    attempts = policy.max_retries + 1
    last: RetryableSourceError | None = None
    for attempt in range(attempts):
        try:
            return fn()
        except RetryableSourceError as exc:
            last = exc
            if attempt + 1 >= attempts:
                break
            hint = getattr(exc, "retry_after_s", None)
            delay = policy.backoff_s(attempt, hint)
            msg = (
                f"{source} {symbol}: {what} failed (attempt {attempt + 1}/{attempts}): {exc}; "
                f"retrying in {delay:.2f}s" + (f" (server Retry-After {hint:g}s)" if hint is not None else "")
            )
            (log or _LOG.warning)(msg)
            sleep(delay)
    assert last is not None
    raise RetryableSourceError(
        f"{source} {symbol}: {what} still failing after {attempts} attempt(s) "
        f"({policy.max_retries} retries): {last}"
    ) from last
