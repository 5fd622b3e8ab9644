"""Labels per coin on its hourly grid, and the ML dataset (features + labels + t1) — pure."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptoalgo_core.config.coins import LabelParams
from cryptoalgo_core.features.labels import triple_barrier
from cryptoalgo_core.grid import hourly_grid, reindex_on_grid
from cryptoalgo_core.timeutil import HOUR_MS

__all__ = ["LABEL_COLUMNS", "build_ml_dataset", "labels_for_coin"]

LABEL_COLUMNS = ["label", "target", "t1", "ret", "barrier"]


def labels_for_coin(ohlcv: pd.DataFrame, params: LabelParams) -> pd.DataFrame:
    """Triple-barrier labels for the coin's existing bars (computed on the full hourly grid, so a missing
    hour inside a horizon is seen as missing, never skipped)."""
    if ohlcv.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in ["ts", *LABEL_COLUMNS]})
    ts = ohlcv["ts"].to_numpy(np.int64)
    grid = hourly_grid(int(ts.min()), int(ts.max()) + HOUR_MS)
    bars = reindex_on_grid(ohlcv, grid, ["open", "high", "low", "close"])
    out = triple_barrier(
        grid,
        bars["open"].to_numpy(float),
        bars["high"].to_numpy(float),
        bars["low"].to_numpy(float),
        bars["close"].to_numpy(float),
        params,
    )
    return out[bars["close"].notna().to_numpy()].reset_index(drop=True)


def build_ml_dataset(features: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Post-warm-up feature rows joined with their labels (NaN target where no label exists yet, e.g. the
    last H bars — those rows still matter for live signals but are never trained on)."""
    feats = features[~features["warmup"].astype(bool)].drop(columns=["warmup"])
    keep = ["ts", *[c for c in LABEL_COLUMNS if c in labels.columns]]
    ds = feats.merge(labels[keep], on="ts", how="left")
    ds["t1"] = ds["t1"].fillna(-1).astype("int64")
    return ds.reset_index(drop=True)
