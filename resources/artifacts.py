"""Artifacts under TRADER_DATA_DIR (default ./data): atomic writes, so a killed run never leaves half a file.

Each write goes to a unique temporary file next to the target, which then replaces the target
(os.replace). The temporary file is created with mode 0o666 filtered by the process umask, exactly like
a plain open(path, "w") would (tempfile.mkstemp would make every artifact 0600, unreadable to others).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


def data_dir(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get("TRADER_DATA_DIR", "./data")).expanduser().resolve()


class ArtifactStore:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = data_dir(str(root) if root else None)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def _atomic(self, target: Path, write: Any) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(target)
        os.close(fd)
        try:
            write(Path(tmp))
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target

    def write_parquet(self, df: pd.DataFrame, *parts: str) -> Path:
        return self._atomic(self.path(*parts), lambda p: df.to_parquet(p, index=False))

    def write_csv(self, df: pd.DataFrame, *parts: str) -> Path:
        return self._atomic(self.path(*parts), lambda p: df.to_csv(p, index=False))

    def write_text(self, text: str, *parts: str) -> Path:
        return self._atomic(self.path(*parts), lambda p: p.write_text(text))

    def write_json(self, obj: Any, *parts: str) -> Path:
        return self._atomic(
            self.path(*parts), lambda p: p.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_jsonable))
        )

    def read_parquet(self, *parts: str) -> pd.DataFrame:
        p = self.path(*parts)
        if not p.exists():
            raise FileNotFoundError(f"artifact missing: {p} (materialize its upstream asset first)")
        return pd.read_parquet(p)

    def read_json(self, *parts: str) -> Any:
        return json.loads(self.path(*parts).read_text())

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive file lock for read-modify-write of shared artifacts (e.g. qa/summary.csv)."""
        p = self.path(".locks", name)
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _create_temp(target: Path) -> tuple[int, str]:
    """A new, empty, uniquely named file beside `target`; mode 0o666 & ~umask (the kernel applies it)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(target.parent, f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file for {target}")


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, (set, tuple)):
        return list(v)
    return str(v)
