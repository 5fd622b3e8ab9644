"""Backtest-robustness statistics: PSR, DSR, MinTRL, expected maximum Sharpe and CSCV PBO (:mod:`.stats`)."""
