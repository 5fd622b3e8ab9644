"""The one check-outcome type of the library: market-data checks and data QA return these.

The Dagster layer turns each outcome into an asset-check result. ``Severity.ERROR`` blocks downstream assets
when the check fails; ``Severity.WARN`` is shown but does not block. ``Severity`` is a ``str`` enum, so an outcome
compares equal to the plain strings ``"ERROR"`` / ``"WARN"`` and JSON artifacts store ``severity.value``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CheckOutcome", "Severity", "skipped"]


class Severity(enum.StrEnum):
    """A ``str`` enum: ``Severity.ERROR == "ERROR"``, and ``str()`` / f-strings give the plain value."""

    WARN = "WARN"
    ERROR = "ERROR"


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    severity: Severity  # meaningful when not passed
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def skipped(name: str, why: str) -> CheckOutcome:
    """A check that could not run (nothing to check): passes, with ``skipped: True`` in its metadata."""
    return CheckOutcome(name, True, Severity.WARN, f"skipped: {why}", {"skipped": True})
