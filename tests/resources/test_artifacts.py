"""ArtifactStore: atomic writes that leave no temporary files and create files like any other (umask)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from resources.artifacts import ArtifactStore


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    """os.umask for one test; the process umask is restored afterwards."""
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


def _write_all(store: ArtifactStore, sub: str) -> list[Path]:
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    return [
        store.write_parquet(df, sub, "f.parquet"),
        store.write_csv(df, sub, "f.csv"),
        store.write_text("hello\n", sub, "f.txt"),
        store.write_json({"k": [1, 2]}, sub, "f.json"),
    ]


@pytest.mark.parametrize("mask, want", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_artifacts_are_created_with_the_umask(
    tmp_path: Path, umask: Callable[[int], int], mask: int, want: int
) -> None:
    umask(mask)
    store = ArtifactStore(tmp_path / "data")
    for p in _write_all(store, "runs"):
        assert stat.S_IMODE(p.stat().st_mode) == want, p
    # a plain file created the ordinary way has the same mode
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert stat.S_IMODE(plain.stat().st_mode) == want


def test_overwrite_is_atomic_and_leaves_no_temp_files(tmp_path: Path, umask: Callable[[int], int]) -> None:
    umask(0o022)
    store = ArtifactStore(tmp_path / "data")
    p = store.path("qa", "summary.csv")
    p.parent.mkdir(parents=True)
    p.write_text("old\n")
    p.chmod(0o600)
    store.write_text("new\n", "qa", "summary.csv")
    assert p.read_text() == "new\n"
    assert stat.S_IMODE(p.stat().st_mode) == 0o644  # a fresh file, not the old file's mode
    assert sorted(x.name for x in p.parent.iterdir()) == ["summary.csv"]
    assert store.read_json(*_write_all(store, "qa")[-1].relative_to(store.root).parts) == {"k": [1, 2]}


def test_failed_write_leaves_target_and_no_temp_file(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "data")
    store.write_text("v1", "x", "a.txt")

    def boom(path: Path) -> None:
        path.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store._atomic(store.path("x", "a.txt"), boom)
    assert store.path("x", "a.txt").read_text() == "v1"
    assert [x.name for x in store.path("x").iterdir()] == ["a.txt"]
