"""Validation of raw market frames into clean rows and rejects.

Nothing is silently dropped: every input row ends up either in `clean` or in `rejects` (with a
reason), except exact duplicates of the same timestamp, which collapse to the last occurrence
(counted in `ValidationResult.duplicates`). Pure functions, no I/O.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cryptoalgo_core.errors import DataValidationError
from cryptoalgo_core.timeutil import HOUR_MS

OHLCV_COLUMNS = ["ts", "open", "high", "low", "close", "volume"]


@dataclass(frozen=True)
class ValidationResult:
    clean: pd.DataFrame
    rejects: pd.DataFrame  # columns: ts, reason, payload (JSON of the raw row)
    duplicates: int  # rows collapsed because the same ts appeared more than once

    @property
    def n_rejects(self) -> int:
        return len(self.rejects)


def _require_columns(df: pd.DataFrame, cols: list[str], kind: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataValidationError(f"{kind}: missing column(s) {missing}; got {list(df.columns)}")


def _payload(row: pd.Series) -> str:
    def conv(v: object) -> object:
        if isinstance(v, (float, np.floating)):
            return None if not math.isfinite(float(v)) else float(v)
        if isinstance(v, (np.integer,)):
            return int(v)
        return v if v is None or isinstance(v, (int, str, bool)) else str(v)

    return json.dumps({k: conv(v) for k, v in row.items()}, sort_keys=True)


def _to_numeric(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    out = df.copy()
    for c in cols:
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    return out


def _dedupe_ts(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    before = len(df)
    df = df.drop_duplicates(subset="ts", keep="last").sort_values("ts", kind="stable")
    return df.reset_index(drop=True), before - len(df)


def _split(df: pd.DataFrame, reasons: pd.Series, keep_cols: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    bad = reasons != ""
    clean = df.loc[~bad, keep_cols].reset_index(drop=True)
    if bad.any():
        rej = df.loc[bad]
        rejects = pd.DataFrame(
            {
                "ts": rej["ts"].astype("int64").to_numpy(),
                "reason": reasons[bad].to_numpy(),
                "payload": [_payload(r) for _, r in rej.iterrows()],
            }
        )
    else:
        rejects = pd.DataFrame(
            {"ts": pd.Series(dtype="int64"), "reason": pd.Series(dtype="object"), "payload": pd.Series(dtype="object")}
        )
    return clean, rejects


def _add_reason(reasons: pd.Series, mask: pd.Series | np.ndarray, text: str) -> pd.Series:
    arr = np.asarray(mask, dtype=bool)
    if not arr.any():  # the common case (clean data) stays cheap: no string work at all
        return reasons
    mask = pd.Series(arr, index=reasons.index)
    add = mask & (reasons == "")
    both = mask & (reasons != "")
    reasons = reasons.copy()
    reasons[add] = text
    reasons[both] = reasons[both] + ";" + text
    return reasons


def _prepare_ts(df: pd.DataFrame, kind: str) -> tuple[pd.DataFrame, pd.Series]:
    """Coerce ts to int64; rows whose ts is missing/non-integer are rejected (ts=-1 in the reject)."""
    ts = pd.to_numeric(df["ts"], errors="coerce")
    bad_ts = ts.isna() | ~np.isfinite(ts.fillna(0)) | (ts.fillna(0) % 1 != 0)
    out = df.copy()
    out["ts"] = ts.fillna(-1).astype("int64")
    reasons = pd.Series("", index=out.index, dtype="object")
    reasons = _add_reason(reasons, bad_ts, "ts_missing_or_not_integer")
    return out, reasons


def _empty_rejects() -> pd.DataFrame:
    return pd.DataFrame(
        {"ts": pd.Series(dtype="int64"), "reason": pd.Series(dtype="object"), "payload": pd.Series(dtype="object")}
    )


def _clean_fast(df: pd.DataFrame, cols: list[str], ok: Any) -> ValidationResult | None:
    """The common case, without string work: numeric dtypes, strictly increasing integer ts and every row
    valid (`ok(numeric frame) -> bool`). None when anything needs the full (row-by-row) path."""
    ts = df["ts"]
    if not pd.api.types.is_integer_dtype(ts.dtype) or len(df) == 0:
        return None
    values = [c for c in cols if c not in ("ts", "unit")]
    if not all(pd.api.types.is_numeric_dtype(df[c].dtype) and not pd.api.types.is_bool_dtype(df[c].dtype)
               for c in values):
        return None
    t = ts.to_numpy(np.int64)
    if t.size > 1 and not bool((np.diff(t) > 0).all()):
        return None
    out = pd.DataFrame({c: (t if c == "ts" else df[c].to_numpy() if c == "unit" else df[c].to_numpy(np.float64))
                        for c in cols})
    if not ok(out):
        return None
    return ValidationResult(out, _empty_rejects(), 0)


def _ohlcv_ok(step_ms: int):  # noqa: ANN202
    def ok(d: pd.DataFrame) -> bool:
        t = d["ts"].to_numpy()
        o, h, lo, c, v = (d[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
        with np.errstate(invalid="ignore"):
            good = (t >= 0) & (t % step_ms == 0) & np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c)
            good &= np.isfinite(v) & (o > 0) & (h > 0) & (lo > 0) & (c > 0) & (v >= 0) & (h >= lo)
            good &= (lo <= np.minimum(o, c)) & (h >= np.maximum(o, c))
        return bool(good.all())

    return ok


def validate_ohlcv(df: pd.DataFrame, step_ms: int = HOUR_MS) -> ValidationResult:
    """Split raw OHLCV into clean rows and rejects.

    Invariants of a clean candle: ts on the `step_ms` grid; open/high/low/close finite and > 0;
    volume finite and >= 0; low <= min(open, close); high >= max(open, close) (hence high >= low).
    """
    _require_columns(df, OHLCV_COLUMNS, "ohlcv")
    fast = _clean_fast(df, OHLCV_COLUMNS, _ohlcv_ok(step_ms))
    if fast is not None:
        return fast
    if df.empty:
        empty = pd.DataFrame({c: pd.Series(dtype="int64" if c == "ts" else "float64") for c in OHLCV_COLUMNS})
        return ValidationResult(empty, _split(empty, pd.Series(dtype="object"), OHLCV_COLUMNS)[1], 0)
    df, reasons = _prepare_ts(df[OHLCV_COLUMNS], "ohlcv")
    df = _to_numeric(df, ["open", "high", "low", "close", "volume"])
    # collapse duplicate timestamps first (the last occurrence wins, like an upsert)
    df["_r"] = reasons
    df, dups = _dedupe_ts(df)
    reasons = df.pop("_r")
    o, h, lo, c, v = (df[k] for k in ("open", "high", "low", "close", "volume"))
    prices = df[["open", "high", "low", "close"]]
    reasons = _add_reason(reasons, (df["ts"] >= 0) & (df["ts"] % step_ms != 0), "ts_not_on_grid")
    reasons = _add_reason(reasons, ~np.isfinite(prices).all(axis=1), "price_not_finite")
    reasons = _add_reason(reasons, ~np.isfinite(v), "volume_not_finite")
    reasons = _add_reason(reasons, (prices <= 0).any(axis=1), "price_not_positive")
    reasons = _add_reason(reasons, v < 0, "volume_negative")
    reasons = _add_reason(reasons, h < lo, "high_below_low")
    reasons = _add_reason(reasons, lo > np.minimum(o, c), "low_above_open_or_close")
    reasons = _add_reason(reasons, h < np.maximum(o, c), "high_below_open_or_close")
    clean, rejects = _split(df, reasons, OHLCV_COLUMNS)
    return ValidationResult(clean, rejects, dups)


def validate_funding(df: pd.DataFrame, abs_max: float) -> ValidationResult:
    """Clean funding: finite rate with |rate| <= abs_max (fraction per funding interval)."""
    _require_columns(df, ["ts", "rate"], "funding")

    def ok(d: pd.DataFrame) -> bool:
        r = d["rate"].to_numpy()
        return bool((np.isfinite(r) & (np.abs(r) <= abs_max)).all() and (d["ts"].to_numpy() >= 0).all())

    fast = _clean_fast(df, ["ts", "rate"], ok)
    if fast is not None:
        return fast
    df, reasons = _prepare_ts(df[["ts", "rate"]], "funding")
    df = _to_numeric(df, ["rate"])
    df["_r"] = reasons
    df, dups = _dedupe_ts(df)
    reasons = df.pop("_r")
    r = df["rate"]
    reasons = _add_reason(reasons, ~np.isfinite(r), "rate_not_finite")
    reasons = _add_reason(reasons, np.isfinite(r) & (r.abs() > abs_max), f"rate_implausible_abs_gt_{abs_max:g}")
    clean, rejects = _split(df, reasons, ["ts", "rate"])
    return ValidationResult(clean, rejects, dups)


def validate_open_interest(df: pd.DataFrame) -> ValidationResult:
    """Clean OI: finite value >= 0 and a non-empty unit."""
    _require_columns(df, ["ts", "value", "unit"], "open_interest")

    def ok(d: pd.DataFrame) -> bool:
        val = d["value"].to_numpy()
        units = d["unit"].to_numpy(object)
        return bool((np.isfinite(val) & (val >= 0)).all() and (d["ts"].to_numpy() >= 0).all()
                    and all(isinstance(u, str) and u != "" for u in units))

    fast = _clean_fast(df, ["ts", "value", "unit"], ok)
    if fast is not None:
        return fast
    df, reasons = _prepare_ts(df[["ts", "value", "unit"]], "open_interest")
    df = _to_numeric(df, ["value"])
    df["_r"] = reasons
    df, dups = _dedupe_ts(df)
    reasons = df.pop("_r")
    val = df["value"]
    reasons = _add_reason(reasons, ~np.isfinite(val), "value_not_finite")
    reasons = _add_reason(reasons, np.isfinite(val) & (val < 0), "value_negative")
    unit_ok = df["unit"].astype("object").map(lambda u: isinstance(u, str) and u != "")
    reasons = _add_reason(reasons, ~unit_ok.astype(bool), "unit_missing")
    clean, rejects = _split(df, reasons, ["ts", "value", "unit"])
    return ValidationResult(clean, rejects, dups)
