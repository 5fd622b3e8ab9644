"""`cryptoalgo` command line. Every command materializes Dagster assets in the instance at DAGSTER_HOME,
so each run shows in the UI (`dagster dev`)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from cryptoalgo_assets.runner import (
    CoinRun,
    ResourceSpec,
    RunSpec,
    ensure_dagster_home,
    quiet_dagster,
    run_coins,
)
from cryptoalgo_core.config import SOURCES, ConfigError, load_coins, load_gates, load_sources, resolve_coins
from cryptoalgo_core.errors import CryptoalgoError
from cryptoalgo_core.market.gaps import find_gaps
from cryptoalgo_core.timeutil import DAY_MS, floor_day, ms_to_date, ms_to_iso, parse_date_ms
from resources.store import redact_url

console = Console(stderr=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1
EXIT_GATE_FAILED = 3


class CliError(Exception):
    """A user-facing error: printed as one line, exit code EXIT_BAD_INPUT."""


@dataclass
class IngestRequest:
    coins: list[str]
    source: str
    start_ms: int
    end_ms: int
    include_oi: bool
    db_url: str
    replay_dir: str | None
    coinbase_url: str | None = None
    ccxt_url: str | None = None


def plan_ingest(
    coins: str | None,
    source: str | None,
    start: str | None,
    end: str | None,
    backfill_days: int | None,
    include_oi: bool,
    db_path: str | None,
    replay_dir: str | None,
    coinbase_url: str | None = None,
    ccxt_url: str | None = None,
) -> IngestRequest:
    """Validate every input before anything is written; raise CliError naming the problem."""
    from resources.ingest import SourceSet, window_for
    from resources.sources.base import SourceError
    from resources.store import MarketStore, StoreError, default_db_url, family_of

    try:
        coin_specs = load_coins()
        src_cfg = load_sources()
        load_gates()
        coin_list = resolve_coins(coins, coin_specs)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    source = source or os.environ.get("CRYPTOALGO_SOURCE") or src_cfg.default_source
    if source not in SOURCES:
        raise CliError(f"unknown source {source!r}; choose one of {list(SOURCES)}")
    if source == "replay":
        replay_dir = replay_dir or src_cfg.replay_dir
        if not replay_dir:
            raise CliError("--source replay needs --replay-dir DIR (or replay.dir in config/sources.yaml)")
        if not Path(replay_dir).expanduser().is_dir():
            raise CliError(f"replay directory does not exist: {replay_dir}")
    for c in coin_list:
        keys = SourceSet(source, src_cfg).chain("ohlcv")
        for _name, key in keys[:1]:
            try:
                coin_specs[c].symbol(key)
            except ConfigError as exc:
                raise CliError(str(exc)) from exc
    try:
        s_ms = parse_date_ms(start) if start else None
        e_ms = parse_date_ms(end) if end else None
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    if s_ms is not None and e_ms is not None and e_ms <= s_ms:
        raise CliError(f"--end {end} must be after --start {start}")
    if e_ms is not None and s_ms is None:
        raise CliError("--end needs --start")
    sset = SourceSet(source, src_cfg, replay_dir=replay_dir)
    if coinbase_url or ccxt_url:
        from resources.dagster_resources import MarketSourceResource

        sset = MarketSourceResource(
            source=source, replay_dir=replay_dir or "", coinbase_url=coinbase_url or "", ccxt_url=ccxt_url or ""
        ).source_set(src_cfg)
    try:
        w_start, w_end = window_for(sset, s_ms, e_ms, backfill_days)
    except SourceError as exc:
        raise CliError(f"cannot determine the data window from source {source}: {exc}") from exc
    cal = parse_date_ms(src_cfg.calendar_start)
    if w_start < cal:
        raise CliError(
            f"window starts {ms_to_date(w_start)}, before calendar_start {src_cfg.calendar_start} in "
            f"config/sources.yaml; move calendar_start earlier or ask for fewer days"
        )
    url = default_db_url(db_path)
    try:
        store = MarketStore(url)
        fam = store.source_family()
        store.dispose()
    except StoreError as exc:
        raise CliError(str(exc)) from exc
    if fam is not None and fam != family_of(source):
        raise CliError(
            f"the market store {redact_url(url)} holds {fam} data; refusing to mix in {family_of(source)} data "
            f"(use another --db-path or TRADER_DB_PATH)"
        )
    return IngestRequest(
        coins=coin_list,
        source=source,
        start_ms=w_start,
        end_ms=w_end,
        include_oi=include_oi or src_cfg.include_oi,
        db_url=url,
        replay_dir=replay_dir,
        coinbase_url=coinbase_url,
        ccxt_url=ccxt_url,
    )


def day_ranges_to_run(
    days: list[str], materialized: set[str], coin: str, always_last: bool = True
) -> list[tuple[str, str]]:
    """Contiguous ranges of `days` whose coin x day partition is not yet materialized (the last day, which
    may still be filling, is always re-run)."""
    todo = [d for i, d in enumerate(days) if f"{coin}|{d}" not in materialized or (always_last and i == len(days) - 1)]
    ranges: list[tuple[str, str]] = []
    index = {d: i for i, d in enumerate(days)}
    for d in todo:
        if ranges and index[d] == index[ranges[-1][1]] + 1:
            ranges[-1] = (ranges[-1][0], d)
        else:
            ranges.append((d, d))
    return ranges


def _resources(req: IngestRequest) -> ResourceSpec:
    return ResourceSpec(
        db_url=req.db_url,
        source=req.source,
        replay_dir=req.replay_dir or "",
        coinbase_url=req.coinbase_url or "",
        ccxt_url=req.ccxt_url or "",
    )


def run_ingest(req: IngestRequest, show_progress: bool = True, workers: int | None = None) -> list[CoinRun]:
    """One Dagster run per coin x contiguous range of day partitions not yet materialized.

    Partitions already materialized are skipped: their data is in the store (and a run only fetches what
    the store's coverage lacks anyway), so re-running them would only repeat Dagster's bookkeeping. The
    planned events of each run are batched into one per asset (DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS).
    """
    import dagster as dg

    from cryptoalgo_assets.definitions import MARKET_JOB, MARKET_OI_JOB
    from partitions import coin_day_key
    from resources.store import MarketStore, family_of

    quiet_dagster()
    ensure_dagster_home()
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
    kinds = ["ohlcv", "funding"] + (["open_interest"] if req.include_oi else [])
    job = MARKET_OI_JOB if req.include_oi else MARKET_JOB
    w_start, w_end = floor_day(req.start_ms), floor_day(req.end_ms - 1) + DAY_MS
    days = [ms_to_date(t) for t in range(w_start, w_end, DAY_MS)]
    instance = dg.DagsterInstance.get()
    done = set.intersection(*[set(instance.get_materialized_partitions(dg.AssetKey(k))) for k in kinds])
    plan = {
        c: [
            RunSpec(
                job,
                tags={
                    "dagster/asset_partition_range_start": coin_day_key(c, a),
                    "dagster/asset_partition_range_end": coin_day_key(c, b),
                    "cryptoalgo/command": "ingest",
                    "cryptoalgo/source": req.source,
                },
            )
            for a, b in day_ranges_to_run(days, done, c)
        ]
        for c in req.coins
    }
    store = MarketStore(req.db_url)
    family = family_of(req.source)
    span = max(1, min(w_end, req.end_ms + DAY_MS) - w_start)

    def probe(coin: str, kind: str) -> float:
        covered = sum(max(0, min(e, w_end) - max(s, w_start)) for s, e in store.coverage(kind, coin, family))
        return min(1.0, covered / span)

    try:
        return run_coins(
            _resources(req), plan, [(c, k) for c in req.coins for k in kinds], probe, err, show_progress, workers
        )
    finally:
        store.dispose()


def run_research(
    coins: list[str], db_url: str, show_progress: bool = True, workers: int | None = None
) -> list[CoinRun]:
    """features -> labels -> ml_dataset -> data_qa for each coin (one run per coin partition)."""
    from cryptoalgo_assets.definitions import RESEARCH_JOB

    quiet_dagster()
    plan = {c: [RunSpec(RESEARCH_JOB, partition_key=c, tags={"cryptoalgo/command": "features"})] for c in coins}
    return run_coins(
        ResourceSpec(db_url=db_url), plan, [(c, "features + QA") for c in coins], None, err, show_progress, workers
    )


def data_summary(db_url: str, coins: list[str] | None = None) -> Table:
    from resources.store import MarketStore

    store = MarketStore(db_url)
    table = Table(title=f"market data — {redact_url(db_url)}")
    for col in ("coin", "candles", "first", "last", "gaps", "largest gap h", "rejects", "funding", "OI", "source"):
        table.add_column(col, justify="right" if col not in ("coin", "first", "last", "source") else "left")
    for coin in coins or store.coins():
        st = store.stats("ohlcv", coin)
        ts = store.load_ts("ohlcv", coin)
        if ts:
            rep = find_gaps(ts, ts[0], ts[-1] + 3_600_000)
            gaps, largest = str(rep.n_gaps), str(rep.largest)
        else:
            gaps, largest = "-", "-"
        rej = store.rejects(coin=coin)
        table.add_row(
            coin,
            str(st["rows"]),
            ms_to_iso(st["first_ts"]),
            ms_to_iso(st["last_ts"]),
            gaps,
            largest,
            str(len(rej)),
            str(store.stats("funding", coin)["rows"]),
            str(store.stats("open_interest", coin)["rows"]),
            ",".join(st["sources"]) or "-",
        )
    store.dispose()
    return table


def _report_runs(runs: list[CoinRun], gate: bool = False) -> int:
    """Print failures; return the exit code: 1 a run failed for another reason than a blocking check,
    3 a blocking check failed (when `gate`; a blocking ERROR also stops its run), else 0."""
    failed_runs = [r for r in runs if not r.success and not (gate and r.blocking_failures)]
    blocked = sorted({f"{r.coin}: {c[0]}" for r in runs for c in r.blocking_failures}) if gate else []
    for r in runs:
        if not r.success:
            err.print(f"[red]run {','.join(r.run_ids) or '-'} for {r.coin} failed[/red]")
            for f in r.failures:
                err.print(f"  {f.splitlines()[0]}")
        for name, sev, desc in r.check_failures:
            colour = "red" if sev == "ERROR" else "yellow"
            err.print(f"[{colour}]check failed ({sev}): {r.coin} {name}[/{colour}] {desc}")
    if failed_runs:
        return EXIT_RUN_FAILED
    if blocked:
        err.print(f"[red]blocking QA failed[/red] — {'; '.join(blocked)}")
        return EXIT_GATE_FAILED
    return 0


def run_models(
    coins: list[str], db_url: str, holdout_days: int | None, cohort: str, show_progress: bool = True,
    workers: int | None = None,
) -> list[CoinRun]:
    """walk_forward_model -> backtest for each coin (one run per coin partition)."""
    from cryptoalgo_assets.definitions import MODEL_JOB

    quiet_dagster()
    rc = {"ops": {"walk_forward_model": {"config": {"holdout_days": -1 if holdout_days is None else holdout_days}}}}
    plan = {c: [RunSpec(MODEL_JOB, partition_key=c, tags={"cryptoalgo/command": "train"}, run_config=rc)]
            for c in coins}
    return run_coins(ResourceSpec(db_url=db_url, cohort=cohort), plan, [(c, "train + backtest") for c in coins],
                     None, err, show_progress, workers)


def _ratio(r: float) -> str:
    """fee/edge ratio; n/a when there is no positive gross edge for fees to eat."""
    return "n/a" if not np.isfinite(r) else f"{r:.2f}"


def _diag(coin: str, cohort: str) -> dict[str, Any] | None:
    from resources.artifacts import ArtifactStore

    p = ArtifactStore().path("runs", cohort, coin, "diagnostics.json")
    return json.loads(p.read_text()) if p.exists() else None


def edge_table(coins: list[str], cohort: str) -> Table:
    t = Table(title=f"edge decomposition (bps per trade, out of sample) — cohort {cohort}")
    for c in ("coin", "trades", "dir AUC", "gross", "fees", "slippage", "funding", "net", "fee/edge",
              "stop-loss", "take-profit", "time", "win rate", "avg hold h", "total return", "max DD"):
        t.add_column(c, justify="left" if c == "coin" else "right")
    for coin in coins:
        d = _diag(coin, cohort)
        if d is None:
            t.add_row(coin, *["-"] * 15)
            continue
        e, x, p = d["edge"], d["exits"], d["performance"]
        t.add_row(coin, str(e["trades"]), f"{d['calibration']['directional_auc']:.3f}", f"{e['gross_bps']:.1f}",
                  f"{e['fees_bps']:.1f}", f"{e['slippage_bps']:.1f}", f"{e['funding_bps']:.1f}",
                  f"{e['net_bps']:.1f}", _ratio(e["fee_edge_ratio"]), f"{x['shares']['stop_loss']:.0%}",
                  f"{x['shares']['take_profit']:.0%}", f"{x['shares']['time']:.0%}", f"{x['win_rate']:.0%}",
                  f"{x['avg_hold_hours']:.1f}", f"{p['total_return']:+.1%}", f"{p['max_drawdown']:.1%}")
    return t


def coin_detail_tables(coin: str, cohort: str) -> list[Table]:
    d = _diag(coin, cohort)
    if d is None:
        return []
    ex = Table(title=f"{coin}: exit reasons")
    for c in ("reason", "share", "trades", "net bps", "avg hold h"):
        ex.add_column(c, justify="left" if c == "reason" else "right")
    for r, s in d["exits"]["shares"].items():
        b = d["exits"]["by_reason"][r]
        ex.add_row(r, f"{s:.1%}", str(b["trades"]), f"{b['net_bps']:.1f}", f"{b['avg_hold_hours']:.1f}")
    rg = Table(title=f"{coin}: regime buckets at entry")
    for c in ("vol", "trend", "trades", "net bps", "win rate"):
        rg.add_column(c, justify="left" if c in ("vol", "trend") else "right")
    for r in d["regimes"]:
        rg.add_row(r["vol"], r["trend"], str(r["trades"]), f"{r['net_bps']:.1f}", f"{r['win_rate']:.0%}")
    cal = d["calibration"]["direction"]
    cb = Table(title=f"{coin}: calibration of P(up first | touched) — Brier {cal['brier']:.4f}, n {cal['n']}")
    for c in ("bin", "n", "mean predicted", "observed"):
        cb.add_column(c, justify="right")
    for b in cal["bins"]:
        cb.add_row(b["bin"], str(b["n"]), f"{b['mean_pred']:.3f}", f"{b['observed']:.3f}")
    fn = Table(title=f"{coin}: signal funnel (bars)")
    fn.add_column("step")
    fn.add_column("bars", justify="right")
    for k, v in d["signal_funnel"].items():
        fn.add_row(k, str(v))
    return [ex, rg, cb, fn]


def qa_table(coins: list[str]) -> Table:
    from cryptoalgo_assets.defs.research_data import qa_summary_rows
    from resources.artifacts import ArtifactStore

    art = ArtifactStore()
    rows = {r["coin"]: r for r in qa_summary_rows(art)}
    table = Table(title=f"data QA — {art.path('qa')}")
    cols = ["coin", "rows", "labeled", "pos rate", "gaps", "largest gap h", "worst missing", "drifted", "gaps",
            "target", "missing", "drift"]
    for c in cols:
        table.add_column(c, justify="left" if c == "coin" else "right")
    for coin in coins:
        r = rows.get(coin)
        if r is None:
            table.add_row(coin, *["-"] * (len(cols) - 1))
            continue
        pr = r["positive_rate"]
        table.add_row(
            coin, str(r["rows"]), str(r["labeled_rows"]), "-" if pr is None else f"{pr:.3f}", str(r["n_gaps"]),
            str(r["largest_gap_hours"]), f"{r['worst_missing']:.2%}", str(r["drift_flagged"]),
            r["check_qa_gaps"], r["check_qa_target"], r["check_qa_missingness"], r["check_qa_drift"],
        )
    return table


# ---------------------------------------------------------------------------------------------- commands
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """cryptoalgo: cost-adjusted, robust edge research on a Dagster asset graph."""


def _ingest_options(f: Any) -> Any:
    opts = [
        click.option("--coins", default=None, help="Comma-separated coins (default: all in config/coins.yaml)."),
        click.option("--source", type=click.Choice(SOURCES), default=None,
                     help="Data source (default: CRYPTOALGO_SOURCE or sources.yaml default_source)."),
        click.option("--backfill-days", type=click.IntRange(1, 20000), default=None,
                     help="Days back from the source's now (default 365)."),
        click.option("--start", default=None, help="UTC start date YYYY-MM-DD (explicit window)."),
        click.option("--end", default=None, help="UTC end date YYYY-MM-DD, exclusive (default: source's now)."),
        click.option("--include-oi", is_flag=True, help="Also ingest open interest."),
        click.option("--db-path", default=None, help="SQLite path or SQLAlchemy URL (default TRADER_DB_PATH)."),
        click.option("--replay-dir", default=None, help="Directory for --source replay."),
        click.option("--coinbase-url", default=None, hidden=True),
        click.option("--ccxt-url", default=None, hidden=True),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


@main.command()
@click.option("--backfill-only", is_flag=True,
              help="Fill history and exit (the default and only mode here; live updates are the hourly schedule).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Coins ingested at once (default 2).")
@_ingest_options
def ingest(backfill_only: bool, no_progress: bool, workers: int | None, **kw: Any) -> None:
    """Ingest OHLCV + funding (+ OI) for coins x days into the market store, via Dagster runs."""
    try:
        req = plan_ingest(**kw)
    except CliError as exc:
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(EXIT_BAD_INPUT)
    console.print(
        f"ingest {','.join(req.coins)} from {req.source}: {ms_to_iso(req.start_ms)} .. {ms_to_iso(req.end_ms)} "
        f"into {redact_url(req.db_url)}"
    )
    try:
        runs = run_ingest(req, show_progress=not no_progress, workers=workers)
    except (CliError, CryptoalgoError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(EXIT_BAD_INPUT)
    console.print(data_summary(req.db_url, req.coins))
    sys.exit(_report_runs(runs))


@main.command()
@click.option("--db-path", default=None, help="SQLite path or SQLAlchemy URL (default TRADER_DB_PATH).")
@click.option("--coins", default=None)
def summary(db_path: str | None, coins: str | None) -> None:
    """Per-coin data summary of the market store."""
    from resources.store import default_db_url

    try:
        coin_list = resolve_coins(coins, load_coins()) if coins else None
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(EXIT_BAD_INPUT)
    console.print(data_summary(default_db_url(db_path), coin_list))


@main.command()
@click.option("--coins", default=None, help="Comma-separated coins (default: all in config/coins.yaml).")
@click.option("--db-path", default=None, help="SQLite path or SQLAlchemy URL (default TRADER_DB_PATH).")
@click.option("--no-progress", is_flag=True)
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Coins at once (default 2).")
def features(coins: str | None, db_path: str | None, no_progress: bool, workers: int | None) -> None:
    """Features, labels, ML dataset and data QA per coin; exit 3 when a blocking QA check fails."""
    from resources.store import MarketStore, StoreError, default_db_url

    try:
        coin_list = resolve_coins(coins, load_coins())
        load_gates()
        url = default_db_url(db_path)
        store = MarketStore(url)
        missing = [c for c in coin_list if store.stats("ohlcv", c)["rows"] == 0]
        store.dispose()
    except (ConfigError, StoreError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(EXIT_BAD_INPUT)
    if missing:
        err.print(f"[red]error:[/red] no OHLCV stored for {missing} in {redact_url(url)}; run `cryptoalgo ingest` first")
        sys.exit(EXIT_BAD_INPUT)
    runs = run_research(coin_list, url, show_progress=not no_progress, workers=workers)
    console.print(qa_table(coin_list))
    sys.exit(_report_runs(runs, gate=True))


@main.command()
@click.option("--coin", "coin_opt", multiple=True, help="Coin(s) to train (repeat or comma-separate; default all).")
@click.option("--holdout-days", type=click.IntRange(0, 3650), default=None,
              help="Untouched final window (default: the coin profile's walk_forward.holdout_days).")
@click.option("--cohort", default=None, help="Experiment name under data/runs/ (default CRYPTOALGO_COHORT or 'default').")
@click.option("--db-path", default=None, help="SQLite path or SQLAlchemy URL (default TRADER_DB_PATH).")
@click.option("--no-progress", is_flag=True)
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Coins at once (default 2).")
def train(coin_opt: tuple[str, ...], holdout_days: int | None, cohort: str | None, db_path: str | None,
          no_progress: bool, workers: int | None) -> None:
    """Walk-forward model + cost-aware backtest; prints edge decomposition and exit diagnostics."""
    from resources.artifacts import ArtifactStore
    from resources.store import default_db_url

    try:
        coin_list = resolve_coins(",".join(coin_opt) if coin_opt else None, load_coins())
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(EXIT_BAD_INPUT)
    cohort = cohort or os.environ.get("CRYPTOALGO_COHORT") or "default"
    missing = [c for c in coin_list if not ArtifactStore().path("ml", f"{c}.parquet").exists()]
    if missing:
        err.print(f"[red]error:[/red] no ML dataset for {missing}; run `cryptoalgo features` first")
        sys.exit(EXIT_BAD_INPUT)
    runs = run_models(coin_list, default_db_url(db_path), holdout_days, cohort, not no_progress, workers)
    console.print(edge_table(coin_list, cohort))
    if len(coin_list) == 1:
        for t in coin_detail_tables(coin_list[0], cohort):
            console.print(t)
    sys.exit(_report_runs(runs))


@main.command()
@click.option("--db-path", default=None, help="SQLite path or SQLAlchemy URL (default TRADER_DB_PATH).")
@click.option("--days", type=click.IntRange(1, 2000), default=365, help="Days of synthetic history.")
@click.option("--no-progress", is_flag=True)
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Coins ingested at once (default 2).")
def demo(db_path: str | None, days: int, no_progress: bool, workers: int | None) -> None:
    """The graph on the embedded synthetic market (5 coins): ingest, features, QA, walk-forward, backtest."""
    try:
        req = plan_ingest(None, "synthetic", None, None, days, True, db_path, None)
    except CliError as exc:
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(EXIT_BAD_INPUT)
    console.print(f"demo: synthetic market, {len(req.coins)} coins x {days} days -> {redact_url(req.db_url)}")
    runs = run_ingest(req, show_progress=not no_progress, workers=workers)
    console.print(data_summary(req.db_url, req.coins))
    code = _report_runs(runs)
    if code:
        sys.exit(code)
    research = run_research(req.coins, req.db_url, show_progress=not no_progress, workers=workers)
    console.print(qa_table(req.coins))
    code = _report_runs(research, gate=True)
    passed = [r.coin for r in research if r.success]
    if passed:
        cohort = os.environ.get("CRYPTOALGO_COHORT") or "default"
        models = run_models(passed, req.db_url, None, cohort, show_progress=not no_progress, workers=workers)
        console.print(edge_table(passed, cohort))
        code = code or _report_runs(models)
    sys.exit(code)


if __name__ == "__main__":
    main()

__all__ = ["main", "plan_ingest", "run_ingest", "run_research", "data_summary"]
