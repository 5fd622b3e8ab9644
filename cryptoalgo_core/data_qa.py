"""The per-coin data-QA report (pure): rows, gaps, feature missingness, target balance, drift.

Output is a JSON-able dict plus CheckOutcomes; blocking outcomes (ERROR) gate training downstream.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cryptoalgo_core.config import DataQaGates
from cryptoalgo_core.market.checks import CheckOutcome
from cryptoalgo_core.market.gaps import find_gaps
from cryptoalgo_core.qa import DriftThresholds, class_balance, drift_snapshot, missingness
from cryptoalgo_core.timeutil import HOUR_MS, ms_to_iso


def qa_report(
    coin: str,
    ohlcv_ts: np.ndarray,
    dataset: pd.DataFrame,
    features: list[str],
    gates: DataQaGates,
) -> tuple[dict[str, Any], list[CheckOutcome]]:
    """`dataset`: post-warm-up rows with features, `target` (NaN = unlabeled) and `ts`.

    The span checked for gaps is the dataset's span [first ts, last ts + 1 h).
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
        drift_snapshot(
            dataset,
            features,
            "ts",
            DriftThresholds(gates.drift_psi_warn, gates.drift_ks_warn, gates.drift_recent_days, gates.drift_reference_days),
        )
        if len(dataset)
        else pd.DataFrame(columns=["feature", "psi", "ks", "flagged"])
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
        _missing_outcome(miss, gates),
        _drift_outcome(drift),
    ]
    report["checks"] = {o.name: {"passed": o.passed, "severity": o.severity, "detail": o.description} for o in outcomes}
    return report, outcomes


def _gap_outcome(largest: int, share: float, g: DataQaGates) -> CheckOutcome:
    bad = largest >= g.max_gap_hours or share > g.max_missing_share
    return CheckOutcome(
        "qa_gaps",
        not bad,
        "ERROR",
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
        "ERROR",
        "; ".join(problems) or f"positive rate {rate:.3f} over {n} labeled rows",
        {"positive_rate": float(rate) if rate is not None else float("nan"), "labeled_rows": n},
    )


HINTS = {
    "oi_": "no usable open interest? ingest it (--include-oi) or disable the open_interest group for this coin in "
    "coins.yaml (features: {disabled_groups: [open_interest]})",
    "funding_": "no usable funding? ingest it from a perp venue or disable the funding group in coins.yaml",
}


def _missing_outcome(miss: pd.Series, g: DataQaGates) -> CheckOutcome:
    bad = miss[miss > g.max_feature_missing]
    hints = sorted({h for prefix, h in HINTS.items() for name in bad.index if str(name).startswith(prefix)})
    return CheckOutcome(
        "qa_missingness",
        bad.empty,
        "ERROR",
        (f"{len(bad)} feature(s) missing on > {g.max_feature_missing:.0%} of rows: "
         + ", ".join(f"{k} {v:.1%}" for k, v in bad.head(5).items()) + "".join(f" — {h}" for h in hints)) if len(bad)
        else f"every feature missing on <= {g.max_feature_missing:.0%} of rows",
        {"worst_feature": str(miss.index[0]) if len(miss) else "", "worst_share": float(miss.iloc[0]) if len(miss) else 0.0},
    )


def _drift_outcome(drift: pd.DataFrame) -> CheckOutcome:
    flagged = drift[drift["flagged"].astype(bool)] if len(drift) else drift
    return CheckOutcome(
        "qa_drift",
        flagged.empty,
        "WARN",
        f"{len(flagged)} of {len(drift)} feature(s) drifted (recent vs reference): "
        + ", ".join(flagged["feature"].head(8).astype(str))
        if len(flagged)
        else "no feature drifted beyond the PSI / KS thresholds",
        {"flagged": len(flagged)},
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
