"""Paper trading on a synthetic market where the right answer is known: the production model is the research
model; live features and decisions equal the batch ones (truncation); paper fills equal the backtest's trades
on the same window, trade by trade; a re-run never fills twice; a halt closes at the next bar's open."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from cryptoalgo_core.backtest.report import engine_params
from cryptoalgo_core.features.dataset import build_ml_dataset, labels_for_coin
from cryptoalgo_core.live.book import paper_book
from cryptoalgo_core.live.model import ProductionModel, fit_production_model, spec_from_dict, spec_to_dict
from cryptoalgo_core.live.reconcile import reconcile
from cryptoalgo_core.live.tick import decisions, replay
from cryptoalgo_core.model.walkforward import Fold, FoldData, predict_fold
from cryptoalgo_core.optimize.evaluate import GridMarket, window_backtest
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS
from resources.paper import PaperStateError, PaperStore
from tests.core.live.conftest import PaperWorld, run_ticks, trailing

COMPARE = ["entry_ts", "exit_ts", "side", "size", "entry_price", "exit_price", "exit_reason", "gross", "fees",
           "slippage", "funding", "net"]


def _book(world: PaperWorld, logged: pd.DataFrame, halted_at: int | None = None):
    p = world.panel
    return paper_book(p.ohlcv["ETH"], p.funding["ETH"], logged, world.live.paper, world.cut, world.end, halted_at)


def test_production_model_is_the_walk_forward_fold_model(world: PaperWorld) -> None:
    spec, plan = world.live.spec, world.live.plan
    seen = world.panel.before(world.cut)
    ds = build_ml_dataset(plan.build(seen), labels_for_coin(seen.ohlcv["ETH"], spec.label))
    end = world.cut - 20 * DAY_MS
    model = fit_production_model(spec, ds, list(plan.names), end)
    t = model.trained
    fold = Fold(0, t["train_start"], t["cal_start"], end, end + 10 * DAY_MS)
    fp = predict_fold(FoldData.of(ds, list(plan.names)), fold, spec.profile.walk_forward, spec.profile.model)
    rows = ds[(ds["ts"] >= end) & (ds["ts"] < end + 10 * DAY_MS)]
    got = model.predict(rows)
    assert fp.predictions is not None and len(got) == len(fp.predictions) > 100
    for c in ("p_dir", "p_touch", "p_up", "p_down"):
        np.testing.assert_allclose(got[c].to_numpy(), fp.predictions[c].to_numpy(), rtol=0, atol=1e-12)
    back = ProductionModel.from_files(model.to_files())  # the staged files reproduce it exactly
    pd.testing.assert_frame_equal(back.predict(rows), got)
    assert spec_from_dict(spec_to_dict(spec)) == spec


def test_live_decisions_equal_the_batch_computation(world: PaperWorld, logged: pd.DataFrame) -> None:
    """Truncation: each bar decided at its tick from the trailing history equals the full-history batch."""
    assert len(logged) == (world.end - world.cut) // HOUR_MS and logged["ts"].is_unique
    assert (logged["note"] == "").all()
    feats = world.live.plan.build(world.panel.known_by(world.end))
    batch = world.live.model.predict(feats[feats["ts"].isin(logged["ts"])])
    m = logged.merge(batch, on="ts", suffixes=("", "_batch"))
    assert len(m) == len(logged)
    np.testing.assert_array_equal(m["p_dir"].to_numpy(), m["p_dir_batch"].to_numpy())
    assert (logged["signal"] != 0).sum() >= 10


def test_paper_fills_equal_the_backtest_trades(world: PaperWorld, logged: pd.DataFrame) -> None:
    book = _book(world, logged)
    assert len(book.trades) >= 5
    # the research backtester on the same window: batch features, the model's predictions, window_backtest
    p = world.panel
    feats = world.live.plan.build(p.known_by(world.end))
    pred = world.live.model.predict(feats[(feats["ts"] >= world.cut) & (feats["ts"] < world.end)])
    m = GridMarket.of(p.ohlcv["ETH"], p.funding["ETH"], feats, world.cut, world.end)
    bt = window_backtest(m, world.cut, world.end, pred, world.live.paper).trades
    bt = bt[bt["exit_reason"] != "end"].reset_index(drop=True)
    pd.testing.assert_frame_equal(book.trades[COMPARE].reset_index(drop=True), bt[COMPARE], check_dtype=False)
    rep_book, rep_sig = replay(world.live, world.panel, world.cut, world.end, logged, None)
    rec = reconcile(book.trades, rep_book.trades, logged, rep_sig)
    assert rec["mismatched"] == 0 and rec["matched"] == len(book.trades)
    assert abs(rec["pnl_drift_bps"]) < 1e-9
    # the paper scale: the tier's 0.25 of the profile's size
    assert world.live.paper.sizing.position_scale == pytest.approx(0.25 * world.live.spec.profile.sizing.position_scale)


def test_reconcile_explains_a_live_difference(world: PaperWorld, logged: pd.DataFrame) -> None:
    book = _book(world, logged)
    first = int(book.trades["entry_ts"].iloc[0]) - HOUR_MS  # the signal bar of the first trade
    seen_other = logged.copy()
    i = seen_other.index[seen_other["ts"] == first][0]
    seen_other.loc[i, ["signal", "p_dir"]] = [0, 0.5]  # the live tick saw other data at this bar
    paper = _book(world, seen_other)
    rep_book, rep_sig = replay(world.live, world.panel, world.cut, world.end, logged, None)
    rec = reconcile(paper.trades, rep_book.trades, seen_other, rep_sig)
    assert rec["mismatched"] >= 1
    assert "the live signal at" in rec["explanations"][0] and "other data" in rec["explanations"][0]


def test_rerun_never_decides_or_fills_twice(world: PaperWorld, logged: pd.DataFrame, tmp_path) -> None:
    store = PaperStore(sa.create_engine(f"sqlite:///{tmp_path / 'p.db'}"))
    store.start("ETH", world.cut, "v1", "test", "test")
    assert store.add_signals("ETH", logged, "v1", world.end) == len(logged)
    assert store.add_signals("ETH", logged, "v1", world.end) == 0  # the same tick again
    again = decisions(world.live, trailing(world.panel, world.end), world.end, world.cut,
                      store.last_signal_ts("ETH"), 1.0, "ACTIVE", 72)
    assert len(again) == 0
    book = _book(world, store.signals("ETH"))
    n, _ = store.write_fills("ETH", world.cut, book.trades, book.position)
    assert n == len(book.trades) and store.write_fills("ETH", world.cut, book.trades, book.position) == (0, [])
    assert len(store.fills("ETH", world.cut, "closed")) == len(book.trades)
    changed = book.trades.copy()
    changed.loc[0, "net"] += 0.01
    added, restated = store.write_fills("ETH", world.cut, changed, None)  # history is not rewritten
    assert added == 0 and len(restated) == 1 and "recorded fill stands" in restated[0]
    assert store.fills("ETH", world.cut, "closed")["net"].iloc[0] == book.trades["net"].iloc[0]
    with pytest.raises(PaperStateError, match="not HALTED"):
        store.enable("ETH", world.end, "why", "test")


def test_history_must_span_the_feature_warmups(world: PaperWorld) -> None:
    from cryptoalgo_core.live.tick import check_history

    check_history(world.live.plan, 180)  # the shipped default
    with pytest.raises(ValueError, match="longest feature warm-up"):
        check_history(world.live.plan, 30)


def test_missed_hours_are_logged_not_traded(world: PaperWorld) -> None:
    """After an outage only the bar that just closed can trade (its entry is the open at the tick); the bars
    in between are decided for the log (late) or, beyond the catch-up limit, logged as missed."""
    t = world.cut + 10 * HOUR_MS
    rows = decisions(world.live, trailing(world.panel, t), t, world.cut, None, 1.0, "ACTIVE", 3)
    assert len(rows) == 10 and list(rows["note"]) == ["missed"] * 7 + ["late"] * 2 + [""]
    assert (rows["signal"][:9] == 0).all() and (rows["size"][:9] == 0).all()
    assert rows["p_dir"][:7].isna().all() and rows["p_dir"][7:].notna().all()  # late bars keep their prediction
    assert int(rows["ts"].iloc[-1]) == t - HOUR_MS


def test_halt_closes_the_position_at_the_next_open(world: PaperWorld, logged: pd.DataFrame) -> None:
    book = _book(world, logged)
    long_hold = book.trades[book.trades["hold_hours"] >= 3].iloc[0]
    halt = int(long_hold["entry_ts"]) + 2 * HOUR_MS
    halted = _book(world, logged, halted_at=halt)
    last = halted.trades.iloc[-1]
    assert last["exit_reason"] == "halt" and int(last["exit_ts"]) == halt
    assert (halted.trades["entry_ts"] < halt).all()  # nothing entered after the halt
    o = world.panel.ohlcv["ETH"].set_index("ts")["open"]
    p = engine_params(world.live.paper)
    slip = p.slippage + p.slippage_vol_mult * float(last["sigma_entry"])
    side = int(last["side"])
    assert last["exit_raw"] == o[halt] and last["exit_price"] == pytest.approx(o[halt] * (1 - side * slip))
    gross = side * (o[halt] / last["entry_raw"] - 1)
    assert last["net"] == pytest.approx(gross - p.fee_entry - p.fee_exit_other - 2 * slip - last["funding"])
    before = book.trades[book.trades["exit_ts"] <= halt]
    pd.testing.assert_frame_equal(halted.trades.iloc[:-1][COMPARE].reset_index(drop=True),
                                  before[COMPARE].reset_index(drop=True), check_dtype=False)
    eq = halted.equity.set_index("ts")["equity"]
    assert eq[eq.index >= halt + HOUR_MS].nunique() == 1  # flat from the halt on


def test_halted_scale_stops_signals(world: PaperWorld) -> None:
    t = world.cut + 48 * HOUR_MS
    rows = run_ticks(world, [t], scale=0.0, state="HALTED")
    assert (rows["signal"] == 0).all() and (rows["size"] == 0).all() and (rows["state"] == "HALTED").all()
    reduced = run_ticks(world, [t], scale=0.5, state="REDUCING")
    full = run_ticks(world, [t])
    np.testing.assert_allclose(reduced["size"], 0.5 * full["size"])
    assert dataclasses.replace(world.live.paper) == world.live.paper


def test_enable_waits_until_the_halted_position_is_closed(world: PaperWorld, logged: pd.DataFrame, tmp_path) -> None:
    store = PaperStore(sa.create_engine(f"sqlite:///{tmp_path / 'p.db'}"))
    store.start("ETH", world.cut, "v1", "test", "test")
    book = _book(world, logged)
    t = book.trades.iloc[0]
    position = {"status": "closing", "side": int(t["side"]), "size": float(t["size"]), "entry_ts": int(t["entry_ts"]),
                "entry_price": float(t["entry_price"])}
    store.write_fills("ETH", world.cut, book.trades.iloc[:0], position)
    store.set_state("ETH", "HALTED", "a switch failed", "kill_switch", halted_at=world.end)
    with pytest.raises(PaperStateError, match="closes at the next bar"):
        store.enable("ETH", world.end, "why", "test")
    store.write_fills("ETH", world.cut, book.trades.iloc[:1], None)  # the next tick closed it
    row = store.enable("ETH", world.end, "why", "test")
    assert row["state"] == "ACTIVE" and row["segment"] == world.end
    assert [e["to_state"] for e in store.events("ETH")] == ["ACTIVE", "HALTED", "ACTIVE"]


def test_a_new_version_keeps_a_halt_and_a_vanished_position_is_voided(world: PaperWorld, tmp_path) -> None:
    store = PaperStore(sa.create_engine(f"sqlite:///{tmp_path / 'p.db'}"))
    store.start("ETH", world.cut, "v1", "test", "test")
    store.set_state("ETH", "HALTED", "max_daily_drawdown", "kill_switch", halted_at=world.cut + HOUR_MS)
    row = store.start("ETH", world.cut + 5 * HOUR_MS, "v2", "new version", "live", keep_halt=True)
    assert row["state"] == "HALTED" and "still halted" in row["reason"]  # only `enable` lifts a kill switch
    pos = {"status": "open", "side": 1, "size": 0.1, "entry_ts": world.cut + 6 * HOUR_MS, "entry_price": 100.0}
    seg = world.cut + 5 * HOUR_MS
    store.write_fills("ETH", seg, pd.DataFrame(), pos)
    added, restated = store.write_fills("ETH", seg, pd.DataFrame(), None)  # the book no longer holds it
    assert added == 0 and "voided" in restated[0]
    assert list(store.fills("ETH", seg)["status"]) == ["void"]
    assert store.enable("ETH", seg, "checked", "test")["state"] == "ACTIVE"
