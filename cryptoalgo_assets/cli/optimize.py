"""`cryptoalgo launch` (features + QA with the preset's holdout, then one optimize run per coin, in parallel) and
`cryptoalgo runs` (the cohorts the store remembers)."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from cryptoalgo_assets.cli.common import (
    EXIT_GATE_FAILED,
    CliError,
    Window,
    command_errors,
    console,
    say,
    warn,
)
from cryptoalgo_assets.cli.ingest import report_runs
from cryptoalgo_assets.cli.research import (
    _store_url,
    _validate_cohort,
    check_research_inputs,
    print_qa,
    qa_blocked,
    research_specs,
)
from cryptoalgo_assets.cli.session import Session, Settings
from cryptoalgo_assets.cli.tables import fee_edge
from cryptoalgo_assets.cli.validate import print_checklist
from cryptoalgo_assets.launcher import RunSpec
from cryptoalgo_core.config import ConfigError, load_coins, load_gates, resolve_coins

STORAGE_ENV = "CRYPTOALGO_OPTUNA_STORAGE"


def parallel_runs() -> int:
    """Optimize runs in flight at once: the instance's limit of the `model_training` pool (default 2)."""
    from cryptoalgo_assets.instance import pool_limit

    return max(1, pool_limit("model_training"))


def optimize_specs(coins: list[str], cohort: str, settings: dict[str, Any], executor: str = "local",
                   broker: str | None = None) -> list[RunSpec]:
    from cryptoalgo_assets.definitions import OPTIMIZE_CELERY_JOB, OPTIMIZE_JOB

    rc: dict[str, Any] = {"resources": {"artifacts": {"config": {"cohort": cohort}}, "optimize": {"config": settings}}}
    if executor == "celery" and broker:
        rc["execution"] = {"config": {"broker": broker}}
    job = OPTIMIZE_CELERY_JOB if executor == "celery" else OPTIMIZE_JOB
    return [RunSpec(job, c, tags={"dagster/partition": c, "cryptoalgo/cohort": cohort}, run_config=rc,
                    steps=2) for c in coins]


def _check_broker(broker: str | None) -> None:
    from urllib.parse import urlsplit

    if broker and urlsplit(broker).password:
        raise CliError("--celery-broker: a URL with a password would be stored in the runs; configure the "
                       "broker through dagster-celery's environment (DAGSTER_CELERY_BROKER_HOST) instead")


def _check_storage(storage: str | None) -> dict[str, str]:
    """A storage URL reaches the runs through the environment when it carries a password (never run config)."""
    if not storage:
        return {}
    if "://" not in storage:
        return {STORAGE_ENV: storage}
    import sqlalchemy as sa

    try:
        url = sa.engine.make_url(storage)
    except sa.exc.ArgumentError as exc:
        raise CliError(f"--storage: not a database URL: {exc}") from exc
    if url.password:
        raise CliError(f"--storage: a URL with a password would be stored in the runs; export {STORAGE_ENV} "
                       "instead and leave --storage out")
    return {STORAGE_ENV: storage}


def _progress_probe(art: Any, cohort: str) -> Any:
    def probe(by_id: dict[str, RunSpec], statuses: dict[str, str]) -> dict[str, tuple[Any, ...]]:
        out: dict[str, tuple[Any, ...]] = {}
        for rid, status in statuses.items():
            coin = by_id[rid].label
            p = art.path("runs", cohort, coin, "progress.json")
            try:
                doc = json.loads(p.read_text())
            except (OSError, ValueError):
                doc = None
            if status == "SUCCESS":
                frac = 1.0
            elif doc:
                frac = 0.95 * min(1.0, doc["done"] / max(1, doc["budget"]))
            else:
                frac = 0.0
            detail = ""
            if doc:
                best = doc.get("best")
                detail = (f"{doc['done']}/{doc['budget']} trials, best "
                          f"{'n/a' if best is None else f'{best:.2f}'}, {doc['pruned']} pruned")
            out[coin] = (frac, status, detail)
        return out

    return probe


def launch_table(art: Any, coins: list[str], cohort: str) -> Table:
    table = Table(title=escape(f"optimization launch — cohort {cohort}"))
    for col in ("coin", "tier", "trials", "pruned", "best objective", "chosen", "edge bps", "holdout return",
                "holdout Sharpe", "trades", "SL share", "fee/edge", "baseline fee/edge", "holdout gate"):
        table.add_column(col, justify="left" if col in ("coin", "holdout gate") else "right")
    for c in coins:
        try:
            opt = art.read_json("runs", cohort, c, "optimized_profile.json")
        except (OSError, ValueError):
            table.add_row(c, *["-"] * 12, "not run")
            continue
        try:
            hold = art.read_json("runs", cohort, c, "holdout.json")
        except (OSError, ValueError):
            hold = None
        tc = opt["trial_counts"]
        ch = hold["candidates"][0] if hold and hold["candidates"] else {}
        terms = opt.get("terms", {}).get("terms", {})
        verdict = "-" if not hold else ("PASS" if hold["gate"]["passed"] else f"FAIL ({hold['gate']['severity']})")
        table.add_row(c, str(opt["preset"]["tier"]), f"{tc['complete'] + tc['pruned']}/{tc['budget']}",
                      str(tc["pruned"]), _n(opt["objective"]), str(opt["chosen_trial"]), _n(terms.get("edge")),
                      _pct(ch.get("total_return")), _n(ch.get("sharpe_annual")), str(ch.get("trades", "-")),
                      _pct(ch.get("stop_loss_share")), fee_edge(ch.get("fee_edge_ratio")),
                      fee_edge(hold["baseline"]["fee_edge_ratio"]) if hold else "-", verdict)
    return table


def _n(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, (int, float)) and math.isfinite(v) else "-"


def _pct(v: Any) -> str:
    return f"{v:.1%}" if isinstance(v, (int, float)) and math.isfinite(v) else "-"


@click.command()
@click.option("--coins", default=None, help="Comma-separated coins (default: all in config/coins.yaml).")
@click.option("--trials", type=click.IntRange(1, 100000), default=900, show_default=True,
              help="Trial budget of a tier-1 coin; other tiers get their preset budget_share of it.")
@click.option("--preset", default="robust180", show_default=True, help="Preset of config/presets.yaml.")
@click.option("--n-cv-folds", type=click.IntRange(2, 50), default=None, help="CV folds (default: the preset's).")
@click.option("--holdout-days", type=click.IntRange(1, 3650), default=None,
              help="Final days kept for the one holdout evaluation (default: the preset's).")
@click.option("--require-holdout-pass", is_flag=True,
              help="Block staging (exit 3) unless the chosen candidate passes the holdout gate.")
@click.option("--storage", default=None,
              help=f"Optuna storage: a journal file path or a database URL without password (else {STORAGE_ENV}; "
                   "default data/runs/<cohort>/optuna.journal).")
@click.option("--cohort", default=None, help="Launch id (default <preset>-<UTC time>); reuse it to resume.")
@click.option("--executor", type=click.Choice(["local", "celery"]), default="local", show_default=True,
              help="local: one in-process run per coin on this machine; celery: the steps run on dagster-celery "
                   "workers (README: scale-out).")
@click.option("--celery-broker", default=None,
              help="Celery broker URL without password (default: dagster-celery's, RabbitMQ on localhost).")
@click.option("--screen-threshold", type=click.FloatRange(0, 100), default=None,
              help="End each coin with the paper screen (quick robustness score); coins scoring >= this get the "
                   "full validation, then the portfolio and the checklist.")
@click.option("--db-path", default=None, help="SQLite path or SQLAlchemy URL (default TRADER_DB_PATH).")
@click.option("--no-progress", is_flag=True)
@command_errors
def launch(coins: str | None, trials: int, preset: str, n_cv_folds: int | None, holdout_days: int | None,
           require_holdout_pass: bool, storage: str | None, cohort: str | None, executor: str,
           celery_broker: str | None, screen_threshold: float | None, db_path: str | None,
           no_progress: bool) -> None:
    """Per-coin Optuna studies on research data, then the one-shot holdout evaluation and gate."""
    from cryptoalgo_core.optimize.space import load_preset
    from cryptoalgo_core.optimize.study import data_warnings
    from resources.artifacts import ArtifactStore
    from resources.experiments import Tracker
    from resources.store import MarketStore, default_db_url

    try:
        coin_list = resolve_coins(coins, load_coins())
        load_gates()
        presets = {c: load_preset(preset, c, holdout_days=holdout_days, n_cv_folds=n_cv_folds) for c in coin_list}
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    env = _check_storage(storage)
    _check_broker(celery_broker)
    cohort_name = _validate_cohort(cohort or f"{preset}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}")
    days = presets[coin_list[0]].holdout_days
    url = default_db_url(db_path)
    with Session("launch", Settings(url, extra_env=env), show_progress=not no_progress) as session:
        _store_url(db_path)
        check_research_inputs(coin_list, url, Window(), days)
        store = MarketStore(url, create=False)
        try:
            for c in coin_list:
                ts = store.load_ts("ohlcv", c)
                for w in data_warnings(c, ts[0], ts[-1] + 3_600_000, presets[c]):
                    warn(f"WARN {w}")
            Tracker(store.engine).record_cohort(cohort_name, "launch", {
                "coins": coin_list, "trials": trials, "preset": preset, "n_cv_folds": n_cv_folds,
                "holdout_days": days, "require_holdout_pass": require_holdout_pass, "storage": bool(storage),
                "executor": executor})
        finally:
            store.dispose()
        budgets = ", ".join(f"{c} {presets[c].budget(trials)}" for c in coin_list)
        say(f"launch {cohort_name}: preset {preset}, {presets[coin_list[0]].n_cv_folds} CV folds, "
            f"{days}-day holdout; trials per coin: {budgets}")
        research = session.run(research_specs(coin_list, Window(), days), title="features + data QA")
        print_qa(coin_list)
        code = report_runs(research, gate=True)
        ready = [c for c, f in qa_blocked(coin_list).items() if f == []]
        if not ready:
            raise SystemExit(code or EXIT_GATE_FAILED)
        settings = {"preset": preset, "trials": trials, "n_cv_folds": n_cv_folds or -1,
                    "require_holdout_pass": require_holdout_pass}
        art = ArtifactStore()
        specs = optimize_specs(ready, cohort_name, settings, executor, celery_broker)
        # local: no more runs than the training pool admits at once; celery: the workers set the parallelism
        outcomes = session.run(specs, probe=_progress_probe(art, cohort_name), title="optimize + holdout",
                               max_parallel=parallel_runs() if executor == "local" else None)
        console.print(launch_table(art, ready, cohort_name))
        code = report_runs(outcomes, gate=True) or code
        checklist = None
        if screen_threshold is not None:
            studied = [c for c in ready if art.path("runs", cohort_name, c, "holdout.json").exists()]
            checklist = screen_and_validate(session, studied, cohort_name, screen_threshold)
    say(f"artifacts: {art.path('runs', cohort_name)}  (resume or extend: --cohort {cohort_name})")
    if checklist is not None:
        print_checklist(checklist)
        code = code or int(checklist["exit_code"])
    raise SystemExit(code)


def screen_and_validate(session: Session, coins: list[str], cohort: str, threshold: float) -> dict[str, Any] | None:
    """The paper screen of ``coins``, the full validation (with the HTML report) of those scoring >=
    ``threshold``, then the portfolio and the checklist; the checklist doc (None when a run failed). A coin the
    screen stops loses an older full report of this cohort, so the checklist never judges it on stale figures."""
    from cryptoalgo_assets.cli.validate import judge, run_validation
    from resources.artifacts import ArtifactStore

    if not coins:
        return None
    art = ArtifactStore()
    code, _doc = run_validation(session, coins, cohort, "screen", False)
    if code and code != EXIT_GATE_FAILED:
        warn(f"the paper screen failed for some coins (exit {code}); they stop here")
    scores = {}
    for c in coins:
        p = art.path("runs", cohort, c, "robustness_screen.json")
        scores[c] = float(json.loads(p.read_text())["score"]) if p.exists() else -1.0
    passed = [c for c in coins if scores[c] >= threshold]
    say(f"paper screen (score >= {threshold:g}): " + ", ".join(
        f"{c} {scores[c]:.1f} {'-> full validation' if c in passed else 'stopped'}" for c in coins))
    for c in coins:
        if c not in passed:
            art.path("runs", cohort, c, "robustness.json").unlink(missing_ok=True)
    if passed:
        return run_validation(session, passed, cohort, "full", True)[1]
    return judge(session, cohort)[1]


@click.command()
@click.option("--cohort", default=None, help="Show one cohort's coins in detail.")
@click.option("--db-path", default=None, help="SQLite path or SQLAlchemy URL (default TRADER_DB_PATH).")
@command_errors
def runs(cohort: str | None, db_path: str | None) -> None:
    """Launch cohorts recorded in the store, their coins, and trials ever run per coin."""
    from resources.experiments import Tracker
    from resources.store import MarketStore

    store = MarketStore(_store_url(db_path), create=False)
    try:
        tr = Tracker(store.engine)
        rows = tr.cohorts()
        if cohort is not None:
            rows = [r for r in rows if r["cohort"] == cohort]
            if not rows:
                raise CliError(f"no cohort {cohort!r} in the store; `cryptoalgo runs` lists them")
        table = Table(title="cohorts")
        for col in ("cohort", "created (UTC)", "git", "preset", "trials", "coins"):
            table.add_column(col)
        for r in rows:
            args = json.loads(r["args_json"])
            when = dt.datetime.fromtimestamp(r["created_ms"] / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")
            table.add_row(escape(r["cohort"]), when, r["git_commit"][:10] + (" dirty" if r["git_dirty"] else ""),
                          escape(str(args.get("preset"))), str(args.get("trials")),
                          escape(",".join(c["coin"] for c in r["coins"])))
        console.print(table)
        if cohort is not None:
            detail = Table(title=escape(f"cohort {cohort}"))
            for col in ("coin", "data fingerprint", "holdout fingerprint", "artifacts", "trials ever (coin)"):
                detail.add_column(col)
            for c in rows[0]["coins"]:
                rec = tr.coin_record(cohort, c["coin"]) or {}
                arts = json.loads(rec.get("artifacts_json") or "{}")
                detail.add_row(c["coin"], str(rec.get("data_fingerprint", ""))[:16],
                               str(rec.get("holdout_fingerprint") or "-")[:16],
                               escape(", ".join(f"{k} {v[:10]}" for k, v in sorted(arts.items()))),
                               str(tr.total_trials(c["coin"])))
            console.print(detail)
    finally:
        store.dispose()
