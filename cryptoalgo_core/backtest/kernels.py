"""Numba kernels of the cost-aware backtest engine (arrays in, arrays out; no pandas, no Python objects).

The contract (fills, exit order, funding window, P&L decomposition) is documented in
:mod:`cryptoalgo_core.backtest.engine`; this module implements it once, in :func:`_simulate`, and both public
kernels call that same function:

* :func:`run_single` records every trade (parallel columns in two 2-d arrays) and the per-bar equity curve;
* :func:`sweep` evaluates many ``(sl_mult, tp_mult, max_hold)`` combinations, one pass over the bars each,
  without allocating trade records, and returns per-combination totals.

Because the arithmetic is literally the same compiled code (no ``fastmath``), the totals of :func:`sweep` are
bit-identical to those of :func:`run_single` for the same parameters.

Bars are addressed by index only: the caller guarantees a full hourly grid, so "bar ``j``'s close time" is
``ts[j] + 1 h`` and index arithmetic equals clock arithmetic. ``tradeable[j]`` (bool; the engine derives it from
``volume > 0``) marks the bars on which a fill can happen; a present bar that is not tradeable is handled exactly
like a missing bar.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "F_ENTRY_FILL",
    "F_ENTRY_RAW",
    "F_EXIT_FILL",
    "F_EXIT_RAW",
    "F_FEES",
    "F_FUNDING",
    "F_GROSS",
    "F_NET",
    "F_SIGMA",
    "F_SIZE",
    "F_SL",
    "F_SLIPPAGE",
    "F_TP",
    "I_AT_OPEN",
    "I_ENTRY",
    "I_EXIT",
    "I_REASON",
    "I_SIDE",
    "I_SIGNAL",
    "N_FLOAT_COLS",
    "N_INT_COLS",
    "REASON_END",
    "REASON_SIGNAL",
    "REASON_STOP_LOSS",
    "REASON_TAKE_PROFIT",
    "REASON_TIME",
    "run_single",
    "sweep",
]

# exit reason codes (0 = still open / none)
REASON_STOP_LOSS = 1
REASON_TAKE_PROFIT = 2
REASON_TIME = 3
REASON_SIGNAL = 4
REASON_END = 5

# integer record columns
I_SIGNAL, I_ENTRY, I_EXIT, I_SIDE, I_REASON, I_AT_OPEN = 0, 1, 2, 3, 4, 5  # I_AT_OPEN: 1 = filled at the open
N_INT_COLS = 6
# float record columns
F_ENTRY_RAW, F_ENTRY_FILL, F_EXIT_RAW, F_EXIT_FILL, F_SL, F_TP, F_SIZE, F_SIGMA = 0, 1, 2, 3, 4, 5, 6, 7
F_GROSS, F_FEES, F_SLIPPAGE, F_FUNDING, F_NET = 8, 9, 10, 11, 12
N_FLOAT_COLS = 13


@njit(cache=True, inline="always")
def _close_trade(  # pragma: no cover - numba
    record: bool,
    rec_i: np.ndarray,
    rec_f: np.ndarray,
    n_tr: int,
    sig_idx: int,
    entry_idx: int,
    j: int,
    side: int,
    reason: int,
    at_open: int,
    entry_raw: float,
    entry_fill: float,
    exit_raw: float,
    sl: float,
    tp: float,
    sz: float,
    sig_e: float,
    fee_entry: float,
    fee_x: float,
    slip_e: float,
    slip_x: float,
    fund: float,
    equity: float,
    peak: float,
    max_dd: float,
) -> tuple[float, float, float, float]:
    """Book a closed trade: the additive P&L decomposition, realized equity, drawdown, the record row.

    ``slip_e`` / ``slip_x``: the slippage fractions of the entry and the exit fill (0 for a take-profit).

    Returns (equity, peak, max_dd, net)."""
    exit_fill = exit_raw * (1.0 - side * slip_x)
    gross = side * (exit_raw / entry_raw - 1.0)
    fees = fee_entry + fee_x
    slip = slip_e + slip_x
    fcost = side * fund
    net = gross - fees - slip - fcost
    equity = equity * (1.0 + sz * net)
    if equity > peak:
        peak = equity
    dd = 1.0 - equity / peak
    if dd > max_dd:
        max_dd = dd
    if record:
        rec_i[n_tr, I_SIGNAL] = sig_idx
        rec_i[n_tr, I_ENTRY] = entry_idx
        rec_i[n_tr, I_EXIT] = j
        rec_i[n_tr, I_SIDE] = side
        rec_i[n_tr, I_REASON] = reason
        rec_i[n_tr, I_AT_OPEN] = at_open
        rec_f[n_tr, F_ENTRY_RAW] = entry_raw
        rec_f[n_tr, F_ENTRY_FILL] = entry_fill
        rec_f[n_tr, F_EXIT_RAW] = exit_raw
        rec_f[n_tr, F_EXIT_FILL] = exit_fill
        rec_f[n_tr, F_SL] = sl
        rec_f[n_tr, F_TP] = tp
        rec_f[n_tr, F_SIZE] = sz
        rec_f[n_tr, F_SIGMA] = sig_e
        rec_f[n_tr, F_GROSS] = gross
        rec_f[n_tr, F_FEES] = fees
        rec_f[n_tr, F_SLIPPAGE] = slip
        rec_f[n_tr, F_FUNDING] = fcost
        rec_f[n_tr, F_NET] = net
    return equity, peak, max_dd, net


@njit(cache=True)
def _simulate(  # pragma: no cover - numba
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    signal: np.ndarray,
    sigma: np.ndarray,
    size: np.ndarray,
    funding_rate: np.ndarray,
    tradeable: np.ndarray,
    sl_mult: float,
    tp_mult: float,
    max_hold: int,
    fee_entry: float,
    fee_exit_tp: float,
    fee_exit_other: float,
    slippage: float,
    slip_vol_mult: float,
    tp_through: float,
    flip_exit: bool,
    use_funding: bool,
    record: bool,
    rec_i: np.ndarray,
    rec_f: np.ndarray,
    equity_out: np.ndarray,
) -> tuple[int, float, float, int, float]:
    """One pass over the bars. Returns (n_trades, log final equity, sum net, wins, max dd of realized equity).

    When ``record`` is True, trade ``k`` is written to ``rec_i[k]`` / ``rec_f[k]`` (capacity ``n`` rows: every
    trade has its own entry bar) and the equity curve to ``equity_out``; otherwise those arrays are not touched.
    """
    n = close.shape[0]
    sq = math.sqrt(max_hold)

    equity = 1.0  # realized
    peak = 1.0
    max_dd = 0.0
    n_tr = 0
    sum_net = 0.0
    wins = 0
    curve = 1.0  # last equity-curve value (carried over missing bars)

    pending_sig = -1  # bar whose signal enters at the next bar's open
    in_pos = False
    pending_exit = False  # a flip signal asks for an exit at the next existing open
    side = 0
    sig_idx = -1
    entry_idx = -1
    entry_raw = 0.0
    entry_fill = 0.0
    sl = 0.0
    tp = 0.0
    tp_trig = 0.0  # the price the TP needs to trade through: tp * (1 + side * tp_through)
    slip_t = 0.0  # the trade's slippage per market fill: slippage + slip_vol_mult * sigma at the signal
    sz = 0.0
    sig_e = 0.0
    fund = 0.0  # side-less sum of settled rates inside the window so far
    fund_present = 0.0  # ``fund`` as of the close of the last existing bar held
    last_present = -1

    for j in range(n):
        o = open_[j]
        h = high[j]
        lo = low[j]
        c = close[j]
        # a bar is traded iff it is present (finite OHLC) and tradeable (volume > 0); a bar that is not traded
        # is skipped by every fill rule, exactly like a missing bar
        present = tradeable[j] and not (math.isnan(o) or math.isnan(h) or math.isnan(lo) or math.isnan(c))

        reason = 0
        exit_raw = 0.0
        at_open = 0

        if not in_pos:
            if pending_sig >= 0:
                if present:
                    s = pending_sig
                    side = 1 if signal[s] > 0 else -1
                    sig_idx = s
                    entry_idx = j
                    entry_raw = o
                    sz = size[s]
                    sig_e = sigma[s]
                    slip_t = slippage + slip_vol_mult * sig_e
                    entry_fill = o * (1.0 + side * slip_t)
                    w_sl = sl_mult * sig_e * sq
                    w_tp = tp_mult * sig_e * sq
                    if side > 0:
                        sl = o * math.exp(-w_sl)
                        tp = o * math.exp(w_tp)
                        tp_trig = tp * (1.0 + tp_through)
                    else:
                        sl = o * math.exp(w_sl)
                        tp = o * math.exp(-w_tp)
                        tp_trig = tp * (1.0 - tp_through)
                    fund = 0.0
                    fund_present = 0.0
                    last_present = j
                    pending_exit = False
                    in_pos = True
                pending_sig = -1
        else:
            if not present:
                # missing or not traded: no fill can happen; funding still settles at this bar's close
                if use_funding:
                    fr = funding_rate[j]
                    if not math.isnan(fr):
                        fund += fr
                if record:
                    equity_out[j] = curve
                continue
            # 1. the open of a bar after the entry bar: gap through a level, pending signal, overdue max hold
            if side > 0:
                if o <= sl:
                    reason = REASON_STOP_LOSS
                elif o >= tp_trig:
                    reason = REASON_TAKE_PROFIT
            else:
                if o >= sl:
                    reason = REASON_STOP_LOSS
                elif o <= tp_trig:
                    reason = REASON_TAKE_PROFIT
            if reason == 0 and pending_exit:
                reason = REASON_SIGNAL
            if reason == 0 and j - entry_idx + 1 > max_hold:
                # the max-hold bar was not traded: leave at the first traded open after it
                reason = REASON_TIME
            if reason != 0:
                # the resting TP limit fills at its own price, not at the better open
                exit_raw = tp if reason == REASON_TAKE_PROFIT else o
                at_open = 1

        if in_pos and reason == 0 and present:
            # 2. intrabar (entry bar included): the stop on a touch, the TP when traded through; both -> stop first
            if side > 0:
                if lo <= sl:
                    reason = REASON_STOP_LOSS
                    exit_raw = sl
                elif h >= tp_trig:
                    reason = REASON_TAKE_PROFIT
                    exit_raw = tp
            else:
                if h >= sl:
                    reason = REASON_STOP_LOSS
                    exit_raw = sl
                elif lo <= tp_trig:
                    reason = REASON_TAKE_PROFIT
                    exit_raw = tp
            if reason == 0:
                # the position is open at this bar's close: its settlement is inside the window
                if use_funding:
                    fr = funding_rate[j]
                    if not math.isnan(fr):
                        fund += fr
                fund_present = fund
                last_present = j
                # 3. max hold: exit at the close of the max_hold-th bar held
                if j - entry_idx + 1 == max_hold:
                    reason = REASON_TIME
                    exit_raw = c
                # 4. signal flip: exit at the next existing bar's open
                elif flip_exit and signal[j] == -side:
                    pending_exit = True

        if reason != 0:
            # close the trade at bar j
            if reason == REASON_TAKE_PROFIT:
                fee_x = fee_exit_tp
                slip_x = 0.0
            else:
                fee_x = fee_exit_other
                slip_x = slip_t
            equity, peak, max_dd, net = _close_trade(
                record, rec_i, rec_f, n_tr, sig_idx, entry_idx, j, side, reason, at_open, entry_raw, entry_fill,
                exit_raw, sl, tp, sz, sig_e, fee_entry, fee_x, slip_t, slip_x, fund, equity, peak, max_dd,
            )
            sum_net += net
            if net > 0.0:
                wins += 1
            n_tr += 1
            in_pos = False
            pending_exit = False

        # flat at bar j's close: its signal may enter at bar j+1's open
        if not in_pos and present and j + 1 < n and equity > 0.0:
            sg = signal[j]
            if sg == 1 or sg == -1:
                s_j = sigma[j]
                z_j = size[j]
                if s_j > 0.0 and z_j > 0.0 and not math.isinf(s_j) and not math.isinf(z_j):  # NaN -> False
                    pending_sig = j

        if record:
            if in_pos:
                mtm = side * (c / entry_raw - 1.0) - fee_entry - slip_t - side * fund
                curve = equity * (1.0 + sz * mtm)
            else:
                curve = equity
            equity_out[j] = curve

    if in_pos:
        # end of data: exit at the close of the last traded bar held
        j = last_present
        exit_raw = close[j]
        equity, peak, max_dd, net = _close_trade(
            record, rec_i, rec_f, n_tr, sig_idx, entry_idx, j, side, REASON_END, 0, entry_raw, entry_fill,
            exit_raw, sl, tp, sz, sig_e, fee_entry, fee_exit_other, slip_t, slip_t, fund_present, equity, peak,
            max_dd,
        )
        sum_net += net
        if net > 0.0:
            wins += 1
        if record:
            for k in range(j, n):
                equity_out[k] = equity
        n_tr += 1

    log_ret = math.log(equity) if equity > 0.0 else -math.inf
    return n_tr, log_ret, sum_net, wins, max_dd


@njit(cache=True)
def run_single(  # pragma: no cover - numba
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    signal: np.ndarray,
    sigma: np.ndarray,
    size: np.ndarray,
    funding_rate: np.ndarray,
    tradeable: np.ndarray,
    sl_mult: float,
    tp_mult: float,
    max_hold: int,
    fee_entry: float,
    fee_exit_tp: float,
    fee_exit_other: float,
    slippage: float,
    slip_vol_mult: float,
    tp_through: float,
    flip_exit: bool,
    use_funding: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One parameter set with trade records.

    Returns ``(rec_i[n_trades, N_INT_COLS] int64, rec_f[n_trades, N_FLOAT_COLS] float64, equity[n] float64,
    totals[5] float64)``; ``totals`` = ``(n_trades, log final equity, sum net, wins, max dd of realized equity)``.
    """
    n = close.shape[0]
    rec_i = np.empty((n, N_INT_COLS), dtype=np.int64)
    rec_f = np.empty((n, N_FLOAT_COLS), dtype=np.float64)
    equity = np.empty(n, dtype=np.float64)
    n_tr, log_ret, sum_net, wins, max_dd = _simulate(
        open_, high, low, close, signal, sigma, size, funding_rate, tradeable,
        sl_mult, tp_mult, max_hold, fee_entry, fee_exit_tp, fee_exit_other, slippage, slip_vol_mult, tp_through,
        flip_exit, use_funding, True, rec_i, rec_f, equity,
    )  # fmt: skip
    totals = np.empty(5, dtype=np.float64)
    totals[0] = n_tr
    totals[1] = log_ret
    totals[2] = sum_net
    totals[3] = wins
    totals[4] = max_dd
    return rec_i[:n_tr].copy(), rec_f[:n_tr].copy(), equity, totals


@njit(cache=True)
def sweep(  # pragma: no cover - numba
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    signal: np.ndarray,
    sigma: np.ndarray,
    size: np.ndarray,
    funding_rate: np.ndarray,
    tradeable: np.ndarray,
    sl_mults: np.ndarray,
    tp_mults: np.ndarray,
    max_holds: np.ndarray,
    fee_entry: float,
    fee_exit_tp: float,
    fee_exit_other: float,
    slippage: float,
    slip_vol_mult: float,
    tp_through: float,
    flip_exit: bool,
    use_funding: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Combination ``k`` = ``(sl_mults[k], tp_mults[k], max_holds[k])`` (parallel arrays, not a product).

    Returns ``(n_trades int64[K], log_return float64[K], sum_net float64[K], wins int64[K],
    max_drawdown float64[K])`` — the totals of :func:`run_single` for each combination, bit for bit.
    """
    k_n = sl_mults.shape[0]
    n_trades = np.zeros(k_n, dtype=np.int64)
    log_ret = np.zeros(k_n, dtype=np.float64)
    sum_net = np.zeros(k_n, dtype=np.float64)
    wins = np.zeros(k_n, dtype=np.int64)
    max_dd = np.zeros(k_n, dtype=np.float64)
    no_i = np.empty((0, N_INT_COLS), dtype=np.int64)
    no_f = np.empty((0, N_FLOAT_COLS), dtype=np.float64)
    no_eq = np.empty(0, dtype=np.float64)
    for k in range(k_n):
        a, b, c, d, e = _simulate(
            open_, high, low, close, signal, sigma, size, funding_rate, tradeable,
            sl_mults[k], tp_mults[k], max_holds[k], fee_entry, fee_exit_tp, fee_exit_other, slippage,
            slip_vol_mult, tp_through, flip_exit, use_funding, False, no_i, no_f, no_eq,
        )  # fmt: skip
        n_trades[k] = a
        log_ret[k] = b
        sum_net[k] = c
        wins[k] = d
        max_dd[k] = e
    return n_trades, log_ret, sum_net, wins, max_dd
