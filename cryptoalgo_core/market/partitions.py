"""Per-partition reports of a market dataset (pure): for each coin x quarter, its metadata, a data version and
its check outcomes — so that a failing partition is reported on that partition, not hidden in run totals.

Conventions
- A quarter's *fetched span* is the part of the quarter inside the store's fetch coverage (what was asked of
  the source), clipped to what may exist at the source's now. Continuity is measured inside it: hours never
  asked for are "not fetched", hours asked for and missing are gaps.
- Freshness and source reconciliation describe the newest data: they run on the coin's newest quarter only.
- The data version hashes the partition's stored rows (values and timestamps): re-materializing a quarter
  whose rows did not change keeps its version, so downstream assets are stale only after real changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cryptoalgo_core.checks import CheckOutcome, Severity, skipped
from cryptoalgo_core.config.gates import MarketDataGates
from cryptoalgo_core.market import checks as mc
from cryptoalgo_core.timeutil import HOUR_MS, ms_to_iso, quarter_bounds

__all__ = ["DatasetSlice", "PartitionReport", "data_version", "fetched_span", "quarter_reports"]


@dataclass(frozen=True)
class PartitionReport:
    quarter: str
    metadata: dict[str, Any]
    data_version: str
    outcomes: list[CheckOutcome]


@dataclass
class DatasetSlice:
    """What the store holds for one dataset of one coin around the run's quarters."""

    kind: str  # ohlcv | funding | open_interest
    rows: pd.DataFrame  # stored rows inside the quarters (ts + values + source)
    coverage: list[tuple[int, int]]  # merged fetch-coverage intervals of the store's source family
    reject_ts: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    last_ts: int | None = None  # the coin's newest stored row of this dataset (any quarter)
    now_ms: int | None = None  # the source's now (None: unknown)
    unsupported: str | None = None  # the source does not offer this dataset
    series_step_ms: int = HOUR_MS  # cadence of the whole stored series (open interest: hourly or daily)


def data_version(frame: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for col in frame.columns:
        h.update(str(col).encode())
        h.update(pd.util.hash_pandas_object(frame[col], index=False).to_numpy().tobytes())
    return h.hexdigest()[:20]


def fetched_span(quarter: str, coverage: list[tuple[int, int]], now_ms: int | None, kind: str) -> list[tuple[int, int]]:
    a, b = quarter_bounds(quarter)
    if now_ms is not None:
        b = min(b, now_ms - now_ms % HOUR_MS if kind == "ohlcv" else now_ms + 1)
    return [(max(s, a), min(e, b)) for s, e in coverage if min(e, b) > max(s, a)]


def quarter_reports(
    data: DatasetSlice,
    quarters: list[str],
    gates: MarketDataGates,
    reconcile: CheckOutcome | None = None,
) -> list[PartitionReport]:
    """One report per quarter. `reconcile`: the source-reconciliation outcome of the newest quarter (ohlcv)."""
    ts_all = data.rows["ts"].to_numpy(np.int64)
    newest = quarters[-1]
    if data.last_ts is not None:
        from cryptoalgo_core.timeutil import quarter_key

        m = quarter_key(int(data.last_ts))
        newest = m if m in quarters else quarters[-1]
    out = []
    for quarter in quarters:
        a, b = quarter_bounds(quarter)
        sel = (ts_all >= a) & (ts_all < b)
        part = data.rows[sel].reset_index(drop=True)
        n_rej = int(((data.reject_ts >= a) & (data.reject_ts < b)).sum())
        span = fetched_span(quarter, data.coverage, data.now_ms, data.kind)
        outcomes = _outcomes(data, part, span, n_rej, gates, quarter == newest, reconcile)
        meta: dict[str, Any] = {
            "rows": len(part),
            "first_ts": ms_to_iso(int(part["ts"].min())) if len(part) else "-",
            "last_ts": ms_to_iso(int(part["ts"].max())) if len(part) else "-",
            "fetched_span": ", ".join(f"{ms_to_iso(s)} .. {ms_to_iso(e)}" for s, e in span) or "none",
            "rejects": n_rej,
            "sources": ",".join(sorted(map(str, part["source"].unique()))) if len(part) else "-",
        }
        for o in outcomes:
            if o.name.endswith("continuity"):
                for k in ("gaps", "largest_gap_hours", "missing_steps"):
                    if k in o.metadata:
                        meta[k] = o.metadata[k]
        if data.unsupported:
            meta["unsupported"] = data.unsupported
        values = part.drop(columns=[c for c in ("source",) if c in part.columns])
        out.append(PartitionReport(quarter, meta, data_version(values), outcomes))
    return out


def _outcomes(data: DatasetSlice, part: pd.DataFrame, span: list[tuple[int, int]], n_rej: int,
              g: MarketDataGates, newest: bool, reconcile: CheckOutcome | None) -> list[CheckOutcome]:
    kind = data.kind
    lo, hi = (span[0][0], span[-1][1]) if span else (0, 0)
    ts = part["ts"].to_numpy(np.int64)
    out: list[CheckOutcome] = []
    if kind == "ohlcv":
        out.append(mc.continuity(ts, lo, hi, g) if span else skipped("hourly_continuity", "nothing fetched for this quarter"))
        out.append(mc.ohlc_invariants(part, n_rej))
        if newest:
            now = data.now_ms if data.now_ms is not None else (data.last_ts or 0) + HOUR_MS
            out.append(mc.freshness(data.last_ts, now, g))
            out.append(reconcile or skipped("source_reconciliation", "no second source to compare with"))
    elif kind == "funding":
        step = g.funding_interval_hours * HOUR_MS
        out.append(mc.continuity(ts, lo, hi, g, step_ms=step, name="funding_continuity") if span
                   else skipped("funding_continuity", "nothing fetched for this quarter"))
        out.append(mc.funding_plausible(part, n_rej, g))
    else:
        if data.unsupported and not len(part):
            out.append(skipped("oi_continuity", f"open interest not offered: {data.unsupported}"))
        elif not span:
            out.append(skipped("oi_continuity", "nothing fetched for this quarter"))
        elif not len(part):
            why = (f"the stored series ends at {ms_to_iso(int(data.last_ts))}"
                   if data.last_ts is not None and int(data.last_ts) < lo else "no open interest stored for this coin")
            out.append(CheckOutcome("oi_continuity", False, Severity.WARN,
                                    f"no open interest in the fetched span of this quarter: {why}",
                                    {"gaps": 1, "missing_steps": 0, "largest_gap_hours": (hi - lo) // HOUR_MS}))
        else:
            out.append(mc.continuity(ts, lo, hi, g, step_ms=data.series_step_ms, name="oi_continuity", can_error=False))
        out.append(mc.oi_valid(part, n_rej))
    return out
