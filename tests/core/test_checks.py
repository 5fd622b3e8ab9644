"""The one check-outcome type: a str-valued Severity that prints and serialises as its plain string."""

from __future__ import annotations

import json

from cryptoalgo_core.checks import CheckOutcome, Severity, skipped


def test_severity_is_its_plain_string() -> None:
    assert Severity.ERROR == "ERROR" and Severity.WARN == "WARN" and Severity("ERROR") is Severity.ERROR
    assert str(Severity.ERROR) == "ERROR" and f"FAIL ({Severity.WARN})" == "FAIL (WARN)"
    assert json.dumps({"severity": Severity.ERROR.value}) == '{"severity": "ERROR"}'
    assert json.dumps([Severity.WARN]) == '["WARN"]'


def test_outcome_and_skipped() -> None:
    o = CheckOutcome("x", False, Severity.ERROR, "broken")
    assert o.metadata == {}
    s = skipped("recon", "single source")
    assert (s.name, s.passed, s.severity, s.description, s.metadata) == (
        "recon", True, Severity.WARN, "skipped: single source", {"skipped": True}
    )
