"""`cryptoalgo` command line. Every command materializes Dagster assets in the instance at DAGSTER_HOME,
so each run shows in the UI (`dagster dev`)."""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from cryptoalgo_core.config import SOURCES, ConfigError, load_coins, load_gates, load_sources, resolve_coins
from cryptoalgo_core.errors import CryptoalgoError
from cryptoalgo_core.market.gaps import find_gaps
from cryptoalgo_core.timeutil import DAY_MS, floor_day, floor_hour, ms_to_date, ms_to_iso, parse_date_ms

console = Console(stderr=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1
REPO_ROOT = Path(__file__).resolve().parent.parent


class CliError(Exception):
    """A user-facing error: printed as one line, exit code EXIT_BAD_INPUT."""


def _quiet_dagster() -> None:
    warnings.filterwarnings("ignore", category=Warning, module=r"dagster.*")
    import logging

    logging.getLogger("dagster").setLevel(logging.WARNING)
    try:
        import dagster as dg

        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    except AttributeError:
        pass


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME if set, else ./dagster_home (created with the repo's dagster.yaml if missing)."""
    home = Path(os.environ.get("DAGSTER_HOME") or (Path.cwd() / "dagster_home")).expanduser().resolve()
    try:
        home.mkdir(parents=True, exist_ok=True)
        yaml_path = home / "dagster.yaml"
        if not yaml_path.exists():
            template = REPO_ROOT / "dagster_home" / "dagster.yaml"
            yaml_path.write_text(template.read_text() if template.exists() else "telemetry:\n  enabled: false\n")
    except OSError as exc:
        raise CliError(f"DAGSTER_HOME {home} is not usable: {exc.strerror}") from exc
    os.environ["DAGSTER_HOME"] = str(home)
    return home


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
            f"the market store {url} holds {fam} data; refusing to mix in {family_of(source)} data "
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


@dataclass
class CoinRun:
    coin: str
    success: bool
    run_id: str
    failures: list[str]
    check_failures: list[str]


def _execute_coin_run(req: IngestRequest, coin: str, ranges: list[tuple[str, str]]) -> CoinRun:
    """Dagster runs (in the instance at DAGSTER_HOME) over `coin`'s day-partition ranges, one run per range."""
    _quiet_dagster()
    import dagster as dg

    from cryptoalgo_assets.definitions import MARKET_JOB, MARKET_OI_JOB, build_definitions
    from partitions import coin_day_key
    from resources.dagster_resources import MarketSourceResource, MarketStoreResource

    defs = build_definitions(
        market_store=MarketStoreResource(db_url=req.db_url),
        market_source=MarketSourceResource(
            source=req.source,
            replay_dir=req.replay_dir or "",
            coinbase_url=req.coinbase_url or "",
            ccxt_url=req.ccxt_url or "",
        ),
    )
    job = defs.resolve_job_def(MARKET_OI_JOB if req.include_oi else MARKET_JOB)
    out = CoinRun(coin, True, "", [], [])
    for first_day, last_day in ranges:
        tags = {
            "dagster/asset_partition_range_start": coin_day_key(coin, first_day),
            "dagster/asset_partition_range_end": coin_day_key(coin, last_day),
            "cryptoalgo/command": "ingest",
            "cryptoalgo/source": req.source,
        }
        res = job.execute_in_process(
            instance=dg.DagsterInstance.get(),
            tags=tags,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        out.run_id = ",".join(filter(None, [out.run_id, res.run_id]))
        out.success = out.success and res.success
        out.failures += [
            f"{ev.step_key}: {ev.step_failure_data.error.message.strip()}"
            for ev in res.all_events
            if ev.is_step_failure and ev.step_failure_data and ev.step_failure_data.error
        ]
        out.check_failures += [
            f"{e.asset_key.to_user_string()}.{e.check_name} ({e.severity.value})"
            for e in res.get_asset_check_evaluations()
            if not e.passed
        ]
    return out


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


def _plan_runs(req: IngestRequest, days: list[str], kinds: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Per coin, the day ranges still to materialize in this Dagster instance (for every selected asset).

    Partitions already materialized are skipped: their data is in the store (a run only fetches what the
    store's coverage lacks anyway), so re-running them would only repeat Dagster's bookkeeping.
    """
    _quiet_dagster()
    import dagster as dg

    instance = dg.DagsterInstance.get()
    per_asset = [instance.get_materialized_partitions(dg.AssetKey(k)) for k in kinds]
    done = set.intersection(*[set(p) for p in per_asset]) if per_asset else set()
    return {c: day_ranges_to_run(days, done, c) for c in req.coins}


def run_ingest(req: IngestRequest, show_progress: bool = True, workers: int | None = None) -> list[CoinRun]:
    """One Dagster run per coin over its day-partition range, `workers` coins at a time (processes).

    Progress comes from the store's fetch coverage, so it works across processes. Dagster records one
    materialization per asset x coin x day; the planned events of each run are batched into one per asset
    (DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS) to halve that bookkeeping.
    """
    import multiprocessing as mp
    from concurrent.futures import Future, ProcessPoolExecutor

    from resources.store import MarketStore, family_of

    ensure_dagster_home()
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
    kinds = ["ohlcv", "funding"] + (["open_interest"] if req.include_oi else [])
    n_workers = max(1, min(workers or min(2, os.cpu_count() or 1), len(req.coins)))
    store = MarketStore(req.db_url)
    family = family_of(req.source)
    w_start, w_end = floor_day(req.start_ms), floor_day(req.end_ms - 1) + DAY_MS
    days = [ms_to_date(t) for t in range(w_start, w_end, DAY_MS)]
    plan = _plan_runs(req, days, kinds)

    def fraction(coin: str, kind: str) -> float:
        covered = 0
        for s, e in store.coverage(kind, coin, family):
            covered += max(0, min(e, w_end) - max(s, w_start))
        return min(1.0, covered / max(1, min(w_end, req.end_ms + DAY_MS) - w_start))

    results: dict[str, CoinRun] = {}
    with Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not show_progress,
    ) as bar:
        tasks = {(c, k): bar.add_task(f"{c} {k}", total=1.0) for c in req.coins for k in kinds}

        def refresh(done: set[str]) -> None:
            for (c, k), t in tasks.items():
                bar.update(t, completed=1.0 if c in done else fraction(c, k))

        if n_workers == 1:
            for coin in req.coins:
                results[coin] = _execute_coin_run(req, coin, plan[coin])
                refresh(set(results))
        else:
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=mp.get_context("spawn")) as pool:
                futures: dict[str, Future[CoinRun]] = {
                    c: pool.submit(_execute_coin_run, req, c, plan[c]) for c in req.coins
                }
                while not all(f.done() for f in futures.values()):
                    refresh({c for c, f in futures.items() if f.done() and not f.exception()})
                    time.sleep(0.25)
                for c, f in futures.items():
                    exc = f.exception()
                    results[c] = f.result() if exc is None else CoinRun(c, False, "-", [repr(exc)], [])
                refresh(set(results))
    store.dispose()
    return [results[c] for c in req.coins]


def data_summary(db_url: str, coins: list[str] | None = None) -> Table:
    from resources.store import MarketStore

    store = MarketStore(db_url)
    table = Table(title=f"market data — {db_url}")
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


def _report_runs(runs: list[CoinRun]) -> int:
    code = 0
    for r in runs:
        if not r.success:
            code = EXIT_RUN_FAILED
            err.print(f"[red]run {r.run_id} for {r.coin} failed[/red]")
            for f in r.failures:
                err.print(f"  {f}")
        for c in r.check_failures:
            err.print(f"[yellow]check failed: {r.coin} {c}[/yellow]")
    return code


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
        f"into {req.db_url}"
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
@click.option("--db-path", default=None, help="SQLite path or SQLAlchemy URL (default TRADER_DB_PATH).")
@click.option("--days", type=click.IntRange(1, 2000), default=365, help="Days of synthetic history.")
@click.option("--no-progress", is_flag=True)
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Coins ingested at once (default 2).")
def demo(db_path: str | None, days: int, no_progress: bool, workers: int | None) -> None:
    """The whole graph on the embedded synthetic market (5 coins), then the summary."""
    try:
        req = plan_ingest(None, "synthetic", None, None, days, True, db_path, None)
    except CliError as exc:
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(EXIT_BAD_INPUT)
    console.print(f"demo: synthetic market, {len(req.coins)} coins x {days} days -> {req.db_url}")
    runs = run_ingest(req, show_progress=not no_progress, workers=workers)
    console.print(data_summary(req.db_url, req.coins))
    sys.exit(_report_runs(runs))


if __name__ == "__main__":
    main()

__all__ = ["main", "plan_ingest", "run_ingest", "data_summary", "floor_hour", "DAY_MS"]
