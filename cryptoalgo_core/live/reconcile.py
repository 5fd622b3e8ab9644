"""Paper-vs-backtest reconciliation (pure): the paper window replayed through the backtester and compared with
the paper fills trade by trade.

The replay is the research backtest of the window: features rebuilt in one batch from the stored data, the
production model's predictions, the same signal rule and paper scale, the same engine. Paper and replay agree
when the live path saw what the batch sees; a difference is explained by the first bar where the two signal
logs disagree (the live tick saw other data: a candle revised or filled in later, a gap at tick time, a missed
tick) or by the exit (a halt closes paper positions that the replay holds).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cryptoalgo_core.timeutil import ms_to_iso

__all__ = ["reconcile"]

_COMPARE = ("side", "exit_ts", "exit_reason")


def _same(a: pd.Series, b: pd.Series) -> bool:
    if any(a[c] != b[c] for c in _COMPARE):
        return False
    return bool(np.isclose(float(a["net"]), float(b["net"]), rtol=0, atol=1e-9)
                and np.isclose(float(a["size"]), float(b["size"]), rtol=1e-9, atol=1e-12))


def reconcile(paper: pd.DataFrame, replay: pd.DataFrame, live_signals: pd.DataFrame,
              replay_signals: pd.DataFrame) -> dict[str, Any]:
    """Compare closed ``paper`` trades with the ``replay`` trades closed in the same window (both engine trade
    frames; the replay's trades after the paper's last exit are not compared)."""
    last = int(paper["exit_ts"].max()) if len(paper) else None
    rep = replay[replay["exit_reason"] != "end"] if len(replay) else replay
    if last is not None and len(rep):
        rep = rep[rep["entry_ts"] <= last]
    p = paper.set_index("entry_ts") if len(paper) else pd.DataFrame()
    r = rep.set_index("entry_ts") if len(rep) else pd.DataFrame()
    keys = sorted(set(p.index) | set(r.index))
    rows, explanations, matched = [], [], 0
    for k in keys:
        a = p.loc[k] if k in p.index else None
        b = r.loc[k] if k in r.index else None
        if a is not None and b is not None and _same(a, b):
            matched += 1
            continue
        why = _explain(int(k), a, b, live_signals, replay_signals)
        rows.append({"entry_ts": int(k), "paper": None if a is None else _brief(a),
                     "replay": None if b is None else _brief(b), "why": why})
        explanations.append(f"{ms_to_iso(int(k))}: {why}")
    pnl_p = float(np.prod(1 + paper["size"] * paper["net"]) - 1) if len(paper) else 0.0
    pnl_r = float(np.prod(1 + rep["size"] * rep["net"]) - 1) if len(rep) else 0.0
    return {"paper_trades": int(len(paper)), "replay_trades": int(len(rep)), "matched": matched,
            "mismatched": len(rows), "differences": rows, "explanations": explanations,
            "pnl_paper": pnl_p, "pnl_replay": pnl_r, "pnl_drift_bps": (pnl_p - pnl_r) * 1e4}


def _brief(t: pd.Series) -> dict[str, Any]:
    return {"side": int(t["side"]), "exit_ts": int(t["exit_ts"]), "exit_reason": str(t["exit_reason"]),
            "net_bps": float(t["net"]) * 1e4, "size": float(t["size"])}


def _explain(k: int, a: pd.Series | None, b: pd.Series | None, live: pd.DataFrame, rep: pd.DataFrame) -> str:
    if a is not None and a["exit_reason"] == "halt":
        return "paper closed the position at a halt; the replay holds it to its own exit"
    m = live[["ts", "signal", "p_dir", "size"]].merge(rep[["ts", "signal", "p_dir", "size"]], on="ts", how="outer",
                                                       suffixes=("_live", "_replay")).sort_values("ts")
    m = m[m["ts"] < k]
    diff = m[(m["signal_live"].fillna(0) != m["signal_replay"].fillna(0))
             | ~np.isclose(m["p_dir_live"].astype(float), m["p_dir_replay"].astype(float), rtol=0, atol=1e-9,
                           equal_nan=True)]
    if len(diff):
        d = diff.iloc[-1]
        if np.isnan(float(d["p_dir_live"])):
            return f"no live decision for the bar at {ms_to_iso(int(d['ts']))} (a missed or late tick)"
        return (f"the live signal at {ms_to_iso(int(d['ts']))} was {int(d['signal_live'] or 0)} (p_dir "
                f"{float(d['p_dir_live']):.4f}), the replay's {int(np.nan_to_num(d['signal_replay']))} (p_dir "
                f"{float(d['p_dir_replay']):.4f}): the live tick saw other data than the store holds now")
    if a is None:
        return "the replay trades here and the paper book does not (the paper segment started later or halted)"
    if b is None:
        return "the paper book trades here and the replay does not"
    return "same signals, different fill: the bars changed after the paper fill (a revised candle)"
