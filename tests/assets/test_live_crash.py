"""A paper-trading process killed with SIGKILL in the middle of its ticks and restarted ends exactly where an
uninterrupted run ends: the same decisions, the same fills, one row per tick (every write is one transaction and
every step is idempotent)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from cryptoalgo_core.timeutil import HOUR_MS
from resources.paper import PaperStore
from resources.store import MarketStore
from tests.assets import live_world as lw

REPO = Path(__file__).resolve().parents[2]
TICKS = 30


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return lw.build(tmp_path_factory.mktemp("crash_base"))


def _world(base: dict, tmp: Path) -> dict:
    w = lw.copy(base, tmp)
    lw.stage(w, "ETH")
    res = lw.resources(w)
    assert lw.promote_by_sensor(w, dg.DagsterInstance.ephemeral(), res) == ["ETH"]
    return w


def _state(w: dict) -> tuple:
    paper = PaperStore(MarketStore(w["url"]).engine)
    sig = paper.signals("ETH")
    assert sig["model_version"].nunique() == 1
    sig = sig.drop(columns=["tick_ms", "model_version"])  # the version id differs between the two worlds
    fills = paper.fills("ETH")
    ticks = paper.ticks("ETH")[["tick_ms", "state", "equity"]]
    return sig, fills, ticks


def test_sigkill_mid_tick_then_restart_is_consistent(base: dict, tmp_path: Path) -> None:
    ticks = [base["cut"] + k * HOUR_MS for k in range(1, TICKS + 1)]
    ref = _world(base, tmp_path / "ref")
    inst = dg.DagsterInstance.ephemeral()
    for t in ticks:
        lw.tick(ref, "ETH", t, inst, lw.resources(ref))
    want = _state(ref)
    assert len(want[0]) == TICKS and len(want[2]) == TICKS

    w = _world(base, tmp_path / "crash")
    arg = json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in w.items() if k != "files"} |
                     {"coin": "ETH", "ticks": ticks})
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    child = subprocess.Popen([sys.executable, "-m", "tests.assets.live_tick_worker", arg], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    paper = PaperStore(MarketStore(w["url"]).engine)
    deadline = time.monotonic() + 240
    while len(paper.ticks("ETH")) < 3 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    time.sleep(random.Random(7).uniform(0.05, 0.4))  # somewhere inside a later tick
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    done = len(paper.ticks("ETH"))
    assert 3 <= done < TICKS, f"the child was killed after {done} ticks: not mid-run"
    inst = dg.DagsterInstance.ephemeral()
    for t in ticks:  # the restart re-runs every tick, the finished ones included
        lw.tick(w, "ETH", t, inst, lw.resources(w))
    got = _state(w)
    for a, b in zip(got, want, strict=True):
        assert a.reset_index(drop=True).equals(b.reset_index(drop=True))
