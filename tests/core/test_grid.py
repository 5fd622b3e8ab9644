"""The hourly-grid helper shared by features, labels, the strategy and the backtest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryptoalgo_core.grid import GridError, check_hourly, hourly_grid, reindex_on_grid
from cryptoalgo_core.timeutil import HOUR_MS

T0 = 1_704_067_200_000


def test_hourly_grid_is_half_open() -> None:
    g = hourly_grid(T0, T0 + 3 * HOUR_MS)
    assert g.dtype == np.int64 and g.tolist() == [T0, T0 + HOUR_MS, T0 + 2 * HOUR_MS]
    assert hourly_grid(T0, T0).size == 0 and hourly_grid(T0, T0 - HOUR_MS).size == 0


def test_reindex_fills_missing_hours_with_nan() -> None:
    df = pd.DataFrame({"ts": [T0 + 2 * HOUR_MS, T0], "close": [3.0, 1.0], "other": [0, 0]})
    out = reindex_on_grid(df, hourly_grid(T0, T0 + 3 * HOUR_MS), ["close"])
    assert list(out.columns) == ["ts", "close"]
    assert out["ts"].tolist() == [T0, T0 + HOUR_MS, T0 + 2 * HOUR_MS]
    assert out["close"].tolist()[0] == 1.0 and np.isnan(out["close"][1]) and out["close"][2] == 3.0


@pytest.mark.parametrize(
    ("ts", "why"),
    [
        ([T0, T0 + HOUR_MS, T0 + HOUR_MS], "a duplicate ts"),
        ([T0, T0 + HOUR_MS, T0], "ts not sorted"),
        ([T0, T0 + 2 * HOUR_MS], "a missing or off-grid hour"),
        ([T0, T0 + HOUR_MS + 1], "a missing or off-grid hour"),
    ],
)
def test_check_hourly_names_the_problem(ts: list[int], why: str) -> None:
    with pytest.raises(GridError, match="full hourly grid") as exc:
        check_hourly(np.array(ts))
    assert why in str(exc.value) and isinstance(exc.value, ValueError)


def test_check_hourly_accepts_a_grid() -> None:
    g = hourly_grid(T0, T0 + 5 * HOUR_MS)
    assert np.array_equal(check_hourly(g), g) and check_hourly(g[:1]).size == 1
    with pytest.raises(GridError, match="1-d"):
        check_hourly(g.reshape(1, -1))
