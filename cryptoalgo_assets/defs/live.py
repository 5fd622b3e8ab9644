"""Live / paper stage: `signals` -> `paper_book` -> `paper_performance` per coin (production models only), made by
one multi-asset step `live_tick` that covers a coin partition range (one run per hourly tick, every coin's
materializations and checks recorded on its own partition), the kill-switch asset checks on `paper_performance`,
the hourly live schedule and the retrain schedule.

Paper only: nothing here places an order anywhere. State lives in the market store's database
(resources/paper.py); files under data/paper/<COIN>/ (performance.json, reconcile.json).
A tick at T: the newest bars of the panel coins are refreshed from the source (once per tick); per coin,
`signals` builds the features on the trailing history and decides the bars that closed since the last
decision; `paper_book` replays the segment through the backtest engine and records the fills;
`paper_performance` measures the book, replays the window through the backtester, evaluates the kill switches
and moves the coin's state.
"""


from typing import Any

import dagster as dg

from cryptoalgo_assets.defs.features import COINS, load_panel
from cryptoalgo_assets.defs.promotion import STAGE_JOB, production_model
from cryptoalgo_core.checks import CheckOutcome, Severity
from cryptoalgo_core.errors import ConfigError
from cryptoalgo_core.live.switches import SWITCHES, state_scale
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS, ms_to_iso
from resources.dagster_resources import (
    ArtifactsResource,
    MarketSourceResource,
    MarketStoreResource,
    ModelRegistryResource,
    ProjectConfigResource,
)

LIVE_JOB = "live_job"


class LiveConfig(dg.Config):
    at: str = ""  # the tick time, UTC ISO (floored to the hour); empty = the source's clock
    coins: list[str] = []  # the coins of the run's partition range to tick (empty = all with a production model)


class NoProduction(dg.Failure):
    """The coin has no production model: nothing to paper-trade."""


def load_live(reg: Any, coin: str, gates: Any, version: str | None = None) -> Any:
    """The coin's production version (or ``version``, once production) as a LiveCoin; NoProduction when none."""
    import json

    from cryptoalgo_core.features.plan import FeaturePlan
    from cryptoalgo_core.live.model import ProductionModel, spec_from_dict
    from cryptoalgo_core.live.tick import LiveCoin

    got = reg.production_files(coin, version)
    if got is None:
        raise NoProduction(f"{coin}: no production model; nothing is paper-traded until one is promoted")
    man, files = got
    tier = str(man.get("tier"))
    if tier not in gates.tier_scale:
        raise dg.Failure(f"{coin}: production tier {tier} has no paper scale in gates.yaml live.tier_scale")
    return LiveCoin(coin, man["version"], ProductionModel.from_files(files),
                    spec_from_dict(json.loads(files["profile.json"])),
                    FeaturePlan.from_dict(json.loads(files["plan.json"])), tier, float(gates.tier_scale[tier]),
                    dict(man.get("metrics") or {}))


def _tick_ms(config: LiveConfig, sources: Any) -> int:
    from cryptoalgo_core.timeutil import floor_hour, parse_date_ms

    try:
        t = parse_date_ms(config.at) if config.at else sources.now_ms("ohlcv")
    except ValueError as exc:
        raise dg.Failure(f"live: bad tick time {config.at!r}: {exc}") from exc
    return int(floor_hour(int(t)))


def _refresh(store: Any, sources: Any, project: Any, coins: dict[str, bool], tick: int, log: Any) -> list[str]:
    """Fetch what the store misses of the panel coins' last three days up to the tick (closed candles, funding
    settled by the tick; open interest for coins whose features use it). Idempotent: only gaps are fetched. A
    coin whose fetch fails is reported (the tick goes on with what is stored; the run fails at the end)."""
    from resources.ingest import ingest_dataset
    from resources.sources.base import FatalSourceError, RetryableSourceError

    specs, gates = project.coins(), project.gates().market_data
    failed = []
    for c, with_oi in coins.items():
        for kind in ("ohlcv", "funding", *(("open_interest",) if with_oi else ())):
            try:
                rep = ingest_dataset(kind, specs[c], sources, store, tick - 3 * DAY_MS, tick + 1,
                                     gates.funding_abs_max)
            except (FatalSourceError, RetryableSourceError) as exc:
                log.error(f"{c} {kind}: data refresh failed: {exc}")
                failed.append(f"{c} {kind} refresh: {exc}")
                continue
            if rep.rows_written:
                log.info(f"{c} {kind}: {rep.rows_written} new row(s)")
    return failed


def coin_signals(coin: str, live: Any, store: Any, paper: Any, reg: Any, tick: int, gates: Any,
                 log: Any) -> dict[str, Any]:
    """The signals step of one coin: decide the bars that closed since the last decision; its metadata."""
    from cryptoalgo_core.live.tick import check_history, decisions

    check_history(live.plan, gates.history_days)
    first = live.trained_end
    if tick <= first:
        raise dg.Failure(f"{coin}: tick {ms_to_iso(tick)} is inside the data production model {live.version} was "
                         f"trained on (to {ms_to_iso(first)}); paper trading starts after it")
    st = paper.state(coin)
    if st is not None and st["model_version"] != live.version:
        retire_segment(coin, st, store, paper, reg, tick, gates, log)
    if st is None or st["model_version"] != live.version:
        seg = max(first, tick - HOUR_MS)
        st = paper.start(coin, seg, live.version, f"production version {live.version} (tier {live.tier})", "live",
                         keep_halt=True)  # a new version does not lift a kill switch: only `enable` does
        log.info(f"{coin}: paper segment starts at {ms_to_iso(seg)} with {live.version} ({st['state']})")
    scale = state_scale(st["state"], gates.kill_switches)
    panel = load_panel(store, list(live.plan.panel_coins), (tick - gates.history_days * DAY_MS, tick + 1))
    rows = decisions(live, panel, tick, int(st["segment"]), paper.last_signal_ts(coin), scale, st["state"],
                     gates.max_catchup_hours)
    added = paper.add_signals(coin, rows, live.version, tick)
    last = rows.iloc[-1] if len(rows) else None
    if last is not None and str(last["note"]):
        log.warning(f"{coin}: bar {ms_to_iso(int(last['ts']))}: {last['note']}")
    return {"tick": ms_to_iso(tick), "decided": int(added), "state": st["state"], "scale": float(scale),
            "model_version": live.version, "tier": live.tier, "paper_scale": float(live.tier_scale),
            "last_bar": ms_to_iso(int(last["ts"])) if last is not None else "-",
            "last_signal": int(last["signal"]) if last is not None else 0,
            "last_p_dir": float(last["p_dir"]) if last is not None else float("nan")}


def retire_segment(coin: str, st: dict[str, Any], store: Any, paper: Any, reg: Any, tick: int, gates: Any,
                   log: Any) -> None:
    """A new production version takes over: the old segment's book is brought up to the tick once more (trades
    that opened or closed since its last booking included) and an open position is closed at the tick (the close
    of the last closed bar, a market exit with the old profile's costs: the engine's end-of-data exit), recorded as
    ``switch``; the new version starts flat. Idempotent (a re-run writes the same fills)."""
    old = load_live(reg, coin, gates, st["model_version"])
    book, _logged = _book(coin, store, paper, old, st, tick, close_at_end="switch")
    paper.write_fills(coin, int(st["segment"]), book.trades, book.position)
    if len(book.trades) and book.trades["exit_reason"].iloc[-1] == "switch":
        log.info(f"{coin}: the open position of {st['model_version']} closed at the switch to a new version")


def _book(coin: str, store: Any, paper: Any, live: Any, st: dict[str, Any], tick: int,
          close_at_end: str = "") -> tuple[Any, Any]:
    """The segment's book at ``tick`` from the logged signals (with ``live``'s paper profile); (book, logged)."""
    from cryptoalgo_core.live.book import paper_book

    seg = int(st["segment"])
    logged = paper.signals(coin, since=seg)
    # funding settled at the tick itself is known at the tick (a close exit at the last bar pays it)
    book = paper_book(store.load("ohlcv", coin, seg, tick), store.load("funding", coin, seg, tick + 1), logged,
                      live.paper, seg, tick, st["halted_at"], close_at_end=close_at_end)
    return book, logged


def coin_book(coin: str, live: Any, store: Any, paper: Any, tick: int, log: Any) -> tuple[dict[str, Any], Any, Any]:
    """The paper_book step of one coin: the segment through the engine, the fills recorded; (metadata, book,
    logged signals)."""
    st = paper.state(coin)
    book, logged = _book(coin, store, paper, live, st, tick)
    added, restated = paper.write_fills(coin, int(st["segment"]), book.trades, book.position)
    for r in restated:
        log.warning(f"{coin}: {r}")
    pos = book.position
    return {"tick": ms_to_iso(tick), "closed_trades": int(len(book.trades)), "new_fills": int(added),
            "restated": len(restated),
            "position": "flat" if pos is None else f"{pos['status']} {'long' if pos['side'] > 0 else 'short'} "
                                                  f"{pos['size']:.3f} @ {pos['entry_price']:.6g}",
            "equity": float(book.equity["equity"].iloc[-1]) if len(book.equity) else 1.0,
            "state": st["state"]}, book, logged


def coin_performance(coin: str, live: Any, store: Any, paper: Any, art: Any, tick: int, book: Any, logged: Any,
                     gates: Any, log: Any) -> tuple[dict[str, Any], list[CheckOutcome]]:
    """The paper_performance step of one coin: figures, the replay, the kill switches, the state change."""
    from cryptoalgo_core.live.tick import evaluate_tick

    st = paper.state(coin)
    seg = int(st["segment"])
    panel = load_panel(store, list(live.plan.panel_coins), (seg - 2 * gates.history_days * DAY_MS, tick + 1))
    res = evaluate_tick(live, book, panel, logged, tick, seg, st["state"], st["halted_at"], gates)
    if res.state != st["state"]:
        paper.set_state(coin, res.state, res.reason, "kill_switch", halted_at=tick if res.state == "HALTED" else None)
        (log.error if res.state == "HALTED" else log.warning)(f"{coin}: {res.state}: {res.reason}")
    summary = {k: v for k, v in res.perf.items() if k not in ("daily", "position")}
    summary["switches"] = [r.as_dict() for r in res.switches]
    paper.record_tick(coin, tick, res.state, float(res.perf["equity"]), summary)
    art.write_json({"coin": coin, "tick": ms_to_iso(tick), "state": res.state, "reason": res.reason,
                    **res.perf, "switches": summary["switches"]}, "paper", coin, "performance.json")
    if res.recon is not None:
        art.write_json(res.recon, "paper", coin, "reconcile.json")
    outcomes = [CheckOutcome(r.name, r.status != "fail", Severity.ERROR, f"{coin}: {r.status}: {r.detail}",
                             {"status": r.status, "value": r.value if r.value is not None else float("nan"),
                              "limit": r.limit}) for r in res.switches]
    p = res.perf
    md = {"tick": ms_to_iso(tick), "state": res.state, "reason": res.reason, "equity": float(p["equity"]),
          "trades": int(p["trades"]), "max_daily_drawdown": float(p["max_daily_drawdown"]),
          "win_rate_recent": float(p["win_rate_recent"]), "brier_live": float(p["brier_live"]),
          "replay_matched": f"{res.recon['matched']}/{res.recon['paper_trades']}" if res.recon else "-",
          "switches": dg.MetadataValue.md("| switch | status | value | limit |\n|---|---|---|---|\n" + "\n".join(
              f"| {r.name} | {r.status} | {'-' if r.value is None else f'{r.value:.4g}'} | {r.limit} |"
              for r in res.switches))}
    return md, outcomes


def switch_specs() -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(name, asset="paper_performance", partitions_def=COINS, blocking=False,
                              description=f"Kill switch {name} (gates.yaml live.kill_switches): a failure HALTS the "
                                          f"coin's paper trading until `cryptoalgo enable`.")
            for name in SWITCHES]


LIVE_SPECS = [
    dg.AssetSpec("signals", deps=[production_model], partitions_def=COINS, group_name="live", kinds={"xgboost"},
                 skippable=True,
                 description="Hourly decisions of the production model: the newest closed bars (refreshed from the "
                             "source), features on the trailing history, the backtest's entry rule and sizing at the "
                             "tier's paper scale; an append-only log (a bar is decided once)."),
    dg.AssetSpec("paper_book", deps=["signals"], partitions_def=COINS, group_name="live", kinds={"numba"},
                 skippable=True,
                 description="Paper fills of the segment: the logged signals through the backtest engine (fills at "
                             "the next bar's open, the backtest's fees, slippage, funding and fill rules); a halt "
                             "closes the open position at the next bar. Closed fills are final; a re-run never "
                             "fills twice."),
    dg.AssetSpec("paper_performance", deps=["paper_book"], partitions_def=COINS, group_name="live", kinds={"json"},
                 skippable=True,
                 description="Paper P&L, drawdowns, win rate, calibration and fee/edge vs validation, and the paper "
                             "window replayed through the backtester (trades and P&L compared); the kill switches "
                             "move the coin to ACTIVE, REDUCING or HALTED."),
]


@dg.multi_asset(name="live_tick", specs=LIVE_SPECS, check_specs=switch_specs(), partitions_def=COINS,
                backfill_policy=dg.BackfillPolicy.single_run(), can_subset=True,
                description="One hourly paper tick for the run's coins (a partition range: one run per tick): "
                            "refresh the newest bars, then per coin signals -> paper_book -> paper_performance.")
def live_tick(
    context: dg.AssetExecutionContext,
    config: LiveConfig,
    market_store: MarketStoreResource,
    market_source: MarketSourceResource,
    project: ProjectConfigResource,
    model_registry: ModelRegistryResource,
    artifacts: ArtifactsResource,
):  # noqa: ANN201 - yields one AssetMaterialization per asset and partition (no outputs)
    from cryptoalgo_assets.checks import latest_materializations, to_evaluation
    from cryptoalgo_core.errors import CryptoalgoError
    from resources.paper import PaperStore
    from resources.registry import RegistryError

    store, gates = market_store.store(), project.gates().live
    reg = model_registry.registry(store.engine, artifacts.data_dir or None)
    paper, art = PaperStore(store.engine), artifacts.store()
    try:
        sources = market_source.source_set(project.sources())
    except ConfigError as exc:
        raise dg.Failure(str(exc)) from exc
    tick = _tick_ms(config, sources)
    wanted = [c for c in context.partition_keys if not config.coins or c in config.coins]
    lives: dict[str, Any] = {}
    failed = []
    for coin in wanted:
        try:
            lives[coin] = load_live(reg, coin, gates)
        except NoProduction:
            context.log.info(f"{coin}: no production model; not paper trading")
        except (dg.Failure, CryptoalgoError, RegistryError) as exc:
            failed.append(_fail(context, coin, exc))
    panel = {c: False for lv in lives.values() for c in lv.plan.panel_coins}
    for lv in lives.values():  # open interest only where a coin's features use it
        panel[lv.coin] = panel.get(lv.coin, False) or "open_interest" in set(lv.plan.groups.values())
    failed += _refresh(store, sources, project, dict(sorted(panel.items())), tick, context.log)
    for coin, live in lives.items():
        st = paper.state(coin)
        if st is not None and st["last_tick_ms"] is not None and tick < int(st["last_tick_ms"]):
            context.log.warning(f"{coin}: tick {ms_to_iso(tick)} is older than the last one processed "
                                f"({ms_to_iso(int(st['last_tick_ms']))}); nothing to do")
            continue
        try:
            md = coin_signals(coin, live, store, paper, reg, tick, gates, context.log)
            yield dg.AssetMaterialization("signals", partition=coin, metadata=md)
            md, book, logged = coin_book(coin, live, store, paper, tick, context.log)
            yield dg.AssetMaterialization("paper_book", partition=coin, metadata=md)
            md, outcomes = coin_performance(coin, live, store, paper, art, tick, book, logged, gates, context.log)
            yield dg.AssetMaterialization("paper_performance", partition=coin, metadata=md)
        except Exception as exc:  # noqa: BLE001 - isolation: one coin's failure must not stop the others' tick;
            failed.append(_fail(context, coin, exc))  # the run still fails (and pages on-call) at the end
            continue
        target = latest_materializations(context.instance, "paper_performance", [coin]).get(coin)
        for o in outcomes:
            context.log_event(to_evaluation(o, "paper_performance", coin, False, target))
    if failed:
        raise dg.Failure("live tick failed for " + "; ".join(failed))


def _fail(context: dg.AssetExecutionContext, coin: str, exc: BaseException) -> str:
    msg = getattr(exc, "description", None) or f"{type(exc).__name__}: {exc}"
    context.log.error(f"{coin}: {msg}")
    return f"{coin}: {msg}"


live_job = dg.define_asset_job(LIVE_JOB, selection=dg.AssetSelection.assets(*[s.key for s in LIVE_SPECS]),
                               executor_def=dg.in_process_executor,
                               description="One hourly paper-trading tick (signals, book, performance) for a coin "
                                           "range: one run per tick.")


def _production_coins(model_registry: Any, market_store: Any, artifacts: Any, coins: list[str]) -> list[str]:
    reg = model_registry.registry(market_store.store().engine, artifacts.data_dir or None)
    return [c for c in coins if reg.production(c) is not None]


def tick_run_config(at: str, coins: list[str] | None = None) -> dict[str, Any]:
    return {"ops": {"live_tick": {"config": {"at": at, "coins": list(coins or [])}}}}


def tick_tags(coins: list[str]) -> dict[str, str]:
    """The partition range of one tick run: every coin of coins.yaml from the first to the last of ``coins``."""
    order = COINS.get_partition_keys()
    idx = sorted(order.index(c) for c in coins)
    return {"dagster/asset_partition_range_start": order[idx[0]], "dagster/asset_partition_range_end": order[idx[-1]]}


@dg.schedule(job=live_job, cron_schedule="5 * * * *", execution_timezone="UTC",
             description="Hourly paper-trading tick of every coin with a production model (one run per tick).")
def live_schedule(context: dg.ScheduleEvaluationContext, market_store: MarketStoreResource,
                  project: ProjectConfigResource, model_registry: ModelRegistryResource,
                  artifacts: ArtifactsResource) -> list[dg.RunRequest]:
    at = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:00:00")
    coins = _production_coins(model_registry, market_store, artifacts, list(project.coins()))
    if not coins:
        return []
    return [dg.RunRequest(run_key=f"live-{at}", run_config=tick_run_config(at, coins), tags=tick_tags(coins))]


def retrain_due(paper: Any, reg: Any, coin: str, retrain_days: int, now_ms: int) -> tuple[bool, str]:
    """The retrain rule (:func:`cryptoalgo_core.live.switches.retrain_decision`) on the coin's stored state."""
    import json

    from cryptoalgo_core.live.switches import retrain_decision

    st, man = paper.state(coin), reg.production(coin)
    ticks = paper.ticks(coin)
    last = json.loads(ticks["summary"].iloc[-1])["switches"] if len(ticks) else None
    age = (now_ms - int(man["created_ms"])) / DAY_MS if man is not None else None
    return retrain_decision(st["state"] if st is not None else None, last, age, retrain_days)


@dg.schedule(job_name=STAGE_JOB, cron_schedule="30 2 * * *", execution_timezone="UTC",
             description="Retrain cadence: re-stages a production coin's model on the newest data, only while its "
                         "paper metrics stay aligned with validation (ACTIVE, every switch ok).")
def retrain_schedule(context: dg.ScheduleEvaluationContext, market_store: MarketStoreResource,
                     project: ProjectConfigResource, model_registry: ModelRegistryResource,
                     artifacts: ArtifactsResource) -> list[dg.RunRequest]:
    from resources.paper import PaperStore

    store = market_store.store()
    reg = model_registry.registry(store.engine, artifacts.data_dir or None)
    paper = PaperStore(store.engine)
    now = int(context.scheduled_execution_time.timestamp() * 1000)
    out = []
    for c in list(project.coins()):
        due, why = retrain_due(paper, reg, c, project.gates().live.retrain_days, now)
        context.log.info(f"{c}: retrain {'due' if due else 'skipped'}: {why}")
        if due:
            out.append(dg.RunRequest(run_key=f"retrain-{c}-{now}", partition_key=c,
                                     run_config={"ops": {"staged_model": {"config": {"retrain": True}}}}))
    return out


defs = dg.Definitions(assets=[live_tick], jobs=[live_job],
                      schedules=[live_schedule, retrain_schedule])

__all__ = ["LIVE_JOB", "defs", "live_tick", "load_live", "retrain_due", "tick_run_config", "tick_tags"]
