"""Experiment tracking at the cohort level (resources/tracking.py writes each run's manifest file), in the market
store's database (SQLite or PostgreSQL): cohorts, what each coin of a cohort ran on, and the trial ledger the
deflated Sharpe ratio needs.

* ``experiment_cohorts`` — one row per launch: id, when, the command and its arguments, git commit and dirty flag.
* ``experiment_coins`` — per (cohort, coin): preset, resolved config, data fingerprints (research rows before
  ``holdout_start``; the holdout rows separately), seeds, artifact hashes.
* ``trial_ledger`` — per study: trials run, by state, and holdout evaluations. The total number of trials ever
  run per coin and model family (abandoned studies included: their rows stay) is :meth:`Tracker.total_trials`.

Every write is one transaction and idempotent (a re-run replaces its own row, never duplicates it).
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa

from resources.tracking import git_commit

__all__ = ["Tracker"]

META = sa.MetaData()
cohorts = sa.Table(
    "experiment_cohorts", META,
    sa.Column("cohort", sa.String(128), primary_key=True),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("command", sa.Text, nullable=False),
    sa.Column("args_json", sa.Text, nullable=False),
    sa.Column("git_commit", sa.String(64), nullable=False),
    sa.Column("git_dirty", sa.Boolean, nullable=False),
)
coins = sa.Table(
    "experiment_coins", META,
    sa.Column("cohort", sa.String(128), primary_key=True),
    sa.Column("coin", sa.String(16), primary_key=True),
    sa.Column("preset", sa.String(64), nullable=False),
    sa.Column("config_json", sa.Text, nullable=False),
    sa.Column("data_fingerprint", sa.String(64), nullable=False),
    sa.Column("holdout_fingerprint", sa.String(64), nullable=True),
    sa.Column("seeds_json", sa.Text, nullable=False),
    sa.Column("artifacts_json", sa.Text, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)
ledger = sa.Table(
    "trial_ledger", META,
    sa.Column("study", sa.String(200), primary_key=True),
    sa.Column("coin", sa.String(16), nullable=False),
    sa.Column("model_family", sa.String(64), nullable=False),
    sa.Column("cohort", sa.String(128), nullable=False),
    sa.Column("trials", sa.Integer, nullable=False),
    sa.Column("complete", sa.Integer, nullable=False),
    sa.Column("pruned", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False),
    sa.Column("holdout_evaluations", sa.Integer, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)


def _now() -> int:
    return int(time.time() * 1000)


class Tracker:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        META.create_all(engine, checkfirst=True)

    def _replace(self, table: sa.Table, key: dict[str, Any], row: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            cond = sa.and_(*(table.c[k] == v for k, v in key.items()))
            conn.execute(table.delete().where(cond))
            conn.execute(table.insert().values(**key, **row))

    def record_cohort(self, cohort: str, command: str, args: dict[str, Any]) -> None:
        """The launch's row; a resumed launch keeps the first creation time."""
        head = git_commit()
        commit, dirty = head.removesuffix("-dirty"), head.endswith("-dirty")
        with self.engine.connect() as conn:
            old = conn.execute(sa.select(cohorts.c.created_ms).where(cohorts.c.cohort == cohort)).scalar()
        self._replace(cohorts, {"cohort": cohort}, {"created_ms": old or _now(), "command": command,
                                                    "args_json": json.dumps(args, sort_keys=True, default=str),
                                                    "git_commit": commit, "git_dirty": dirty})

    def record_coin(self, cohort: str, coin: str, preset: str, config: dict[str, Any], data_fingerprint: str,
                    seeds: dict[str, Any], artifacts: dict[str, str], holdout_fingerprint: str | None = None) -> None:
        with self.engine.connect() as conn:
            old = conn.execute(sa.select(coins).where((coins.c.cohort == cohort) & (coins.c.coin == coin))).first()
        merged = {**(json.loads(old.artifacts_json) if old else {}), **artifacts}
        hf = holdout_fingerprint if holdout_fingerprint is not None else (old.holdout_fingerprint if old else None)
        self._replace(coins, {"cohort": cohort, "coin": coin}, {
            "preset": preset, "config_json": json.dumps(config, sort_keys=True, default=str),
            "data_fingerprint": data_fingerprint, "holdout_fingerprint": hf,
            "seeds_json": json.dumps(seeds, sort_keys=True), "artifacts_json": json.dumps(merged, sort_keys=True),
            "updated_ms": _now()})

    def record_study(self, study: str, coin: str, model_family: str, cohort: str, counts: dict[str, int],
                     holdout_evaluations: int | None = None) -> None:
        with self.engine.connect() as conn:
            old = conn.execute(sa.select(ledger.c.holdout_evaluations).where(ledger.c.study == study)).scalar()
        self._replace(ledger, {"study": study}, {
            "coin": coin, "model_family": model_family, "cohort": cohort, "trials": int(counts.get("trials", 0)),
            "complete": int(counts.get("complete", 0)), "pruned": int(counts.get("pruned", 0)),
            "failed": int(counts.get("failed", 0)),
            "holdout_evaluations": int(holdout_evaluations if holdout_evaluations is not None else (old or 0)),
            "updated_ms": _now()})

    def holdout_evaluations(self, study: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(ledger.c.holdout_evaluations).where(ledger.c.study == study)).scalar()
                       or 0)

    def total_trials(self, coin: str, model_family: str | None = None) -> int:
        """Trials ever run for ``coin`` (and family), every study and state, plus holdout evaluations."""
        q = sa.select(sa.func.coalesce(sa.func.sum(ledger.c.trials + ledger.c.holdout_evaluations), 0)).where(
            ledger.c.coin == coin)
        if model_family is not None:
            q = q.where(ledger.c.model_family == model_family)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def cohorts(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(cohorts).order_by(cohorts.c.created_ms.desc())).mappings().all()
            per = conn.execute(sa.select(coins.c.cohort, coins.c.coin, coins.c.preset, coins.c.artifacts_json)
                               .order_by(coins.c.coin)).mappings().all()
        by: dict[str, list[dict[str, Any]]] = {}
        for r in per:
            by.setdefault(r["cohort"], []).append(dict(r))
        return [{**dict(r), "coins": by.get(r["cohort"], [])} for r in rows]

    def coin_record(self, cohort: str, coin: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(coins).where((coins.c.cohort == cohort) & (coins.c.coin == coin))).mappings().first()
        return dict(r) if r else None
