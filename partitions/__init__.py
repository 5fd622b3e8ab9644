"""Partitions: coins come from config/coins.yaml (adding a coin there adds partitions, no code change);
raw market assets are coin x month; downstream assets are per coin and map onto the coin dimension.

Why months (not days) for the raw assets: every partition of every asset costs Dagster one materialization
event plus one event per partitioned check, and on the SQLite instance each event costs milliseconds. A
3-year backfill of 5 coins is 5 x 1,096 day partitions (~50,000 events with their checks) but only 5 x 36
month partitions (~1,600 events). Months also keep Dagster's staleness tracking alive: it follows at most
99 upstream partitions per downstream partition, and a coin has ~12 per year since calendar_start instead
of ~365. The store's fetch coverage, not the partition, decides what is fetched, so a re-run of the
current month fetches only the hours it lacks.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from cryptoalgo_core.config import load_coins, load_sources
from cryptoalgo_core.timeutil import parse_date_ms

COIN_DIM = "coin"
MONTH_DIM = "month"


def coin_partitions() -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(list(load_coins()))


def month_partitions() -> dg.MonthlyPartitionsDefinition:
    # end_offset=1: the current (still filling) month is a valid partition, so the hourly and daily
    # schedules can target it.
    start = load_sources().calendar_start
    first = start[:8] + "01"
    return dg.MonthlyPartitionsDefinition(start_date=first, end_offset=1, timezone="UTC")


def coin_month_partitions() -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition({COIN_DIM: coin_partitions(), MONTH_DIM: month_partitions()})


def coin_from_coin_month() -> dg.MultiToSingleDimensionPartitionMapping:
    """Downstream coin-partitioned assets depend on every month of their coin."""
    return dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=COIN_DIM)


def coin_month_key(coin: str, month: str) -> str:
    """The multi-partition key string Dagster uses (dimensions sorted by name: coin, month)."""
    return f"{coin}|{month}"


def month_key(ts_ms: int) -> str:
    """The month partition key ('YYYY-MM-01') holding epoch-ms `ts_ms`."""
    d = dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC)
    return f"{d.year:04d}-{d.month:02d}-01"


def month_bounds(month: str) -> tuple[int, int]:
    """[start, end) epoch ms of the month partition key 'YYYY-MM-01'."""
    start = parse_date_ms(month)
    d = dt.datetime.fromtimestamp(start / 1000, tz=dt.UTC)
    nxt = dt.datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=dt.UTC)
    return start, int(nxt.timestamp() * 1000)


def months_between(start_ms: int, end_ms: int) -> list[str]:
    """Month keys of every month intersecting [start_ms, end_ms), in order."""
    out: list[str] = []
    if end_ms <= start_ms:
        return out
    cur = month_key(start_ms)
    while True:
        out.append(cur)
        _, nxt = month_bounds(cur)
        if nxt >= end_ms:
            return out
        cur = month_key(nxt)


def split_key(key: object) -> tuple[str, str]:
    """(coin, month) of a coin x month partition key (a MultiPartitionKey or its 'COIN|YYYY-MM-01' string)."""
    if isinstance(key, dg.MultiPartitionKey):
        kd = key.keys_by_dimension
        return kd[COIN_DIM], kd[MONTH_DIM]
    coin, month = str(key).split("|")
    return coin, month


__all__ = [
    "COIN_DIM",
    "MONTH_DIM",
    "coin_from_coin_month",
    "coin_month_key",
    "coin_month_partitions",
    "coin_partitions",
    "month_bounds",
    "month_key",
    "month_partitions",
    "months_between",
    "split_key",
]
