"""Market-data stage: `ohlcv`, `funding`, `open_interest` (coin x month), their checks, job and schedules.

One multi-asset step ingests every selected dataset for every coin x month partition of its run (a backfill
is one run), then records, for EACH partition, its own materialization (rows, gaps, rejects, covered span,
a data version that changes only when its rows change) and its own check evaluations. The fetch window
is what the store's fetch coverage lacks, clipped to the run's optional [start, end) config.
"""


import datetime as dt
import hashlib
import warnings
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pandas as pd

from cryptoalgo_assets.checks import latest_materializations, to_evaluation
from cryptoalgo_core.checks import CheckOutcome, Severity, skipped
from cryptoalgo_core.market import checks as mc
from cryptoalgo_core.market.gaps import merge_intervals
from cryptoalgo_core.timeutil import HOUR_MS, ms_to_iso, parse_date_ms
from partitions import coin_month_key, coin_month_partitions, month_bounds, month_key, split_key
from resources.dagster_resources import MarketSourceResource, MarketStoreResource, ProjectConfigResource
from resources.ingest import SourceSet, horizon, ingest_dataset
from resources.sources.base import SourceError
from resources.store import MarketStore, family_of

PARTITIONS = coin_month_partitions()
KINDS = ("ohlcv", "funding", "open_interest")

# name, blocking, evaluated on: "every" partition or only each coin's "newest" partition of the run
CHECKS: dict[str, list[tuple[str, bool, str, str]]] = {
    "ohlcv": [
        ("hourly_continuity", True, "every", "Gaps inside the fetched span of the month; ERROR at gates.market_data.gap_error_hours."),
        ("ohlc_invariants", True, "every", "Finite, prices > 0, low <= min(o,c), high >= max(o,c), volume >= 0; quarantined rejects warn."),
        ("freshness", False, "newest", "Newest candle vs the source's now (each coin's newest month of the run)."),
        ("source_reconciliation", False, "newest", "Coinbase vs CCXT closes over the last hours (source auto)."),
    ],
    "funding": [
        ("funding_continuity", False, "every", "Settlements on the funding grid (8 h) inside the fetched span."),
        ("funding_plausible", True, "every", "Finite rates within gates.market_data.funding_abs_max."),
    ],
    "open_interest": [
        ("oi_continuity", False, "every", "Gaps at the series' own cadence (hourly or daily)."),
        ("oi_valid", True, "every", "Finite, non-negative values with a unit."),
    ],
}
BLOCKING = {(kind, name): b for kind, rows in CHECKS.items() for name, b, _w, _d in rows}
DESCRIPTIONS = {
    "ohlcv": "Hourly OHLCV candles (closed bars) in the market store, one partition per coin x UTC month.",
    "funding": "Perpetual funding rates (fraction per 8 h settlement) per coin x UTC month.",
    "open_interest": "Open interest (USD notional where the venue gives it) per coin x UTC month; optional.",
}


class MarketDataConfig(dg.Config):
    """Optional clip of the fetch window inside the run's months (the CLI passes its exact --start/--end)."""

    start: str = ""  # UTC date or ISO datetime, inclusive; empty = the first month's start
    end: str = ""  # exclusive; empty = the last month's end (never beyond the source's now)


def _group(partition_keys: list[Any]) -> dict[str, list[str]]:
    months: dict[str, set[str]] = defaultdict(set)
    for key in partition_keys:
        coin, month = split_key(key)
        months[coin].add(month)
    return {c: sorted(m) for c, m in months.items()}


def _fingerprint(frame: pd.DataFrame) -> str:
    """Data version of a partition: a hash of its stored rows (same rows -> same version -> not stale)."""
    h = hashlib.sha256()
    for col in frame.columns:
        h.update(col.encode())
        h.update(pd.util.hash_pandas_object(frame[col], index=False).to_numpy().tobytes())
    return h.hexdigest()[:20]


def _clip(lo: int, hi: int, intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(max(s, lo), min(e, hi)) for s, e in intervals if min(e, hi) > max(s, lo)]


def _safe_now(sources: SourceSet, kind: str) -> int | None:
    try:
        return sources.now_ms(kind)
    except SourceError:
        return None


class _Ingest:
    """One kind for one coin over the run's months: fetch, then per-partition outcomes and metadata."""

    def __init__(self, context: dg.AssetExecutionContext, kind: str, coin: str, months: list[str],
                 cfg: MarketDataConfig, store: MarketStore, sources: SourceSet, spec: Any, gates: Any):
        self.context, self.kind, self.coin, self.months = context, kind, coin, months
        self.cfg, self.store, self.sources = cfg, store, sources
        self.spec = spec
        self.gates = gates
        self.family = family_of(sources.chain(kind)[0][0])
        self.now = _safe_now(sources, kind)

    def window(self) -> tuple[int, int]:
        lo = month_bounds(self.months[0])[0]
        hi = month_bounds(self.months[-1])[1]
        if self.cfg.start:
            lo = max(lo, parse_date_ms(self.cfg.start))
        if self.cfg.end:
            hi = min(hi, parse_date_ms(self.cfg.end))
        if self.now is not None:
            hi = min(hi, horizon(self.kind, self.now))
        return lo, hi

    def run(self) -> Iterator[dg.AssetMaterialization]:
        lo, hi = self.window()
        report = None
        if hi > lo:
            report = ingest_dataset(self.kind, self.spec, self.sources, self.store, lo, hi,
                                    self.gates.funding_abs_max, log=self.context.log.info,
                                    progress=self._progress())
            self.context.log.info(f"{self.coin} {self.kind}: {report.rows_written} rows written, "
                                  f"{report.rejected} rejected, {report.pages} page(s)")
        unsupported = report.unsupported if report is not None else None
        yield from self._record(unsupported)

    def _progress(self):  # noqa: ANN202
        last: dict[str, int] = {}

        def report(coin: str, kind: str, done: int, total: int) -> None:
            step = int(10 * done / max(total, 1))
            if step > last.get(kind, -1):
                last[kind] = step
                self.context.log.info(f"{coin} {kind}: {10 * step}% of the missing window fetched")

        return report

    def _record(self, unsupported: str | None) -> Iterator[dg.AssetMaterialization]:
        """Each partition's materialization (yielded, so it is stored before its checks point at it), then
        each partition's check evaluations."""
        kind, coin = self.kind, self.coin
        m_lo, m_hi = month_bounds(self.months[0])[0], month_bounds(self.months[-1])[1]
        rows = self.store.load(kind, coin, m_lo, m_hi)
        coverage = merge_intervals(self.store.coverage(kind, coin, self.family))
        rejects = self.store.rejects(kind, coin)
        rej_ts = rejects["ts"].to_numpy() if len(rejects) else None
        stats = self.store.stats(kind, coin)
        newest = month_key(int(stats["last_ts"])) if stats["last_ts"] is not None else self.months[-1]
        newest = newest if newest in self.months else self.months[-1]
        ts_all = rows["ts"].to_numpy()
        evaluations: list[tuple[str, list[CheckOutcome]]] = []
        for month in self.months:
            a, b = month_bounds(month)
            part = rows[(ts_all >= a) & (ts_all < b)].reset_index(drop=True)
            n_rej = int(((rej_ts >= a) & (rej_ts < b)).sum()) if rej_ts is not None else 0
            span = _clip(a, b if self.now is None else min(b, horizon(kind, self.now)), coverage)
            outcomes = self._outcomes(part, span, n_rej, stats, month == newest, unsupported)
            key = coin_month_key(coin, month)
            meta: dict[str, Any] = {
                "rows": len(part),
                "first_ts": ms_to_iso(int(part["ts"].min())) if len(part) else "-",
                "last_ts": ms_to_iso(int(part["ts"].max())) if len(part) else "-",
                "fetched_span": ", ".join(f"{ms_to_iso(s)} .. {ms_to_iso(e)}" for s, e in span) or "none",
                "rejects": n_rej,
                "sources": ",".join(sorted(part["source"].unique())) if len(part) else "-",
            }
            for o in outcomes:
                for k in ("gaps", "largest_gap_hours", "missing_steps"):
                    if k in o.metadata and o.name.endswith("continuity"):
                        meta[k] = o.metadata[k]
            if unsupported:
                meta["unsupported"] = unsupported
            yield dg.AssetMaterialization(asset_key=kind, partition=key, metadata=meta,
                                          tags={"dagster/data_version": _fingerprint(part.drop(columns=["source"]))})
            evaluations.append((key, outcomes))
        targets = latest_materializations(self.context.instance, kind, [k for k, _ in evaluations])
        for key, outcomes in evaluations:
            for o in outcomes:
                self.context.log_event(to_evaluation(o, kind, key, BLOCKING[(kind, o.name)], targets.get(key)))

    def _outcomes(self, part: pd.DataFrame, span: list[tuple[int, int]], n_rej: int, stats: dict[str, Any],
                  newest: bool, unsupported: str | None) -> list[CheckOutcome]:
        kind, g = self.kind, self.gates
        lo = span[0][0] if span else 0
        hi = span[-1][1] if span else 0
        ts = part["ts"].to_numpy()
        out: list[CheckOutcome] = []
        if kind == "ohlcv":
            out.append(mc.continuity(ts, lo, hi, g) if span else skipped("hourly_continuity", "nothing fetched for this month"))
            out.append(mc.ohlc_invariants(part, n_rej))
            if newest:
                last = stats["last_ts"]
                now = self.now if self.now is not None else (int(last) + HOUR_MS if last is not None else 0)
                out.append(mc.freshness(None if last is None else int(last), now, g))
                out.append(self._reconcile(part))
        elif kind == "funding":
            step = g.funding_interval_hours * HOUR_MS
            out.append(mc.continuity(ts, lo, hi, g, step_ms=step, name="funding_continuity") if span
                       else skipped("funding_continuity", "nothing fetched for this month"))
            out.append(mc.funding_plausible(part, n_rej, g))
        else:
            if unsupported and not len(part):
                out.append(skipped("oi_continuity", f"open interest not offered: {unsupported}"))
            elif not span:
                out.append(skipped("oi_continuity", "nothing fetched for this month"))
            elif not len(part):
                last = stats["last_ts"]
                why = (f"the stored series ends at {ms_to_iso(int(last))}" if last is not None and int(last) < lo
                       else "no open interest stored for this coin")
                out.append(CheckOutcome("oi_continuity", False, Severity.WARN,
                                        f"no open interest in the fetched span of this month: {why}",
                                        {"gaps": 1, "missing_steps": 0, "largest_gap_hours": (hi - lo) // HOUR_MS}))
            else:
                step = mc.infer_step_ms(self.store.load_ts(kind, self.coin), HOUR_MS)
                out.append(mc.continuity(ts, lo, hi, g, step_ms=step, name="oi_continuity", can_error=False))
            out.append(mc.oi_valid(part, n_rej))
        return out

    def _reconcile(self, part: pd.DataFrame) -> CheckOutcome:
        g = self.gates
        if self.sources.source != "auto" or part.empty:  # only the auto source set includes a second venue
            return skipped("source_reconciliation", f"single source ({self.sources.source})")
        if not any(str(s).startswith("coinbase") for s in part["source"].unique()):
            return skipped("source_reconciliation", "no Coinbase candles in this month")
        end = int(part["ts"].max()) + HOUR_MS
        start = max(int(part["ts"].min()), end - g.reconcile_sample_hours * HOUR_MS)
        try:
            other = self.sources.get("ccxt").fetch_ohlcv(self.spec.symbol("ccxt"), start, end)
        except SourceError as exc:
            return skipped("source_reconciliation", f"CCXT unavailable: {exc}")
        return mc.reconcile_closes(part[part["ts"] >= start], other, g.reconcile_tolerance_bps)


def _check_specs() -> list[dg.AssetCheckSpec]:
    with warnings.catch_warnings():  # partitioned checks are a Dagster preview feature, used deliberately
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [dg.AssetCheckSpec(name, asset=kind, blocking=b, description=d, partitions_def=PARTITIONS)
                for kind, rows in CHECKS.items() for name, b, _w, d in rows]


@dg.multi_asset(
    name="market_data",
    specs=[dg.AssetSpec(k, description=DESCRIPTIONS[k], partitions_def=PARTITIONS, group_name="market_data",
                        kinds={"sql"}, skippable=True) for k in KINDS],
    check_specs=_check_specs(),
    partitions_def=PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=True,
    description="Ingest OHLCV, funding and open interest for the run's coin x month partitions.",
)
def market_data(
    context: dg.AssetExecutionContext,
    config: MarketDataConfig,
    market_store: MarketStoreResource,
    market_source: MarketSourceResource,
    project: ProjectConfigResource,
):  # noqa: ANN201 - yields one AssetMaterialization per partition (no outputs)
    sources = market_source.source_set(project.sources())
    store = market_store.store()
    coins, gates = project.coins(), project.gates().market_data
    by_coin = _group(list(context.partition_keys))
    for kind in KINDS:
        if dg.AssetKey(kind) not in context.selected_asset_keys:
            continue
        for coin, months in by_coin.items():
            yield from _Ingest(context, kind, coin, months, config, store, sources, coins[coin], gates).run()


MARKET_JOB = "market_data_job"
MARKET_OI_JOB = "market_data_oi_job"

market_data_job = dg.define_asset_job(
    MARKET_JOB, selection=dg.AssetSelection.assets("ohlcv", "funding"), executor_def=dg.in_process_executor,
    description="OHLCV + funding for a coin x month partition range (with their checks).")
market_data_oi_job = dg.define_asset_job(
    MARKET_OI_JOB, selection=dg.AssetSelection.assets(*KINDS), executor_def=dg.in_process_executor,
    description="OHLCV + funding + open interest for a coin x month partition range (with their checks).")


def selected_kinds(project: ProjectConfigResource) -> list[dg.AssetKey]:
    """What the schedules ingest: OHLCV and funding, plus open interest when sources.yaml include_oi."""
    kinds = ["ohlcv", "funding"] + (["open_interest"] if project.sources().include_oi else [])
    return [dg.AssetKey(k) for k in kinds]


def range_tags(coins: list[str], first_month: str, last_month: str) -> dict[str, str]:
    """Run tags of one run over the rectangle coins[0]..coins[-1] x first..last month (coins contiguous in
    the configured order)."""
    return {"dagster/asset_partition_range_start": coin_month_key(coins[0], first_month),
            "dagster/asset_partition_range_end": coin_month_key(coins[-1], last_month)}


def _tick_request(context: dg.ScheduleEvaluationContext, day: dt.datetime, key: str) -> dg.RunRequest:
    project = ProjectConfigResource()
    coins = list(project.coins())
    month = month_key(int(day.timestamp() * 1000))
    return dg.RunRequest(run_key=key, tags=range_tags(coins, month, month), asset_selection=selected_kinds(project))


@dg.schedule(job=market_data_oi_job, cron_schedule="20 0 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Daily: every coin's month holding the previous UTC day (complete by then); "
                         "open interest when sources.yaml include_oi.")
def daily_market_data_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    day = context.scheduled_execution_time - dt.timedelta(days=1)
    return _tick_request(context, day, f"daily|{day:%Y-%m-%d}")


@dg.schedule(job=market_data_oi_job, cron_schedule="5 * * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Hourly: the current month of every coin picks up the candle that just closed.")
def hourly_market_data_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    t = context.scheduled_execution_time
    return _tick_request(context, t, f"hourly|{t:%Y-%m-%dT%H}")


defs = dg.Definitions(
    assets=[market_data],
    jobs=[market_data_job, market_data_oi_job],
    schedules=[daily_market_data_schedule, hourly_market_data_schedule],
)
