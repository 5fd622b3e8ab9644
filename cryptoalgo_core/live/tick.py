"""One hourly tick of a coin (pure): which bars to decide, their signals, the book, the replay, the switches.

A tick at time ``T`` (on the hour) sees only bars that closed by ``T`` (``ts + 1 h <= T``) and decides each bar
not decided yet, oldest first, from the segment start. Only the newest closed bar (``T - 1 h``, whose entry is
the open at ``T``: now) can trade; the bars a missed tick left behind are decided for the log (the calibration
switch reads them) with note ``late`` and no signal, because their entries lie in the past -- paper trading never
fills at a price it already knows the future of. More than ``max_catchup_hours`` behind, the older bars are
logged as ``missed`` without a prediction. Features are built on the trailing
``history_days`` of the panel (incremental: the newest rows of a causal computation over a bounded window; a
test proves they equal the full-history features) and the production model predicts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cryptoalgo_core.config.coins import CoinSpec
from cryptoalgo_core.config.gates import LiveGates
from cryptoalgo_core.features.build import MarketPanel
from cryptoalgo_core.features.dataset import build_ml_dataset, labels_for_coin
from cryptoalgo_core.features.plan import FeaturePlan
from cryptoalgo_core.live import switches as sw
from cryptoalgo_core.live.book import SIGNAL_COLUMNS, Book, decide, paper_book, paper_profile, performance
from cryptoalgo_core.live.model import ProductionModel, fit_production_model
from cryptoalgo_core.live.reconcile import reconcile
from cryptoalgo_core.timeutil import HOUR_MS

__all__ = ["LiveCoin", "TickResult", "check_history", "decisions", "evaluate_tick", "replay", "train_for_staging"]

HISTORY_WARMUPS = 4  # the trailing history spans at least this many of the longest feature warm-up


def check_history(plan: FeaturePlan, history_days: int) -> None:
    """ValueError unless ``history_days`` spans HISTORY_WARMUPS x the longest warm-up of the plan's features:
    rolling windows are exact beyond their window, and an EMA's start-up weight (< 1e-3 at its warm-up) is then
    below float precision, so the trailing-window features equal the full-history ones (tested)."""
    from cryptoalgo_core.features.build import specs_for

    warm = {s.name: s.warmup_hours for s in specs_for(list(plan.panel_coins), plan.coin, plan.selection)}
    longest = max((warm.get(n, 0) for n in plan.names), default=0)
    if history_days * 24 < HISTORY_WARMUPS * longest:
        raise ValueError(f"{plan.coin}: live.history_days {history_days} is shorter than {HISTORY_WARMUPS} x the "
                         f"longest feature warm-up ({longest} h); raise it in gates.yaml")


def train_for_staging(spec: CoinSpec, plan: FeaturePlan, panel: MarketPanel, end: int) -> ProductionModel:
    """The production model of ``spec`` (the chosen profile) trained on every labeled row of ``panel`` before
    ``end`` (the end of the data the validation judged)."""
    seen = panel.before(end)
    feats = plan.build(seen)
    ds = build_ml_dataset(feats, labels_for_coin(seen.ohlcv[plan.coin], spec.label))
    return fit_production_model(spec, ds, list(plan.names), end)


@dataclass
class LiveCoin:
    """A production version, loaded: the model, the resolved spec, the feature plan and the paper scale."""

    coin: str
    version: str
    model: ProductionModel
    spec: CoinSpec
    plan: FeaturePlan
    tier: str
    tier_scale: float
    baseline: dict[str, Any]  # validation figures: brier, fee_edge_ratio, win_rate, net_bps

    @property
    def paper(self) -> Any:
        return paper_profile(self.spec.profile, self.tier_scale)

    @property
    def trained_end(self) -> int:
        return int(self.model.trained["end"])


def _decide_rows(live: LiveCoin, feats: pd.DataFrame, bars: np.ndarray, scale: float, state: str) -> pd.DataFrame:
    rows = feats[feats["ts"].isin(bars)]
    out = decide(live.model.predict(rows), rows, live.paper, scale, state) if len(rows) else pd.DataFrame(
        columns=list(SIGNAL_COLUMNS))
    out["note"] = ""
    gone = np.setdiff1d(bars, out["ts"].to_numpy(np.int64))
    if gone.size:  # no candle for the bar (a gap at tick time): nothing to decide on
        out = pd.concat([out, _blank(gone, scale, state, "no candle")], ignore_index=True)
    return out.sort_values("ts").reset_index(drop=True)


def _blank(ts: np.ndarray, scale: float, state: str, note: str) -> pd.DataFrame:
    return pd.DataFrame({"ts": ts.astype(np.int64), "p_dir": np.nan, "p_up": np.nan, "p_down": np.nan, "signal": 0,
                         "sigma": np.nan, "size": 0.0, "scale": scale, "state": state, "note": note})


def decisions(live: LiveCoin, panel: MarketPanel, tick: int, segment: int, last_decided: int | None,
              scale: float, state: str, max_catchup_hours: int) -> pd.DataFrame:
    """The signal rows this tick adds (:data:`SIGNAL_COLUMNS` + note): bars in [segment, tick) not decided yet."""
    if tick % HOUR_MS:
        raise ValueError("a tick is on the hour")
    first = segment if last_decided is None else max(segment, last_decided + HOUR_MS)
    bars = np.arange(first, tick, HOUR_MS, dtype=np.int64)  # bar b has closed when b + 1 h <= tick
    if bars.size == 0:
        return _blank(bars, scale, state, "")
    missed, todo = bars[:-max_catchup_hours], bars[-max_catchup_hours:]
    feats = live.plan.build(panel.known_by(tick))
    out = _decide_rows(live, feats, todo, scale, state)
    late = (out["ts"].to_numpy(np.int64) < tick - HOUR_MS) & (out["note"] == "").to_numpy()
    out.loc[late, ["signal", "size"]] = [0, 0.0]
    out.loc[late, "note"] = "late"
    if missed.size:
        out = pd.concat([_blank(missed, scale, state, "missed"), out], ignore_index=True)
    return out


def replay(live: LiveCoin, panel: MarketPanel, segment: int, tick: int, logged: pd.DataFrame,
           halted_at: int | None) -> tuple[Book, pd.DataFrame]:
    """The backtest replay of the paper window [segment, tick): features rebuilt in one batch from the whole
    ``panel``, the production model, the logged per-bar scale (the switch state), the same engine."""
    feats = live.plan.build(panel.known_by(tick))
    bars = logged["ts"].to_numpy(np.int64)
    rows = feats[feats["ts"].isin(bars)]
    pred = live.model.predict(rows)
    scale = pred[["ts"]].merge(logged[["ts", "scale"]], on="ts", how="left")["scale"].to_numpy(float)
    sig = decide(pred, rows, live.paper, scale, "replay")
    # bars the live tick could not trade (late, missed, no candle) are not traded by the replay either: an
    # operational gap is not model drift
    untradeable = set(logged.loc[logged["note"].fillna("") != "", "ts"].astype(np.int64))
    off = sig["ts"].isin(untradeable)
    sig.loc[off, ["signal", "size"]] = [0, 0.0]
    coin = live.coin
    book = paper_book(panel.ohlcv[coin], panel.funding[coin], sig, live.paper, segment, tick, halted_at)
    return book, sig


@dataclass
class TickResult:
    perf: dict[str, Any]
    switches: list[sw.SwitchResult]
    recon: dict[str, Any] | None
    state: str
    reason: str


def evaluate_tick(live: LiveCoin, book: Book, panel: MarketPanel, logged: pd.DataFrame, tick: int, segment: int,
                  current_state: str, halted_at: int | None, gates: LiveGates) -> TickResult:
    """Performance, calibration, the replay reconciliation and the kill switches of the book at ``tick``."""
    g = gates.kill_switches
    perf = performance(book, g.win_window_trades)
    seen = panel.known_by(tick)
    labels = labels_for_coin(seen.ohlcv[live.coin], live.spec.label)
    brier = sw.brier_live(logged, labels, tick)  # every live prediction, late ones included (missed: none)
    recon = None
    if len(book.trades):
        rep_book, rep_sig = replay(live, panel, segment, tick, logged, halted_at)
        recon = reconcile(book.trades, rep_book.trades, logged, rep_sig)
    results = sw.evaluate(perf, brier, recon, live.baseline, g)
    perf["brier_live"], perf["brier_rows"] = brier
    state, reason = sw.next_state(current_state, results)
    return TickResult(perf, results, recon, state, reason)
