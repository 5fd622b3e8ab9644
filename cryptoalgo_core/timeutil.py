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


QUARTER_MONTHS = 3  # the raw market assets' time partitions: UTC calendar quarters


def quarter_key(ts_ms: int) -> str:
    """The calendar quarter ('YYYY-MM-01' of its first day, a UTC partition key) holding epoch-ms `ts_ms`."""
    d = dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC)
    m = (d.month - 1) // QUARTER_MONTHS * QUARTER_MONTHS + 1
    return f"{d.year:04d}-{m:02d}-01"


def quarter_bounds(quarter: str) -> tuple[int, int]:
    """[start, end) epoch ms of the quarter starting 'YYYY-MM-01' (month 1, 4, 7 or 10)."""
    start = parse_date_ms(quarter)
    d = dt.datetime.fromtimestamp(start / 1000, tz=dt.UTC)
    if d.day != 1 or (d.month - 1) % QUARTER_MONTHS or d.hour or d.minute:
        raise ValueError(f"not the first day of a calendar quarter: {quarter!r}")
    month = d.month + QUARTER_MONTHS
    nxt = dt.datetime(d.year + (month > 12), (month - 1) % 12 + 1, 1, tzinfo=dt.UTC)
    return start, int(nxt.timestamp() * 1000)


def quarters_between(start_ms: int, end_ms: int) -> list[str]:
    """Every quarter intersecting [start_ms, end_ms), in order."""
    out: list[str] = []
    if end_ms <= start_ms:
        return out
    cur = quarter_key(start_ms)
    while True:
        out.append(cur)
        _, nxt = quarter_bounds(cur)
        if nxt >= end_ms:
            return out
        cur = quarter_key(nxt)
