"""Evidence rebuilt from a finished study: it reproduces the study's own figures, from cache only (no refit)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.core.optimize.study_worker import build_inputs, make_data

TRIALS = 16


@dataclass
class Finished:
    inputs: Any
    study: Any
    cache_dir: Path


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    from cryptoalgo_core.optimize.cache import PredictionCache
    from cryptoalgo_core.optimize.study import open_storage, run_study

    root = tmp_path_factory.mktemp("evidence")
    inp = build_inputs()
    study = run_study(make_data(inp), inp.preset, TRIALS, open_storage(root / "s.journal"), "s",
                      PredictionCache(root / "cache"))
    return Finished(inp, study, root / "cache")


def _complete(study: Any) -> list[dict[str, Any]]:
    return [{"number": t.number, "params": t.params, "objective": t.value, "terms": t.user_attrs["terms"]}
            for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]


def test_daily_returns_compound_to_the_curve() -> None:
    from cryptoalgo_core.robustness.evidence import daily_returns
    from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS

    ts = np.arange(60, dtype=np.int64) * HOUR_MS + 5 * DAY_MS + 12 * HOUR_MS  # starts at noon: a partial day
    eq = np.linspace(1.0, 1.3, 60)
    d = daily_returns(ts, eq)
    assert d["day"].tolist() == [5 * DAY_MS, 6 * DAY_MS, 7 * DAY_MS]
    assert np.isclose(np.prod(1 + d["ret"].to_numpy()), eq[-1])
    assert np.isclose(d["ret"].iloc[0], eq[11] - 1.0)  # the first day's last mark (23:00) over 1.0


def test_track_reproduces_the_study_from_cache_without_refitting(finished: Finished) -> None:
    from cryptoalgo_core.optimize.cache import PredictionCache
    from cryptoalgo_core.robustness.evidence import candidate_track, trial_returns

    rows = _complete(finished.study)
    best = max(rows, key=lambda r: r["objective"])
    data = make_data(finished.inputs)  # a fresh StudyData: fits counts every model trained from here on
    cache = PredictionCache(finished.cache_dir)
    track = candidate_track(data, best["params"], cache, finished.inputs.preset.objective)
    assert track.terms["objective"] == pytest.approx(best["objective"], abs=1e-9)
    assert track.terms["trades"] == best["terms"]["trades"] == len(track.trades)
    assert [f["trades"] for f in track.folds] == [f["trades"] for f in
                                                 next(t for t in finished.study.get_trials(deepcopy=False)
                                                      if t.number == best["number"]).user_attrs["folds"]]
    # the daily track compounds to the folds' returns
    for f in track.folds:
        r = track.daily.loc[track.daily["fold"] == f["fold"], "ret"].to_numpy()
        assert np.isclose(np.prod(1 + r) - 1, f["return"], atol=1e-9)
    assert set(track.trades["trend"]) <= {"down", "chop", "up", "n/a"}
    assert (track.exposure["side"] != 0).sum() == int(track.trades["hold_hours"].sum())
    mat, numbers = trial_returns(data, rows, cache, max_trials=len(rows))
    assert mat.shape == (len(track.daily), len(rows)) and numbers == sorted(r["number"] for r in rows)
    j = numbers.index(best["number"])
    assert np.allclose(mat[:, j], track.daily["ret"].to_numpy())
    assert data.fits == 0  # everything came from the study's cache
    assert isinstance(track.calibration, pd.DataFrame) and track.calibration["n"].sum() > 0


def test_trial_thinning_spreads_over_the_study_not_the_best(finished: Finished) -> None:
    from cryptoalgo_core.optimize.cache import PredictionCache
    from cryptoalgo_core.robustness.evidence import trial_returns

    rows = _complete(finished.study)
    _mat, numbers = trial_returns(make_data(finished.inputs), rows, PredictionCache(finished.cache_dir), 3)
    ordered = sorted(r["number"] for r in rows)
    best3 = sorted(r["number"] for r in sorted(rows, key=lambda r: -r["objective"])[:3])
    assert len(numbers) == 3 and numbers[0] == ordered[0] and numbers[-1] == ordered[-1]
    assert numbers == sorted(numbers) and ordered[0] < numbers[1] < ordered[-1]
    assert numbers != best3 or ordered[:1] + ordered[-1:] == best3[:1] + best3[-1:]


def test_neighbourhood_moves_only_strategy_parameters_within_the_radius(finished: Finished) -> None:
    from cryptoalgo_core.optimize.cache import PredictionCache
    from cryptoalgo_core.optimize.space import MODEL_SECTIONS, PARAMS
    from cryptoalgo_core.robustness.evidence import neighbourhood

    preset = finished.inputs.preset
    best = max(_complete(finished.study), key=lambda r: r["objective"])
    data = make_data(finished.inputs)
    nb = neighbourhood(data, preset, best["params"], PredictionCache(finished.cache_dir), 6, 0.1, seed=3)
    assert len(nb) == 6 and data.fits == 0
    for n in nb:
        for k, v in n["params"].items():
            r = preset.space[k]
            if PARAMS[k][0] in MODEL_SECTIONS or r.categorical:
                assert v == best["params"][k]
            else:
                assert r.low <= v <= r.high
                assert abs(v - best["params"][k]) <= 0.1 * (r.high - r.low) + (r.step or 0) + 1e-12
    # a vanishing radius is the chosen point itself: every neighbour has its objective
    same = neighbourhood(data, preset, best["params"], PredictionCache(finished.cache_dir), 3, 1e-12, seed=3)
    assert [n["objective"] for n in same] == pytest.approx([best["objective"]] * 3)
    again = neighbourhood(data, preset, best["params"], PredictionCache(finished.cache_dir), 6, 0.1, seed=3)
    assert [n["params"] for n in again] == [n["params"] for n in nb]
