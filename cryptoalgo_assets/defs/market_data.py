"""Market-data stage: `ohlcv`, `funding`, `open_interest` (coin x day) and their quality checks.

Each asset body: work out the coin/day windows of the run, call the ingestion service, evaluate the
pure checks of cryptoalgo_core.market.checks, and return metadata + check results.
"""


from collections import defaultdict
from typing import Any

import dagster as dg

from cryptoalgo_core.market import checks as mc
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS, ms_to_iso, parse_date_ms
from partitions import COIN_DIM, DAY_DIM, coin_day_partitions
from resources.dagster_resources import MarketSourceResource, MarketStoreResource, ProjectConfigResource
from resources.ingest import IngestReport, SourceSet, ingest_dataset
from resources.sources.base import SourceError
from resources.store import MarketStore

PARTITIONS = coin_day_partitions()

CHECKS: dict[str, list[tuple[str, bool, str]]] = {
    # name, blocking, description
    "ohlcv": [
        ("no_duplicate_keys", True, "No (coin, ts) stored twice."),
        ("hourly_continuity", True, "Gap count and largest gap; ERROR at gates.market_data.gap_error_hours."),
        ("ohlc_invariants", True, "Finite, prices > 0, low <= min(o,c), high >= max(o,c), volume >= 0; rejects reported."),
        ("freshness", False, "Newest candle vs the source's now."),
        ("source_reconciliation", False, "Coinbase vs CCXT closes where both exist (auto/coinbase sources)."),
    ],
    "funding": [
        ("no_duplicate_keys", True, "No (coin, ts) stored twice."),
        ("funding_continuity", False, "Settlements on the funding grid (8 h); gaps reported."),
        ("funding_plausible", True, "Finite rates within gates.market_data.funding_abs_max."),
    ],
    "open_interest": [
        ("no_duplicate_keys", True, "No (coin, ts) stored twice."),
        ("oi_continuity", False, "Gaps at the series' own cadence (hourly or daily)."),
        ("oi_valid", True, "Finite, non-negative values with a unit."),
    ],
}


def _check_specs(kind: str) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(name, asset=kind, blocking=b, description=d) for name, b, d in CHECKS[kind]]


def windows_by_coin(partition_keys: list[Any]) -> dict[str, list[tuple[int, int]]]:
    """Partition keys of a run -> per coin, merged [start, end) windows of whole UTC days."""
    days: dict[str, list[int]] = defaultdict(list)
    for key in partition_keys:
        if isinstance(key, dg.MultiPartitionKey):
            kd = key.keys_by_dimension
            coin, day = kd[COIN_DIM], kd[DAY_DIM]
        else:
            coin, day = str(key).split("|")
        days[coin].append(parse_date_ms(day))
    out: dict[str, list[tuple[int, int]]] = {}
    for coin, starts in days.items():
        spans: list[tuple[int, int]] = []
        for s in sorted(set(starts)):
            if spans and spans[-1][1] == s:
                spans[-1] = (spans[-1][0], s + DAY_MS)
            else:
                spans.append((s, s + DAY_MS))
        out[coin] = spans
    return out


def _evaluate(
    kind: str, coin: str, store: MarketStore, start: int, end: int, sources: SourceSet, gates: Any
) -> tuple[list[mc.CheckOutcome], dict[str, Any]]:
    g = gates.market_data
    stored = store.load(kind, coin, start, end)
    rejects = store.count_rejects(kind, coin, start, end)
    outcomes = [mc.no_duplicates(store.duplicate_keys(kind, coin))]
    now = min(end, _safe_now(sources, kind, end))
    if kind == "ohlcv":
        outcomes.append(mc.continuity(stored["ts"].to_numpy(), start, now if now > start else end, g))
        outcomes.append(mc.ohlc_invariants(stored, rejects))
        last = store.stats(kind, coin)["last_ts"]
        outcomes.append(mc.freshness(None if last is None else int(last), _safe_now(sources, kind, end), g))
        outcomes.append(_reconcile(coin, stored, sources, g))
    elif kind == "funding":
        step = g.funding_interval_hours * HOUR_MS
        outcomes.append(mc.continuity(stored["ts"].to_numpy(), start, now, g, step_ms=step, name="funding_continuity"))
        outcomes.append(mc.funding_plausible(stored, rejects, g))
    else:
        if stored.empty:
            outcomes.append(mc.skipped("oi_continuity", "no open interest available in the window"))
        else:
            step = mc.infer_step_ms(store.load_ts(kind, coin), HOUR_MS)
            outcomes.append(
                mc.continuity(stored["ts"].to_numpy(), int(stored["ts"].min()), now, g, step_ms=step,
                              name="oi_continuity", can_error=False)
            )
        outcomes.append(mc.oi_valid(stored, rejects))
    st = store.stats(kind, coin)
    meta = {
        "rows_in_window": len(stored),
        "rows_total": st["rows"],
        "first_ts": ms_to_iso(st["first_ts"]),
        "last_ts": ms_to_iso(st["last_ts"]),
        "rejects_in_window": rejects,
        "sources": ",".join(st["sources"]) or "-",
    }
    return outcomes, meta


def _safe_now(sources: SourceSet, kind: str, default: int) -> int:
    try:
        return sources.now_ms(kind)
    except SourceError:
        return default


def _reconcile(coin: str, stored: Any, sources: SourceSet, g: Any) -> mc.CheckOutcome:
    if sources.source not in ("auto", "coinbase") or stored.empty:
        return mc.skipped("source_reconciliation", f"single source ({sources.source})")
    if not any(str(s).startswith("coinbase") for s in stored["source"].unique()):
        return mc.skipped("source_reconciliation", "no Coinbase candles in the window")
    end = int(stored["ts"].max()) + HOUR_MS
    start = max(int(stored["ts"].min()), end - g.reconcile_sample_hours * HOUR_MS)
    try:
        from cryptoalgo_core.config import load_coins

        spec = load_coins()[coin]
        other = sources.get("ccxt").fetch_ohlcv(spec.symbol("ccxt"), start, end)
    except SourceError as exc:
        return mc.skipped("source_reconciliation", f"CCXT unavailable: {exc}")
    prim = stored[stored["ts"] >= start]
    return mc.reconcile_closes(prim, other, g.reconcile_tolerance_bps)


def _log_progress(context: dg.AssetExecutionContext):  # noqa: ANN202
    """Progress of a long backfill as Dagster log lines, at most one per 10 % step per coin x dataset."""
    last: dict[tuple[str, str], int] = {}

    def report(coin: str, kind: str, done: int, total: int) -> None:
        step = int(10 * done / max(total, 1))
        if step > last.get((coin, kind), -1):
            last[(coin, kind)] = step
            context.log.info(f"{coin} {kind}: {10 * step}% of the missing window fetched")

    return report


def run_ingest_asset(
    context: dg.AssetExecutionContext,
    kind: str,
    market_store: MarketStoreResource,
    market_source: MarketSourceResource,
    project: ProjectConfigResource,
) -> dg.MaterializeResult:
    coins = project.coins()
    src_cfg = project.sources()
    gates = project.gates()
    sources = market_source.source_set(src_cfg)
    store = market_store.store()
    windows = windows_by_coin(list(context.partition_keys))
    reports: list[IngestReport] = []
    per_coin: dict[str, tuple[list[mc.CheckOutcome], dict[str, Any]]] = {}
    for coin, spans in windows.items():
        for start, end in spans:
            rep = ingest_dataset(
                kind,
                coins[coin],
                sources,
                store,
                start,
                end,
                gates.market_data.funding_abs_max,
                log=context.log.info,
                progress=_log_progress(context),
            )
            reports.append(rep)
            context.log.info(f"{coin} {kind} {ms_to_iso(start)}..{ms_to_iso(end)}: {rep.as_dict()}")
        lo, hi = spans[0][0], spans[-1][1]
        per_coin[coin] = _evaluate(kind, coin, store, lo, hi, sources, gates)
    return _result(kind, sources.source, reports, per_coin)


def _result(
    kind: str,
    source: str,
    reports: list[IngestReport],
    per_coin: dict[str, tuple[list[mc.CheckOutcome], dict[str, Any]]],
) -> dg.MaterializeResult:
    check_results = []
    for name, _blocking, _d in CHECKS[kind]:
        outs = [(coin, o) for coin, (os_, _m) in per_coin.items() for o in os_ if o.name == name]
        failed = [(c, o) for c, o in outs if not o.passed]
        sev = dg.AssetCheckSeverity.ERROR if any(o.severity == "ERROR" for _, o in failed) else dg.AssetCheckSeverity.WARN
        md: dict[str, Any] = {}
        for c, o in outs:
            md[f"{c}"] = dg.MetadataValue.text(o.description)
            for k, v in o.metadata.items():
                if isinstance(v, (int, float, str)) and not isinstance(v, bool):
                    md[f"{c}.{k}"] = v
        check_results.append(
            dg.AssetCheckResult(check_name=name, passed=not failed, severity=sev, metadata=md,
                                description="; ".join(f"{c}: {o.description}" for c, o in failed) or None)
        )
    total_rows = sum(r.rows_written for r in reports)
    total_rej = sum(r.rejected for r in reports)
    md_parts = []
    for coin, (outs, meta) in per_coin.items():
        md_parts.append(mc.summary_markdown(f"{coin} {kind}", meta, outs))
    metadata: dict[str, Any] = {
        "source": source,
        "rows_written": total_rows,
        "rejected": total_rej,
        "pages": sum(r.pages for r in reports),
        "summary": dg.MetadataValue.md("\n\n".join(md_parts) or "no data"),
    }
    for coin, (_o, meta) in per_coin.items():
        metadata[f"{coin}.rows_total"] = meta["rows_total"]
        metadata[f"{coin}.last_ts"] = meta["last_ts"]
    unsupported = [r.unsupported for r in reports if r.unsupported]
    if unsupported:
        metadata["unsupported"] = "; ".join(sorted(set(unsupported)))
    return dg.MaterializeResult(metadata=metadata, check_results=check_results)


_COMMON = dict(
    partitions_def=PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="market_data",
)


@dg.asset(check_specs=_check_specs("ohlcv"), kinds={"sql"}, **_COMMON,  # type: ignore[arg-type]
          description="Hourly OHLCV candles (closed bars) in the market store, one partition per coin x UTC day.")
def ohlcv(
    context: dg.AssetExecutionContext,
    market_store: MarketStoreResource,
    market_source: MarketSourceResource,
    project: ProjectConfigResource,
) -> dg.MaterializeResult:
    return run_ingest_asset(context, "ohlcv", market_store, market_source, project)


@dg.asset(check_specs=_check_specs("funding"), kinds={"sql"}, **_COMMON,  # type: ignore[arg-type]
          description="Perpetual funding rates (fraction per 8 h settlement) per coin x UTC day.")
def funding(
    context: dg.AssetExecutionContext,
    market_store: MarketStoreResource,
    market_source: MarketSourceResource,
    project: ProjectConfigResource,
) -> dg.MaterializeResult:
    return run_ingest_asset(context, "funding", market_store, market_source, project)


@dg.asset(check_specs=_check_specs("open_interest"), kinds={"sql"}, **_COMMON,  # type: ignore[arg-type]
          description="Open interest (USD notional where the venue gives it) per coin x UTC day.")
def open_interest(
    context: dg.AssetExecutionContext,
    market_store: MarketStoreResource,
    market_source: MarketSourceResource,
    project: ProjectConfigResource,
) -> dg.MaterializeResult:
    return run_ingest_asset(context, "open_interest", market_store, market_source, project)


ASSETS = [ohlcv, funding, open_interest]
