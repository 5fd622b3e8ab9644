"""`cryptoalgo validate` (robustness per coin, then the portfolio and the checklist) and `cryptoalgo checklist`."""

from __future__ import annotations

import json
import math
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from cryptoalgo_assets.cli.common import (
    EXIT_GATE_FAILED,
    CliError,
    command_errors,
    console,
    say,
)
from cryptoalgo_assets.cli.ingest import report_runs
from cryptoalgo_assets.cli.research import _store_url, _validate_cohort
from cryptoalgo_assets.cli.session import Session, Settings
from cryptoalgo_assets.launcher import RunSpec
from cryptoalgo_core.config import ConfigError, load_coins, load_gates, resolve_coins

__all__ = ["checklist", "judge", "latest_cohort", "portfolio_specs", "print_checklist", "validate", "validate_specs"]


def validate_specs(coins: list[str], cohort: str, mode: str, show: bool) -> list[RunSpec]:
    from cryptoalgo_assets.definitions import VALIDATE_JOB

    rc = {"resources": {"artifacts": {"config": {"cohort": cohort}}},
          "ops": {"robustness_report": {"config": {"mode": mode, "show": show}}}}
    return [RunSpec(VALIDATE_JOB, c, tags={"dagster/partition": c, "cryptoalgo/cohort": cohort}, run_config=rc,
                    steps=1) for c in coins]


def portfolio_specs(cohort: str) -> tuple[list[RunSpec], list[RunSpec]]:
    """The portfolio run, then the checklist run (submitted after it: see defs/robustness.py)."""
    from cryptoalgo_assets.definitions import CHECKLIST_JOB, PORTFOLIO_JOB

    rc = {"resources": {"artifacts": {"config": {"cohort": cohort}}}}
    return ([RunSpec(PORTFOLIO_JOB, "portfolio", tags={"cryptoalgo/cohort": cohort}, steps=1, run_config=rc)],
            [RunSpec(CHECKLIST_JOB, "checklist", tags={"cryptoalgo/cohort": cohort}, steps=1, run_config=rc)])


def judge(session: Session, cohort: str) -> tuple[int, dict[str, Any] | None]:
    """Portfolio readiness, then the checklist; (1 when a run failed else 0, the checklist doc)."""
    from resources.artifacts import ArtifactStore

    port, check = portfolio_specs(cohort)
    outcomes = session.run(port, title="portfolio readiness")
    code = report_runs(outcomes, gate=True)  # 3: the portfolio gate blocked -- the checklist reports it
    if code and code != EXIT_GATE_FAILED:
        return code, None
    outcomes = session.run(check, title="deployment checklist")
    code = report_runs(outcomes, gate=False) or (code if code != EXIT_GATE_FAILED else 0)
    p = ArtifactStore().path("runs", cohort, "checklist.json")
    return code, (json.loads(p.read_text()) if not code and p.exists() else None)


def latest_cohort(cohort: str | None) -> str:
    """``cohort`` validated, else the newest cohort under data/runs/ that holds an optimized profile."""
    from resources.artifacts import ArtifactStore

    if cohort is not None:
        name = _validate_cohort(cohort)
        if not ArtifactStore().path("runs", name).is_dir():
            raise CliError(f"no cohort {name!r} under {ArtifactStore().path('runs')}; `cryptoalgo runs` lists them")
        return name
    runs = ArtifactStore().path("runs")
    found = [p for p in runs.iterdir() if p.is_dir() and any(p.glob("*/optimized_profile.json"))] \
        if runs.is_dir() else []
    if not found:
        raise CliError(f"no launch under {runs}: run `cryptoalgo launch` first")
    return max(found, key=lambda p: max(f.stat().st_mtime for f in p.glob("*/optimized_profile.json"))).name


def _n(v: Any, fmt: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return format(v, fmt)


def robustness_table(art: Any, cohort: str, coins: list[str], mode: str) -> Table:
    from cryptoalgo_assets.defs.robustness import report_name

    t = Table(title=escape(f"robustness — {cohort} ({mode})"))
    for col in ("coin", "tier", "score", "DSR", "PBO", "PSR", "MC dd p95", "ruin", "+folds", "stability",
                "holdout ret", "trials", "failed gates"):
        t.add_column(col)
    for c in coins:
        p = art.path("runs", cohort, c, report_name(mode))
        if not p.exists():
            t.add_row(c, "-", *["-"] * 10, "not validated")
            continue
        d = json.loads(p.read_text())
        s, boot = d["stats"], (d["monte_carlo"].get("bootstrap") or {})
        h = d.get("holdout") or {}
        t.add_row(c, d["tier"], f"{d['score']:.1f}", _n(s["dsr"].get("value")), _n(s["pbo"].get("value")),
                  _n(s["psr"].get("value")), _n((boot.get("max_drawdown") or {}).get("p95")),
                  _n(boot.get("prob_ruin")), _n(d["cv"].get("positive_share"), ".2f"),
                  _n(d["stability"].get("value"), ".2f"), _n(h.get("total_return"), "+.2%"),
                  str(d["trials"]["recorded_total"]), escape(", ".join(d["failed"]) or "-"))
    return t


def print_checklist(doc: dict[str, Any]) -> None:
    t = Table(title=escape(f"deployment checklist — {doc['cohort']}"))
    for col in ("coin", "verdict", "tier", "score", "why"):
        t.add_column(col)
    for c in doc["coins"]:
        gates = "; ".join(f"{g['gate']} {_n(g['value'], '.4g')} (need {g['threshold']})" for g in c["failed_gates"])
        t.add_row(c["coin"], c["verdict"], str(c["tier"] or "-"), _n(c["score"], ".1f"),
                  escape(c["reason"] + (f" — {gates}" if gates and c["verdict"] == "FAIL" else "")))
    console.print(t)
    p = doc["portfolio"]
    failed = [f"{r['condition']} {r['value']} (need {r['threshold']})" for r in p["conditions"] if not r["passed"]]
    say(f"portfolio: {p['verdict']} — basket {', '.join(p['basket']) or 'empty'}"
        + (f"; failed: {'; '.join(failed)}" if failed else ""))
    for d in p["dropped"]:
        say(f"  dropped {d['coin']}: {d['reason']}")


def run_validation(session: Session, coins: list[str], cohort: str, mode: str, show: bool) -> tuple[int, Any]:
    """Robustness per coin, then portfolio + checklist; (exit code of the coin runs, the checklist doc)."""
    from resources.artifacts import ArtifactStore

    outcomes = session.run(validate_specs(coins, cohort, mode, show), title=f"robustness ({mode})")
    code = report_runs(outcomes, gate=True)
    if code and code != EXIT_GATE_FAILED:
        return code, None
    console.print(robustness_table(ArtifactStore(), cohort, coins, mode))
    if mode != "full":
        return code, None
    pcode, doc = judge(session, cohort)
    if show:
        say(f"report: {ArtifactStore().path('runs', cohort, 'index.html')}")
    return code or pcode, doc


@click.command()
@click.option("--all", "all_coins", is_flag=True, help="Every coin of config/coins.yaml (default).")
@click.option("--coins", default=None, help="Comma-separated coins instead of --all.")
@click.option("--mode", type=click.Choice(["screen", "full"]), default="full", show_default=True,
              help="screen: the quick paper screen (fewer paths / trials / neighbours); full: the checklist's.")
@click.option("--show", is_flag=True, help="Write an HTML report per coin plus runs/<cohort>/index.html.")
@click.option("--cohort", default=None, help="Launch to validate (default: the newest).")
@click.option("--db-path", default=None, help="SQLite path or SQLAlchemy URL (default TRADER_DB_PATH).")
@click.option("--no-progress", is_flag=True)
@command_errors
def validate(all_coins: bool, coins: str | None, mode: str, show: bool, cohort: str | None, db_path: str | None,
             no_progress: bool) -> None:
    """Robustness report, score and tier per coin; with --mode full also the portfolio and the checklist."""
    from resources.store import default_db_url

    if all_coins and coins:
        raise CliError("use --all or --coins, not both")
    try:
        coin_list = resolve_coins(coins, load_coins())
        load_gates()
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    name = latest_cohort(cohort)
    from resources.artifacts import ArtifactStore

    art = ArtifactStore()
    missing = [c for c in coin_list if not art.path("runs", name, c, "study_trials.json").exists()]
    if missing:
        raise CliError(f"cohort {name} has no finished study for {', '.join(missing)}; run `cryptoalgo launch "
                       f"--cohort {name} --coins {','.join(missing)}` or pass --coins")
    _store_url(db_path)
    with Session("validate", Settings(default_db_url(db_path)), show_progress=not no_progress) as session:
        say(f"validate {name}: {', '.join(coin_list)} ({mode})")
        code, doc = run_validation(session, coin_list, name, mode, show)
    if doc is not None:
        print_checklist(doc)
    raise SystemExit(code)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print checklist.json to stdout (schema in the README).")
@click.option("--cohort", default=None, help="Launch to judge (default: the newest).")
@click.option("--db-path", default=None, help="SQLite path or SQLAlchemy URL (default TRADER_DB_PATH).")
@click.option("--no-progress", is_flag=True)
@command_errors
def checklist(as_json: bool, cohort: str | None, db_path: str | None, no_progress: bool) -> None:
    """PASS/FAIL per coin and for the portfolio. Exit code 0 only when the portfolio passes, 3 when blocked."""
    from resources.artifacts import ArtifactStore
    from resources.store import default_db_url

    name = latest_cohort(cohort)
    art = ArtifactStore()
    if not any(art.path("runs", name).glob("*/robustness.json")):
        raise CliError(f"cohort {name} has no full robustness report: run `cryptoalgo validate --all --mode full`")
    _store_url(db_path)
    with Session("checklist", Settings(default_db_url(db_path)), show_progress=not (no_progress or as_json)) as s:
        code, doc = judge(s, name)
    if code or doc is None:
        raise SystemExit(code or 1)
    if as_json:
        click.echo(json.dumps(doc, indent=2, sort_keys=False, default=str))
    else:
        print_checklist(doc)
    raise SystemExit(int(doc["exit_code"]))
