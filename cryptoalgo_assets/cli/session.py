"""A command's Dagster session: the prepared instance, one code server, runs submitted and followed.

    with Session("ingest", settings) as s:        # instance ready (under lock), code server starting
        outcomes = s.run(specs, progress)         # submit through the instance, follow with live progress

Ctrl-C while runs are active cancels them through the instance's run launcher and exits 130 with one line.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptoalgo_assets.cli.common import EXIT_INTERRUPTED, err
from cryptoalgo_assets.cli.progress import ProgressView
from cryptoalgo_assets.instance import dagster_home, instance_ready, prepare_instance, quiet_dagster
from cryptoalgo_assets.launcher import (
    CodeServer,
    RunOutcome,
    RunSpec,
    cancel,
    follow,
    outcome,
    run_tags,
    sweep_orphans,
    trace,
)

if TYPE_CHECKING:
    import dagster as dg

# (run id -> spec, run id -> status) -> {progress row: (fraction 0..1, status) or (fraction, status, detail)}
Probe = Callable[[dict[str, RunSpec], dict[str, str]], dict[str, tuple[Any, ...]]]


@dataclass
class Settings:
    """Where runs read and write. Everything but the store URL travels as run config / tags; the URL
    reaches the runs only through the code server's environment (TRADER_DB_URL, read via dg.EnvVar)."""

    db_url: str
    data_dir: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        dagster_home()  # resolved (./dagster_home by default) and exported before any child sees the env
        env = dict(os.environ)
        env.update(self.extra_env)
        env["TRADER_DB_URL"] = self.db_url
        env.pop("TRADER_DB_PATH", None)
        if self.data_dir:
            env["TRADER_DATA_DIR"] = self.data_dir
        env["DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"] = "true"
        env.setdefault("PYTHONWARNINGS", "ignore")
        return env


class _StepProgress:
    """Share of each run's steps that succeeded (read from its event log at most once a second)."""

    def __init__(self, instance: dg.DagsterInstance, totals: dict[str, int]) -> None:
        self.instance, self.totals = instance, totals
        self.done: dict[str, float] = {}
        self._at = 0.0

    def fractions(self, statuses: dict[str, str]) -> dict[str, float]:
        import time

        import dagster as dg

        if time.monotonic() - self._at >= 1.0:
            self._at = time.monotonic()
            for rid, status in statuses.items():
                if status == "STARTED" and self.totals.get(rid):
                    n = len(self.instance.all_logs(rid, of_type=dg.DagsterEventType.STEP_SUCCESS))
                    self.done[rid] = min(n / self.totals[rid], 1.0) * 0.99
        return self.done


class Session:
    """Open it around a command's validation: when the instance already exists, the code location starts
    loading at once (it takes a second or two) while the command validates its input; on a fresh
    DAGSTER_HOME it starts only after the instance's storages were created under the lock (a loading code
    server opens the instance too). Nothing is submitted before `run`."""

    def __init__(self, command: str, settings: Settings, show_progress: bool = True) -> None:
        self.command = command
        self.settings = settings
        self.show_progress = show_progress
        self.server = CodeServer(settings.env())
        self._instance: dg.DagsterInstance | None = None
        self.batch = uuid.uuid4().hex[:12]

    def __enter__(self) -> Session:
        trace("session_start", command=self.command)
        if instance_ready():
            self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.close()
        trace("closed")

    @property
    def instance(self) -> dg.DagsterInstance:
        if self._instance is None:
            quiet_dagster()
            self._instance = prepare_instance()  # before any other process (code server, launches) opens it
            trace("instance_ready")
            self.server.start()  # no-op when it is already loading
            stale = sweep_orphans(self._instance)
            if stale:
                err.print(f"marked {len(stale)} run(s) failed that a killed earlier command left running: "
                          f"{', '.join(s[:8] for s in stale)}", markup=False, style="yellow")
        return self._instance

    def run(self, specs: list[RunSpec], progress_rows: list[str] | None = None, probe: Probe | None = None,
            title: str = "", max_parallel: int | None = None) -> list[RunOutcome]:
        """Submit `specs`, follow them to their end with live progress, return their outcomes.

        Without a probe there is one progress row per spec label, complete when its run succeeds. With
        `max_parallel`, at most that many runs are in flight: the next is submitted when one finishes (runs
        whose steps would only wait for a pool slot are not started; Dagster 1.13's run workers poll a
        blocked pool claim in a tight loop, costing a fifth of a core each)."""
        if not specs:
            return []
        instance = self.instance
        trace("launch_start", runs=len(specs))
        ids = [str(uuid.uuid4()) for _ in specs]
        by_id = dict(zip(ids, specs, strict=True))
        rows = progress_rows or [s.label for s in specs]
        view = ProgressView(rows, enabled=self.show_progress, title=title)

        steps = _StepProgress(instance, {rid: spec.steps for rid, spec in by_id.items()})

        def tick(statuses: dict[str, str]) -> None:
            if probe is not None:
                for row, vals in probe(by_id, statuses).items():
                    view.update(row, *vals)
                return
            done = steps.fractions(statuses)
            for rid, status in statuses.items():
                view.update(by_id[rid].label, 1.0 if status == "SUCCESS" else done.get(rid, 0.0), status)

        try:
            if max_parallel is not None and len(specs) > max_parallel:
                with view:
                    self._windowed(instance, list(zip(specs, ids, strict=True)), max_parallel, tick)
            else:
                self.server.launch(specs, run_tags(self.command, self.batch), ids)
                trace("launched", run_ids=ids)
                with view:
                    follow(instance, ids, tick)
            trace("finished", run_ids=ids)
        except KeyboardInterrupt:  # also while submitting: the run ids are known before any run exists
            err.print(f"interrupted: cancelling {len(ids)} submitted run(s)", markup=False, style="red")
            self.server.abort_launches()
            cancel(instance, ids)
            sys.exit(EXIT_INTERRUPTED)
        out = [outcome(instance, rid, by_id[rid].label) for rid in ids]
        trace("outcomes_read")
        return out

    def _windowed(self, instance: dg.DagsterInstance, pending: list[tuple[RunSpec, str]], k: int,
                  tick: Callable[[dict[str, str]], None]) -> None:
        import time

        done = ("SUCCESS", "FAILURE", "CANCELED", "NOT_FOUND")
        order = [rid for _s, rid in pending]
        status: dict[str, str] = {rid: "QUEUED" for rid in order}  # not submitted yet
        launched: list[str] = []
        while True:
            for rid in launched:
                if status[rid] not in done:
                    run = instance.get_run_by_id(rid)
                    status[rid] = "NOT_FOUND" if run is None else run.status.value
            active = sum(1 for rid in launched if status[rid] not in done)
            while pending and active < k:
                spec, rid = pending.pop(0)
                self.server.launch([spec], run_tags(self.command, self.batch), [rid])
                trace("launched", run_ids=[rid])
                launched.append(rid)
                status[rid] = "STARTING"
                active += 1
            tick(dict(status))
            if not pending and all(status[rid] in done for rid in order):
                return
            time.sleep(0.25)
