"""Market-data quality checks as pure functions: data in, :class:`~cryptoalgo_core.checks.CheckOutcome` out.

The Dagster layer turns each outcome into an AssetCheckResult; thresholds come from config/gates.yaml.
Severity (:class:`~cryptoalgo_core.checks.Severity`): ERROR blocks downstream assets, WARN is shown but does not
block.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cryptoalgo_core.checks import CheckOutcome, Severity
from cryptoalgo_core.config.gates import MarketDataGates
from cryptoalgo_core.market.gaps import find_gaps
from cryptoalgo_core.market.validate import validate_funding, validate_ohlcv, validate_open_interest
from cryptoalgo_core.timeutil import HOUR_MS, ms_to_iso

__all__ = [
    "continuity",
    "freshness",
    "funding_plausible",
    "infer_step_ms",
    "no_duplicates",
    "ohlc_invariants",
    "oi_valid",
    "reconcile_closes",
    "summary_markdown",
]


def no_duplicates(dup_keys: int) -> CheckOutcome:
    return CheckOutcome(
        "no_duplicate_keys",
        dup_keys == 0,
        Severity.ERROR,
        "no (coin, ts) stored twice" if dup_keys == 0 else f"{dup_keys} (coin, ts) key(s) stored more than once",
        {"duplicate_keys": dup_keys},
    )


def continuity(
    ts: np.ndarray | list[int], start_ms: int, end_ms: int, gates: MarketDataGates, step_ms: int = HOUR_MS,
    name: str = "hourly_continuity",
    can_error: bool = True,
) -> CheckOutcome:
    """Gap count and largest gap in [start, end) on the `step_ms` grid. WARN >= warn, ERROR >= error (hours).

    `can_error=False` caps the severity at WARN (for optional series such as open interest).
    """
    start = start_ms + (-start_ms) % step_ms
    rep = find_gaps(ts, start, end_ms, step_ms)
    largest_h = rep.largest * step_ms // HOUR_MS
    if largest_h >= gates.gap_error_hours:
        passed, sev = False, Severity.ERROR if can_error else Severity.WARN
    elif largest_h >= gates.gap_warn_hours and rep.n_gaps:
        passed, sev = False, Severity.WARN
    else:
        passed, sev = True, Severity.WARN
    top = sorted(rep.gaps, key=lambda g: -g.missing)[:10]
    return CheckOutcome(
        name,
        passed,
        sev,
        f"{rep.n_gaps} gap(s), {rep.missing} missing step(s), largest {largest_h} h "
        f"(warn >= {gates.gap_warn_hours} h, error >= {gates.gap_error_hours} h)",
        {
            "expected": rep.expected,
            "present": rep.present,
            "gaps": rep.n_gaps,
            "missing_steps": rep.missing,
            "largest_gap_hours": int(largest_h),
            "largest_gaps": ", ".join(f"{ms_to_iso(g.first_missing_ts)} ({g.missing})" for g in top) or "none",
        },
    )


def ohlc_invariants(stored: pd.DataFrame, rejects_in_window: int) -> CheckOutcome:
    """Stored candles must all satisfy the invariants (ERROR otherwise); quarantined rejects are a WARN."""
    res = validate_ohlcv(stored[["ts", "open", "high", "low", "close", "volume"]])
    bad_stored = res.n_rejects
    if bad_stored:
        passed, sev = False, Severity.ERROR
        desc = f"{bad_stored} stored candle(s) break OHLC invariants"
    elif rejects_in_window:
        passed, sev = False, Severity.WARN
        desc = f"{rejects_in_window} malformed candle(s) quarantined in the rejects table (not in the clean table)"
    else:
        passed, sev, desc = True, Severity.WARN, "all candles finite, prices > 0, low <= min(o,c), high >= max(o,c), volume >= 0"
    return CheckOutcome(
        "ohlc_invariants", passed, sev, desc, {"bad_stored_rows": bad_stored, "rejected_rows": rejects_in_window}
    )


def freshness(last_ts: int | None, now_ms: int, gates: MarketDataGates, bar_ms: int = HOUR_MS) -> CheckOutcome:
    """Newest candle's close vs the source's now."""
    if last_ts is None:
        return CheckOutcome("freshness", False, Severity.WARN, "no data stored", {"age_hours": None})
    age_h = (now_ms - (last_ts + bar_ms)) / HOUR_MS
    ok = age_h <= gates.freshness_warn_hours
    return CheckOutcome(
        "freshness",
        ok,
        Severity.WARN,
        f"newest bar closed {age_h:.1f} h before the source's now (warn > {gates.freshness_warn_hours} h)",
        {"age_hours": round(float(age_h), 2), "last_ts": ms_to_iso(last_ts), "source_now": ms_to_iso(now_ms)},
    )


def funding_plausible(stored: pd.DataFrame, rejects_in_window: int, gates: MarketDataGates) -> CheckOutcome:
    res = validate_funding(stored[["ts", "rate"]], gates.funding_abs_max)
    rates = stored["rate"].to_numpy(dtype=float) if len(stored) else np.array([])
    meta = {
        "rows": len(stored),
        "rejected_rows": rejects_in_window,
        "max_abs_rate": float(np.max(np.abs(rates))) if rates.size else 0.0,
        "mean_rate": float(rates.mean()) if rates.size else 0.0,
        "bound": gates.funding_abs_max,
    }
    if res.n_rejects or rejects_in_window:
        return CheckOutcome(
            "funding_plausible",
            False,
            Severity.ERROR,
            f"{rejects_in_window} funding rate(s) rejected as non-finite or |rate| > {gates.funding_abs_max:g}",
            meta,
        )
    return CheckOutcome("funding_plausible", True, Severity.ERROR, f"all |rate| <= {gates.funding_abs_max:g}", meta)


def oi_valid(stored: pd.DataFrame, rejects_in_window: int) -> CheckOutcome:
    res = validate_open_interest(stored[["ts", "value", "unit"]]) if len(stored) else None
    bad = res.n_rejects if res is not None else 0
    if bad:
        return CheckOutcome("oi_valid", False, Severity.ERROR, f"{bad} stored OI row(s) invalid", {"bad_stored_rows": bad})
    if rejects_in_window:
        return CheckOutcome(
            "oi_valid", False, Severity.WARN, f"{rejects_in_window} OI row(s) quarantined", {"rejected_rows": rejects_in_window}
        )
    return CheckOutcome("oi_valid", True, Severity.WARN, "all OI values finite and >= 0", {"rows": len(stored)})


def infer_step_ms(ts: np.ndarray | list[int], default: int) -> int:
    arr = np.unique(np.asarray(ts, dtype=np.int64))
    if arr.size < 3:
        return default
    return int(np.median(np.diff(arr)))


def reconcile_closes(primary: pd.DataFrame, secondary: pd.DataFrame, tolerance_bps: float) -> CheckOutcome:
    """Compare closes of two sources on common timestamps (e.g. Coinbase USD vs a CCXT USDT market).

    Passes when the median absolute relative difference is within `tolerance_bps`.
    """
    m = primary[["ts", "close"]].merge(secondary[["ts", "close"]], on="ts", suffixes=("_p", "_s"))
    if m.empty:
        return CheckOutcome(
            "source_reconciliation", True, Severity.WARN, "no overlapping candles to compare", {"overlap": 0}
        )
    diff_bps = (m["close_p"] / m["close_s"] - 1.0).abs() * 1e4
    med = float(diff_bps.median())
    mx = float(diff_bps.max())
    ok = med <= tolerance_bps
    return CheckOutcome(
        "source_reconciliation",
        ok,
        Severity.WARN,
        f"median |close diff| {med:.1f} bps over {len(m)} candles (max {mx:.1f}; tolerance {tolerance_bps:g})",
        {"overlap": len(m), "median_diff_bps": round(med, 2), "max_diff_bps": round(mx, 2)},
    )


def summary_markdown(title: str, rows: dict[str, Any], outcomes: list[CheckOutcome]) -> str:
    lines = [f"### {title}", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows.items()]
    lines += ["", "| check | result | detail |", "|---|---|---|"]
    for o in outcomes:
        res = "PASS" if o.passed else f"FAIL ({o.severity})"
        lines.append(f"| {o.name} | {res} | {o.description} |")
    return "\n".join(lines)
