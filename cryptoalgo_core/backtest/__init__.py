"""Cost-aware backtest engine: numba kernels (:mod:`.kernels`) behind a typed API (:mod:`.engine`)."""

from cryptoalgo_core.backtest.engine import (
    EXIT_REASONS,
    TRADE_COLUMNS,
    BacktestResult,
    EngineParams,
    param_grid,
    run_backtest,
    run_sweep,
)

__all__ = [
    "EXIT_REASONS",
    "TRADE_COLUMNS",
    "BacktestResult",
    "EngineParams",
    "param_grid",
    "run_backtest",
    "run_sweep",
]
