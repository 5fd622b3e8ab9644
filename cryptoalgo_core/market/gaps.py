"""Gap detection on a regular time grid, and coverage-interval arithmetic. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from cryptoalgo_core.timeutil import HOUR_MS


@dataclass(frozen=True)
class Gap:
    first_missing_ts: int
    missing: int  # number of missing grid steps

    @property
    def end_ts(self) -> int:  # exclusive
        return self.first_missing_ts + self.missing * HOUR_MS


@dataclass(frozen=True)
class GapReport:
    expected: int
    present: int
    gaps: tuple[Gap, ...]

    @property
    def n_gaps(self) -> int:
        return len(self.gaps)

    @property
    def missing(self) -> int:
        return sum(g.missing for g in self.gaps)

    @property
    def largest(self) -> int:
        return max((g.missing for g in self.gaps), default=0)


def find_gaps(ts: Sequence[int] | np.ndarray, start_ms: int, end_ms: int, step_ms: int = HOUR_MS) -> GapReport:
    """Missing grid points of [start_ms, end_ms) (both on the grid) given the present timestamps.

    Leading and trailing holes inside the window count as gaps too: the window is what was asked for.
    """
    if end_ms <= start_ms:
        return GapReport(0, 0, ())
    arr = np.asarray(ts, dtype=np.int64)
    arr = np.unique(arr[(arr >= start_ms) & (arr < end_ms)])
    expected = int((end_ms - start_ms) // step_ms)
    points = np.concatenate(([start_ms - step_ms], arr, [end_ms]))
    diffs = np.diff(points) // step_ms - 1
    idx = np.nonzero(diffs > 0)[0]
    gaps = tuple(Gap(int(points[i] + step_ms), int(diffs[i])) for i in idx)
    return GapReport(expected=expected, present=int(arr.size), gaps=gaps)


def merge_intervals(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted((int(s), int(e)) for s, e in intervals if e > s):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def subtract_intervals(start: int, end: int, covered: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Parts of [start, end) not inside any covered interval."""
    missing: list[tuple[int, int]] = []
    cur = start
    for s, e in merge_intervals(covered):
        if e <= cur:
            continue
        if s >= end:
            break
        if s > cur:
            missing.append((cur, min(s, end)))
        cur = max(cur, e)
        if cur >= end:
            break
    if cur < end:
        missing.append((cur, end))
    return missing
