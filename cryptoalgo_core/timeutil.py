"""UTC epoch-millisecond helpers. All timestamps in cryptoalgo are int64 epoch ms, UTC."""

from __future__ import annotations

import datetime as dt

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def parse_date_ms(value: str) -> int:
    """'YYYY-MM-DD' (or an ISO datetime) in UTC -> epoch ms. Raises ValueError with the bad value."""
    try:
        d = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"not a UTC date (YYYY-MM-DD): {value!r}") from exc
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return int(d.timestamp() * 1000)


def ms_to_iso(ts: int | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%MZ")


def ms_to_date(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts / 1000, tz=dt.UTC).strftime("%Y-%m-%d")


def floor_hour(ts: int) -> int:
    return ts - ts % HOUR_MS


def floor_day(ts: int) -> int:
    return ts - ts % DAY_MS


def now_ms() -> int:
    return int(dt.datetime.now(tz=dt.UTC).timestamp() * 1000)
