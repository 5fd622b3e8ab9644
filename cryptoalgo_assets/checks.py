"""The one converter from cryptoalgo_core check outcomes to Dagster check results.

Single-partition steps return :func:`to_result` (Dagster attaches the step's partition); steps that cover a
partition range log :func:`to_evaluation` per partition, so that a failing BTC check is recorded on BTC's
partition and never hidden by another coin's result.
"""

from __future__ import annotations

import typing
from typing import Any

import dagster as dg

from cryptoalgo_core.checks import CheckOutcome, Severity


def severity(s: Severity) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if Severity(s) is Severity.ERROR else dg.AssetCheckSeverity.WARN


def check_metadata(outcome: CheckOutcome) -> dict[str, Any]:
    """Scalar metadata of an outcome (Dagster shows ints, floats, strings and booleans)."""
    md: dict[str, Any] = {}
    for k, v in outcome.metadata.items():
        if isinstance(v, bool):
            md[k] = dg.MetadataValue.bool(v)
        elif isinstance(v, (int, float, str)):
            md[k] = v
    return md


def to_result(outcome: CheckOutcome, asset: str | None = None) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=outcome.name,
        passed=outcome.passed,
        severity=severity(outcome.severity),
        description=outcome.description,
        metadata=check_metadata(outcome),
    )


def _target_type() -> Any:
    """The type of AssetCheckEvaluation.target_materialization_data, read from the public class's own
    annotations (Dagster does not export it; importing it from dagster._core is off limits)."""
    try:
        hint = typing.get_type_hints(dg.AssetCheckEvaluation)["target_materialization_data"]
        return next(a for a in typing.get_args(hint) if a is not type(None))
    except (KeyError, NameError, StopIteration, TypeError):  # pragma: no cover - a future Dagster layout
        return None


_TARGET = _target_type()


def latest_materializations(instance: dg.DagsterInstance, asset: str, partitions: list[str]) -> dict[str, Any]:
    """partition -> the newest materialization record of `asset` (one query for all partitions)."""
    recs = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=partitions), limit=len(partitions)
    ).records
    out: dict[str, Any] = {}
    for r in recs:
        if r.partition_key is not None:
            out.setdefault(r.partition_key, r)
    return out


def to_evaluation(outcome: CheckOutcome, asset: str, partition: str, blocking: bool,
                  target: Any | None = None) -> dg.AssetCheckEvaluation:
    """A check evaluation for one partition of a range step. `target`: the partition's materialization record
    this evaluation checks — without it Dagster treats the result as outdated and does not show it."""
    data = (_TARGET(storage_id=target.storage_id, run_id=target.run_id, timestamp=target.timestamp)
            if target is not None and _TARGET is not None else None)
    return dg.AssetCheckEvaluation(
        target_materialization_data=data,
        asset_key=dg.AssetKey(asset),
        check_name=outcome.name,
        passed=outcome.passed,
        severity=severity(outcome.severity),
        description=outcome.description,
        metadata=check_metadata(outcome),
        partition=partition,
        blocking=blocking,
    )
