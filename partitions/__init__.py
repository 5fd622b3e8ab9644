"""Partitions: coins come from config/coins.yaml (adding a coin there adds partitions, no code change);
raw market assets are coin x calendar quarter; downstream assets are per coin and map onto the coin dimension.

Why quarters, not days (or months): every partition of every asset costs Dagster one materialization event
plus one event per partitioned check, a few milliseconds each on the SQLite instance — a 3-year backfill of
5 coins with open interest is ~50,000 events with day partitions, ~1,700 with months and ~600 with quarters
(`benchmarks/bench_ingest.py` stage 4). Quarters also keep Dagster's staleness tracking alive for decades: it
follows at most 99 upstream partitions per downstream partition (4 a year; with days a coin passes 99 after
three months, with months after eight years). The partition is the unit of status, metadata and checks; the
store's fetch coverage, not the partition, decides what is fetched, so re-running the current quarter after
an hour fetches one candle, and a check failing in one quarter of BTC is shown on exactly that partition.
"""

from __future__ import annotations

import dagster as dg

from cryptoalgo_core.config import load_coins, load_sources
from cryptoalgo_core.timeutil import parse_date_ms, quarter_bounds, quarter_key, quarters_between

COIN_DIM = "coin"
QUARTER_DIM = "quarter"


def coin_partitions() -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(list(load_coins()))


def quarter_partitions() -> dg.TimeWindowPartitionsDefinition:
    """UTC calendar quarters from the quarter holding sources.yaml calendar_start; keys 'YYYY-MM-01'.
    end_offset=1: the current (still filling) quarter is a valid partition, so the schedules can target it."""
    first = quarter_key(parse_date_ms(load_sources().calendar_start))
    return dg.TimeWindowPartitionsDefinition(cron_schedule="0 0 1 1,4,7,10 *", start=first, fmt="%Y-%m-%d",
                                             end_offset=1, timezone="UTC")


def coin_quarter_partitions() -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition({COIN_DIM: coin_partitions(), QUARTER_DIM: quarter_partitions()})


def coin_from_coin_quarter() -> dg.MultiToSingleDimensionPartitionMapping:
    """Downstream coin-partitioned assets depend on every quarter of their coin."""
    return dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=COIN_DIM)


def coin_quarter_key(coin: str, quarter: str) -> str:
    """The multi-partition key string Dagster uses (dimensions sorted by name: coin, quarter)."""
    return f"{coin}|{quarter}"


def split_key(key: object) -> tuple[str, str]:
    """(coin, quarter) of a coin x quarter partition key (a MultiPartitionKey or its 'COIN|YYYY-MM-01' string)."""
    if isinstance(key, dg.MultiPartitionKey):
        kd = key.keys_by_dimension
        return kd[COIN_DIM], kd[QUARTER_DIM]
    coin, quarter = str(key).split("|")
    return coin, quarter


__all__ = [
    "COIN_DIM",
    "QUARTER_DIM",
    "coin_from_coin_quarter",
    "coin_quarter_key",
    "coin_quarter_partitions",
    "coin_partitions",
    "quarter_bounds",
    "quarter_key",
    "quarter_partitions",
    "quarters_between",
    "split_key",
]
