"""The deployment checklist (pure): PASS/FAIL per coin with the failed gates and their values, and PASS/FAIL
for the portfolio. Schema of ``checklist.json`` (``schema`` = :data:`SCHEMA`)::

    {"schema": "cryptoalgo.checklist/1", "cohort": str, "generated_utc": ISO time,
     "verdict": "PASS" | "FAIL",            # the portfolio's: deployable only when it passes
     "exit_code": 0 | 3,                    # what `cryptoalgo checklist` exits with
     "coins": [{"coin", "verdict", "tier", "score", "mode", "reason",
                "failed_gates": [{"gate", "value", "threshold"}]}],
     "portfolio": {"verdict", "basket", "dropped": [{"coin", "reason"}], "failed",
                   "conditions": [{"condition", "value", "threshold", "passed"}]}}

A coin passes only with a **full** robustness report at tier PILOT or FULL (hard gates passed, evidence gates
passed); a coin without one (not validated, screen only) fails with the reason. The portfolio verdict is the
``portfolio_readiness`` result's (>= 2 coins, correlation, drawdowns, risk budget).
"""

from __future__ import annotations

from typing import Any

from cryptoalgo_core.robustness.validate import PASSING_TIERS

__all__ = ["SCHEMA", "build_checklist", "coin_verdict"]

SCHEMA = "cryptoalgo.checklist/1"


def coin_verdict(coin: str, doc: dict[str, Any] | None) -> dict[str, Any]:
    if doc is None:
        return {"coin": coin, "verdict": "FAIL", "tier": None, "score": None, "mode": None,
                "reason": "no robustness report (run `cryptoalgo validate --all --mode full`)", "failed_gates": []}
    failed = [{"gate": g["gate"], "value": g["value"], "threshold": g["threshold"]}
              for g in doc.get("gates", []) if not g["passed"]]
    ok = doc.get("mode") == "full" and doc.get("tier") in PASSING_TIERS
    if doc.get("mode") != "full":
        reason = f"only screened (score {doc.get('score', 0):.1f}); the full validation did not run"
    elif ok:
        reason = f"tier {doc['tier']}"
    elif doc.get("tier") == "REJECT":
        reason = "hard gate(s) failed: " + ", ".join(f["gate"] for f in failed if _hard(doc, f["gate"]))
    else:
        capped = doc.get("capped_by") or []
        reason = f"tier {doc.get('tier')} (score {doc.get('score', 0):.1f})" + (
            f", capped by {', '.join(capped)}" if capped else "") + f"; needs {' or '.join(PASSING_TIERS)}"
    return {"coin": coin, "verdict": "PASS" if ok else "FAIL", "tier": doc.get("tier"), "score": doc.get("score"),
            "mode": doc.get("mode"), "reason": reason, "failed_gates": failed}


def _hard(doc: dict[str, Any], gate: str) -> bool:
    return any(g["gate"] == gate and g.get("hard") for g in doc.get("gates", []))


def build_checklist(cohort: str, docs: dict[str, dict[str, Any] | None], portfolio: dict[str, Any],
                    generated_utc: str) -> dict[str, Any]:
    coins = [coin_verdict(c, d) for c, d in docs.items()]
    ok = bool(portfolio.get("passed"))
    return {
        "schema": SCHEMA, "cohort": cohort, "generated_utc": generated_utc,
        "verdict": "PASS" if ok else "FAIL", "exit_code": 0 if ok else 3, "coins": coins,
        "portfolio": {"verdict": "PASS" if ok else "FAIL", "basket": list(portfolio.get("basket", [])),
                      "dropped": list(portfolio.get("dropped", [])), "failed": list(portfolio.get("failed", [])),
                      "conditions": list(portfolio.get("conditions", []))},
    }
