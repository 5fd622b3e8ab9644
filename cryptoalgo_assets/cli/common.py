"""What every command shares: the consoles, exit codes, one-line errors and option helpers."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from rich.console import Console

from cryptoalgo_core.timeutil import parse_date_ms

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_GATE_FAILED = 3
EXIT_INTERRUPTED = 130

console = Console(stderr=False, width=None if sys.stdout.isatty() else 160, highlight=False)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160, highlight=False)


class CliError(Exception):
    """Bad input found before anything runs: printed as one line, exit code EXIT_BAD_INPUT (or `code`)."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


def say(message: str) -> None:
    """A plain line on stdout (never interpreted as rich markup: '[open_interest]' prints as written)."""
    console.print(message, markup=False, highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    err.print(message, markup=False, highlight=False, style="yellow", soft_wrap=True)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print `error: message` as one line on stderr and exit with `code`."""
    first = " ".join(str(message).split("\n")[0].split())
    err.print(f"error: {first}", markup=False, highlight=False, style="red", soft_wrap=True)
    sys.exit(code)


F = TypeVar("F", bound=Callable[..., Any])


def command_errors(fn: F) -> F:
    """Known errors -> one line and their exit code; Ctrl-C -> one line and 130; never a traceback."""
    from cryptoalgo_core.errors import CryptoalgoError

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CliError as exc:
            fail(str(exc), exc.code)
        except CryptoalgoError as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        except KeyboardInterrupt:
            err.print("interrupted", markup=False, style="red")
            sys.exit(EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]


@dataclass
class Window:
    start: str = ""
    end: str = ""

    @classmethod
    def parse(cls, start: str | None, end: str | None) -> Window:
        try:
            lo = parse_date_ms(start) if start else None
            hi = parse_date_ms(end) if end else None
        except ValueError as exc:
            raise CliError(str(exc)) from exc
        if lo is not None and hi is not None and hi <= lo:
            raise CliError(f"--end {end} must be after --start {start}")
        return cls(start or "", end or "")

    def bounds(self) -> tuple[int | None, int | None]:
        return (parse_date_ms(self.start) if self.start else None, parse_date_ms(self.end) if self.end else None)

    def config(self) -> dict[str, dict[str, str]]:
        return {"config": {"start": self.start, "end": self.end}}

    def text(self) -> str:
        return "whole stored history" if not (self.start or self.end) else f"[{self.start or '…'}, {self.end or '…'})"
