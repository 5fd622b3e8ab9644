"""`cryptoalgo features`, `cryptoalgo train` and `cryptoalgo demo`."""

from __future__ import annotations

import os

import click

from cryptoalgo_assets.cli.common import EXIT_GATE_FAILED, CliError, Window, command_errors, console
from cryptoalgo_assets.cli.ingest import report_runs
from cryptoalgo_assets.cli.session import Session, Settings
from cryptoalgo_assets.cli.tables import coin_detail_tables, edge_table, qa_table
from cryptoalgo_assets.launcher import RunSpec
from cryptoalgo_core.config import ConfigError, load_coins, load_gates, resolve_coins


def _store_url(db_path: str | None, must_exist: bool = True) -> str:
    from resources.store import MarketStore, StoreError, default_db_url

    url = default_db_url(db_path)
    try:
        MarketStore(url, create=not must_exist).dispose()
    except StoreError as exc:
        raise CliError(f"{exc}; run `cryptoalgo ingest` first" if "no market store" in str(exc) else str(exc)) from exc
    return url


def check_research_inputs(coins: list[str], url: str, window: Window, holdout_days: int | None = None) -> None:
    """Every coin has OHLCV inside the window and the holdout leaves enough research data (else exit 2 naming
    them). Basket coins without data are left out of the shared features by the features stage, with a warning
    in QA."""
    from resources.dagster_resources import ResearchResource
    from resources.store import MarketStore, redact_url

    cfg = load_coins()
    research = ResearchResource(start=window.start, end=window.end,
                                holdout_days=-1 if holdout_days is None else holdout_days)
    store = MarketStore(url, create=False)
    lo, hi = window.bounds()
    problems: list[str] = []
    try:
        empty = [c for c in coins if store.load_ts("ohlcv", c, lo, hi) == []]
        for c in coins:
            if c not in empty:
                try:
                    research.bounds(store, c, cfg[c].profile.walk_forward.holdout_days)
                except ConfigError as exc:
                    problems.append(str(exc))
    finally:
        store.dispose()
    if empty:
        raise CliError(f"no OHLCV stored for {empty} in {redact_url(url)} within the {window.text()}; "
                       f"run `cryptoalgo ingest` first")
    if problems:
        raise CliError("; ".join(problems))


def research_specs(coins: list[str], window: Window, holdout_days: int | None = None) -> list[RunSpec]:
    from cryptoalgo_assets.definitions import RESEARCH_JOB

    research = {"config": {**window.config()["config"], "holdout_days": -1 if holdout_days is None else holdout_days}}
    return [RunSpec(RESEARCH_JOB, c, tags={"dagster/partition": c}, steps=4,  # features, labels, ml_dataset, data_qa
                    run_config={"resources": {"research": research}}) for c in coins]


def model_specs(coins: list[str], cohort: str) -> list[RunSpec]:
    """The model stage reads its window and holdout from the features stage's artifacts (never moves them)."""
    from cryptoalgo_assets.definitions import MODEL_JOB

    rc = {"resources": {"artifacts": {"config": {"cohort": cohort}}}}
    return [RunSpec(MODEL_JOB, c, tags={"dagster/partition": c, "cryptoalgo/cohort": cohort}, run_config=rc,
                    steps=2) for c in coins]  # walk_forward_model, backtest


def print_qa(coins: list[str]) -> None:
    from cryptoalgo_assets.defs.data_qa import qa_summary_rows
    from resources.artifacts import ArtifactStore

    art = ArtifactStore()
    console.print(qa_table({r["coin"]: r for r in qa_summary_rows(art)}, coins, str(art.path("qa"))))


def qa_blocked(coins: list[str]) -> dict[str, list[str] | None]:
    from cryptoalgo_assets.defs.data_qa import blocking_failures
    from resources.artifacts import ArtifactStore

    art = ArtifactStore()
    return {c: blocking_failures(art, c) for c in coins}


@click.command()
@click.option("--coins", default=None, help="Comma-separated coins (default: all in config/coins.yaml).")
@click.option("--db-path", default=None, help="SQLite path or SQLAlchemy URL (default TRADER_DB_PATH).")
@click.option("--start", default=None, help="Research window start, UTC date (default: first stored bar).")
@click.option("--end", default=None, help="Research window end, exclusive (e.g. where an input such as OI ends).")
@click.option("--holdout-days", type=click.IntRange(0, 3650), default=None,
              help="Final days of the window kept for the one holdout evaluation; no research stage sees them "
                   "(default: the coin profile's walk_forward.holdout_days).")
@click.option("--no-progress", is_flag=True)
@command_errors
def features(coins: str | None, db_path: str | None, start: str | None, end: str | None, holdout_days: int | None,
             no_progress: bool) -> None:
    """Features, labels, ML dataset and data QA per coin; exit 3 when a blocking QA check fails."""
    try:
        coin_list = resolve_coins(coins, load_coins())
        load_gates()
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    from resources.store import default_db_url

    with Session("features", Settings(default_db_url(db_path)), show_progress=not no_progress) as session:
        window = Window.parse(start, end)
        url = _store_url(db_path)
        check_research_inputs(coin_list, url, window, holdout_days)
        outcomes = session.run(research_specs(coin_list, window, holdout_days), title="features + data QA")
    print_qa(coin_list)
    raise SystemExit(report_runs(outcomes, gate=True))


def _validate_cohort(cohort: str | None) -> str:
    from resources.dagster_resources import validate_cohort

    try:
        return validate_cohort(cohort or os.environ.get("CRYPTOALGO_COHORT") or "default")
    except ConfigError as exc:
        raise CliError(str(exc)) from exc


def _gate_before_training(coin_list: list[str]) -> None:
    from resources.artifacts import ArtifactStore

    art = ArtifactStore()
    missing = [c for c in coin_list if not art.path("ml", f"{c}.parquet").exists()
               or not art.path("features", f"{c}.meta.json").exists()]
    if missing:
        raise CliError(f"no ML dataset for {missing}; run `cryptoalgo features` first")
    blocked = {c: f for c, f in qa_blocked(coin_list).items() if f}
    if blocked:
        raise CliError("blocking data QA failed — " + "; ".join(f"{c}: {', '.join(f)}" for c, f in blocked.items())
                       + " (see `cryptoalgo features`; nothing was trained)", code=EXIT_GATE_FAILED)


def print_edges(coins: list[str], cohort: str) -> None:
    from resources.artifacts import ArtifactStore

    art = ArtifactStore()
    console.print(edge_table(art, coins, cohort))
    if len(coins) == 1:
        for t in coin_detail_tables(art, coins[0], cohort):
            console.print(t)


@click.command()
@click.option("--coin", "coin_opt", multiple=True, help="Coin(s) to train (repeat or comma-separate; default all).")
@click.option("--cohort", default=None, help="Experiment name under data/runs/ (default CRYPTOALGO_COHORT or 'default').")
@click.option("--db-path", default=None, help="SQLite path or SQLAlchemy URL (default TRADER_DB_PATH).")
@click.option("--no-progress", is_flag=True)
@command_errors
def train(coin_opt: tuple[str, ...], cohort: str | None, db_path: str | None, no_progress: bool) -> None:
    """Walk-forward model + cost-aware backtest on the research window and holdout that `features` set;
    prints edge decomposition and exit diagnostics."""
    try:
        coin_list = resolve_coins(",".join(coin_opt) if coin_opt else None, load_coins())
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    from resources.store import default_db_url

    cohort_name = _validate_cohort(cohort)
    with Session("train", Settings(default_db_url(db_path)), show_progress=not no_progress) as session:
        _store_url(db_path)
        _gate_before_training(coin_list)
        outcomes = session.run(model_specs(coin_list, cohort_name), title="train + backtest")
    print_edges(coin_list, cohort_name)
    raise SystemExit(report_runs(outcomes, gate=False))
