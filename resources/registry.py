"""Model registry: staging and production model versions per coin (issue 11, part 1).

:class:`ModelRegistry` is the interface; :class:`FileTableRegistry` keeps each version's files under
``<root>/{staging,production}/<COIN>/<version>/`` (the root is ``data/models``) and a row per version plus the
promotion history in the store's database (tables ``model_versions``, ``model_promotions``).

A version is immutable once written: its directory holds the given files and ``manifest.json`` (coin, version,
cohort, readiness verdict, metrics, profile, the sha256 of every file). Writes go to a temporary directory that
is renamed into place, so a version directory is either complete or absent.

**Promotion is atomic.** ``promote`` (1) copies the staged version into ``production/<COIN>/<version>`` (again a
temporary directory renamed into place, skipped when it is already there and verifies), (2) switches the coin's
pointer ``production/<COIN>/CURRENT`` with one ``os.replace`` — the only step that changes what production
is — and (3) records the promotion (when, from, to, why, who). A crash before (2) leaves production at the old
version (an orphan copy at most); a crash after (2) leaves it at the new one, and the next registry call that
finds the pointer ahead of the history records the missing row as ``recovered``. Production is never a mix:
:meth:`FileTableRegistry.production` reads the pointer and verifies the version's files against its manifest.
``rollback`` is a promotion to the version production held before the current one.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

__all__ = ["FileTableRegistry", "ModelRegistry", "RegistryError"]

STAGES = ("staging", "production")
META = sa.MetaData()
versions_t = sa.Table(
    "model_versions", META,
    sa.Column("coin", sa.String(16), primary_key=True),
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("cohort", sa.String(128), nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("manifest_sha256", sa.String(64), nullable=False),
)
promotions_t = sa.Table(
    "model_promotions", META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("coin", sa.String(16), nullable=False),
    sa.Column("from_version", sa.String(64), nullable=True),
    sa.Column("to_version", sa.String(64), nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
)


class RegistryError(Exception):
    """A registry operation that cannot be done (unknown version, failed verification, bad input)."""


class ModelRegistry(abc.ABC):
    @abc.abstractmethod
    def stage(self, coin: str, cohort: str, verdict: str, files: dict[str, bytes], info: dict[str, Any]) -> str:
        """Write a new staging version; returns its id."""

    @abc.abstractmethod
    def promote(self, coin: str, version: str | None, reason: str, actor: str) -> dict[str, Any]:
        """Make ``version`` (default: the newest staged) production; returns the promotion record."""

    @abc.abstractmethod
    def rollback(self, coin: str, reason: str, actor: str) -> dict[str, Any]:
        """Return production to the version it held before the current one."""

    @abc.abstractmethod
    def production(self, coin: str) -> dict[str, Any] | None:
        """The production version's manifest (verified), or None."""

    @abc.abstractmethod
    def history(self, coin: str) -> list[dict[str, Any]]:
        """Promotions of ``coin``, oldest first."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileTableRegistry(ModelRegistry):
    def __init__(self, root: str | Path, engine: sa.Engine) -> None:
        self.root = Path(root)
        self.engine = engine
        META.create_all(engine, checkfirst=True)

    # ---------------------------------------------------------------------------------------------- files
    def _dir(self, stage: str, coin: str) -> Path:
        if not coin.isalnum():
            raise RegistryError(f"coin {coin!r}: letters and digits only")
        return self.root / stage / coin

    def _write_version(self, target: Path, files: dict[str, bytes], manifest: dict[str, Any]) -> None:
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.mkdir(parents=True)
        try:
            for name, data in files.items():
                (tmp / name).write_bytes(data)
            (tmp / "manifest.json").write_text(json.dumps(manifest, sort_keys=True, indent=1, default=str))
            for p in tmp.iterdir():
                with open(p, "rb") as fh:
                    os.fsync(fh.fileno())
            os.rename(tmp, target)  # atomic: the version directory appears complete or not at all
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _read_verified(self, path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
        """A version's manifest and files, each file read once and checked against its sha256."""
        man = json.loads((path / "manifest.json").read_text())
        files = {name: (path / name).read_bytes() for name in man["files"]}
        for name, digest in man["files"].items():
            if _sha(files[name]) != digest:
                raise RegistryError(f"{path}: {name} does not match its manifest")
        return dict(man), files

    def _verified(self, path: Path) -> dict[str, Any]:
        return self._read_verified(path)[0]

    # ---------------------------------------------------------------------------------------------- API
    def stage(self, coin: str, cohort: str, verdict: str, files: dict[str, bytes], info: dict[str, Any]) -> str:
        if "manifest.json" in files or any("/" in n or n.startswith(".") for n in files):
            raise RegistryError("file names must be plain, not manifest.json")
        with self.engine.connect() as conn:
            last = conn.execute(sa.select(sa.func.max(versions_t.c.created_ms)).where(versions_t.c.coin == coin)).scalar()
        now = max(int(time.time() * 1000), int(last or 0) + 1)  # strictly increasing per coin: "newest" is defined
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 1000))
        version = f"{stamp}.{now % 1000:03d}-{uuid.uuid4().hex[:8]}"
        manifest = {"coin": coin, "version": version, "cohort": cohort, "verdict": verdict, "created_ms": now,
                    "files": {n: _sha(d) for n, d in sorted(files.items())}, **info}
        target = self._dir("staging", coin) / version
        target.parent.mkdir(parents=True, exist_ok=True)
        self._write_version(target, files, manifest)
        with self.engine.begin() as conn:
            conn.execute(versions_t.insert().values(
                coin=coin, version=version, created_ms=now, cohort=cohort, verdict=verdict,
                manifest_sha256=_sha((target / "manifest.json").read_bytes())))
        return version

    def staged(self, coin: str) -> list[str]:
        """Staged versions, oldest first (by creation; a directory without its table row -- a crash between the
        two writes of :meth:`stage` -- is not a version)."""
        d = self._dir("staging", coin)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(versions_t.c.version).where(versions_t.c.coin == coin)
                                .order_by(versions_t.c.created_ms)).scalars().all()
        return [v for v in rows if (d / v).is_dir()]

    def _pointer(self, coin: str) -> str | None:
        p = self._dir("production", coin) / "CURRENT"
        if not p.exists():
            return None
        return p.read_text().strip() or None

    def _switch(self, coin: str, version: str) -> None:
        d = self._dir("production", coin)
        tmp = d / f".CURRENT.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with open(tmp, "w") as fh:
                fh.write(version + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, d / "CURRENT")  # the one atomic step that changes what production is
        finally:
            tmp.unlink(missing_ok=True)

    def _record(self, coin: str, old: str | None, new: str, reason: str, actor: str) -> dict[str, Any]:
        row = {"coin": coin, "from_version": old, "to_version": new, "at_ms": int(time.time() * 1000),
               "reason": reason, "actor": actor}
        with self.engine.begin() as conn:
            conn.execute(promotions_t.insert().values(**row))
        return row

    def _reconcile(self, coin: str) -> None:
        """Record a promotion that switched the pointer but crashed before its history row."""
        cur, hist = self._pointer(coin), self.history(coin)
        last = hist[-1]["to_version"] if hist else None
        if cur is not None and cur != last:
            self._record(coin, last, cur, "recovered: the pointer switched before the promotion was recorded",
                         "registry")

    def promote(self, coin: str, version: str | None, reason: str, actor: str) -> dict[str, Any]:
        self._reconcile(coin)
        staged = self.staged(coin)
        version = version or (staged[-1] if staged else None)
        if version is None or version not in staged:
            raise RegistryError(f"{coin}: no staged version {version!r} (staged: {staged[-5:]})")
        src, files = self._read_verified(self._dir("staging", coin) / version)
        dst = self._dir("production", coin) / version
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            self._write_version(dst, files, src)
        self._verified(dst)
        old = self._pointer(coin)
        if old == version:
            raise RegistryError(f"{coin}: {version} is already in production")
        self._switch(coin, version)
        return self._record(coin, old, version, reason, actor)

    def rollback(self, coin: str, reason: str, actor: str) -> dict[str, Any]:
        """Production goes back to the version it held before the current one was *promoted* (rollbacks are
        skipped when walking back: A -> B -> C, rollback to B, rollback again to A -- never back to C)."""
        self._reconcile(coin)
        old, prev = self._pointer(coin), self.rollback_target(coin)
        if old is None or prev is None:
            raise RegistryError(f"{coin}: no earlier production version to roll back to")
        self._verified(self._dir("production", coin) / prev)
        self._switch(coin, prev)
        return self._record(coin, old, prev, f"rollback: {reason}", actor)

    def rollback_target(self, coin: str) -> str | None:
        """The version a rollback returns to: what production held before the current version was promoted
        (rollback rows skipped), or None."""
        old = self._pointer(coin)
        made = next((h for h in reversed(self.history(coin))
                     if h["to_version"] == old and not h["reason"].startswith("rollback:")), None)
        return made["from_version"] if made else None

    def production(self, coin: str) -> dict[str, Any] | None:
        got = self.production_files(coin)
        return None if got is None else got[0]

    def production_files(self, coin: str, version: str | None = None) -> tuple[dict[str, Any], dict[str, bytes]] | None:
        """The manifest and files (verified against the manifest) of the production version, or of ``version``
        when it was ever production (its copy stays under production/<COIN>/); None when there is none."""
        cur = version or self._pointer(coin)
        if cur is None:
            return None
        d = self._dir("production", coin) / cur
        if not (d / "manifest.json").exists():
            return None
        return self._read_verified(d)

    def staged_manifest(self, coin: str, version: str) -> dict[str, Any]:
        return self._verified(self._dir("staging", coin) / version)

    def promoted(self, coin: str) -> set[str]:
        """Versions that were ever production (a rolled-back version is not promoted again by the sensor)."""
        self._reconcile(coin)
        return {h["to_version"] for h in self.history(coin)}

    def history(self, coin: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(promotions_t).where(promotions_t.c.coin == coin)
                                .order_by(promotions_t.c.id)).mappings().all()
        return [dict(r) for r in rows]
