"""Paper-trading state in the store's database (SQLite or PostgreSQL): the signal log, the fills, the coin's
switch state and its history, and one row per tick.

Every write is one transaction and idempotent:
- ``paper_signals`` is append-only, keyed (coin, ts): a bar decided once is never decided again, so a re-run
  (or a run killed mid-tick and restarted) cannot change or double a decision.
- ``paper_fills`` is keyed (coin, segment, entry_ts): the book recomputes its trades each tick and writes them
  here; a closed fill is final -- a recomputation that disagrees (the stored bars or a funding print changed
  after the fill) is reported, never rewritten into history -- and an open one is updated in place until it
  closes.
- ``paper_state`` holds one row per coin (ACTIVE / REDUCING / HALTED, the segment start, the model version);
  ``paper_events`` records every change with its reason and actor.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pandas as pd
import sqlalchemy as sa

__all__ = ["PaperStateError", "PaperStore"]

META = sa.MetaData()
signals_t = sa.Table(
    "paper_signals", META,
    sa.Column("coin", sa.String(16), primary_key=True), sa.Column("ts", sa.BigInteger, primary_key=True),
    sa.Column("p_dir", sa.Float), sa.Column("p_up", sa.Float), sa.Column("p_down", sa.Float),
    sa.Column("signal", sa.Integer, nullable=False), sa.Column("sigma", sa.Float), sa.Column("size", sa.Float),
    sa.Column("scale", sa.Float, nullable=False), sa.Column("state", sa.String(16), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False), sa.Column("tick_ms", sa.BigInteger, nullable=False),
    sa.Column("note", sa.String(64), nullable=False, default=""),
)
fills_t = sa.Table(
    "paper_fills", META,
    sa.Column("coin", sa.String(16), primary_key=True), sa.Column("segment", sa.BigInteger, primary_key=True),
    sa.Column("entry_ts", sa.BigInteger, primary_key=True), sa.Column("status", sa.String(16), nullable=False),
    sa.Column("side", sa.Integer, nullable=False), sa.Column("size", sa.Float, nullable=False),
    sa.Column("entry_price", sa.Float, nullable=False), sa.Column("exit_ts", sa.BigInteger),
    sa.Column("exit_price", sa.Float), sa.Column("exit_reason", sa.String(16)), sa.Column("net", sa.Float),
    sa.Column("record", sa.Text, nullable=False),
)
state_t = sa.Table(
    "paper_state", META,
    sa.Column("coin", sa.String(16), primary_key=True), sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False), sa.Column("since_ms", sa.BigInteger, nullable=False),
    sa.Column("segment", sa.BigInteger, nullable=False), sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("halted_at", sa.BigInteger), sa.Column("last_tick_ms", sa.BigInteger),
)
events_t = sa.Table(
    "paper_events", META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True), sa.Column("coin", sa.String(16), nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False), sa.Column("from_state", sa.String(16)),
    sa.Column("to_state", sa.String(16), nullable=False), sa.Column("reason", sa.Text, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
)
ticks_t = sa.Table(
    "paper_ticks", META,
    sa.Column("coin", sa.String(16), primary_key=True), sa.Column("tick_ms", sa.BigInteger, primary_key=True),
    sa.Column("state", sa.String(16), nullable=False), sa.Column("equity", sa.Float, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
)


class PaperStateError(Exception):
    """The paper state is inconsistent or an operation is not allowed (e.g. enabling a coin that is not halted)."""


def _now() -> int:
    return int(time.time() * 1000)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v.item() if hasattr(v, "item") else v


class PaperStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        META.create_all(engine, checkfirst=True)

    # ------------------------------------------------------------------------------------------- state
    def state(self, coin: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(sa.select(state_t).where(state_t.c.coin == coin)).mappings().first()
        return dict(row) if row else None

    def start(self, coin: str, segment: int, version: str, reason: str, actor: str,
              keep_halt: bool = False) -> dict[str, Any]:
        """A new paper segment for ``coin`` at ``segment`` (ms) with ``version`` (a first start, a new production
        version, or an enable after a halt): flat and ACTIVE -- or, with ``keep_halt`` (a new version of a halted
        coin), still HALTED: only an explicit enable lifts a kill switch."""
        with self.engine.begin() as c:
            old = c.execute(sa.select(state_t).where(state_t.c.coin == coin)).mappings().first()
            halted = bool(keep_halt and old is not None and old["state"] == "HALTED")
            row = {"coin": coin, "state": "HALTED" if halted else "ACTIVE",
                   "reason": f"{reason}; still halted ({old['reason']})" if halted and old else reason,
                   "since_ms": _now(), "segment": segment, "model_version": version,
                   "halted_at": segment if halted else None, "last_tick_ms": old["last_tick_ms"] if old else None}
            if old:
                c.execute(state_t.update().where(state_t.c.coin == coin).values(**row))
            else:
                c.execute(state_t.insert().values(**row))
            c.execute(events_t.insert().values(coin=coin, at_ms=row["since_ms"], from_state=old["state"] if old else None,
                                               to_state=row["state"], reason=row["reason"], actor=actor))
        return row

    def set_state(self, coin: str, new: str, reason: str, actor: str, halted_at: int | None = None) -> bool:
        """Change the state (recorded in the history); False when it already was ``new``."""
        with self.engine.begin() as c:
            old = c.execute(sa.select(state_t).where(state_t.c.coin == coin)).mappings().first()
            if old is None:
                raise PaperStateError(f"{coin}: not paper trading")
            if old["state"] == new:
                return False
            vals: dict[str, Any] = {"state": new, "reason": reason, "since_ms": _now()}
            if new == "HALTED":
                vals["halted_at"] = halted_at
            c.execute(state_t.update().where(state_t.c.coin == coin).values(**vals))
            c.execute(events_t.insert().values(coin=coin, at_ms=vals["since_ms"], from_state=old["state"], to_state=new,
                                               reason=reason, actor=actor))
        return True

    def events(self, coin: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(events_t).order_by(events_t.c.id)
        if coin:
            q = q.where(events_t.c.coin == coin)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    # ----------------------------------------------------------------------------------------- signals
    def signals(self, coin: str, since: int | None = None) -> pd.DataFrame:
        q = sa.select(signals_t).where(signals_t.c.coin == coin).order_by(signals_t.c.ts)
        if since is not None:
            q = q.where(signals_t.c.ts >= since)
        with self.engine.connect() as c:
            rows = [dict(r) for r in c.execute(q).mappings()]
        cols = [col.name for col in signals_t.columns]
        out = pd.DataFrame(rows, columns=cols)
        for col in ("p_dir", "p_up", "p_down", "sigma", "size", "scale"):  # NULL (no prediction) -> NaN, float
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
        for col in ("ts", "signal", "tick_ms"):
            out[col] = out[col].astype("int64")
        out["note"] = out["note"].fillna("").astype(str)
        return out

    def last_signal_ts(self, coin: str) -> int | None:
        with self.engine.connect() as c:
            v = c.execute(sa.select(sa.func.max(signals_t.c.ts)).where(signals_t.c.coin == coin)).scalar()
        return None if v is None else int(v)

    def add_signals(self, coin: str, rows: pd.DataFrame, version: str, tick_ms: int) -> int:
        """Append the decisions of bars not decided yet (others are left as they were); returns rows added."""
        if rows.empty:
            return 0
        for attempt in (0, 1):  # a concurrent tick that inserted the same bars first wins; re-read and go on
            try:
                with self.engine.begin() as c:
                    have = {int(t) for t in c.execute(sa.select(signals_t.c.ts).where(
                        signals_t.c.coin == coin, signals_t.c.ts.in_([int(t) for t in rows["ts"]]))).scalars()}
                    new = [{"coin": coin, "model_version": version, "tick_ms": tick_ms,
                            "note": str(r.get("note", "") or ""),
                            **{k: _clean(r[k]) for k in ("ts", "p_dir", "p_up", "p_down", "signal", "sigma", "size",
                                                         "scale", "state")}}
                           for r in rows.to_dict("records") if int(r["ts"]) not in have]
                    if new:
                        c.execute(signals_t.insert(), new)
                return len(new)
            except sa.exc.IntegrityError:
                if attempt:
                    raise
        return 0

    # ------------------------------------------------------------------------------------------- fills
    def write_fills(self, coin: str, segment: int, trades: pd.DataFrame,
                    position: dict[str, Any] | None) -> tuple[int, list[str]]:
        """Record the book: closed trades (final once written) and the open position; (new closed fills, the
        closed fills the book now computes differently, explained)."""
        added, restated = 0, []
        with self.engine.begin() as c:
            have = {int(r["entry_ts"]): dict(r) for r in c.execute(sa.select(fills_t).where(
                fills_t.c.coin == coin, fills_t.c.segment == segment)).mappings()}
            for t in trades.to_dict("records") if len(trades) else []:
                rec = {k: _clean(v) for k, v in t.items()}
                vals = {"status": "closed", "side": int(rec["side"]), "size": float(rec["size"]),
                        "entry_price": float(rec["entry_price"]), "exit_ts": int(rec["exit_ts"]),
                        "exit_price": float(rec["exit_price"]), "exit_reason": str(rec["exit_reason"]),
                        "net": float(rec["net"]), "record": json.dumps(rec, sort_keys=True, default=str)}
                old = have.get(int(rec["entry_ts"]))
                if old is None:
                    c.execute(fills_t.insert().values(coin=coin, segment=segment, entry_ts=int(rec["entry_ts"]), **vals))
                    added += 1
                elif old["status"] != "closed":  # an open or closing position closes now
                    c.execute(fills_t.update().where(fills_t.c.coin == coin, fills_t.c.segment == segment,
                                                     fills_t.c.entry_ts == int(rec["entry_ts"])).values(**vals))
                    added += 1
                elif (old["exit_ts"], old["exit_reason"], old["side"]) != (vals["exit_ts"], vals["exit_reason"],
                                                                           vals["side"]) or not math.isclose(
                        old["net"], vals["net"], rel_tol=0, abs_tol=1e-12):
                    restated.append(f"the closed fill entered at {rec['entry_ts']} recomputes differently "
                                    f"({old['exit_reason']} {old['net']:.6f} -> {vals['exit_reason']} "
                                    f"{vals['net']:.6f}): the stored bars or funding changed after the fill; the "
                                    f"recorded fill stands")
            keep = {int(t) for t in trades["entry_ts"]} if len(trades) else set()
            if position is not None:
                keep.add(int(position["entry_ts"]))
            for ts, old in have.items():  # an open row the book no longer holds (the bars changed): void, not kept
                if old["status"] not in ("closed", "void") and ts not in keep:
                    c.execute(fills_t.update().where(fills_t.c.coin == coin, fills_t.c.segment == segment,
                                                     fills_t.c.entry_ts == ts).values(status="void"))
                    restated.append(f"the {old['status']} position entered at {ts} is no longer in the book (the "
                                    f"stored bars changed); voided")
            if position is not None:
                vals = {"status": position["status"], "side": int(position["side"]), "size": float(position["size"]),
                        "entry_price": float(position["entry_price"]), "exit_ts": None, "exit_price": None,
                        "exit_reason": None, "net": None, "record": json.dumps(position, sort_keys=True, default=str)}
                old = have.get(int(position["entry_ts"]))
                if old is None:
                    c.execute(fills_t.insert().values(coin=coin, segment=segment, entry_ts=int(position["entry_ts"]),
                                                      **vals))
                elif old["status"] != "closed":
                    c.execute(fills_t.update().where(fills_t.c.coin == coin, fills_t.c.segment == segment,
                                                     fills_t.c.entry_ts == int(position["entry_ts"])).values(**vals))
        return added, restated

    def fills(self, coin: str, segment: int | None = None, status: str | None = None) -> pd.DataFrame:
        q = sa.select(fills_t).where(fills_t.c.coin == coin).order_by(fills_t.c.segment, fills_t.c.entry_ts)
        if segment is not None:
            q = q.where(fills_t.c.segment == segment)
        if status is not None:
            q = q.where(fills_t.c.status == status)
        with self.engine.connect() as c:
            rows = [dict(r) for r in c.execute(q).mappings()]
        return pd.DataFrame(rows, columns=[col.name for col in fills_t.columns])

    # ------------------------------------------------------------------------------------------- ticks
    def record_tick(self, coin: str, tick_ms: int, state: str, equity: float, summary: dict[str, Any]) -> None:
        with self.engine.begin() as c:
            c.execute(ticks_t.delete().where(ticks_t.c.coin == coin, ticks_t.c.tick_ms == tick_ms))
            c.execute(ticks_t.insert().values(coin=coin, tick_ms=tick_ms, state=state, equity=float(equity),
                                              summary=json.dumps(summary, sort_keys=True, default=str)))
            c.execute(state_t.update().where(state_t.c.coin == coin, sa.or_(
                state_t.c.last_tick_ms.is_(None), state_t.c.last_tick_ms < tick_ms)).values(last_tick_ms=tick_ms))

    def enable(self, coin: str, segment: int, reason: str, actor: str) -> dict[str, Any]:
        """Re-enable a HALTED coin explicitly: a new flat segment from ``segment``."""
        st = self.state(coin)
        if st is None:
            raise PaperStateError(f"{coin}: not paper trading")
        if st["state"] != "HALTED":
            raise PaperStateError(f"{coin}: is {st['state']}, not HALTED; nothing to enable")
        f = self.fills(coin, int(st["segment"]))
        if len(f) and f["status"].isin(["open", "closing"]).any():
            raise PaperStateError(f"{coin}: the halted position closes at the next bar's open; enable after the next "
                                  f"tick")
        return self.start(coin, segment, st["model_version"], f"enabled: {reason}", actor)

    def ticks(self, coin: str) -> pd.DataFrame:
        with self.engine.connect() as c:
            rows = [dict(r) for r in c.execute(sa.select(ticks_t).where(ticks_t.c.coin == coin)
                                               .order_by(ticks_t.c.tick_ms)).mappings()]
        return pd.DataFrame(rows, columns=[col.name for col in ticks_t.columns])
