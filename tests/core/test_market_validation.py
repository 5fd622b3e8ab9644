"""Validation splits raw rows into clean + rejects (never silently drops); gap detection; intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryptoalgo_core.errors import DataValidationError
from cryptoalgo_core.market.gaps import find_gaps, merge_intervals, subtract_intervals
from cryptoalgo_core.market.validate import validate_funding, validate_ohlcv, validate_open_interest
from cryptoalgo_core.timeutil import HOUR_MS

H = HOUR_MS


def frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["ts", "open", "high", "low", "close", "volume"])


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ((0, 10, 9, 8, 10, 1), "high_below_open_or_close"),
        ((0, 10, 12, 11, 10, 1), "low_above_open_or_close"),
        ((0, 10, 8, 9, 8.5, 1), "high_below_low"),
        ((0, None, 12, 8, 10, 1), "price_not_finite"),
        ((0, 10, 12, 8, np.inf, 1), "price_not_finite"),
        ((0, 0, 12, 0, 10, 1), "price_not_positive"),
        ((0, 10, 12, 8, 10, -1), "volume_negative"),
        ((0, 10, 12, 8, 10, None), "volume_not_finite"),
        ((1234, 10, 12, 8, 10, 1), "ts_not_on_grid"),
        ((None, 10, 12, 8, 10, 1), "ts_missing_or_not_integer"),
    ],
)
def test_each_invariant_rejects_with_reason(row: tuple, reason: str) -> None:
    good = (H, 10, 12, 8, 11, 5)
    res = validate_ohlcv(frame([row, good]))
    assert len(res.clean) + res.n_rejects == 2  # nothing silently dropped
    assert res.clean["ts"].tolist() == [H]
    assert reason in res.rejects["reason"].iloc[0]
    assert res.rejects["payload"].iloc[0].startswith("{")


def test_duplicates_collapse_to_last_and_sort() -> None:
    res = validate_ohlcv(frame([(2 * H, 1, 2, 1, 1, 1), (H, 1, 2, 1, 1, 1), (H, 1, 3, 1, 2, 1)]))
    assert res.duplicates == 1
    assert res.clean["ts"].tolist() == [H, 2 * H]
    assert res.clean.loc[0, "close"] == 2


def test_string_numbers_are_accepted_and_garbage_rejected() -> None:
    res = validate_ohlcv(frame([(0, "10", "12", "8", "11", "1"), (H, "x", "12", "8", "11", "1")]))
    assert res.clean["close"].tolist() == [11.0]
    assert "price_not_finite" in res.rejects["reason"].iloc[0]


def test_missing_column_is_an_error() -> None:
    with pytest.raises(DataValidationError, match="missing column"):
        validate_ohlcv(pd.DataFrame({"ts": [0], "open": [1.0]}))


def test_funding_bounds_and_nans() -> None:
    res = validate_funding(pd.DataFrame({"ts": [0, 8 * H, 16 * H], "rate": [0.0001, 0.5, None]}), abs_max=0.01)
    assert res.clean["ts"].tolist() == [0]
    assert sorted(r.split("_")[1] for r in res.rejects["reason"]) == ["implausible", "not"]


def test_open_interest_rules() -> None:
    df = pd.DataFrame({"ts": [0, H, 2 * H], "value": [1.0, -1.0, 2.0], "unit": ["usd", "usd", None]})
    res = validate_open_interest(df)
    assert res.clean["ts"].tolist() == [0]
    assert set(res.rejects["reason"]) == {"value_negative", "unit_missing"}


def test_find_gaps_counts_interior_and_edges() -> None:
    ts = [0, H, 5 * H, 6 * H]
    rep = find_gaps(ts, 0, 10 * H)
    assert [(g.first_missing_ts, g.missing) for g in rep.gaps] == [(2 * H, 3), (7 * H, 3)]
    assert rep.expected == 10 and rep.present == 4 and rep.largest == 3 and rep.missing == 6
    assert find_gaps([], 0, 3 * H).largest == 3
    assert find_gaps(np.arange(10) * H, 0, 10 * H).n_gaps == 0


def test_interval_arithmetic() -> None:
    assert merge_intervals([(5, 7), (0, 2), (1, 3), (7, 9)]) == [(0, 3), (5, 9)]
    assert subtract_intervals(0, 10, [(2, 4), (3, 5), (8, 20)]) == [(0, 2), (5, 8)]
    assert subtract_intervals(0, 10, []) == [(0, 10)]
    assert subtract_intervals(0, 10, [(0, 10)]) == []


def test_fast_path_for_clean_input_equals_the_full_path() -> None:
    """Clean, sorted, numeric input takes a vectorised shortcut; its result must equal the full row-by-row path
    (forced here by giving ts as strings, which the shortcut does not accept)."""
    from cryptoalgo_core.market.validate import validate_funding, validate_ohlcv, validate_open_interest

    rng = np.random.default_rng(0)
    n = 500
    ts = (np.arange(n, dtype=np.int64) + 1000) * 3_600_000
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    df = pd.DataFrame({"ts": ts, "open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
                       "volume": rng.uniform(1, 5, n)})
    cases = [
        (validate_ohlcv, df),
        (lambda d: validate_funding(d, 0.01), pd.DataFrame({"ts": ts, "rate": rng.normal(0, 1e-4, n)})),
        (validate_open_interest, pd.DataFrame({"ts": ts, "value": rng.uniform(1e6, 2e6, n), "unit": "usd"})),
    ]
    for fn, frame in cases:
        fast = fn(frame)
        slow = fn(frame.assign(ts=frame["ts"].astype(str)))
        pd.testing.assert_frame_equal(fast.clean, slow.clean)
        assert fast.n_rejects == slow.n_rejects == 0 and fast.duplicates == slow.duplicates == 0
