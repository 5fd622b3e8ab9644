"""Equity-curve metrics on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cryptoalgo_core import metrics as M

EQ = np.array([1.0, 1.1, 0.99, 1.089])  # +10 %, -10 %, +10 %


def test_period_and_log_returns() -> None:
    assert M.period_returns(EQ) == pytest.approx([0.1, -0.1, 0.1])
    assert M.log_returns(EQ) == pytest.approx([math.log(1.1), math.log(0.9), math.log(1.1)])
    assert M.period_returns(np.array([1.0])).size == 0 and M.log_returns(np.array([])).size == 0
    assert M.log_returns(np.array([1.0, 0.0]))[0] == -math.inf


def test_sharpe_per_period_and_annualised() -> None:
    r = np.array([0.1, -0.1, 0.1])  # mean 1/30; squared deviations (1/15)^2 * 2 + (2/15)^2 = 6/225
    mean = 0.1 / 3
    sd1 = math.sqrt(((0.1 - mean) ** 2 * 2 + (-0.1 - mean) ** 2) / 2)  # ddof = 1
    sd0 = math.sqrt(((0.1 - mean) ** 2 * 2 + (-0.1 - mean) ** 2) / 3)  # ddof = 0
    assert M.sharpe(r) == pytest.approx(mean / sd1) == pytest.approx(0.2886751, rel=1e-6)
    assert M.sharpe(r, ddof=0) == pytest.approx(mean / sd0)
    assert M.annualised_sharpe(r, 24 * 365) == pytest.approx(mean / sd1 * math.sqrt(8760))
    assert M.annualised_sharpe(r, 252, ddof=0) == pytest.approx(mean / sd0 * math.sqrt(252))


def test_sharpe_undefined_is_nan() -> None:
    assert math.isnan(M.sharpe(np.array([0.01])))  # one return: no sample std
    assert math.isnan(M.sharpe(np.array([])))
    assert math.isnan(M.sharpe(np.array([0.01, 0.01, 0.01])))  # zero std
    assert math.isnan(M.sharpe(np.array([0.01, -math.inf])))
    with pytest.raises(ValueError, match="periods_per_year"):
        M.annualised_sharpe(np.array([0.1, 0.2]), 0)


def test_drawdown_and_max_drawdown() -> None:
    eq = np.array([1.0, 1.2, 0.9, 1.5, 1.2])
    assert M.running_peak(eq).tolist() == [1.0, 1.2, 1.2, 1.5, 1.5]
    assert M.drawdown_series(eq) == pytest.approx([0.0, 0.0, -0.25, 0.0, -0.2])
    assert M.max_drawdown(eq) == pytest.approx(0.25)
    below = np.array([0.9, 0.8, 0.95])  # never above the initial capital 1.0
    assert M.max_drawdown(below) == pytest.approx(1 - 0.8 / 0.9)
    assert M.max_drawdown(below, initial=1.0) == pytest.approx(0.2)
    assert M.drawdown_series(below, initial=1.0) == pytest.approx([-0.1, -0.2, -0.05])
    assert M.max_drawdown(np.array([])) == 0.0


def test_total_return() -> None:
    assert M.total_return(EQ) == pytest.approx(0.089)
    assert M.total_return(np.array([2.0, 3.0]), initial=2.0) == pytest.approx(0.5)
    assert M.total_return(np.array([])) == 0.0
    assert M.total_return_from_log(math.log(1.5)) == pytest.approx(0.5)
    assert M.total_return_from_log(-math.inf) == -1.0
