"""In-process progress hook: the CLI installs a callback; assets report through it (no-op otherwise)."""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[str, str, int, int], None]
_hook: ProgressFn | None = None


def set_hook(fn: ProgressFn | None) -> None:
    global _hook
    _hook = fn


def report(coin: str, kind: str, done: int, total: int) -> None:
    if _hook is not None:
        _hook(coin, kind, done, total)
