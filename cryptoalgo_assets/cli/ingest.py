"""`cryptoalgo ingest` and `cryptoalgo summary`: market data into the store through Dagster runs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from cryptoalgo_assets.cli.common import (
    EXIT_GATE_FAILED,
    EXIT_OK,
    EXIT_RUN_FAILED,
    CliError,
    Window,
    command_errors,
    console,
    err,
    say,
)
from cryptoalgo_assets.cli.session import Session, Settings
from cryptoalgo_assets.launcher import RunOutcome, RunSpec, trace
from cryptoalgo_core.config import SOURCES, ConfigError, load_coins, load_gates, load_sources, resolve_coins
from cryptoalgo_core.timeutil import ms_to_date, ms_to_iso, parse_date_ms

KINDS_BASE = ("ohlcv", "funding")


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

    @property
    def kinds(self) -> tuple[str, ...]:
        return (*KINDS_BASE, "open_interest") if self.include_oi else KINDS_BASE


def synthetic_coins(coins: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(coins the synthetic market defines, configured coins it lacks) by their `synthetic` symbol."""
    from cryptoalgo_core import synthetic

    known = set(synthetic.load_synthetic_config().coin_names)
    have = [c for c, spec in coins.items() if spec.symbols.get("synthetic", c) in known]
    return have, [c for c in coins if c not in have]


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
    from resources.dagster_resources import MarketSourceResource
    from resources.ingest import window_for
    from resources.sources.base import SourceError
    from resources.store import MarketStore, StoreError, default_db_url, family_of, redact_url

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
        replay_dir = str(Path(replay_dir).expanduser().resolve())
    if source == "synthetic":
        try:
            _have, lacking = synthetic_coins({c: coin_specs[c] for c in coin_list})
        except ConfigError as exc:
            raise CliError(str(exc)) from exc
        if lacking:
            raise CliError(f"coin(s) {lacking} have no definition in config/synthetic.yaml (the synthetic market "
                           f"knows {_have or 'none of the requested coins'}); choose other --coins or another --source")
    sset = MarketSourceResource(source=source, replay_dir=replay_dir or "", coinbase_url=coinbase_url or "",
                                ccxt_url=ccxt_url or "").source_set(src_cfg)
    for c in coin_list:
        for _name, key in sset.chain("ohlcv")[:1]:
            try:
                coin_specs[c].symbol(key)
            except ConfigError as exc:
                raise CliError(str(exc)) from exc
    s_ms, e_ms = Window.parse(start, end).bounds()
    if e_ms is not None and s_ms is None:
        raise CliError("--end needs --start")
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
    if source == "synthetic":
        from cryptoalgo_core import synthetic

        origin, cal_end = synthetic.calendar_bounds(synthetic.load_synthetic_config())
        if w_start < origin or w_end > cal_end:
            raise CliError(
                f"window {ms_to_date(w_start)} .. {ms_to_date(w_end)} is outside the synthetic calendar "
                f"{ms_to_date(origin)} .. {ms_to_date(cal_end)} (config/synthetic.yaml calendar)"
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
    return IngestRequest(coins=coin_list, source=source, start_ms=w_start, end_ms=w_end,
                         include_oi=include_oi or src_cfg.include_oi, db_url=url, replay_dir=replay_dir,
                         coinbase_url=coinbase_url, ccxt_url=ccxt_url)


def quarters_to_run(req: IngestRequest, materialized: dict[str, set[str]], missing: dict[tuple[str, str], list[tuple[int, int]]]
                  ) -> dict[str, list[str]]:
    """Per coin, the quarters of the window that need a run: some dataset's partition is not materialized,
    or the store's fetch coverage lacks part of the window inside that quarter (e.g. the still-filling one)."""
    from partitions import coin_quarter_key, quarter_bounds, quarters_between

    out: dict[str, list[str]] = {}
    for coin in req.coins:
        need = []
        for m in quarters_between(req.start_ms, req.end_ms):
            a, b = quarter_bounds(m)
            key = coin_quarter_key(coin, m)
            if any(key not in materialized[k] for k in req.kinds) or any(
                s < b and e > a for k in req.kinds for s, e in missing[(coin, k)]
            ):
                need.append(m)
        if need:
            out[coin] = need
    return out


def run_specs(req: IngestRequest, need: dict[str, list[str]], order: list[str]) -> list[RunSpec]:
    """One run per block of coins that are adjacent in the configured order (a run targets a rectangle
    coin range x quarter range), over the union of the block's quarters."""
    from cryptoalgo_assets.defs.market_data import MARKET_JOB, MARKET_OI_JOB, range_tags

    coins = [c for c in order if c in need]
    blocks: list[list[str]] = []
    for c in coins:
        if blocks and order.index(c) == order.index(blocks[-1][-1]) + 1:
            blocks[-1].append(c)
        else:
            blocks.append([c])
    job = MARKET_OI_JOB if req.include_oi else MARKET_JOB
    specs = []
    cfg = {"start": ms_to_iso(req.start_ms).replace("Z", ""), "end": ms_to_iso(req.end_ms).replace("Z", "")}
    for block in blocks:
        first = min(need[c][0] for c in block)
        last = max(need[c][-1] for c in block)
        specs.append(RunSpec(
            job=job,
            label=block[0] if len(block) == 1 else f"{block[0]}..{block[-1]}",
            tags={**range_tags(block, first, last), "cryptoalgo/source": req.source},
            run_config={"ops": {"market_data": {"config": cfg}}, "resources": {"market_source": {"config": {
                "source": req.source, "replay_dir": req.replay_dir or "", "coinbase_url": req.coinbase_url or "",
                "ccxt_url": req.ccxt_url or ""}}}},
        ))
    return specs


def run_ingest(session: Session, req: IngestRequest) -> tuple[list[RunOutcome], int]:
    """Plan, submit and follow the ingest runs; (outcomes, number of coins that needed a run)."""
    import dagster as dg

    from resources.store import MarketStore, family_of

    instance = session.instance
    materialized = {k: set(instance.get_materialized_partitions(dg.AssetKey(k))) for k in req.kinds}
    store = MarketStore(req.db_url)
    try:
        missing = {(c, k): store.missing_windows(k, c, req.source, req.start_ms, req.end_ms)
                   for c in req.coins for k in req.kinds}
        need = quarters_to_run(req, materialized, missing)
        specs = run_specs(req, need, list(load_coins()))
        family = family_of(req.source)
        span = max(1, req.end_ms - req.start_ms)

        def probe(by_id: dict[str, RunSpec], statuses: dict[str, str]) -> dict[str, tuple[float, str]]:
            status_of = {}
            for rid, spec in by_id.items():
                for c in req.coins:
                    if spec.label == c or (".." in spec.label and c in _block(spec.label)):
                        status_of[c] = statuses[rid]
            out = {}
            for c in req.coins:
                if c not in need:
                    out[c] = (1.0, "SUCCESS")
                    continue
                fr = []
                for k in req.kinds:
                    cov = sum(max(0, min(e, req.end_ms) - max(s, req.start_ms)) for s, e in store.coverage(k, c, family))
                    fr.append(min(1.0, cov / span))
                st = status_of.get(c, "STARTED")
                out[c] = (1.0 if st == "SUCCESS" else min(fr) * 0.99, st)
            return out

        outcomes = session.run(specs, progress_rows=list(req.coins), probe=probe,
                               title=f"ingest: {len(specs)} run(s)")
    finally:
        store.dispose()
    return outcomes, len(need)


def _block(label: str) -> list[str]:
    a, b = label.split("..")
    order = list(load_coins())
    return order[order.index(a): order.index(b) + 1]


def report_runs(outcomes: list[RunOutcome], gate: bool = True) -> int:
    """Print failures; exit code: 1 a run failed, 3 a blocking (ERROR) check failed (when `gate`), else 0."""
    code = EXIT_OK
    blocked = []
    for o in outcomes:
        if not o.success:
            err.print(f"run {o.run_id[:8]} ({o.job}, {o.label}) {o.status.lower()}", markup=False, style="red")
            for f in o.failures:
                err.print(f"  {f.splitlines()[0]}", markup=False)
        for c in o.check_failures:
            where = c.partition or o.label
            err.print(f"check failed ({c.severity}): {where} {c.asset}.{c.check} — {c.description}",
                      markup=False, style="red" if c.blocking else "yellow")
            if c.blocking:
                blocked.append(f"{c.coin or o.label}: {c.asset}.{c.check}")
    if any(not o.success and not (gate and any(c.blocking for c in o.check_failures)) for o in outcomes):
        code = EXIT_RUN_FAILED
    elif gate and blocked:
        err.print(f"blocking checks failed — {'; '.join(sorted(set(blocked)))}", markup=False, style="red")
        code = EXIT_GATE_FAILED
    return code


def ingest_options(f: Any) -> Any:
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


def data_summary(db_url: str, coins: list[str] | None = None) -> Any:
    from cryptoalgo_assets.cli.tables import summary_table
    from resources.store import MarketStore

    store = MarketStore(db_url, create=False)
    try:
        return summary_table(store, coins)
    finally:
        store.dispose()


@click.command()
@click.option("--backfill-only", is_flag=True,
              help="Fill history and exit (the default and only mode here; live updates are the hourly schedule).")
@click.option("--no-progress", is_flag=True, help="No progress display.")
@ingest_options
@command_errors
def ingest(backfill_only: bool, no_progress: bool, **kw: Any) -> None:
    """Ingest OHLCV + funding (+ OI) for coins x quarters into the market store, via Dagster runs."""
    from resources.store import default_db_url

    with Session("ingest", Settings(default_db_url(kw["db_path"])), show_progress=not no_progress) as session:
        req = plan_ingest(**kw)  # the code location loads meanwhile; nothing runs before this passes
        say(f"ingest {','.join(req.coins)} from {req.source}: {ms_to_iso(req.start_ms)} .. {ms_to_iso(req.end_ms)} "
            f"into {_redact(req.db_url)}")
        outcomes, n = run_ingest(session, req)
    if not n:
        say("nothing to fetch: every quarter of the window is materialized and covered")
    console.print(data_summary(req.db_url, req.coins))
    trace("summary_printed")
    raise SystemExit(report_runs(outcomes))


def _redact(url: str) -> str:
    from resources.store import redact_url

    return redact_url(url)


@click.command()
@click.option("--db-path", default=None, help="SQLite path or SQLAlchemy URL (default TRADER_DB_PATH).")
@click.option("--coins", default=None)
@command_errors
def summary(db_path: str | None, coins: str | None) -> None:
    """Per-coin data summary of the market store (never creates one)."""
    from resources.store import default_db_url

    try:
        coin_list = resolve_coins(coins, load_coins()) if coins else None
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    console.print(data_summary(default_db_url(db_path), coin_list))


__all__ = ["IngestRequest", "ingest", "plan_ingest", "report_runs", "run_ingest", "summary", "EXIT_GATE_FAILED"]
