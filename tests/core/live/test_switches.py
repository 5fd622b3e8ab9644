"""Each kill switch fires on a constructed scenario (and only that one); warnings reduce, failures halt, and a
halt is sticky; too little evidence is not a failure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryptoalgo_core.config.gates import KillSwitchGates
from cryptoalgo_core.live import switches as sw
from cryptoalgo_core.live.book import Book, performance
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS

G = KillSwitchGates()
BASE = {"brier": 0.24, "fee_edge_ratio": 0.5}
T0 = 1_767_225_600_000  # a UTC midnight


def _trades(nets: list[float], gross: float = 0.004, fees: float = 0.001) -> pd.DataFrame:
    n = len(nets)
    return pd.DataFrame({"entry_ts": T0 + np.arange(n) * 6 * HOUR_MS, "exit_ts": T0 + np.arange(n) * 6 * HOUR_MS + 3 * HOUR_MS,
                         "side": 1, "size": 0.25, "net": nets, "gross": gross, "fees": fees, "slippage": 0.0,
                         "funding": np.asarray(gross) - fees - np.asarray(nets), "exit_reason": "time"})


def _book(trades: pd.DataFrame, curve: np.ndarray | None = None) -> Book:
    curve = np.full(72, 1.0) if curve is None else curve
    return Book(trades, None, pd.DataFrame({"ts": T0 + np.arange(curve.size) * HOUR_MS, "equity": curve}), None)


def _healthy() -> tuple[dict, tuple[float, int], dict]:
    perf = performance(_book(_trades([0.002] * 14 + [-0.001] * 6)), G.win_window_trades)
    recon = {"paper_trades": 20, "matched": 20, "mismatched": 0, "pnl_drift_bps": 0.0, "explanations": []}
    return perf, (0.245, 200), recon


def _status(results: list[sw.SwitchResult]) -> dict[str, str]:
    return {r.name: r.status for r in results}


def test_healthy_book_is_active() -> None:
    perf, brier, recon = _healthy()
    res = sw.evaluate(perf, brier, recon, BASE, G)
    assert _status(res) == dict.fromkeys(sw.SWITCHES, "ok")
    assert sw.next_state(sw.ACTIVE, res)[0] == sw.ACTIVE


@pytest.mark.parametrize("switch", sw.SWITCHES)
def test_each_switch_fires_alone(switch: str) -> None:
    perf, brier, recon = _healthy()
    if switch == "max_daily_drawdown":  # a 7 % intraday drop (limit 5 %), recovered by the close
        curve = np.r_[np.full(30, 1.0), np.full(5, 0.93), np.full(37, 1.0)]
        perf = performance(_book(_trades([0.002] * 14 + [-0.001] * 6), curve), G.win_window_trades)
    elif switch == "min_win_rate":  # 3 winners in the last 20 (limit 25 %)
        perf = performance(_book(_trades([0.002] * 10 + [-0.0001] * 17 + [0.002] * 3)), G.win_window_trades)
        perf["fee_edge_ratio"] = 0.4  # keep fee/edge healthy: only the win rate is at fault
    elif switch == "calibration_drift":
        brier = (0.31, 200)  # +0.07 over validation (limit +0.05)
    elif switch == "fee_edge_expansion":
        perf["fee_edge_ratio"] = 1.2  # 2.4x the validation's 0.5 (limit 2x)
    else:
        recon = {**recon, "matched": 19, "mismatched": 1, "explanations": ["2026-01-01T05:00: the live signal ..."]}
    res = sw.evaluate(perf, brier, recon, BASE, G)
    st = _status(res)
    assert st[switch] == "fail", res
    assert all(v in ("ok", "warn") for k, v in st.items() if k != switch), st
    state, reason = sw.next_state(sw.ACTIVE, res)
    assert state == sw.HALTED and switch in reason
    assert sw.next_state(sw.HALTED, sw.evaluate(*_healthy(), BASE, G))[0] == sw.HALTED  # sticky


def test_near_a_limit_reduces() -> None:
    perf, brier, recon = _healthy()
    perf["max_daily_drawdown"] = 0.045  # inside 80 % .. 100 % of the 5 % limit
    res = sw.evaluate(perf, brier, recon, BASE, G)
    assert _status(res)["max_daily_drawdown"] == "warn"
    assert sw.next_state(sw.ACTIVE, res)[0] == sw.REDUCING
    assert sw.next_state(sw.REDUCING, sw.evaluate(*_healthy(), BASE, G))[0] == sw.ACTIVE


def test_too_little_evidence_is_not_a_failure() -> None:
    perf = performance(_book(_trades([-0.002] * 3)), G.win_window_trades)  # 3 losers: too few to judge
    res = sw.evaluate(perf, (0.9, 10), None, BASE, G)
    st = _status(res)
    assert st["min_win_rate"] == st["fee_edge_expansion"] == st["calibration_drift"] == "insufficient"
    assert st["replay_drift"] == "insufficient" and sw.next_state(sw.ACTIVE, res)[0] == sw.ACTIVE


def test_no_live_gross_edge_is_an_infinite_fee_ratio() -> None:
    perf, brier, recon = _healthy()
    perf["fee_edge_ratio"] = float("inf")
    r = {x.name: x for x in sw.evaluate(perf, brier, recon, BASE, G)}["fee_edge_expansion"]
    assert r.status == "fail" and r.value is None


def test_brier_live_uses_only_decided_touches() -> None:
    sig = pd.DataFrame({"ts": [0, 1, 2, 3], "p_dir": [0.9, 0.2, 0.5, 0.7]})
    lab = pd.DataFrame({"ts": [0, 1, 2, 3], "label": [1.0, -1.0, 0.0, 1.0], "t1": [5, 5, 5, 50]})
    b, n = sw.brier_live(sig, lab, now=10)  # ts 2 is a vertical exit, ts 3 not decided by now
    assert n == 2 and b == pytest.approx(((0.9 - 1) ** 2 + 0.2 ** 2) / 2)


def test_daily_drawdown_is_per_utc_day() -> None:
    # a 4 % drop one day and a 4 % drop the next day: each day's worst is 4 %, not 8 %
    curve = np.r_[np.full(12, 1.0), np.full(12, 0.96), np.full(12, 0.96), np.full(12, 0.9216)]
    perf = performance(_book(_trades([0.001] * 2), curve), G.win_window_trades)
    assert perf["max_daily_drawdown"] == pytest.approx(0.04)
    assert [d["day"] for d in perf["daily"]] == [T0, T0 + DAY_MS]
