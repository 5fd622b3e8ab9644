"""Live progress: a rich progress bar per row on a terminal; plain lines (every 25 %) otherwise."""

from __future__ import annotations

import sys
import time

from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn

from cryptoalgo_assets.cli.common import err

STATUS_TEXT = {"QUEUED": "queued", "NOT_STARTED": "starting", "STARTING": "starting", "STARTED": "running",
               "SUCCESS": "done", "FAILURE": "FAILED", "CANCELED": "cancelled", "CANCELING": "cancelling"}


class ProgressView:
    def __init__(self, rows: list[str], enabled: bool = True, title: str = "", tty: bool | None = None) -> None:
        self.rows = list(dict.fromkeys(rows))
        self.enabled = enabled and bool(self.rows)
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.title = title
        self._bar: Progress | None = None
        self._ids: dict[str, TaskID] = {}
        self._last_line: dict[str, tuple[int, str]] = {}
        self._t0 = time.monotonic()

    def __enter__(self) -> ProgressView:
        if not self.enabled:
            return self
        if self.tty:
            self._bar = Progress(TextColumn("{task.description:<26}"), BarColumn(), TaskProgressColumn(),
                                 TextColumn("{task.fields[status]:<10}"), TimeElapsedColumn(),
                                 TextColumn("{task.fields[detail]}"), console=err, transient=False)
            self._bar.start()
            self._ids = {r: self._bar.add_task(r, total=1.0, status="submitted", detail="") for r in self.rows}
        elif self.title:
            err.print(self.title, markup=False, highlight=False)
        return self

    def update(self, row: str, fraction: float, status: str = "STARTED", detail: str = "") -> None:
        """`detail` (e.g. trials and best objective) shows beside the bar; off a TTY it rides along on the
        plain lines, which are printed only when the 25 % step or the status changes."""
        if not self.enabled or row not in self.rows:
            return
        frac = min(max(float(fraction), 0.0), 1.0)
        text = STATUS_TEXT.get(status, status.lower())
        if self._bar is not None:
            self._bar.update(self._ids[row], completed=frac, status=text, detail=detail)
            return
        step = int(frac * 4)  # 0, 25, 50, 75, 100 %
        if self._last_line.get(row) != (step, text):
            prev = self._last_line.get(row)
            if prev is None or step > prev[0] or text != prev[1]:
                self._last_line[row] = (step, text)
                err.print(f"  {row:<26} {25 * step:>3d}%  {text:<10} {time.monotonic() - self._t0:6.1f} s"
                          + (f"  {detail}" if detail else ""), markup=False, highlight=False)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
