"""What the study and the holdout evaluation share: one coin's market on the hourly grid, a backtest of a window
of it from cached predictions, and data fingerprints. Pure.

A window backtest trades ``[test_start, test_end)`` on its own (flat at the start, an open position closed at the
window's last bar), with exactly the fills, fees, slippage and funding of :func:`cryptoalgo_core.backtest.report.
backtest_coin`: the same :func:`~cryptoalgo_core.strategy.signal_arrays` and numba engine.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cryptoalgo_core.backtest.engine import BacktestResult, run_backtest
from cryptoalgo_core.backtest.report import engine_params
from cryptoalgo_core.config.profile import CoinProfile
from cryptoalgo_core.grid import hourly_grid, reindex_on_grid
from cryptoalgo_core.strategy import funding_on_grid, signal_arrays
from cryptoalgo_core.timeutil import HOUR_MS

__all__ = ["GridMarket", "fingerprint", "predictions_on_grid", "result_hash", "window_backtest"]


@dataclass(frozen=True)
class GridMarket:
    """A coin's bars, funding and the filter features on the hourly grid [start, end)."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    funding: np.ndarray
    rv: np.ndarray
    mom: np.ndarray
    trend: np.ndarray

    @classmethod
    def of(cls, ohlcv: pd.DataFrame, funding: pd.DataFrame, features: pd.DataFrame, start: int, end: int) -> GridMarket:
        grid = hourly_grid(start, end)
        bars = reindex_on_grid(ohlcv, grid, ["open", "high", "low", "close", "volume"])
        f = pd.DataFrame({"ts": grid}).merge(features[["ts", "rv_24", "mom_mag_24", "trend_bucket"]], on="ts",
                                             how="left")
        col = {c: bars[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume")}
        return cls(grid, col["open"], col["high"], col["low"], col["close"], col["volume"],
                   funding_on_grid(grid, funding), f["rv_24"].to_numpy(float), f["mom_mag_24"].to_numpy(float),
                   f["trend_bucket"].to_numpy(float))

    def span(self, start: int, end: int) -> tuple[int, int]:
        return int(np.searchsorted(self.ts, start)), int(np.searchsorted(self.ts, end))


def predictions_on_grid(ts: np.ndarray, pred: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p_dir, p_up, p_down aligned to ``ts`` (NaN where ``pred`` has no row)."""
    out = [np.full(ts.size, np.nan) for _ in range(3)]
    if len(pred):
        idx = np.searchsorted(ts, pred["ts"].to_numpy(np.int64))
        ok = (idx < ts.size) & (ts[np.clip(idx, 0, ts.size - 1)] == pred["ts"].to_numpy(np.int64))
        for o, c in zip(out, ("p_dir", "p_up", "p_down"), strict=True):
            o[idx[ok]] = pred[c].to_numpy(float)[ok]
    return out[0], out[1], out[2]


def window_backtest(m: GridMarket, start: int, end: int, pred: pd.DataFrame, profile: CoinProfile) -> BacktestResult:
    """Trade [start, end) of ``m`` on the out-of-sample predictions ``pred`` with ``profile``'s rules."""
    i0, i1 = m.span(start, end)
    if i1 <= i0:
        raise ValueError(f"empty window [{start}, {end})")
    ts = m.ts[i0:i1]
    p_dir, p_up, p_down = predictions_on_grid(ts, pred)
    rv = m.rv[i0:i1]
    signal, size, _funnel = signal_arrays(p_dir, p_up, p_down, rv, m.mom[i0:i1], m.trend[i0:i1], profile)
    return run_backtest(ts, m.open[i0:i1], m.high[i0:i1], m.low[i0:i1], m.close[i0:i1], signal, rv, size,
                        m.funding[i0:i1], engine_params(profile), volume=m.volume[i0:i1])


def fingerprint(*frames: pd.DataFrame | None, extra: Any = None) -> str:
    """sha256 over the rows of ``frames`` (values and column names, in order; None / empty count as empty) and
    the repr of ``extra``: a changed input row changes it, a re-read of the same rows does not."""
    h = hashlib.sha256()
    for df in frames:
        if df is None or df.empty:
            h.update(b"<empty>")
            continue
        h.update(",".join(map(str, df.columns)).encode())
        h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    if extra is not None:
        h.update(repr(extra).encode())
    return h.hexdigest()


def window_days(start: int, end: int) -> float:
    return (end - start) / (24 * HOUR_MS)


def result_hash(doc: dict[str, Any], keys: tuple[str, ...]) -> str:
    """sha256 of ``doc``'s ``keys`` as canonical JSON: what a run decided, without its names and timings (cohort,
    paths, cache statistics), so the same inputs and seeds give the same hash on any machine or executor."""
    import json

    payload = json.dumps({k: doc.get(k) for k in keys}, sort_keys=True, default=str, allow_nan=True)
    return hashlib.sha256(payload.encode()).hexdigest()
