"""Kill switches and the coin's paper state (pure).

Each switch compares a paper figure with its limit in ``gates.yaml live.kill_switches`` (and, where it is a
drift, with the validation's figure from the staged model): ``fail`` past the limit, ``warn`` inside
``warn_fraction`` of it, ``insufficient`` while there is too little evidence to judge (not a failure), ``ok``.

State: ``HALTED`` when any switch fails (persisted: it stays halted until ``cryptoalgo enable``), else
``REDUCING`` when any switch warns (new positions at ``reducing_scale``), else ``ACTIVE``.

Switches:
- ``max_daily_drawdown``: the worst intraday peak-to-trough of the paper equity (marked to market) in any UTC day.
- ``min_win_rate``: share of winners among the last ``win_window_trades`` closed trades (>= ``min_trades``).
- ``calibration_drift``: Brier score of the live direction probabilities on the bars whose label is decided
  (a horizontal barrier touched, ``t1`` before now) minus the validation's Brier score.
- ``fee_edge_expansion``: live fee/edge ratio over the validation's (a live gross edge <= 0 is an infinite ratio).
- ``replay_drift``: paper trades that differ from the backtest replay of the paper window, and the return gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cryptoalgo_core.config.gates import KillSwitchGates

__all__ = ["ACTIVE", "HALTED", "REDUCING", "SWITCHES", "SwitchResult", "brier_live", "evaluate", "next_state",
           "retrain_decision", "state_scale"]

ACTIVE, REDUCING, HALTED = "ACTIVE", "REDUCING", "HALTED"
SWITCHES = ("max_daily_drawdown", "min_win_rate", "calibration_drift", "fee_edge_expansion", "replay_drift")


@dataclass(frozen=True)
class SwitchResult:
    name: str
    status: str  # ok | warn | fail | insufficient
    value: float | None
    limit: float
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "value": self.value, "limit": self.limit,
                "detail": self.detail}


def _upper(name: str, v: float, limit: float, g: KillSwitchGates, detail: str) -> SwitchResult:
    st = "fail" if v > limit else "warn" if v > g.warn_fraction * limit else "ok"
    return SwitchResult(name, st, v if math.isfinite(v) else None, limit, detail)


def brier_live(signals: pd.DataFrame, labels: pd.DataFrame, now: int) -> tuple[float, int]:
    """(Brier score, rows) of the live ``p_dir`` on bars whose triple-barrier label is decided before ``now`` and
    is a touch (+1 / -1): the label the research model was trained to predict."""
    if signals.empty or labels.empty:
        return math.nan, 0
    sig = signals[["ts", "p_dir"]].assign(p_dir=pd.to_numeric(signals["p_dir"], errors="coerce"))
    m = sig.merge(labels[["ts", "label", "t1"]], on="ts", how="inner")
    m = m[(m["t1"] < now) & m["label"].isin([1.0, -1.0]) & np.isfinite(m["p_dir"].to_numpy(float))]
    if m.empty:
        return math.nan, 0
    y = (m["label"] == 1.0).to_numpy(float)
    return float(np.mean((m["p_dir"].to_numpy(float) - y) ** 2)), int(len(m))


def evaluate(perf: dict[str, Any], brier: tuple[float, int], replay: dict[str, Any] | None,
             baseline: dict[str, Any], g: KillSwitchGates) -> list[SwitchResult]:
    """Every switch's result (module docstring); ``baseline``: the validation's ``brier`` and ``fee_edge_ratio``."""
    out = [_upper("max_daily_drawdown", float(perf["max_daily_drawdown"]), g.max_daily_drawdown, g,
                  f"worst intraday drawdown {perf['max_daily_drawdown']:.2%} over {len(perf['daily'])} day(s)")]
    n = int(perf["win_window_trades"])
    if n < g.min_trades:
        out.append(SwitchResult("min_win_rate", "insufficient", None, g.min_win_rate,
                                f"{n} closed trade(s); judged from {g.min_trades}"))
    else:
        wr = float(perf["win_rate_recent"])
        st = "fail" if wr < g.min_win_rate else "warn" if wr < g.min_win_rate / g.warn_fraction else "ok"
        out.append(SwitchResult("min_win_rate", st, wr, g.min_win_rate, f"{wr:.0%} winners in the last {n} trades"))
    b, rows = brier
    base_b = baseline.get("brier")
    if rows < g.min_calibration_rows or base_b is None or not math.isfinite(float(base_b)):
        out.append(SwitchResult("calibration_drift", "insufficient", None, g.max_brier_increase,
                                f"{rows} resolved live prediction(s); judged from {g.min_calibration_rows}"
                                + ("" if base_b is not None else "; no validation Brier score")))
    else:
        out.append(_upper("calibration_drift", b - float(base_b), g.max_brier_increase, g,
                          f"live Brier {b:.4f} vs validation {float(base_b):.4f} on {rows} resolved bars"))
    base_fe = baseline.get("fee_edge_ratio")
    if int(perf["trades"]) < g.min_trades or base_fe is None:
        out.append(SwitchResult("fee_edge_expansion", "insufficient", None, g.max_fee_edge_expansion,
                                f"{perf['trades']} closed trade(s); judged from {g.min_trades}"))
    else:
        live = float(perf["fee_edge_ratio"])
        ratio = live / float(base_fe) if math.isfinite(live) and float(base_fe) > 0 else math.inf
        out.append(_upper("fee_edge_expansion", ratio, g.max_fee_edge_expansion, g,
                          f"live fee/edge {live:.2f} vs validation {float(base_fe):.2f}"
                          + (" (no live gross edge)" if not math.isfinite(live) else "")))
    if replay is None:
        out.append(SwitchResult("replay_drift", "insufficient", None, float(g.max_replay_mismatches),
                                "no paper trades to replay yet"))
    else:
        mism, gap = int(replay["mismatched"]), abs(float(replay["pnl_drift_bps"]))
        fail = mism > g.max_replay_mismatches or gap > g.max_replay_pnl_bps
        detail = (f"{replay['matched']} of {replay['paper_trades']} paper trades match the replay; return gap "
                  f"{gap:.2f} bps" + (f"; {replay['explanations'][0]}" if replay["explanations"] else ""))
        out.append(SwitchResult("replay_drift", "fail" if fail else "ok", float(mism), float(g.max_replay_mismatches),
                                detail))
    return out


def next_state(current: str, results: list[SwitchResult]) -> tuple[str, str]:
    """(state, reason). HALTED is sticky: only an explicit enable leaves it."""
    failed = [r for r in results if r.status == "fail"]
    if current == HALTED:
        return HALTED, "halted until `cryptoalgo enable`"
    if failed:
        return HALTED, "; ".join(f"{r.name}: {r.detail}" for r in failed)
    warned = [r for r in results if r.status == "warn"]
    if warned:
        return REDUCING, "; ".join(f"{r.name} near its limit: {r.detail}" for r in warned)
    return ACTIVE, "every switch ok"


def state_scale(state: str, g: KillSwitchGates) -> float:
    """The multiplier on new positions in ``state``: 1 ACTIVE, ``reducing_scale`` REDUCING, 0 HALTED."""
    return {ACTIVE: 1.0, REDUCING: g.reducing_scale, HALTED: 0.0}[state]


def retrain_decision(state: str | None, switches: list[dict[str, Any]] | None, version_age_days: float | None,
                     retrain_days: int) -> tuple[bool, str]:
    """Retrain cadence: (due?, why). Only while the coin trades ACTIVE with every switch of its last tick ok (or
    without enough evidence yet), once its production version is ``retrain_days`` old."""
    if state is None or version_age_days is None:
        return False, "not paper trading"
    if state != ACTIVE:
        return False, f"state {state}: paper metrics are not aligned with validation"
    if switches is None:
        return False, "no tick yet"
    bad = [s["name"] for s in switches if s["status"] not in ("ok", "insufficient")]
    if bad:
        return False, f"switches not ok: {', '.join(bad)}"
    return (version_age_days >= retrain_days,
            f"production version is {version_age_days:.1f} days old (cadence {retrain_days} d)")
