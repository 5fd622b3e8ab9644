"""Partitions: coins come from config/coins.yaml (adding a coin there adds partitions, no code change);
raw market assets are coin x day; downstream assets are per coin and map onto the coin dimension."""

from __future__ import annotations

import dagster as dg

from cryptoalgo_core.config import load_coins, load_sources

COIN_DIM = "coin"
DAY_DIM = "day"


def coin_partitions() -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(list(load_coins()))


def day_partitions() -> dg.DailyPartitionsDefinition:
    # end_offset=1: today's (still filling) day is a valid partition, so the hourly update can target it.
    return dg.DailyPartitionsDefinition(start_date=load_sources().calendar_start, end_offset=1, timezone="UTC")


def coin_day_partitions() -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition({COIN_DIM: coin_partitions(), DAY_DIM: day_partitions()})


def coin_from_coin_day() -> dg.MultiToSingleDimensionPartitionMapping:
    """Downstream coin-partitioned assets depend on every day of their coin."""
    return dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=COIN_DIM)


def coin_day_key(coin: str, day: str) -> str:
    """The multi-partition key string Dagster uses (dimensions sorted by name: coin, day)."""
    return f"{coin}|{day}"
