"""Model registry (file + table): staging, atomic promotion, rollback, and a crash injected at each step of a
promotion leaves production at the old or the new version, never mixed; the history catches up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from resources.registry import FileTableRegistry, RegistryError


@pytest.fixture
def reg(tmp_path: Path) -> FileTableRegistry:
    return FileTableRegistry(tmp_path / "models", sa.create_engine(f"sqlite:///{tmp_path / 'r.db'}"))


def _stage(reg: FileTableRegistry, tag: str) -> str:
    return reg.stage("ETH", "c1", "PASS", {"model.json": f'{{"m": "{tag}"}}'.encode(), "profile.json": b"{}"},
                     {"metrics": {"score": 70.0}})


def test_stage_promote_rollback(reg: FileTableRegistry) -> None:
    assert reg.production("ETH") is None
    v1 = _stage(reg, "a")
    rec = reg.promote("ETH", None, "gates passed", "sensor")
    assert rec["to_version"] == v1 and rec["from_version"] is None
    man = reg.production("ETH")
    assert man is not None and man["version"] == v1 and man["verdict"] == "PASS" and man["metrics"]["score"] == 70.0
    v2 = _stage(reg, "b")
    reg.promote("ETH", v2, "newer", "cli")
    assert reg.production("ETH")["version"] == v2
    back = reg.rollback("ETH", "paper drift", "cli")
    assert (back["from_version"], back["to_version"]) == (v2, v1)
    assert reg.production("ETH")["version"] == v1
    assert [h["to_version"] for h in reg.history("ETH")] == [v1, v2, v1]
    with pytest.raises(RegistryError, match="already in production"):
        reg.promote("ETH", v1, "again", "cli")
    with pytest.raises(RegistryError, match="no staged version"):
        reg.promote("ETH", "nope", "x", "cli")
    with pytest.raises(RegistryError, match="no earlier production version"):
        FileTableRegistry(reg.root.parent / "other", reg.engine).rollback("SOL", "x", "cli")


def test_a_tampered_production_file_is_refused(reg: FileTableRegistry) -> None:
    v = _stage(reg, "a")
    reg.promote("ETH", v, "ok", "cli")
    (reg.root / "production" / "ETH" / v / "model.json").write_bytes(b"changed")
    with pytest.raises(RegistryError, match="does not match its manifest"):
        reg.production("ETH")


class Crash(Exception):
    pass


@pytest.mark.parametrize("step", ["copy", "fsync", "pointer", "record"])
def test_crash_at_each_promotion_step_leaves_old_or_new(reg: FileTableRegistry, step: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = _stage(reg, "a")
    reg.promote("ETH", v1, "first", "cli")
    v2 = _stage(reg, "b")

    def boom(*a: object, **k: object) -> None:
        raise Crash(step)

    if step == "copy":  # the production copy's rename into place
        monkeypatch.setattr(os, "rename", boom)
    elif step == "fsync":
        monkeypatch.setattr(os, "fsync", boom)
    elif step == "pointer":
        monkeypatch.setattr(os, "replace", boom)
    else:  # after the pointer switched, before the history row
        monkeypatch.setattr(FileTableRegistry, "_record", boom)
    with pytest.raises(Crash):
        reg.promote("ETH", v2, "second", "sensor")
    monkeypatch.undo()
    man = reg.production("ETH")  # verifies every file of the version the pointer names
    assert man is not None
    assert man["version"] == (v2 if step == "record" else v1)
    left = list((reg.root / "production" / "ETH").iterdir())
    assert not [p for p in left if p.name.endswith(".tmp")]  # no temp file or half-copied version is left
    for d in left:
        if d.is_dir():
            assert (d / "manifest.json").exists()
    # the next call completes the story: the history catches up with the pointer, or the promotion is retried
    if step == "record":
        reg._reconcile("ETH")
        assert reg.history("ETH")[-1]["to_version"] == v2 and reg.history("ETH")[-1]["reason"].startswith("recovered")
    else:
        reg.promote("ETH", v2, "retry", "sensor")
        assert reg.production("ETH")["version"] == v2
    assert [h["to_version"] for h in reg.history("ETH")] == [v1, v2]


def test_rollback_walks_back_past_rollbacks(reg: FileTableRegistry) -> None:
    a, b, c = (_stage(reg, t) for t in "abc")
    for v in (a, b, c):
        reg.promote("ETH", v, "promote", "cli")
    assert reg.rollback("ETH", "one", "cli")["to_version"] == b
    assert reg.rollback("ETH", "two", "cli")["to_version"] == a  # never back to the rolled-back c
    with pytest.raises(RegistryError, match="no earlier production version"):
        reg.rollback("ETH", "three", "cli")
    assert [h["to_version"] for h in reg.history("ETH")] == [a, b, c, b, a]
