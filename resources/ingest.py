"""Ingestion service: fetch what the store is missing from a source, validate, write page by page.

Used by the Dagster assets (one call per coin x dataset x run) and by benchmarks; no dagster import.
Per fetched page: duplicate timestamps -> validate -> (clean, rejects) -> one transaction (upsert rows,
rejects, coverage). A re-run only asks the source for windows not yet covered for this source family.

Duplicate timestamps in a page (`split_duplicate_ts`, before validation): rows of one ts that are
identical (on the dataset's columns) collapse to one, counted in `IngestReport.duplicates_collapsed`;
rows of one ts that DISAGREE are all kept out of the clean table and recorded as one reject per ts with
reason `duplicate_ts_conflicting_values` and every version in the payload: which one is right is
unknown, so none is picked. (The validators' own dedupe then only ever sees unique timestamps.)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cryptoalgo_core.checks import CheckOutcome, skipped
from cryptoalgo_core.config import CoinSpec, MarketDataGates, SourcesConfig
from cryptoalgo_core.market import checks as mc
from cryptoalgo_core.market.gaps import merge_intervals
from cryptoalgo_core.market.partitions import DatasetSlice, PartitionReport, quarter_reports
from cryptoalgo_core.market.validate import (
    ValidationResult,
    validate_funding,
    validate_ohlcv,
    validate_open_interest,
)
from cryptoalgo_core.timeutil import (
    DAY_MS,
    HOUR_MS,
    floor_hour,
    ms_to_iso,
    parse_date_ms,
    quarter_bounds,
    quarter_key,
)
from resources.sources.base import (
    FUNDING_COLUMNS,
    OHLCV_COLUMNS,
    OI_COLUMNS,
    FatalSourceError,
    MarketSource,
    RetryableSourceError,
    SourceError,
    UnsupportedDataError,
)
from resources.store import MarketStore, family_of

LogFn = Callable[[str], None]
ProgressFn = Callable[[str, str, int, int], None]  # coin, kind, done_ms, total_ms

CHUNK_MS = 30 * DAY_MS  # page size for sources without native pagination (replay, synthetic)
DUPLICATE_CONFLICT = "duplicate_ts_conflicting_values"
FRAME_COLUMNS = {"ohlcv": OHLCV_COLUMNS, "funding": FUNDING_COLUMNS, "open_interest": OI_COLUMNS}


class SourceSet:
    """Lazily-built sources for one ingest run. `source` is what the user asked for (auto, coinbase, ...)."""

    def __init__(
        self,
        source: str,
        cfg: SourcesConfig,
        replay_dir: str | None = None,
        factories: dict[str, Callable[[], MarketSource]] | None = None,
    ) -> None:
        self.source = source
        self.cfg = cfg
        self.replay_dir = replay_dir or cfg.replay_dir
        self._factories = factories or {}
        self._built: dict[str, MarketSource] = {}

    def get(self, name: str) -> MarketSource:
        if name not in self._built:
            self._built[name] = self._factories[name]() if name in self._factories else self._build(name)
        return self._built[name]

    def _build(self, name: str) -> MarketSource:
        if name == "synthetic":
            from resources.sources.synthetic import SyntheticSource

            return SyntheticSource()
        if name == "replay":
            from resources.sources.replay import ReplaySource

            if not self.replay_dir:
                raise FatalSourceError("replay: no directory given (--replay-dir or sources.yaml replay.dir)")
            return ReplaySource(self.replay_dir)
        if name == "coinbase":
            from resources.sources.coinbase import CoinbaseSource

            return CoinbaseSource(self.cfg.coinbase)
        if name == "ccxt":
            from resources.sources.ccxt_source import CcxtSource

            return CcxtSource(self.cfg.ccxt)
        raise FatalSourceError(f"unknown source {name!r}")

    def chain(self, kind: str) -> list[tuple[str, str]]:
        """[(source name, symbol key in coins.yaml)] to try in order for a dataset."""
        s = self.source
        if s == "auto":
            return [("coinbase", "coinbase"), ("ccxt", "ccxt")] if kind == "ohlcv" else [("ccxt", "ccxt_perp")]
        if s == "coinbase":
            return [("coinbase", "coinbase")]
        if s == "ccxt":
            return [("ccxt", "ccxt" if kind == "ohlcv" else "ccxt_perp")]
        return [(s, s)]

    def now_ms(self, kind: str) -> int:
        return self.get(self.chain(kind)[0][0]).now_ms()

    def label(self, name: str) -> str:
        if name == "ccxt":
            ex = self.cfg.ccxt
            return f"ccxt:{ex.ohlcv_exchange}"
        return name


@dataclass
class IngestReport:
    coin: str
    kind: str
    requested: tuple[int, int]
    fetched_windows: list[tuple[int, int]] = field(default_factory=list)
    pages: int = 0
    rows_written: int = 0
    rejected: int = 0
    duplicates_collapsed: int = 0
    sources_used: list[str] = field(default_factory=list)
    unsupported: str | None = None
    fallbacks: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "coin": self.coin,
            "kind": self.kind,
            "requested": f"{ms_to_iso(self.requested[0])} .. {ms_to_iso(self.requested[1])}",
            "fetched_windows": len(self.fetched_windows),
            "pages": self.pages,
            "rows_written": self.rows_written,
            "rejected": self.rejected,
            "duplicates_collapsed": self.duplicates_collapsed,
            "sources_used": ",".join(self.sources_used) or "-",
            "unsupported": self.unsupported or "",
        }


@dataclass(frozen=True)
class DuplicateSplit:
    frame: pd.DataFrame  # the page with one row per ts: identical repeats collapsed, conflicting ts removed
    rejects: pd.DataFrame  # ts, reason, payload: one row per conflicting ts (payload: every version)
    collapsed: int  # identical repeated rows dropped


def _empty_rejects() -> pd.DataFrame:
    return pd.DataFrame(
        {"ts": pd.Series(dtype="int64"), "reason": pd.Series(dtype="object"), "payload": pd.Series(dtype="object")}
    )


def _json_value(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    if isinstance(v, np.integer):
        return int(v)
    if v is None or v is pd.NA or isinstance(v, (int, str, bool)):
        return v
    return str(v)


def split_duplicate_ts(kind: str, frame: pd.DataFrame) -> DuplicateSplit:
    """Collapse identical rows of one ts; turn a ts whose rows disagree into one reject (see module doc).

    Rows are compared on the dataset's columns (base.OHLCV_COLUMNS / FUNDING_COLUMNS / OI_COLUMNS that
    the frame has), NaN equal to NaN. Rows without a usable ts are left to the validators. Among
    identical rows the last one is kept; row order is otherwise unchanged.
    """
    if frame.empty or "ts" not in frame.columns:
        return DuplicateSplit(frame, _empty_rejects(), 0)
    ts = frame["ts"]
    repeated = ts.duplicated(keep=False) & ts.notna()
    if not repeated.any():
        return DuplicateSplit(frame, _empty_rejects(), 0)
    cols = [c for c in FRAME_COLUMNS[kind] if c in frame.columns]
    rep = frame.loc[repeated, cols]
    versions = rep.drop_duplicates().groupby("ts", sort=False).size()
    conflicting = versions.index[versions > 1]
    in_conflict = ts.isin(conflicting) & repeated
    identical_repeat = ts.duplicated(keep="last") & repeated & ~in_conflict
    kept = frame.loc[~in_conflict & ~identical_repeat].reset_index(drop=True)
    if len(conflicting):
        bad = frame.loc[in_conflict, cols]
        payloads = []
        for t, rows in bad.groupby("ts", sort=True):
            payloads.append(
                (
                    int(t),
                    json.dumps(
                        {
                            "ts": int(t),
                            "versions": [
                                {k: _json_value(v) for k, v in r.items() if k != "ts"}
                                for r in rows.to_dict("records")
                            ],
                        },
                        sort_keys=True,
                    ),
                )
            )
        rejects = pd.DataFrame(
            {
                "ts": np.array([t for t, _ in payloads], dtype="int64"),
                "reason": [DUPLICATE_CONFLICT] * len(payloads),
                "payload": [text for _, text in payloads],
            }
        )
    else:
        rejects = _empty_rejects()
    return DuplicateSplit(kept, rejects, int(identical_repeat.sum()))


def _validate(kind: str, df: pd.DataFrame, funding_abs_max: float) -> ValidationResult:
    if kind == "ohlcv":
        return validate_ohlcv(df)
    if kind == "funding":
        return validate_funding(df, funding_abs_max)
    return validate_open_interest(df)


def _pages(src: MarketSource, kind: str, symbol: str, start: int, end: int) -> Iterator[tuple[int, int, pd.DataFrame]]:
    """Pages of (page_start, page_end, frame). Native pagination when the source has it."""
    native = getattr(src, f"iter_{kind}_pages", None)
    if native is not None:
        yield from native(symbol, start, end)
        return
    fetch = getattr(src, f"fetch_{kind}")
    cur = start
    while cur < end:
        nxt = min(end, cur + CHUNK_MS)
        yield cur, nxt, fetch(symbol, cur, nxt)
        cur = nxt


def horizon(kind: str, now_ms: int) -> int:
    """Exclusive end of what may be fetched now: closed candles only; settled funding / known OI only."""
    return floor_hour(now_ms) if kind == "ohlcv" else now_ms + 1


def ingest_dataset(
    kind: str,
    coin: CoinSpec,
    sources: SourceSet,
    store: MarketStore,
    start_ms: int,
    end_ms: int,
    funding_abs_max: float,
    log: LogFn | None = None,
    progress: ProgressFn | None = None,
) -> IngestReport:
    """Fill the store's gaps of `kind` for `coin` within [start_ms, end_ms)."""
    log = log or (lambda _m: None)
    report = IngestReport(coin=coin.name, kind=kind, requested=(start_ms, end_ms))
    chain = sources.chain(kind)
    first_name = chain[0][0]
    try:
        end_eff = min(end_ms, horizon(kind, sources.now_ms(kind)))
    except UnsupportedDataError as exc:
        report.unsupported = str(exc)
        return report
    store.claim_family(first_name)
    missing = store.missing_windows(kind, coin.name, first_name, start_ms, end_eff) if end_eff > start_ms else []
    total = sum(e - s for s, e in missing) or 1
    done = 0
    if progress:
        progress(coin.name, kind, 0, total)
    for w_start, w_end in missing:
        report.fetched_windows.append((w_start, w_end))
        cursor = w_start
        for i, (name, symbol_key) in enumerate(chain):
            if cursor >= w_end:
                break
            symbol = coin.symbol(symbol_key)
            label = sources.label(name) if kind == "ohlcv" else _perp_label(sources, name)
            try:
                src = sources.get(name)
                for p_start, p_end, frame in _pages(src, kind, symbol, cursor, w_end):
                    dup = split_duplicate_ts(kind, frame)
                    res = _validate(kind, dup.frame, funding_abs_max)
                    rejects = res.rejects if dup.rejects.empty else pd.concat([res.rejects, dup.rejects])
                    wr = store.write_batch(kind, coin.name, label, res.clean, rejects, coverage=(p_start, p_end))
                    report.pages += 1
                    report.rows_written += wr.written
                    report.rejected += wr.rejected
                    report.duplicates_collapsed += res.duplicates + dup.collapsed
                    if label not in report.sources_used and wr.written:
                        report.sources_used.append(label)
                    if len(rejects):
                        log(f"{coin.name} {kind}: {len(rejects)} row(s) rejected in {ms_to_iso(p_start)}..: "
                            f"{sorted(set(rejects['reason']))}")
                    done += p_end - max(cursor, p_start)
                    cursor = p_end
                    if progress:
                        progress(coin.name, kind, min(done, total), total)
            except UnsupportedDataError as exc:
                report.unsupported = str(exc)
                log(f"{coin.name} {kind}: not offered by {name}: {exc}")
                if i == len(chain) - 1:
                    return report
                continue
            except (FatalSourceError, RetryableSourceError) as exc:
                if i == len(chain) - 1:
                    raise
                nxt = chain[i + 1][0]
                msg = f"{coin.name} {kind}: {name} failed at {ms_to_iso(cursor)} ({exc}); falling back to {nxt}"
                report.fallbacks.append(msg)
                log(msg)
    if progress:
        progress(coin.name, kind, total, total)
    return report


def _perp_label(sources: SourceSet, name: str) -> str:
    return f"ccxt:{sources.cfg.ccxt.perp_exchange}" if name == "ccxt" else name


def window_for(
    sources: SourceSet,
    start: int | None,
    end: int | None,
    backfill_days: int | None,
) -> tuple[int, int]:
    """Explicit [start, end) if given; else `backfill_days` back from the source's now (hour-aligned)."""
    if start is not None:
        end_v = end if end is not None else sources.now_ms("ohlcv")
        return start, end_v
    now = floor_hour(sources.now_ms("ohlcv"))
    days = backfill_days if backfill_days is not None else 365
    return now - days * DAY_MS, now


# ------------------------------------------------------------------------ per-quarter batches (Dagster)
def _safe_now(sources: SourceSet, kind: str) -> int | None:
    try:
        return sources.now_ms(kind)
    except SourceError:
        return None


@dataclass
class QuarterBatch:
    """One dataset of one coin over the run's quarters: what was fetched, and every partition's report."""

    kind: str
    coin: str
    logs: list[str]
    reports: list[PartitionReport]


def _window(quarters: list[str], clip: tuple[str, str], kind: str, now: int | None) -> tuple[int, int]:
    lo, hi = quarter_bounds(quarters[0])[0], quarter_bounds(quarters[-1])[1]
    if clip[0]:
        lo = max(lo, parse_date_ms(clip[0]))
    if clip[1]:
        hi = min(hi, parse_date_ms(clip[1]))
    if now is not None:
        hi = min(hi, horizon(kind, now))
    return lo, hi


def _progress(logs: list[str], span_ms: int):  # noqa: ANN202
    """Progress lines for long fetches only (each log line is an event in the instance)."""
    last: dict[str, int] = {}

    def report(coin: str, kind: str, done: int, total: int) -> None:
        if span_ms < 90 * DAY_MS:
            return
        step = int(4 * done / max(total, 1))
        if step > last.get(kind, -1):
            last[kind] = step
            logs.append(f"{coin} {kind}: {25 * step}% of the missing window fetched")

    return report


def _reconcile(rows: pd.DataFrame, newest: str, sources: SourceSet, spec: Any, gates: Any) -> CheckOutcome:
    """Coinbase vs CCXT closes over the newest hours (only the auto source set includes a second venue)."""
    a, b = quarter_bounds(newest)
    part = rows[(rows["ts"] >= a) & (rows["ts"] < b)]
    if sources.source != "auto" or part.empty:
        return skipped("source_reconciliation", f"single source ({sources.source})")
    if not any(str(s).startswith("coinbase") for s in part["source"].unique()):
        return skipped("source_reconciliation", "no Coinbase candles in this quarter")
    end = int(part["ts"].max()) + HOUR_MS
    start = max(int(part["ts"].min()), end - gates.reconcile_sample_hours * HOUR_MS)
    try:
        other = sources.get("ccxt").fetch_ohlcv(spec.symbol("ccxt"), start, end)
    except SourceError as exc:
        return skipped("source_reconciliation", f"CCXT unavailable: {exc}")
    return mc.reconcile_closes(part[part["ts"] >= start], other, gates.reconcile_tolerance_bps)


def ingest_quarters(kind: str, coin: str, quarters: list[str], clip: tuple[str, str], store: MarketStore,
                  sources: SourceSet, spec: CoinSpec, gates: MarketDataGates) -> QuarterBatch:
    """Fetch what the store lacks for `kind` of `coin` in the quarters (clipped to [clip[0], clip[1]) when given,
    and to what exists at the source's now), then report every quarter: its metadata, data version and check
    outcomes (cryptoalgo_core.market.partitions). Thread-safe: the Dagster layer runs it in a worker thread."""
    logs: list[str] = []
    now = _safe_now(sources, kind)
    lo, hi = _window(quarters, clip, kind, now)
    unsupported = None
    if hi > lo:
        rep = ingest_dataset(kind, spec, sources, store, lo, hi, gates.funding_abs_max, log=logs.append,
                             progress=_progress(logs, hi - lo))
        unsupported = rep.unsupported
        logs.append(f"{coin} {kind}: {rep.rows_written} rows written, {rep.rejected} rejected, {rep.pages} page(s)"
                    + (f"; not offered: {unsupported}" if unsupported else ""))
    rows = store.load(kind, coin, quarter_bounds(quarters[0])[0], quarter_bounds(quarters[-1])[1])
    stats = store.stats(kind, coin)
    rejects = store.rejects(kind, coin)
    last = None if stats["last_ts"] is None else int(stats["last_ts"])
    data = DatasetSlice(
        kind=kind, rows=rows, coverage=merge_intervals(store.coverage(kind, coin, family_of(sources.chain(kind)[0][0]))),
        reject_ts=rejects["ts"].to_numpy(np.int64) if len(rejects) else np.empty(0, dtype=np.int64),
        last_ts=last, now_ms=now, unsupported=unsupported,
        series_step_ms=mc.infer_step_ms(store.load_ts(kind, coin), HOUR_MS) if kind == "open_interest" else HOUR_MS,
    )
    newest = quarter_key(last) if last is not None and quarter_key(last) in quarters else quarters[-1]
    reconcile = _reconcile(rows, newest, sources, spec, gates) if kind == "ohlcv" else None
    return QuarterBatch(kind, coin, logs, quarter_reports(data, quarters, gates, reconcile))
