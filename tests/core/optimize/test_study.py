"""The Optuna study core (cryptoalgo_core/optimize/study.py) without Dagster, on the embedded synthetic market:
reproducibility, holdout isolation, the prediction cache, fold-by-fold pruning, resume (also after SIGKILL) and
two worker processes on one PostgreSQL study."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cryptoalgo_core.optimize.cache import PredictionCache
from cryptoalgo_core.optimize.evaluate import fingerprint
from cryptoalgo_core.optimize.objective import FoldResult, score
from cryptoalgo_core.optimize.space import MODEL_SECTIONS, PARAMS, ParamRange, apply_params
from cryptoalgo_core.optimize.study import StudyData, open_storage, run_study, study_summary
from tests.core.optimize.study_worker import (
    BASELINE_TRIALS,
    COIN,
    before,
    build_inputs,
    make_data,
    tamper_holdout,
)

FINISHED = ("COMPLETE", "PRUNED")


# --- helpers -------------------------------------------------------------------------------------------------


def trials_of(study: Any) -> list[Any]:
    return sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)


def finished(study: Any) -> list[Any]:
    return [t for t in trials_of(study) if t.state.name in FINISHED]


def snapshot(study: Any) -> list[str]:
    """Every trial as canonical JSON (number, state, params, value, intermediate values, user attrs); JSON keeps
    floats exact (repr) and makes NaN comparable."""
    return [json.dumps({"number": t.number, "state": t.state.name, "params": t.params, "value": t.value,
                        "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
                        "user_attrs": t.user_attrs}, sort_keys=True) for t in trials_of(study)]


def chosen_params(study: Any) -> dict[str, Any]:
    best = study_summary(study, 3)["best"]
    assert best is not None, "no complete trial"
    return best["params"]


def fold_results(trial: Any) -> list[FoldResult]:
    return [FoldResult(**{k: v for k, v in d.items() if k != "net_bps"}) for d in trial.user_attrs["folds"]]


def model_combinations(space: dict[str, ParamRange]) -> int:
    """Distinct (label, model) parameter combinations of a space whose label/model parameters are categorical."""
    n = 1
    for name, r in space.items():
        if PARAMS[name][0] in MODEL_SECTIONS:
            assert r.choices is not None, f"{name} is not categorical: the fits are unbounded"
            n *= len(r.choices)
    return n


def fitted_keys(study: Any, spec: Any) -> set[tuple[Any, Any, int]]:
    """(label params, model params, fold) of every fold any trial evaluated: what the cache must fit once each."""
    keys = set()
    for t in study.get_trials(deepcopy=False):
        s = apply_params(spec, t.params)
        keys |= {(s.label, s.profile.model, d["fold"]) for d in t.user_attrs.get("folds", [])}
    return keys


def read_trials(storage: Any, name: str) -> list[Any] | None:
    """The study's trials in ``storage`` (None while the study does not exist yet)."""
    try:
        sid = storage.get_study_id_from_name(name)
    except KeyError:
        return None
    return sorted(storage.get_all_trials(sid, deepcopy=False), key=lambda t: t.number)


def states(trials: list[Any]) -> dict[str, int]:
    return pd.Series([t.state.name for t in trials], dtype=object).value_counts().to_dict()


@pytest.fixture(scope="module")
def rebuilt_inputs() -> Any:
    """The study inputs built a second time, from scratch."""
    return build_inputs()


def one_close_changed(inp: Any) -> pd.DataFrame:
    ohlcv = inp.ohlcv.copy()
    i = len(ohlcv) // 2
    assert ohlcv["ts"].iloc[i] < inp.holdout_start
    ohlcv.loc[i, "close"] = ohlcv.loc[i, "close"] * (1 + 1e-9)
    return ohlcv


# --- 1. reproducible -----------------------------------------------------------------------------------------


def test_fingerprint_is_stable_and_sees_one_changed_row(study_inputs: Any, rebuilt_inputs: Any) -> None:
    inp = study_inputs
    fp = inp.fingerprint()
    assert fp == fingerprint(inp.features.copy(), inp.ohlcv.copy(), inp.funding.copy())
    assert fp == rebuilt_inputs.fingerprint(), "a rebuild of the same inputs has another fingerprint"
    assert fingerprint(inp.features, one_close_changed(inp), inp.funding) != fp
    feats = inp.features.copy()
    feats.loc[len(feats) // 3, inp.names[0]] += 1e-9
    assert fingerprint(feats, inp.ohlcv, inp.funding) != fp
    funding = inp.funding.copy()
    funding.loc[len(funding) // 2, "rate"] *= -1
    assert fingerprint(inp.features, inp.ohlcv, funding) != fp
    assert fingerprint(inp.features, inp.ohlcv, inp.funding.iloc[:-1]) != fp


def test_same_inputs_and_seed_reproduce_the_study(baseline: Any, rebuilt_inputs: Any, tmp_path: Path) -> None:
    data = make_data(rebuilt_inputs)
    study = run_study(data, rebuilt_inputs.preset, BASELINE_TRIALS, open_storage(tmp_path / "again.journal"),
                      "again", PredictionCache())
    first, again = snapshot(baseline.study), snapshot(study)
    assert len(first) == BASELINE_TRIALS
    assert len({json.dumps(t.params, sort_keys=True) for t in trials_of(study)}) == BASELINE_TRIALS
    assert again == first
    assert chosen_params(study) == chosen_params(baseline.study)
    assert study.user_attrs == baseline.study.user_attrs
    assert study.user_attrs["data_fingerprint"] == rebuilt_inputs.fingerprint()
    assert study.user_attrs["holdout_start"] == rebuilt_inputs.holdout_start
    assert study.user_attrs["folds"] == [[f.test_start, f.test_end] for f in data.folds]


# --- 2. the holdout is not read ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tampered(study_inputs: Any) -> Any:
    """The market with every row at or after holdout_start changed (the last bar kept: it fixes the holdout)."""
    inp = study_inputs
    hs = inp.holdout_start
    tp = tamper_holdout(inp.panel, hs)
    for kind in ("ohlcv", "funding", "open_interest"):
        for coin, orig in getattr(inp.panel, kind).items():
            new = getattr(tp, kind)[coin]
            pd.testing.assert_frame_equal(new[new["ts"] < hs].reset_index(drop=True),
                                          orig[orig["ts"] < hs].reset_index(drop=True))
            o, n = orig[orig["ts"] >= hs].set_index("ts"), new[new["ts"] >= hs].set_index("ts")
            assert len(n) < len(o), f"{kind} {coin}: no holdout row deleted"
            assert n.isna().any(axis=1).any(), f"{kind} {coin}: no NaN in the holdout"
            kept = n.dropna()
            assert not (kept == o.loc[kept.index]).any(axis=None), f"{kind} {coin}: a holdout value unchanged"
    assert int(tp.ohlcv[COIN]["ts"].max()) == int(inp.panel.ohlcv[COIN]["ts"].max())
    return tp


def test_changed_holdout_leaves_the_study_unchanged(baseline: Any, tampered: Any, tmp_path: Path) -> None:
    inp = build_inputs(tampered)  # built the way the study stage builds it, holdout derived from the data
    ref = baseline.inputs
    assert inp.holdout_start == ref.holdout_start
    assert inp.names == ref.names
    pd.testing.assert_frame_equal(inp.features, ref.features)
    assert inp.fingerprint() == ref.fingerprint()
    study = run_study(make_data(inp), inp.preset, BASELINE_TRIALS, open_storage(tmp_path / "t.journal"), "t",
                      PredictionCache())
    assert snapshot(study) == snapshot(baseline.study)
    assert chosen_params(study) == chosen_params(baseline.study)


def test_prepare_drops_rows_at_or_after_the_holdout(baseline: Any, tampered: Any, tmp_path: Path) -> None:
    """StudyData.prepare given frames running into the (changed) holdout keeps only the research rows."""
    from cryptoalgo_core.features.plan import feature_plan

    ref = baseline.inputs
    hs = ref.holdout_start
    plan = feature_plan(before(tampered, hs), COIN, ref.spec.features, (None, hs))
    full_feats = plan.build(tampered)  # features over the whole tampered market, holdout included
    assert int(full_feats["ts"].max()) >= hs
    pd.testing.assert_frame_equal(full_feats[full_feats["ts"] < hs].reset_index(drop=True), ref.features,
                                  obj="causal features before the holdout")
    full_ohlcv, full_funding = tampered.ohlcv[COIN], tampered.funding[COIN]
    assert int(full_ohlcv["ts"].max()) >= hs and int(full_funding["ts"].max()) >= hs
    data = StudyData.prepare(COIN, ref.spec, full_feats, ref.names, full_ohlcv, full_funding, hs, ref.preset,
                             ref.fingerprint())
    filtered = make_data(ref)
    pd.testing.assert_frame_equal(data.features, filtered.features)
    pd.testing.assert_frame_equal(data.ohlcv, filtered.ohlcv)
    assert int(data.ohlcv["ts"].max()) < hs and int(data.features["ts"].max()) < hs
    assert data.folds == filtered.folds and data.wf == filtered.wf
    assert max(f.test_end for f in data.folds) <= hs
    for col in ("ts", "open", "high", "low", "close", "volume", "funding", "rv", "mom", "trend"):
        np.testing.assert_array_equal(getattr(data.market, col), getattr(filtered.market, col), err_msg=col)
    assert int(data.market.ts.max()) < hs
    study = run_study(data, ref.preset, BASELINE_TRIALS, open_storage(tmp_path / "full.journal"), "full",
                      PredictionCache())
    assert snapshot(study) == snapshot(baseline.study)


def test_prepare_refuses_too_little_research_data(study_inputs: Any) -> None:
    inp = study_inputs
    first = int(inp.features["ts"].min())
    early = first + (inp.preset.min_train_days + 1) * 24 * 3600 * 1000  # room for 1 day, the preset has 3 folds
    with pytest.raises(ValueError, match="cannot hold"):
        StudyData.prepare(COIN, inp.spec, inp.features, inp.names, inp.ohlcv, inp.funding, early, inp.preset, "x")
    with pytest.raises(ValueError, match="no feature rows"):
        StudyData.prepare(COIN, inp.spec, inp.features, inp.names, inp.ohlcv, inp.funding, first, inp.preset, "x")


# --- 3. prediction cache -------------------------------------------------------------------------------------


def test_fits_once_per_label_model_and_fold(baseline: Any) -> None:
    b = baseline
    n_folds = len(b.data.folds)
    n_trials = len(finished(b.study))
    assert n_trials == BASELINE_TRIALS
    combos = model_combinations(b.inputs.preset.space)
    assert b.data.fits == len(fitted_keys(b.study, b.inputs.spec))
    assert 0 < b.data.fits <= combos * n_folds
    assert b.data.fits < n_trials * n_folds
    assert b.cache.misses == b.data.fits
    assert len(list(b.cache_dir.glob("*.parquet"))) == b.data.fits
    assert not list(b.cache_dir.glob("*.tmp"))


def test_fits_with_two_label_horizons(baseline: Any, tmp_path: Path) -> None:
    """A space with two label horizons: one fit per (label, model, fold) evaluated and not yet in the cache (a
    copy of the baseline's, which holds the 12 h label's folds)."""
    inp = baseline.inputs
    preset = replace(inp.preset, space={**inp.preset.space, "label_forward_hours": ParamRange(choices=(12, 24))})
    cached = fitted_keys(baseline.study, inp.spec)
    shutil.copytree(baseline.cache_dir, tmp_path / "cache")
    data = make_data(inp, preset)
    study = run_study(data, preset, 12, open_storage(tmp_path / "two.journal"), "two",
                      PredictionCache(tmp_path / "cache"))
    keys = fitted_keys(study, inp.spec)
    assert {k[0].forward_hours for k in keys} == {12, 24}, "the sampler never tried one of the horizons"
    assert {k[0].forward_hours for k in cached} == {12}
    assert data.fits == len(keys - cached) > 0
    assert len(list((tmp_path / "cache").glob("*.parquet"))) == len(keys | cached)
    assert data.fits <= model_combinations(preset.space) * len(data.folds) == 2 * len(data.folds)
    assert data.fits < len(finished(study)) * len(data.folds)


def test_disk_cache_makes_a_rerun_fit_nothing(baseline: Any, tmp_path: Path) -> None:
    data = make_data(baseline.inputs)  # a new StudyData: fits starts at 0
    cache = PredictionCache(baseline.cache_dir)  # a new process's cache: empty memory, warm directory
    study = run_study(data, baseline.inputs.preset, BASELINE_TRIALS, open_storage(tmp_path / "warm.journal"),
                      "warm", cache)
    assert data.fits == 0
    assert cache.misses == 0 and cache.hits > 0
    assert [t.value for t in trials_of(study)] == [t.value for t in trials_of(baseline.study)]
    assert snapshot(study) == snapshot(baseline.study)


def test_cached_and_fresh_predictions_give_the_same_fold_results(baseline: Any) -> None:
    b = baseline
    complete = [t for t in trials_of(b.study) if t.state.name == "COMPLETE"]
    for t in complete[-1:]:
        fits = b.data.fits
        warm, warm_pruned = b.data.evaluate(t.params, b.cache)
        assert b.data.fits == fits, "a cached evaluation refitted"
        fresh = make_data(b.inputs)
        cold, cold_pruned = fresh.evaluate(t.params, PredictionCache())
        assert fresh.fits == len(fresh.folds)
        assert not warm_pruned and not cold_pruned
        assert [f.as_dict() for f in warm] == [f.as_dict() for f in cold] == t.user_attrs["folds"]
        assert score(cold, b.inputs.preset.objective)["objective"] == t.value


# --- 4. pruning ----------------------------------------------------------------------------------------------


def test_pruning_happens_fold_by_fold(baseline: Any) -> None:
    """The quick preset prunes within 15 trials. Optuna's MedianPruner (n_warmup_steps=1) prunes a trial at fold
    k >= 1 when at least prune_startup_trials trials are complete and the trial's BEST running objective over
    folds 0..k is below the median of the complete trials' running objective at fold k."""
    b = baseline
    preset = b.inputs.preset
    last = len(b.data.folds) - 1
    trials = finished(b.study)
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned, "no trial was pruned"
    assert any(t.state.name == "COMPLETE" for t in trials)
    for t in trials:
        folds = fold_results(t)
        steps = sorted(t.intermediate_values)
        assert steps == [f.fold for f in folds] == list(range(len(folds))), t.number
        for k in steps:  # the running objective of the folds so far, reported after each fold
            assert t.intermediate_values[k] == score(folds[:k + 1], preset.objective)["objective"]
        if t.state.name == "PRUNED":
            k = t.user_attrs["pruned_after_fold"]
            assert 1 <= k < last and steps[-1] == k, t.number  # stopped right after the fold it was pruned at
            assert t.user_attrs["terms"]["folds"] == k + 1
        else:
            assert "pruned_after_fold" not in t.user_attrs and steps[-1] == last
            assert t.value == t.user_attrs["terms"]["objective"] == t.intermediate_values[last]
        complete_before = [u for u in trials if u.number < t.number and u.state.name == "COMPLETE"]
        for k in steps:
            if k < 1 or k == last:  # warm-up step; after the last fold the study does not ask
                continue
            best = max(t.intermediate_values[j] for j in range(k + 1))
            median = (float(np.nanpercentile([u.intermediate_values[k] for u in complete_before], 50))
                      if len(complete_before) >= preset.prune_startup_trials else -math.inf)
            should = best < median
            assert should == (t.state.name == "PRUNED" and k == steps[-1]), (t.number, k, best, median)


# --- 5. resume -----------------------------------------------------------------------------------------------


def test_resume_runs_only_the_missing_trials(baseline: Any, tmp_path: Path) -> None:
    inp = baseline.inputs
    path = tmp_path / "resume.journal"
    data = make_data(inp)
    s6 = run_study(data, inp.preset, 6, open_storage(path), "resume", baseline.cache)
    first = snapshot(s6)
    assert len(finished(s6)) == len(first) == 6
    s10 = run_study(make_data(inp), inp.preset, 10, open_storage(path), "resume", baseline.cache)  # a new launch
    assert len(finished(s10)) == 10
    assert [t.number for t in trials_of(s10)] == list(range(10))
    assert snapshot(s10)[:6] == first
    again = snapshot(s10)
    for budget in (10, 4):  # reached or below: nothing runs
        s = run_study(make_data(inp), inp.preset, budget, open_storage(path), "resume", baseline.cache)
        assert snapshot(s) == again


def test_a_study_of_other_data_is_refused(baseline: Any, tmp_path: Path) -> None:
    inp = baseline.inputs
    path = tmp_path / "copy.journal"
    shutil.copy(baseline.storage_path, path)
    ohlcv = one_close_changed(inp)
    other = StudyData.prepare(COIN, inp.spec, inp.features, inp.names, ohlcv, inp.funding, inp.holdout_start,
                              inp.preset, fingerprint(inp.features, ohlcv, inp.funding))
    before_refusal = snapshot(run_study(make_data(inp), inp.preset, BASELINE_TRIALS, open_storage(path),
                                        baseline.name, baseline.cache))
    with pytest.raises(ValueError, match="other data"):
        run_study(other, inp.preset, BASELINE_TRIALS + 5, open_storage(path), baseline.name, PredictionCache())
    assert other.fits == 0
    after = read_trials(open_storage(path), baseline.name)
    assert after is not None and len(after) == BASELINE_TRIALS
    import optuna

    assert snapshot(optuna.load_study(study_name=baseline.name, storage=open_storage(path))) == before_refusal


def test_resume_after_sigkill(study_inputs: Any, spawn_worker: Any, tmp_path: Path) -> None:
    journal, name, cache_dir = tmp_path / "killed.journal", "killed", tmp_path / "cache"
    lock = Path(f"{journal}.lock")  # Optuna's journal file lock (held while a process appends)
    w = spawn_worker(journal, name, 40, 0, cache_dir)
    reader = None
    while True:  # ends when the kill point is reached or the worker exits (a hang: pytest-timeout, pyproject)
        assert w.proc.poll() is None, f"the worker exited early ({w.proc.returncode}):\n{w.output()}"
        if reader is None and journal.exists():
            reader = open_storage(journal)
        trials = read_trials(reader, name) if reader is not None else None
        if trials:
            done = sum(t.state.name in FINISHED for t in trials)
            mid_trial = any(t.state.name == "RUNNING" and t.intermediate_values for t in trials)
            # kill mid-trial (a zombie RUNNING trial is then left), not while the journal lock is held
            if done >= 3 and mid_trial and not os.path.lexists(lock):
                os.kill(w.proc.pid, signal.SIGKILL)
                break
        time.sleep(0.01)
    assert w.proc.wait(timeout=30) == -signal.SIGKILL
    killed = read_trials(open_storage(journal), name)
    assert killed is not None
    zombies = [t.number for t in killed if t.state.name == "RUNNING"]
    done_at_kill = [t for t in killed if t.state.name in FINISHED]
    assert 3 <= len(done_at_kill) < 40 and len(zombies) <= 1 and states(killed).get("FAIL", 0) == 0
    logged = [int(x) for x in (cache_dir / "worker-0.trials").read_text().split()]
    assert set(logged) <= {t.number for t in done_at_kill} and len(logged) >= len(done_at_kill) - 1

    budget = len(done_at_kill) + 4
    data = make_data(study_inputs)
    cache = PredictionCache(cache_dir)  # the killed worker's disk cache
    study = run_study(data, study_inputs.preset, budget, open_storage(journal), name, cache)
    trials = trials_of(study)
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials))), "trial numbers not unique and consecutive"
    assert len(finished(study)) == budget, states(trials)
    assert len(trials) == budget + len(zombies)  # the zombie is neither counted nor re-run
    assert [t.number for t in trials if t.state.name == "RUNNING"] == zombies
    assert states(trials).get("FAIL", 0) == 0
    by_number = {t.number: t for t in trials}
    for t in done_at_kill:  # what the killed worker finished is kept as it was
        u = by_number[t.number]
        assert (u.state, u.params, u.value, u.intermediate_values) == (t.state, t.params, t.value,
                                                                       t.intermediate_values)
    assert data.fits == 0, "the killed worker's disk cache was not reused"
    assert study_summary(study, 3)["running"] == len(zombies)


# --- 6. two workers on one PostgreSQL study ------------------------------------------------------------------


@pytest.mark.postgres
def test_concurrent_open_storage_on_a_fresh_postgres_database(optuna_pg_url: str) -> None:
    """Several processes opening a fresh database at once (parallel coin partitions, two workers) race to create
    Optuna's tables; without open_storage's retry the losers fail (duplicate enum type on PostgreSQL)."""
    import threading

    n = 4
    barrier, errors, storages = threading.Barrier(n), [], []

    def open_one() -> None:
        barrier.wait(timeout=60)
        try:
            storages.append(open_storage(optuna_pg_url))
        except Exception as exc:  # noqa: BLE001 - collected and reported below
            errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")

    threads = [threading.Thread(target=open_one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "open_storage hung"
    assert not errors, errors
    assert len(storages) == n and all(s.get_all_studies() == [] for s in storages)
    for s in storages:
        s.engine.dispose()


@pytest.mark.postgres
def test_two_workers_share_one_postgres_study(optuna_pg_url: str, spawn_worker: Any, baseline: Any,
                                              tmp_path: Path) -> None:
    import optuna

    budget, name, cache_dir, go = 16, "pg", tmp_path / "cache", tmp_path / "go"
    shutil.copytree(baseline.cache_dir, cache_dir)  # warm: the workers do not each fit the same folds
    workers = [spawn_worker(optuna_pg_url, name, budget, i, cache_dir, STUDY_WORKER_GO=str(go)) for i in (0, 1)]
    # start both together; a worker that never gets ready gives up on its own (study_worker.py) and exits
    while not all(Path(f"{go}.ready-{i}").exists() for i in (0, 1)):
        for w in workers:
            assert w.proc.poll() is None, f"a worker exited before the start ({w.proc.returncode}):\n{w.output()}"
        time.sleep(0.02)
    go.touch()
    for w in workers:
        w.proc.wait()  # a hang is caught by pytest-timeout (pyproject), not by a wall-clock assertion
        assert w.proc.returncode == 0, w.output()

    study = optuna.load_study(study_name=name, storage=open_storage(optuna_pg_url))
    trials = trials_of(study)
    counts = states(trials)
    n = len(finished(study))
    # The rule: budget <= finished <= budget + workers - 1. Each worker stops via MaxTrialsCallback(budget),
    # checked after each of its own trials; once the count reaches the budget no worker starts another trial, but
    # each OTHER worker may have one in flight (started after its check saw < budget), which still finishes.
    # Observed with 2 workers and budget 16: 17 finished in every run (7 of 7): both workers are practically
    # always mid-trial when the count passes 15. Exactness would need the callback to count RUNNING trials too,
    # which a dead worker's zombie trial (never finished) would then block forever.
    assert budget <= n <= budget + 1, counts
    assert set(counts) <= set(FINISHED), f"trials lost or left running: {counts}"
    assert [t.number for t in trials] == list(range(len(trials)))
    ran = {i: [int(x) for x in (cache_dir / f"worker-{i}.trials").read_text().split()] for i in (0, 1)}
    assert ran[0] and ran[1], f"a worker ran no trial: {ran}"
    assert not set(ran[0]) & set(ran[1]), "two workers ran the same trial"
    assert sorted(ran[0] + ran[1]) == [t.number for t in trials]
    assert study.user_attrs["data_fingerprint"] == baseline.inputs.fingerprint()
    assert len(list(cache_dir.glob("*.parquet"))) == baseline.data.fits  # the workers fitted nothing new
    assert all(math.isfinite(t.value) for t in trials)
