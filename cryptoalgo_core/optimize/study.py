"""One coin's Optuna study over a preset's search space (seeded multivariate TPE, fold-by-fold median pruning).

The study sees only research data (before ``holdout_start``). Folds: the research span after
``min_train_days`` cut into ``n_cv_folds`` equal, purged and embargoed walk-forward test windows (the coin
profile's walk-forward rules otherwise), fixed before any trial so every trial is judged on the same windows.
A trial: parameters from the space -> labels (memoised per label params) -> each fold's out-of-sample
predictions (cached per label, model and fold: :mod:`~cryptoalgo_core.optimize.cache`) -> a window backtest
per fold (:func:`~cryptoalgo_core.optimize.evaluate.window_backtest`) -> the running objective reported after
each fold; Optuna's median pruner stops a trial whose best running value so far is below the median of the
earlier trials' values at that fold (from the second fold on).

Storage: an Optuna journal file (safe for concurrent worker processes on one machine) or an RDB URL (several
processes or machines on one study). A study is resumed by name: finished trials (complete or pruned) count
towards the budget, so an interrupted launch runs only what is missing.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from cryptoalgo_core.config.coins import CoinSpec, LabelParams
from cryptoalgo_core.config.profile import WalkForwardParams
from cryptoalgo_core.features.dataset import build_ml_dataset, labels_for_coin
from cryptoalgo_core.model.walkforward import Fold, FoldData, make_folds, predict_fold
from cryptoalgo_core.optimize.cache import COLUMNS, PredictionCache, cache_key
from cryptoalgo_core.optimize.evaluate import GridMarket, window_backtest, window_days
from cryptoalgo_core.optimize.objective import TERMS, FoldResult, fold_result, rank_candidates, score
from cryptoalgo_core.optimize.space import Preset, apply_params, suggest
from cryptoalgo_core.timeutil import DAY_MS

__all__ = ["MIN_FOLD_DAYS", "StudyData", "data_warnings", "open_storage", "run_study", "study_summary",
           "trial_rows"]

MIN_FOLD_DAYS = 14  # a CV fold shorter than this cannot hold min_trades_per_fold for a slow strategy


@dataclass
class StudyData:
    """One coin's research inputs, prepared once per study (all strictly before ``holdout_start``)."""

    coin: str
    spec: CoinSpec  # the coin's baseline spec (coins.yaml); trials apply their parameters on top
    features: pd.DataFrame
    names: list[str]
    ohlcv: pd.DataFrame
    holdout_start: int
    fingerprint: str
    folds: list[Fold]
    wf: WalkForwardParams
    market: GridMarket
    _fold_data: dict[LabelParams, FoldData] = field(default_factory=dict)
    fits: int = 0

    @classmethod
    def prepare(cls, coin: str, spec: CoinSpec, features: pd.DataFrame, names: list[str], ohlcv: pd.DataFrame,
                funding: pd.DataFrame, holdout_start: int, preset: Preset, fingerprint: str) -> StudyData:
        hs = int(holdout_start)
        features = features[features["ts"] < hs].reset_index(drop=True)
        ohlcv = ohlcv[ohlcv["ts"] < hs].reset_index(drop=True)
        funding = funding[funding["ts"] < hs].reset_index(drop=True) if funding is not None else funding
        post = features[~features["warmup"].astype(bool)] if "warmup" in features else features
        if post.empty:
            raise ValueError(f"{coin}: no feature rows before the holdout start")
        first = int(post["ts"].min())
        span = hs - first - preset.min_train_days * DAY_MS
        if span < preset.n_cv_folds * DAY_MS:
            raise ValueError(f"{coin}: {(hs - first) / DAY_MS:.0f} days of research data cannot hold "
                             f"min_train_days {preset.min_train_days} + {preset.n_cv_folds} folds")
        test_days = math.ceil(span / DAY_MS / preset.n_cv_folds)
        wf = replace(spec.profile.walk_forward, min_train_days=preset.min_train_days, test_days=test_days)
        folds = make_folds(first, hs, wf)
        market = GridMarket.of(ohlcv, funding, features, first, hs)
        return cls(coin, spec, features, list(names), ohlcv, hs, fingerprint, folds, wf, market)

    def fold_data(self, label: LabelParams) -> FoldData:
        fd = self._fold_data.get(label)
        if fd is None:
            ds = build_ml_dataset(self.features, labels_for_coin(self.ohlcv, label))
            fd = self._fold_data[label] = FoldData.of(ds, self.names)
        return fd

    def predictions(self, spec: CoinSpec, fold: Fold, cache: PredictionCache) -> pd.DataFrame:
        key = cache_key(self.coin, self.fingerprint, spec.label, spec.profile.model, self.wf, fold, self.names)

        def compute() -> pd.DataFrame:
            self.fits += 1
            fp = predict_fold(self.fold_data(spec.label), fold, self.wf, spec.profile.model)
            return fp.predictions if fp.predictions is not None else pd.DataFrame(columns=COLUMNS)

        return cache.get_or_compute(key, compute)

    def evaluate(self, params: dict[str, Any], cache: PredictionCache,
                 report: Callable[[list[FoldResult]], bool] | None = None) -> tuple[list[FoldResult], bool]:
        """Fold results of ``params``; ``report`` is called after each fold and returns True to stop (prune)."""
        spec = apply_params(self.spec, params)
        out: list[FoldResult] = []
        for f in self.folds:
            bt = window_backtest(self.market, f.test_start, f.test_end, self.predictions(spec, f, cache),
                                 spec.profile)
            out.append(fold_result(f.index, bt.trades, window_days(f.test_start, f.test_end), bt.log_return))
            if report is not None and report(out):
                return out, True
        return out, False


def data_warnings(coin: str, first_ts: int, end_ts: int, preset: Preset) -> list[str]:
    """Why the data is too short for the preset's folds and holdout (empty when it is long enough)."""
    have = (end_ts - first_ts) / DAY_MS
    need = preset.holdout_days + preset.min_train_days + preset.n_cv_folds * MIN_FOLD_DAYS
    if have >= need:
        return []
    return [f"{coin}: {have:.0f} days of data, but holdout {preset.holdout_days} d + min_train_days "
            f"{preset.min_train_days} d + {preset.n_cv_folds} folds x {MIN_FOLD_DAYS} d = {need} d are needed"]


def open_storage(target: str | Path) -> Any:
    """Optuna storage: an RDB URL (``postgresql+psycopg2://...``, ``sqlite:///...``) or a journal file path."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    text = str(target)
    if "://" in text:
        import sqlalchemy as sa

        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(text, engine_kwargs={"pool_pre_ping": True})
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
                # processes opening a fresh database together race to create Optuna's tables (PostgreSQL: a
                # duplicate enum type or version row); the losers succeed once the winner has committed
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
    Path(text).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(text))


def _quiet_optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def run_study(data: StudyData, preset: Preset, budget: int, storage: Any, study_name: str,
              cache: PredictionCache, on_trial: Callable[[Any, Any], None] | None = None, worker: int = 0) -> Any:
    """Run (or resume) the study until ``budget`` trials have finished (complete or pruned). ``worker`` offsets
    the sampler seed, so concurrent workers on one study do not propose the same points."""
    optuna = _quiet_optuna()
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    sampler = optuna.samplers.TPESampler(seed=preset.seed + worker, multivariate=True, constant_liar=True,
                                         n_startup_trials=preset.startup_trials)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=preset.prune_startup_trials, n_warmup_steps=1)
    study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize", sampler=sampler,
                                pruner=pruner, load_if_exists=True)
    if "coin" not in study.user_attrs:
        for k, v in {"coin": data.coin, "preset": preset.name, "data_fingerprint": data.fingerprint,
                     "holdout_start": data.holdout_start,
                     "folds": [[f.test_start, f.test_end] for f in data.folds]}.items():
            study.set_user_attr(k, v)
    elif study.user_attrs.get("data_fingerprint") != data.fingerprint:
        raise ValueError(f"study {study_name!r} was run on other data (fingerprint "
                         f"{str(study.user_attrs.get('data_fingerprint'))[:12]} != {data.fingerprint[:12]}); "
                         "use a new cohort")
    finished = (TrialState.COMPLETE, TrialState.PRUNED)

    def objective(trial: Any) -> float:
        params = suggest(trial, preset.space)

        def report(folds: list[FoldResult]) -> bool:
            running = score(folds, preset.objective)
            trial.report(running["objective"], folds[-1].fold)
            if len(folds) < len(data.folds) and trial.should_prune():
                trial.set_user_attr("terms", running)
                trial.set_user_attr("pruned_after_fold", folds[-1].fold)
                return True
            return False

        folds, pruned = data.evaluate(params, cache, report)
        trial.set_user_attr("folds", [f.as_dict() for f in folds])
        if pruned:
            raise optuna.TrialPruned()
        terms = score(folds, preset.objective)
        trial.set_user_attr("terms", terms)
        return terms["objective"]

    done = len(study.get_trials(deepcopy=False, states=finished))
    if done < budget:
        callbacks: list[Any] = [MaxTrialsCallback(budget, states=finished)]
        if on_trial is not None:
            callbacks.append(on_trial)
        study.optimize(objective, n_trials=budget - done, callbacks=callbacks, gc_after_trial=False)
    return study


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """Every trial: number, state, objective, terms, params (the study table)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        terms = t.user_attrs.get("terms", {})
        rows.append({"number": t.number, "state": t.state.name, "objective": t.value if t.value is not None
                     else float("nan"), **{k: terms.get(k, float("nan")) for k in (*TERMS, "trades")},
                     "pruned_after_fold": t.user_attrs.get("pruned_after_fold"), "params": dict(t.params)})
    return rows


def study_summary(study: Any, top_k: int) -> dict[str, Any]:
    """Counts, the chosen candidate (best objective; ties: earliest trial) and the top-k candidates."""
    rows = trial_rows(study)
    states = pd.Series([r["state"] for r in rows], dtype=object).value_counts().to_dict() if rows else {}
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    top = rank_candidates(complete, top_k)
    best = top[0] if top else None
    return {"trials": len(rows), "complete": int(states.get("COMPLETE", 0)), "pruned": int(states.get("PRUNED", 0)),
            "failed": int(states.get("FAIL", 0)), "running": int(states.get("RUNNING", 0)),
            "best": best, "top_k": top,
            "best_objective": float(best["objective"]) if best else float("nan")}
