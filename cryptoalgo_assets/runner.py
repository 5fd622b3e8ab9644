"""Run Dagster jobs from the CLI in the instance at DAGSTER_HOME (so every run shows in the UI), one coin
per worker process, with a progress bar driven by a caller-supplied progress probe."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

REPO_ROOT = Path(__file__).resolve().parent.parent


def quiet_dagster() -> None:
    import dagster as dg

    warnings.filterwarnings("ignore", category=Warning, module=r"dagster.*")
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    logging.getLogger("dagster").setLevel(logging.WARNING)


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME if set, else ./dagster_home (created with the repo's dagster.yaml if missing)."""
    home = Path(os.environ.get("DAGSTER_HOME") or (Path.cwd() / "dagster_home")).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    yaml_path = home / "dagster.yaml"
    if not yaml_path.exists():
        template = REPO_ROOT / "dagster_home" / "dagster.yaml"
        yaml_path.write_text(template.read_text() if template.exists() else "telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@dataclass(frozen=True)
class ResourceSpec:
    """Picklable description of the resources a worker builds its Definitions with."""

    db_url: str = ""
    source: str = ""
    replay_dir: str = ""
    coinbase_url: str = ""
    ccxt_url: str = ""
    data_dir: str = ""
    cohort: str = ""


@dataclass(frozen=True)
class RunSpec:
    job: str
    partition_key: str | None = None  # a single partition
    tags: dict[str, str] = field(default_factory=dict)  # e.g. partition-range tags
    run_config: dict[str, Any] = field(default_factory=dict)  # e.g. {"ops": {asset: {"config": {...}}}}


@dataclass
class CoinRun:
    coin: str
    success: bool = True
    run_ids: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    check_failures: list[tuple[str, str, str]] = field(default_factory=list)  # (check, severity, description)

    @property
    def blocking_failures(self) -> list[tuple[str, str, str]]:
        return [c for c in self.check_failures if c[1] == "ERROR"]


def execute_coin(resources: ResourceSpec, coin: str, runs: list[RunSpec]) -> CoinRun:
    """Execute `runs` in order for one coin (stops at the first failed run)."""
    quiet_dagster()
    import dagster as dg

    from cryptoalgo_assets.definitions import build_definitions
    from resources.dagster_resources import ArtifactsResource, MarketSourceResource, MarketStoreResource

    defs = build_definitions(
        market_store=MarketStoreResource(db_url=resources.db_url),
        market_source=MarketSourceResource(
            source=resources.source,
            replay_dir=resources.replay_dir,
            coinbase_url=resources.coinbase_url,
            ccxt_url=resources.ccxt_url,
        ),
        artifacts=ArtifactsResource(data_dir=resources.data_dir, cohort=resources.cohort),
    )
    instance = dg.DagsterInstance.get()
    out = CoinRun(coin)
    for spec in runs:
        job = defs.resolve_job_def(spec.job)
        res = job.execute_in_process(
            instance=instance,
            partition_key=spec.partition_key,
            tags=spec.tags or None,
            raise_on_error=False,
            run_config={**spec.run_config, "loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        out.run_ids.append(res.run_id)
        out.failures += [
            f"{ev.step_key}: {ev.step_failure_data.error.message.strip()}"
            for ev in res.all_events
            if ev.is_step_failure and ev.step_failure_data and ev.step_failure_data.error
        ]
        out.check_failures += [
            (f"{e.asset_key.to_user_string()}.{e.check_name}", e.severity.value, e.description or "")
            for e in res.get_asset_check_evaluations()
            if not e.passed
        ]
        if not res.success:
            out.success = False
            break
    return out


def run_coins(
    resources: ResourceSpec,
    plan: dict[str, list[RunSpec]],
    tasks: list[tuple[str, str]],
    probe: Callable[[str, str], float] | None,
    console: Console,
    show_progress: bool = True,
    workers: int | None = None,
) -> list[CoinRun]:
    """Run each coin's RunSpecs, `workers` coins at a time in spawned processes (1 = in this process).

    `tasks` are (coin, label) progress rows; `probe(coin, label)` returns a 0..1 fraction (e.g. from the
    store's fetch coverage) so progress works across processes. A coin's rows complete when it finishes.
    """
    ensure_dagster_home()
    coins = list(plan)
    n_workers = max(1, min(workers or min(2, os.cpu_count() or 1), len(coins) or 1))
    results: dict[str, CoinRun] = {}
    with Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not show_progress,
    ) as bar:
        ids = {t: bar.add_task(f"{t[0]} {t[1]}", total=1.0) for t in tasks}

        def refresh(done: set[str]) -> None:
            for (c, label), tid in ids.items():
                bar.update(tid, completed=1.0 if c in done else (probe(c, label) if probe else 0.0))

        if n_workers == 1:
            for c in coins:
                results[c] = execute_coin(resources, c, plan[c])
                refresh(set(results))
        else:
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=mp.get_context("spawn")) as pool:
                futures: dict[str, Future[CoinRun]] = {c: pool.submit(execute_coin, resources, c, plan[c]) for c in coins}
                while not all(f.done() for f in futures.values()):
                    refresh({c for c, f in futures.items() if f.done()})
                    time.sleep(0.25)
                for c, f in futures.items():
                    exc = f.exception()
                    results[c] = f.result() if exc is None else CoinRun(c, False, [], [f"worker crashed: {exc!r}"])
                refresh(set(results))
    return [results[c] for c in coins]
