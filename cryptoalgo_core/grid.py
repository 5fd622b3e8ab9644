"""The hourly grid: every per-coin computation runs on a full grid of hourly bars, NaN where a bar is missing.

``ts`` is the bar's OPEN time in epoch ms; consecutive grid rows are exactly one hour apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptoalgo_core.timeutil import HOUR_MS

__all__ = ["GridError", "check_hourly", "hourly_grid", "reindex_on_grid"]


class GridError(ValueError):
    """Timestamps that are not a full hourly grid (unsorted, duplicated or with a missing / off-grid hour)."""


def hourly_grid(start_ms: int, end_ms: int) -> np.ndarray:
    """int64 timestamps ``start_ms, start_ms + 1 h, ...`` below ``end_ms`` (empty when ``end_ms <= start_ms``)."""
    return np.arange(start_ms, end_ms, HOUR_MS, dtype=np.int64)


def reindex_on_grid(df: pd.DataFrame, grid: np.ndarray, cols: list[str]) -> pd.DataFrame:
    """``df[cols]`` on ``grid`` (columns ``ts`` + ``cols``, one row per grid point; NaN where ``df`` has no row)."""
    return pd.DataFrame({"ts": grid}).merge(df[["ts", *cols]], on="ts", how="left")


def check_hourly(ts: np.ndarray) -> np.ndarray:
    """``ts`` as a 1-d int64 array if it is a full hourly grid, else :class:`GridError` naming the first bad row."""
    t = np.asarray(ts, dtype=np.int64)
    if t.ndim != 1:
        raise GridError(f"ts must be 1-d, got shape {t.shape}")
    if t.size > 1:
        step = np.diff(t)
        if not np.all(step == HOUR_MS):
            bad = int(np.argmax(step != HOUR_MS))
            d = int(step[bad])
            why = "a duplicate ts" if d == 0 else "ts not sorted" if d < 0 else "a missing or off-grid hour"
            raise GridError(
                f"ts must be a full hourly grid (+{HOUR_MS} ms per row); row {bad + 1} steps by "
                f"{d} ms ({why}; reindex onto the grid with NaN bars first)"
            )
    return t
