"""The per-coin data-QA report (pure): rows, gaps, feature missingness, target balance, drift.

Output is a JSON-able dict plus :class:`~cryptoalgo_core.checks.CheckOutcome` s; blocking outcomes
(``Severity.ERROR``) gate training downstream. The report stores each severity as its plain string.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cryptoalgo_core.checks import CheckOutcome, Severity
from cryptoalgo_core.config.gates import DataQaGates
from cryptoalgo_core.data_qa.stats import DRIFT_COLUMNS, class_balance, drift_snapshot, missingness
from cryptoalgo_core.market.gaps import find_gaps
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS, floor_day, ms_to_date, ms_to_iso

if TYPE_CHECKING:
    from cryptoalgo_core.features.plan import FeaturePlan

__all__ = ["HINTS", "qa_markdown", "qa_report"]


def qa_report(
    coin: str,
    ohlcv_ts: np.ndarray,
    dataset: pd.DataFrame,
    features: list[str],
    gates: DataQaGates,
    plan: FeaturePlan | None = None,
) -> tuple[dict[str, Any], list[CheckOutcome]]:
    """`dataset`: post-warm-up rows with features, `target` (NaN = unlabeled) and `ts`.

    The span checked for gaps is the dataset's span [first ts, last ts + 1 h). `plan` (the feature set the
    features stage built) adds the groups it left out (a warning) and lets a missingness failure name its
    cause: an input that starts late or ends early, with the research window that avoids it.
    """
    if len(dataset):
        start, end = int(dataset["ts"].min()), int(dataset["ts"].max()) + HOUR_MS
    else:
        start = end = 0
    gaps = find_gaps(ohlcv_ts, start, end)
    miss = missingness(dataset, features) if len(dataset) else pd.Series(dtype=float)
    labeled = dataset["target"].dropna() if "target" in dataset else pd.Series(dtype=float)
    balance = class_balance(labeled)
    drift = (
        drift_snapshot(dataset, features, "ts", gates)
        if len(dataset)
        else pd.DataFrame(columns=DRIFT_COLUMNS)
    )
    missing_share = gaps.missing / gaps.expected if gaps.expected else 1.0
    top = miss.head(gates.top_features)
    report: dict[str, Any] = {
        "coin": coin,
        "span": {"start": ms_to_iso(start), "end": ms_to_iso(end)},
        "rows": int(len(dataset)),
        "labeled_rows": int(balance["n_labeled"]),
        "gaps": {
            "expected_hours": gaps.expected,
            "present_hours": gaps.present,
            "n_gaps": gaps.n_gaps,
            "missing_hours": gaps.missing,
            "missing_share": round(float(missing_share), 6),
            "largest_gap_hours": gaps.largest,
        },
        "target": {k: (float(v) if isinstance(v, (int, float, np.floating)) else v) for k, v in balance.items()},
        "missingness_top": {k: round(float(v), 6) for k, v in top.items()},
        "drift": drift.to_dict(orient="records"),
        "n_features": len(features),
    }
    outcomes = [
        _gap_outcome(gaps.largest, missing_share, gates),
        _target_outcome(balance, gates),
        _missing_outcome(miss, gates, plan, start, end),
        _feature_set_outcome(plan),
        _drift_outcome(drift, gates),
    ]
    if plan is not None:
        report["feature_set"] = {"dropped": dict(plan.dropped), "inputs": plan.inputs}
    report["checks"] = {o.name: {"passed": o.passed, "severity": o.severity.value, "detail": o.description} for o in outcomes}
    return report, outcomes


def _gap_outcome(largest: int, share: float, g: DataQaGates) -> CheckOutcome:
    bad = largest >= g.max_gap_hours or share > g.max_missing_share
    return CheckOutcome(
        "qa_gaps",
        not bad,
        Severity.ERROR,
        f"largest gap {largest} h (limit < {g.max_gap_hours}), missing share {share:.2%} (limit {g.max_missing_share:.2%})",
        {"largest_gap_hours": largest, "missing_share": round(share, 6)},
    )


def _target_outcome(b: dict[str, Any], g: DataQaGates) -> CheckOutcome:
    rate = b.get("positive_rate")
    n = int(b["n_labeled"])
    problems = []
    if n < g.min_labeled_rows:
        problems.append(f"only {n} labeled rows (< {g.min_labeled_rows})")
    if b.get("constant"):
        problems.append("target is constant")
    if rate is None or not np.isfinite(rate) or not g.target_rate_min <= rate <= g.target_rate_max:
        problems.append(f"positive rate {rate} outside [{g.target_rate_min}, {g.target_rate_max}]")
    return CheckOutcome(
        "qa_target",
        not problems,
        Severity.ERROR,
        "; ".join(problems) or f"positive rate {rate:.3f} over {n} labeled rows",
        {"positive_rate": float(rate) if rate is not None else float("nan"), "labeled_rows": n},
    )


HINTS = {
    "oi_": "no usable open interest? ingest it (--include-oi) or disable the open_interest group for this coin in "
    "coins.yaml (features: {disabled_groups: [open_interest]})",
    "funding_": "no usable funding? ingest it from a perp venue or disable the funding group in coins.yaml",
}


INPUT_OF = {"oi_": "open_interest", "funding_": "funding"}


def _input_hint(prefix: str, plan: FeaturePlan | None, start: int, end: int) -> str | None:
    """The cause of an input's missing features when its stored series covers only part of the dataset."""
    if plan is None:
        return None
    kind = INPUT_OF[prefix]
    span = plan.inputs.get(kind) or {}
    first, last = span.get("first_ts"), span.get("last_ts")
    name = kind.replace("_", " ")
    if not span.get("rows") or first is None or last is None:
        return None
    if last < end - 2 * DAY_MS:
        stop = ms_to_date(floor_day(int(last)) + DAY_MS)
        return (f"{name} ends at {ms_to_iso(int(last))} but the dataset runs to {ms_to_iso(end)}: use a research "
                f"window that ends there, `cryptoalgo features --end {stop}` then `cryptoalgo train` "
                f"(the holdout is then cut from that window's end; no re-ingest needed), or disable the {kind} group for this coin in coins.yaml")
    if first > start + 2 * DAY_MS:
        begin = ms_to_date(floor_day(int(first)) + DAY_MS)
        return (f"{name} starts at {ms_to_iso(int(first))} but the dataset starts {ms_to_iso(start)}: use "
                f"`cryptoalgo features --start {begin}` then `cryptoalgo train`")
    return None


def _missing_outcome(miss: pd.Series, g: DataQaGates, plan: FeaturePlan | None = None, start: int = 0,
                     end: int = 0) -> CheckOutcome:
    bad = miss[miss > g.max_feature_missing]
    hints = []
    for prefix, generic in HINTS.items():
        if any(str(name).startswith(prefix) for name in bad.index):
            hints.append(_input_hint(prefix, plan, start, end) or generic)
    return CheckOutcome(
        "qa_missingness",
        bad.empty,
        Severity.ERROR,
        (f"{len(bad)} feature(s) missing on > {g.max_feature_missing:.0%} of rows: "
         + ", ".join(f"{k} {v:.1%}" for k, v in bad.head(5).items()) + "".join(f" — {h}" for h in hints)) if len(bad)
        else f"every feature missing on <= {g.max_feature_missing:.0%} of rows",
        {"worst_feature": str(miss.index[0]) if len(miss) else "", "worst_share": float(miss.iloc[0]) if len(miss) else 0.0},
    )


def _feature_set_outcome(plan: FeaturePlan | None) -> CheckOutcome:
    dropped = dict(plan.dropped) if plan is not None else {}
    return CheckOutcome(
        "qa_feature_set",
        not dropped,
        Severity.WARN,
        "; ".join(why if g == "basket" else f"feature group {g} left out: {why}" for g, why in dropped.items())
        or "every configured feature group has its inputs",
        {"dropped_groups": ",".join(dropped) or "none", "n_features": len(plan.names) if plan is not None else 0},
    )


def _drift_outcome(drift: pd.DataFrame, g: DataQaGates) -> CheckOutcome:
    """WARN when a feature's shift is material (PSI / KS thresholds) and significant (block-permutation p)."""
    flagged = drift[drift["flagged"].astype(bool)] if len(drift) else drift
    named = [f"{r.feature} (KS {r.ks:.2f}, p {r.p_value:.3f})" for r in flagged.head(8).itertuples()]
    return CheckOutcome(
        "qa_drift",
        flagged.empty,
        Severity.WARN,
        f"{len(flagged)} of {len(drift)} feature(s) drifted (recent vs reference, material and block-permutation "
        f"p <= {g.drift_alpha}): " + ", ".join(named)
        if len(flagged)
        else f"no feature drifted (material PSI / KS shift with block-permutation p <= {g.drift_alpha})",
        {"flagged": len(flagged), "alpha": g.drift_alpha},
    )


def qa_markdown(report: dict[str, Any]) -> str:
    g, t = report["gaps"], report["target"]
    lines = [
        f"### data QA — {report['coin']}",
        "",
        "| metric | value |",
        "|---|---|",
        f"| span | {report['span']['start']} .. {report['span']['end']} |",
        f"| rows / labeled | {report['rows']} / {report['labeled_rows']} |",
        f"| gaps / missing hours / largest | {g['n_gaps']} / {g['missing_hours']} / {g['largest_gap_hours']} h |",
        f"| positive rate | {t.get('positive_rate')} |",
        "",
        "| check | result | detail |",
        "|---|---|---|",
    ]
    for name, c in report["checks"].items():
        lines.append(f"| {name} | {'PASS' if c['passed'] else 'FAIL (' + c['severity'] + ')'} | {c['detail']} |")
    lines += ["", "| feature | missing |", "|---|---|"]
    lines += [f"| {k} | {v:.2%} |" for k, v in report["missingness_top"].items()]
    return "\n".join(lines)
