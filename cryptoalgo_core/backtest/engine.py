"""Cost-aware, bar-by-bar backtest engine (pure; the loops are numba kernels in :mod:`.kernels`).

Inputs
------
Parallel arrays of length ``n`` on a FULL hourly grid (``ts`` epoch ms, ``+3_600_000`` per row). A missing bar has
NaN open/high/low/close (a bar is *present* iff all four are finite). ``volume[i]`` (keyword; ``None`` = every
present bar has volume) is the bar's traded volume: a bar is *traded* iff it is present and ``volume[i] > 0`` (0 =
a halt: the venue printed a candle but nothing traded; NaN counts as no volume). ``signal[i]`` in ``{-1, 0, +1}``
is decided at the CLOSE of bar ``i``; ``sigma[i]`` is the hourly vol known at that close; ``size[i]`` is the
fraction of equity for a trade signalled at ``i`` (0 = skip; capping it at the venue's leverage is the caller's
job, see :func:`cryptoalgo_core.strategy.build_signals`); ``funding_rate[i]`` is the rate settled at bar ``i``'s
close time ``ts[i] + 1 h`` (0.0 where none; NaN is read as 0.0).

Contract
--------
*Fills happen only on traded bars.* A bar that is not traded (missing, or zero volume) is never read: no entry,
no stop, no take-profit, no time or signal exit happens on it, and its signal is ignored (neither an entry nor a
flip).

*Entries.* One position at a time. A signal at bar ``i`` is taken iff the engine is flat at ``i``'s close, bar ``i``
is traded, ``sigma[i]`` and ``size[i]`` are finite and > 0, ``i`` is not the last bar, and realized equity is
> 0. It enters at the OPEN of bar ``i+1``; if bar ``i+1`` is not traded there is no entry (the signal is not
carried forward). Signals seen while in a position are ignored except for the flip exit below.

*Slippage* (market-type fills only). Each trade has one slippage fraction, fixed at its signal:
``slip = slippage + slippage_vol_mult * sigma[i]`` (a fixed part plus a multiple of the hourly vol known at the
signal bar; causal, and a trade entered in a fast market pays more on every market fill, its stop included).
Entry fill = ``open[i+1] * (1 + side * slip)``; a market-type exit fills at ``exit_raw * (1 - side * slip)``. No
cap: keep ``slip`` well below 1 (the profile bounds ``slippage_vol_mult``).

*Levels* (from ``sigma`` at the signal bar and the raw entry open): ``w_sl = sl_mult * sigma_i * sqrt(max_hold)``,
``w_tp = tp_mult * sigma_i * sqrt(max_hold)``; long ``sl = open * exp(-w_sl)``, ``tp = open * exp(+w_tp)``; short
``sl = open * exp(+w_sl)``, ``tp = open * exp(-w_tp)``. The take-profit is a resting limit at ``tp`` that fills
only when the price trades THROUGH it by ``tp_through`` (a fraction; a bare touch can leave the order in the
queue): its trigger is long ``tp_trig = tp * (1 + tp_through)``, short ``tp_trig = tp * (1 - tp_through)``. The
stop is a stop-market order: a touch triggers it.

*Exits.* Each traded bar ``j`` from the entry bar on is checked in this order; the first rule that fires closes
the trade:

1. (``j`` > entry bar) **the open**: ``open[j]`` at or beyond the stop (long ``open <= sl``) -> ``stop_loss`` at
   ``open[j]`` (a gap through the stop fills at the open, with slippage); else at or beyond the TP trigger (long
   ``open >= tp_trig``) -> ``take_profit`` at ``tp`` (the resting limit fills at its own price, not at the better
   open: maker fee, no slippage); else a pending flip -> ``signal`` at ``open[j]``; else, if the max-hold bar was
   not traded (the hold is overdue), ``time`` at ``open[j]``. A gap fill wins over a pending flip because the
   resting orders fill before a market order can be sent.
2. **intrabar**: the bar touches the stop (long ``low <= sl``) -> ``stop_loss`` at ``sl``; else it trades through
   the TP trigger (long ``high >= tp_trig``; a bare touch ``high == tp`` is not a fill) -> ``take_profit`` at
   ``tp``. Both in one bar -> stop first (conservative: hourly bars do not tell the intrabar order).
3. **max hold**: ``j`` is the ``max_hold``-th bar held (the entry bar is bar 1; counted by clock, so untraded
   hours count as held time) -> ``time`` at ``close[j]``.
4. **flip** (``flip_exit``): ``signal[j] == -side`` -> ``signal`` at the open of the next traded bar (rule 1 of
   that bar). The flip signal itself is not an entry (the engine is not flat at ``j``'s close).

A bar that is not traded while in a position is skipped (its prices are not trades). An exit that would fall on
it moves to the next traded bar: a pending flip or a max hold reached on it exits at that bar's open (rule 1),
and the levels are checked again from that open (a gap through a level fills there, by rule 1). At the end of the
data an open position exits at the close of the last traded bar held (``end``). Market-type exits
(``stop_loss``, ``time``, ``signal``, ``end``) pay ``fee_exit_other`` and the trade's slippage; ``take_profit``
pays ``fee_exit_tp`` and no slippage.

*Re-entry.* After an exit at bar ``j`` (at its open, intrabar, or at its close) the engine is flat at ``j``'s close,
so ``signal[j]`` may enter at ``open[j+1]``.

*Funding* (``funding=True``): a settlement at time ``T`` is charged iff ``entry_time < T <= exit_time`` with
``entry_time = ts[entry bar]`` and ``exit_time = ts[j]`` for exits at bar ``j``'s open, ``ts[j] + 1 h`` for exits
at its close (``time``, ``end``). Intrabar ``stop_loss`` / ``take_profit`` exits at bar ``j`` happen before ``j``'s
close, so ``funding_rate[j]`` is not charged. Settlements at untraded bars inside the window are charged (funding
does not need a trade). Cost = ``side * sum(rates)``: longs pay positive funding, shorts receive it. The engine
sees only ``funding_rate`` on the grid: a settlement must be put on the bar whose close is its time
(:func:`cryptoalgo_core.strategy.funding_on_grid` matches exact hours; the ccxt source rounds the exchange's
``fundingTime`` to the nearest hour at ingest, so stored settlements are on the hour).

*P&L* (the engine's definition; additive in return space, fractions of notional, x1e4 for bps)::

    gross    = side * (exit_raw / entry_raw - 1)        # raw prices: open / level / close, no slippage
    fees     = fee_entry + fee_exit                     # fee_exit_tp for take_profit, else fee_exit_other
    slippage = slip + (0 if take_profit else slip)      # slip = slippage + slippage_vol_mult * sigma_signal
    funding  = side * sum(charged rates)
    net      = gross - fees - slippage - funding        # computed in exactly this order: adds up bit for bit

The fills (``entry_price`` / ``exit_price``) are reported for execution realism; ``net`` is the additive
decomposition above, not ``exit_fill / entry_fill - 1`` (they differ by second-order cross terms).

*Equity.* Starts at 1.0; each exit does ``equity *= 1 + size * net``. Once realized equity is <= 0 (only possible
with ``size * net <= -1``) no new trade is entered and the log return is ``-inf``. The per-bar curve is the
realized equity, times ``1 + size * mtm`` while a position is open at a traded bar's close, with
``mtm = side * (close / entry_raw - 1) - fee_entry - slip - funding so far``; an untraded bar repeats the previous
value, and the bars from an ``end`` exit on show the final realized equity. ``max_drawdown`` is
``max(1 - curve / running peak)`` (open trades included); ``max_drawdown_realized`` uses the realized equity after
each exit (what :func:`run_sweep` reports).

*Reported times.* ``entry_ts = ts[entry bar]``; ``exit_ts = ts[j]`` for exits at an open (a gap ``take_profit``
included), ``ts[j] + 1 h`` for intrabar and close exits (the end of the bar in which the fill happened);
``hold_hours = (exit_ts - entry_ts) / 1 h``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryptoalgo_core import metrics
from cryptoalgo_core.backtest import kernels as K
from cryptoalgo_core.grid import check_hourly
from cryptoalgo_core.timeutil import HOUR_MS

__all__ = [
    "EXIT_REASONS",
    "TRADE_COLUMNS",
    "BacktestResult",
    "EngineParams",
    "param_grid",
    "run_backtest",
    "run_sweep",
]

#: exit reason code -> name (index = kernel code)
EXIT_REASONS: tuple[str, ...] = ("", "stop_loss", "take_profit", "time", "signal", "end")

TRADE_COLUMNS: tuple[str, ...] = (
    "signal_idx",
    "entry_idx",
    "exit_idx",
    "entry_ts",
    "exit_ts",
    "side",
    "size",
    "entry_price",
    "exit_price",
    "entry_raw",
    "exit_raw",
    "sl_price",
    "tp_price",
    "exit_reason",
    "gross",
    "fees",
    "funding",
    "slippage",
    "net",
    "hold_hours",
    "sigma_entry",
)


def _finite_nonneg(name: str, v: float) -> None:
    if not (math.isfinite(v) and v >= 0.0):
        raise ValueError(f"{name} must be finite and >= 0, got {v!r}")


@dataclass(frozen=True)
class EngineParams:
    """Exit levels and costs (fractions of notional per side). See the module docstring for the contract."""

    sl_mult: float
    tp_mult: float
    max_hold_hours: int
    fee_entry: float
    fee_exit_tp: float
    fee_exit_other: float
    slippage: float
    flip_exit: bool = False
    funding: bool = True
    #: market-fill slippage per unit of the signal-bar hourly vol (``slip = slippage + slippage_vol_mult * sigma``)
    slippage_vol_mult: float = 0.03
    #: how far (fraction of the level) the price must trade through the TP for the resting limit to fill
    tp_through: float = 2e-4

    def __post_init__(self) -> None:
        for name in ("sl_mult", "tp_mult"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0.0):
                raise ValueError(f"{name} must be finite and > 0, got {v!r}")
        if int(self.max_hold_hours) != self.max_hold_hours or self.max_hold_hours < 1:
            raise ValueError(f"max_hold_hours must be an integer >= 1, got {self.max_hold_hours!r}")
        for name in ("fee_entry", "fee_exit_tp", "fee_exit_other", "slippage", "slippage_vol_mult", "tp_through"):
            _finite_nonneg(name, getattr(self, name))
        if self.slippage >= 1.0:
            raise ValueError(f"slippage must be < 1, got {self.slippage!r}")
        if self.tp_through >= 1.0:
            raise ValueError(f"tp_through must be < 1, got {self.tp_through!r}")


@dataclass(frozen=True)
class BacktestResult:
    """Trades (one row per closed trade, columns :data:`TRADE_COLUMNS`), the per-bar equity curve and totals.

    The trades DataFrame is built on first access from the kernel's record arrays (a sweep or a caller that
    only needs totals/equity never pays for it).
    """

    equity: np.ndarray
    ts: np.ndarray
    params: EngineParams
    log_return: float
    max_drawdown_realized: float
    rec_i: np.ndarray
    rec_f: np.ndarray

    @functools.cached_property
    def trades(self) -> pd.DataFrame:
        return _trades_frame(self.ts, self.rec_i, self.rec_f)

    def summary(self) -> dict[str, float | int]:
        """Headline numbers. Means/rates over trades are NaN when there are no trades."""
        t = self.trades
        n = len(t)
        out: dict[str, float | int] = {
            "n_trades": n,
            "total_return": metrics.total_return_from_log(self.log_return),
            "log_return": float(self.log_return),
            "net_bps_mean": float(t["net"].mean() * 1e4) if n else math.nan,
            "gross_bps_mean": float(t["gross"].mean() * 1e4) if n else math.nan,
            "fees_bps_mean": float(t["fees"].mean() * 1e4) if n else math.nan,
            "slippage_bps_mean": float(t["slippage"].mean() * 1e4) if n else math.nan,
            "funding_bps_mean": float(t["funding"].mean() * 1e4) if n else math.nan,
            "win_rate": float((t["net"] > 0).mean()) if n else math.nan,
            "hold_hours_mean": float(t["hold_hours"].mean()) if n else math.nan,
            "max_drawdown": metrics.max_drawdown(self.equity, initial=1.0),
            "max_drawdown_realized": float(self.max_drawdown_realized),
        }
        counts = t["exit_reason"].value_counts() if n else pd.Series(dtype="int64")
        for r in EXIT_REASONS[1:]:
            out[f"share_{r}"] = float(counts.get(r, 0)) / n if n else 0.0
        return out


# --------------------------------------------------------------------------------------------------- inputs


def _f64(name: str, a: np.ndarray, n: int) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be 1-d with {n} rows, got shape {arr.shape}")
    return arr


def _prepare(
    ts: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    signal: np.ndarray,
    sigma: np.ndarray,
    size: np.ndarray,
    funding_rate: np.ndarray,
    volume: np.ndarray | None,
) -> tuple[np.ndarray, ...]:
    t = np.ascontiguousarray(check_hourly(ts))
    n = t.shape[0]
    sig_raw = np.asarray(signal)
    if sig_raw.ndim != 1 or sig_raw.shape[0] != n:
        raise ValueError(f"signal must be 1-d with {n} rows, got shape {sig_raw.shape}")
    sig = np.ascontiguousarray(sig_raw.astype(np.int8))
    # (np.isin is ~15x slower here; an exact int8 round trip within [-1, 1] is the same test)
    if not ((sig == sig_raw).all() and (np.abs(sig) <= 1).all()):
        raise ValueError("signal values must be in {-1, 0, +1}")
    if volume is None:
        tradeable = np.ones(n, dtype=np.bool_)
    else:
        with np.errstate(invalid="ignore"):
            tradeable = np.ascontiguousarray(_f64("volume", volume, n) > 0.0)  # NaN -> False
    return (
        t,
        _f64("open", open_, n),
        _f64("high", high, n),
        _f64("low", low, n),
        _f64("close", close, n),
        sig,
        _f64("sigma", sigma, n),
        _f64("size", size, n),
        _f64("funding_rate", funding_rate, n),
        tradeable,
    )


# --------------------------------------------------------------------------------------------------- API


def run_backtest(
    ts: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    signal: np.ndarray,
    sigma: np.ndarray,
    size: np.ndarray,
    funding_rate: np.ndarray,
    params: EngineParams,
    *,
    volume: np.ndarray | None = None,
) -> BacktestResult:
    """Run one parameter set over the bars (contract: module docstring; ``volume=None``: every present bar is
    traded)."""
    t, o, h, lo, c, sig, sg, sz, fr, tr = _prepare(
        ts, open_, high, low, close, signal, sigma, size, funding_rate, volume
    )
    p = params
    rec_i, rec_f, equity, totals = K.run_single(
        o, h, lo, c, sig, sg, sz, fr, tr,
        float(p.sl_mult), float(p.tp_mult), int(p.max_hold_hours),
        float(p.fee_entry), float(p.fee_exit_tp), float(p.fee_exit_other), float(p.slippage),
        float(p.slippage_vol_mult), float(p.tp_through), bool(p.flip_exit), bool(p.funding),
    )  # fmt: skip
    return BacktestResult(
        equity=equity,
        ts=t,
        params=p,
        log_return=float(totals[1]),
        max_drawdown_realized=float(totals[4]),
        rec_i=rec_i,
        rec_f=rec_f,
    )


def _trades_frame(t: np.ndarray, rec_i: np.ndarray, rec_f: np.ndarray) -> pd.DataFrame:
    reason = rec_i[:, K.I_REASON]
    entry_idx = rec_i[:, K.I_ENTRY]
    exit_idx = rec_i[:, K.I_EXIT]
    at_open = rec_i[:, K.I_AT_OPEN] == 1
    entry_ts = t[entry_idx] if len(t) else np.empty(0, dtype=np.int64)
    exit_ts = (t[exit_idx] + np.where(at_open, 0, HOUR_MS)) if len(t) else np.empty(0, dtype=np.int64)
    names = np.asarray(EXIT_REASONS, dtype=object)
    df = pd.DataFrame(
        {
            "signal_idx": rec_i[:, K.I_SIGNAL],
            "entry_idx": entry_idx,
            "exit_idx": exit_idx,
            "entry_ts": entry_ts.astype(np.int64),
            "exit_ts": exit_ts.astype(np.int64),
            "side": rec_i[:, K.I_SIDE].astype(np.int8),
            "size": rec_f[:, K.F_SIZE],
            "entry_price": rec_f[:, K.F_ENTRY_FILL],
            "exit_price": rec_f[:, K.F_EXIT_FILL],
            "entry_raw": rec_f[:, K.F_ENTRY_RAW],
            "exit_raw": rec_f[:, K.F_EXIT_RAW],
            "sl_price": rec_f[:, K.F_SL],
            "tp_price": rec_f[:, K.F_TP],
            "exit_reason": names[reason].astype(str) if len(reason) else np.empty(0, dtype=object),
            "gross": rec_f[:, K.F_GROSS],
            "fees": rec_f[:, K.F_FEES],
            "funding": rec_f[:, K.F_FUNDING],
            "slippage": rec_f[:, K.F_SLIPPAGE],
            "net": rec_f[:, K.F_NET],
            "hold_hours": ((exit_ts - entry_ts) // HOUR_MS).astype(np.int64),
            "sigma_entry": rec_f[:, K.F_SIGMA],
        },
        columns=list(TRADE_COLUMNS),
    )
    return df


def param_grid(
    sl_mults: np.ndarray | list[float],
    tp_mults: np.ndarray | list[float],
    max_holds: np.ndarray | list[int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cartesian product of the three axes as parallel arrays (sl varies slowest), ready for :func:`run_sweep`."""
    s, t, m = np.meshgrid(
        np.asarray(sl_mults, dtype=np.float64),
        np.asarray(tp_mults, dtype=np.float64),
        np.asarray(max_holds, dtype=np.int64),
        indexing="ij",
    )
    return s.ravel().copy(), t.ravel().copy(), m.ravel().copy()


def run_sweep(
    ts: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    signal: np.ndarray,
    sigma: np.ndarray,
    size: np.ndarray,
    funding_rate: np.ndarray,
    sl_mults: np.ndarray | list[float],
    tp_mults: np.ndarray | list[float],
    max_holds: np.ndarray | list[int],
    params: EngineParams,
    *,
    volume: np.ndarray | None = None,
) -> pd.DataFrame:
    """Totals for many ``(sl_mult, tp_mult, max_hold_hours)`` combinations in one kernel call.

    The three arrays are parallel (combination ``k`` = element ``k`` of each; see :func:`param_grid` for a
    product). Costs, ``slippage_vol_mult``, ``tp_through``, ``flip_exit`` and ``funding`` come from ``params`` (its
    ``sl_mult`` / ``tp_mult`` / ``max_hold_hours`` are ignored); ``volume`` as in :func:`run_backtest`. One row per
    combination: ``sl_mult, tp_mult, max_hold_hours, n_trades, log_return, total_return, sum_net, net_bps_mean,
    wins, win_rate, max_drawdown_realized`` — identical to :func:`run_backtest` with the same parameters.
    """
    t, o, h, lo, c, sig, sg, sz, fr, tr = _prepare(
        ts, open_, high, low, close, signal, sigma, size, funding_rate, volume
    )
    sl = np.ascontiguousarray(np.asarray(sl_mults, dtype=np.float64))
    tp = np.ascontiguousarray(np.asarray(tp_mults, dtype=np.float64))
    mh_raw = np.asarray(max_holds)
    if not (sl.ndim == tp.ndim == mh_raw.ndim == 1 and sl.shape == tp.shape == mh_raw.shape):
        raise ValueError(
            f"sl_mults, tp_mults, max_holds must be 1-d of equal length, got {sl.shape}, {tp.shape}, {mh_raw.shape}"
        )
    if not (np.isfinite(sl).all() and (sl > 0).all() and np.isfinite(tp).all() and (tp > 0).all()):
        raise ValueError("sl_mults and tp_mults must be finite and > 0")
    mh = np.ascontiguousarray(mh_raw.astype(np.int64))
    if not (np.array_equal(mh, mh_raw) and (mh >= 1).all()):
        raise ValueError("max_holds must be integers >= 1")
    p = params
    n_tr, log_ret, sum_net, wins, mdd = K.sweep(
        o, h, lo, c, sig, sg, sz, fr, tr, sl, tp, mh,
        float(p.fee_entry), float(p.fee_exit_tp), float(p.fee_exit_other), float(p.slippage),
        float(p.slippage_vol_mult), float(p.tp_through), bool(p.flip_exit), bool(p.funding),
    )  # fmt: skip
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_bps = np.where(n_tr > 0, sum_net / np.maximum(n_tr, 1) * 1e4, np.nan)
        win_rate = np.where(n_tr > 0, wins / np.maximum(n_tr, 1), np.nan)
    return pd.DataFrame(
        {
            "sl_mult": sl,
            "tp_mult": tp,
            "max_hold_hours": mh,
            "n_trades": n_tr,
            "log_return": log_ret,
            "total_return": np.expm1(log_ret),
            "sum_net": sum_net,
            "net_bps_mean": mean_bps,
            "wins": wins,
            "win_rate": win_rate,
            "max_drawdown_realized": mdd,
        }
    )
