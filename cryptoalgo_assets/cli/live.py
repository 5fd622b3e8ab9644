"""`cryptoalgo promote | rollback | live | paper status | enable`: the controlled paper rollout (paper only --
nothing places an order). promote / rollback / live submit the code location's jobs through the instance."""

from __future__ import annotations

import json
import math
from typing import Any

import click
from rich.table import Table

from cryptoalgo_assets.cli.common import CliError, command_errors, console, say
from cryptoalgo_assets.cli.ingest import report_runs
from cryptoalgo_assets.cli.research import _store_url
from cryptoalgo_assets.cli.session import Session, Settings
from cryptoalgo_assets.launcher import RunSpec
from cryptoalgo_core.config import load_coins, resolve_coins

__all__ = ["enable", "live", "paper", "promote", "rollback", "run_staging", "stage"]

DB_OPT = click.option("--db-path", default=None, help="SQLite path or SQLAlchemy URL (default TRADER_DB_PATH).")


def _coin(coin: str) -> str:
    from cryptoalgo_core.config import ConfigError

    try:
        return resolve_coins(coin.upper(), load_coins())[0]
    except ConfigError as exc:
        raise CliError(str(exc)) from exc


def _registry(url: str) -> Any:
    from resources.dagster_resources import ModelRegistryResource
    from resources.store import MarketStore

    return ModelRegistryResource().registry(MarketStore(url).engine)


def stage_specs(coins: list[str]) -> list[RunSpec]:
    from cryptoalgo_assets.definitions import STAGE_JOB

    return [RunSpec(STAGE_JOB, c, tags={"dagster/partition": c}, steps=1) for c in coins]


def run_staging(session: Session, coins: list[str]) -> int:
    """Stage every coin the latest checklist passes (the others record why not); the exit code of the runs."""
    import dagster as dg

    outcomes = session.run(stage_specs(coins), title="stage models")
    code = report_runs(outcomes, gate=False)
    inst = session.instance
    recs = inst.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey("staged_model"),
                                                             asset_partitions=coins), limit=len(coins) * 4).records
    newest: dict[str, Any] = {}
    for r in recs:  # newest first
        if r.partition_key is not None:
            newest.setdefault(r.partition_key, r)
    for c in [c for c in coins if c in newest]:
        r = newest[c]
        md = r.asset_materialization.metadata if r.asset_materialization else {}
        staged = md.get("staged")
        if staged is not None and staged.value:
            say(f"{c}: staged {md['version'].value} (the promotion sensor promotes it; or `cryptoalgo promote "
                f"--coin {c}`)")
        elif "reason" in md:
            say(f"{c}: not staged: {md['reason'].value}")
    return code


@click.command()
@click.option("--coins", default=None, help="Coins to stage (default: every coin of config/coins.yaml).")
@DB_OPT
@click.option("--no-progress", is_flag=True)
@command_errors
def stage(coins: str | None, db_path: str | None, no_progress: bool) -> None:
    """Stage a model version for each coin the latest deployment checklist passes (the others: why not)."""
    from cryptoalgo_core.config import ConfigError
    from resources.artifacts import ArtifactStore

    url = _store_url(db_path)
    try:
        wanted = resolve_coins(coins, load_coins()) if coins else list(load_coins())
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    if not ArtifactStore().path("checklist.json").exists():
        raise CliError("no deployment checklist: run `cryptoalgo checklist` first")
    with Session("stage", Settings(url), show_progress=not no_progress) as s:
        code = run_staging(s, wanted)
    if code:
        raise SystemExit(code)


def _promote_run(coin: str, action: str, version: str, reason: str, url: str, no_progress: bool) -> None:
    from cryptoalgo_assets.definitions import PROMOTE_JOB

    rc = {"ops": {"production_model": {"config": {"action": action, "version": version, "reason": reason,
                                                  "actor": "cli"}}}}
    spec = RunSpec(PROMOTE_JOB, coin, tags={"dagster/partition": coin}, run_config=rc, steps=1)
    with Session(action, Settings(url), show_progress=not no_progress) as s:
        code = report_runs(s.run([spec], title=f"{action} {coin}"), gate=False)
    if code:
        raise SystemExit(code)
    reg = _registry(url)
    h = reg.history(coin)[-1]
    say(f"{coin}: production {h['from_version'] or '-'} -> {h['to_version']} ({h['reason']})")


@click.command()
@click.option("--coin", required=True)
@click.option("--version", default="", help="Staged version (default: the newest staged).")
@click.option("--reason", default="promoted by hand")
@DB_OPT
@click.option("--no-progress", is_flag=True)
@command_errors
def promote(coin: str, version: str, reason: str, db_path: str | None, no_progress: bool) -> None:
    """Promote a staged model to production (atomic; recorded in the promotion history)."""
    coin, url = _coin(coin), _store_url(db_path)
    staged = _registry(url).staged(coin)
    if not staged:
        raise CliError(f"{coin}: no staged model version (the checklist must PASS the coin; see `cryptoalgo checklist`)")
    if version and version not in staged:
        raise CliError(f"{coin}: no staged version {version!r}; staged: {', '.join(staged[-5:])}")
    _promote_run(coin, "promote", version, reason, url, no_progress)


@click.command()
@click.option("--coin", required=True)
@click.option("--reason", default="rolled back by hand")
@DB_OPT
@click.option("--no-progress", is_flag=True)
@command_errors
def rollback(coin: str, reason: str, db_path: str | None, no_progress: bool) -> None:
    """Return a coin's production model to the version it held before."""
    coin, url = _coin(coin), _store_url(db_path)
    if _registry(url).rollback_target(coin) is None:
        raise CliError(f"{coin}: no earlier production version to roll back to")
    _promote_run(coin, "rollback", "", reason, url, no_progress)


def live_specs(coins: list[str], at: str) -> list[RunSpec]:
    """One run per tick: the coins' partition range (coins in between without a production model are skipped)."""
    from cryptoalgo_assets.definitions import LIVE_JOB
    from cryptoalgo_assets.defs.live import tick_run_config, tick_tags

    return [RunSpec(LIVE_JOB, ",".join(coins), tags={**tick_tags(coins), "cryptoalgo/tick": at or "now"},
                    run_config=tick_run_config(at, coins), steps=1)]


@click.command()
@click.option("--once", is_flag=True, required=True, help="Run one tick (the schedule runs them hourly).")
@click.option("--at", default="", help="Tick time, UTC ISO hour (default: the source's clock).")
@click.option("--coins", default=None, help="Coins to tick (default: every coin with a production model).")
@DB_OPT
@click.option("--no-progress", is_flag=True)
@command_errors
def live(once: bool, at: str, coins: str | None, db_path: str | None, no_progress: bool) -> None:
    """One paper-trading tick for every production coin: data -> signals -> paper_book -> paper_performance."""
    from cryptoalgo_core.config import ConfigError
    from cryptoalgo_core.timeutil import parse_date_ms

    url = _store_url(db_path)
    if at:
        try:
            parse_date_ms(at)
        except ValueError as exc:
            raise CliError(f"--at {at!r}: {exc}") from exc
    try:
        wanted = resolve_coins(coins, load_coins()) if coins else list(load_coins())
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    reg = _registry(url)
    todo = [c for c in wanted if reg.production(c) is not None]
    if not todo:
        raise CliError("no coin has a production model: nothing to paper-trade (promote one first)")
    if at:
        from cryptoalgo_core.timeutil import ms_to_iso

        for c in todo:
            end = int((reg.production(c).get("trained") or {}).get("end", 0))
            if parse_date_ms(at) <= end:
                raise CliError(f"--at {at}: {c}'s production model was trained on data to {ms_to_iso(end)}; paper "
                               f"ticks start after it")
    with Session("live", Settings(url), show_progress=not no_progress) as s:
        code = report_runs(s.run(live_specs(todo, at), title=f"live tick {at or 'now'}"), gate=False)
    _status_table(url, todo)
    if code:
        raise SystemExit(code)


def _status_rows(url: str, coins: list[str]) -> list[dict[str, Any]]:
    from resources.paper import PaperStore
    from resources.store import MarketStore

    paper = PaperStore(MarketStore(url).engine)
    rows = []
    for c in coins:
        st = paper.state(c)
        if st is None:
            continue
        ticks = paper.ticks(c)
        summ = json.loads(ticks["summary"].iloc[-1]) if len(ticks) else {}
        opened = paper.fills(c, int(st["segment"]), None)
        pos = opened[opened["status"] != "closed"] if len(opened) else opened
        rows.append({"coin": c, "state": st["state"], "reason": st["reason"], "version": st["model_version"],
                     "equity": float(ticks["equity"].iloc[-1]) if len(ticks) else 1.0,
                     "trades": int(summ.get("trades", 0)), "position": (
                         "flat" if not len(pos) else f"{pos['status'].iloc[0]} {'long' if pos['side'].iloc[0] > 0 else 'short'}"
                         f" {pos['size'].iloc[0]:.3f} @ {pos['entry_price'].iloc[0]:.6g}"),
                     "switches": {s["name"]: s["status"] for s in summ.get("switches", [])},
                     "last_tick": st["last_tick_ms"]})
    return rows


def _status_table(url: str, coins: list[str]) -> list[dict[str, Any]]:
    from cryptoalgo_core.timeutil import ms_to_iso

    rows = _status_rows(url, coins)
    t = Table(title="paper trading (paper only: no orders are placed)")
    for col in ("coin", "state", "equity", "P&L", "trades", "position", "switches", "last tick"):
        t.add_column(col)
    for r in rows:
        sw = " ".join(f"{k}:{v}" for k, v in r["switches"].items() if v != "ok") or "all ok"
        pnl = r["equity"] - 1.0
        t.add_row(r["coin"], r["state"], f"{r['equity']:.4f}", f"{pnl:+.2%}" if math.isfinite(pnl) else "-",
                  str(r["trades"]), r["position"], sw, ms_to_iso(r["last_tick"]) if r["last_tick"] else "-")
    console.print(t)
    for r in rows:
        if r["state"] != "ACTIVE":
            say(f"{r['coin']} {r['state']}: {r['reason']}")
    return rows


@click.group()
def paper() -> None:
    """Paper-trading status."""


@paper.command("status")
@click.option("--json", "as_json", is_flag=True)
@DB_OPT
@command_errors
def paper_status(as_json: bool, db_path: str | None) -> None:
    """Positions, P&L and kill-switch states per coin."""
    url = _store_url(db_path)
    coins = list(load_coins())
    if as_json:
        click.echo(json.dumps(_status_rows(url, coins), indent=1, default=str))
        return
    if not _status_table(url, coins):
        say("no coin is paper trading (promote a model, then `cryptoalgo live --once`)")


@click.command()
@click.option("--coin", required=True)
@click.option("--reason", default="re-enabled by hand")
@DB_OPT
@command_errors
def enable(coin: str, reason: str, db_path: str | None) -> None:
    """Re-enable a HALTED coin explicitly (a new flat paper segment from its last tick)."""
    from resources.paper import PaperStateError, PaperStore
    from resources.store import MarketStore

    coin, url = _coin(coin), _store_url(db_path)
    paper_store = PaperStore(MarketStore(url).engine)
    st = paper_store.state(coin)
    try:
        if st is None:
            raise PaperStateError(f"{coin}: not paper trading")
        paper_store.enable(coin, int(st["last_tick_ms"] or st["segment"]), reason, "cli")
    except PaperStateError as exc:
        raise CliError(str(exc)) from exc
    say(f"{coin}: ACTIVE again ({reason}); the next tick starts a new flat segment")
