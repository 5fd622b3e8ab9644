"""Submit the code location's jobs through the Dagster instance and follow them to their end.

The CLI does what `dagster job launch` does, with Dagster's own public commands, so that every run is owned
by the instance: it carries the code-location origin (location ``cryptoalgo``), shows on its job page and
the Overview timeline, is started by the instance's run launcher and obeys its concurrency settings.

* :class:`CodeServer` starts the code location once per command (``dagster api grpc`` on a private Unix
  socket, location name ``cryptoalgo``) with the command's environment — the market-store URL reaches the
  runs only as the ``TRADER_DB_URL`` environment variable, read through ``dg.EnvVar``, never in run config.
* :meth:`CodeServer.launch` runs ``dagster job launch`` against it (one subprocess per run, in parallel):
  the instance creates the run from the workspace snapshot and its run coordinator starts it.
* :func:`follow` polls the instance until the runs finish (live progress through a callback);
  :func:`outcome` reads a finished run's step failures and failed check evaluations from its event log;
  :func:`cancel` terminates runs through the instance's run launcher (Ctrl-C).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptoalgo_core.errors import CryptoalgoError

if TYPE_CHECKING:
    import dagster as dg

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCATION = "cryptoalgo"
MODULE = "cryptoalgo_assets.definitions"
SECRET_ENV = ("TRADER_DB_URL",)  # given to the code server (and so to the runs) only, never to launch processes
TAG_PID = "cryptoalgo/cli_pid"
TAG_HOST = "cryptoalgo/host"
TAG_BATCH = "cryptoalgo/batch"


def trace(event: str, **fields: object) -> None:
    """Phase timings for benchmarks: one JSON line per event appended to $CRYPTOALGO_TRACE (off by default)."""
    path = os.environ.get("CRYPTOALGO_TRACE")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"t": time.time(), "event": event, **fields}) + "\n")


# A launcher process: dagster imported ahead, then the public `dagster ...` command line with the arguments
# that arrive on stdin as one JSON list (the same as running `python -m dagster <args>`).
_LAUNCHER = (
    "import json, runpy, sys\n"
    "import dagster  # noqa: F401 - imported ahead, while the code server loads\n"
    "line = sys.stdin.readline()\n"
    "if not line:\n"
    "    sys.exit(0)\n"
    "sys.argv = ['dagster', *json.loads(line)]\n"
    "runpy.run_module('dagster', run_name='__main__', alter_sys=True)\n"
)


class LaunchError(CryptoalgoError):
    """The code location could not be started or a run could not be submitted."""


@dataclass(frozen=True)
class RunSpec:
    """One run to submit: a job of the code location with tags (partition / range) and run config."""

    job: str
    label: str  # what the run is about, for messages (a coin, or 'BTC..DOGE')
    tags: Mapping[str, str] = field(default_factory=dict)
    run_config: Mapping[str, Any] = field(default_factory=dict)
    steps: int = 0  # steps of the job (for progress; 0 = unknown)


@dataclass
class CheckFailure:
    asset: str
    check: str
    partition: str | None
    severity: str  # "ERROR" | "WARN"
    description: str

    @property
    def blocking(self) -> bool:
        return self.severity == "ERROR"

    @property
    def coin(self) -> str | None:
        return None if self.partition is None else self.partition.split("|")[0]


@dataclass
class RunOutcome:
    run_id: str
    job: str
    label: str
    status: str  # DagsterRunStatus value
    failures: list[str] = field(default_factory=list)
    check_failures: list[CheckFailure] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.status == "SUCCESS"


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the code server gets SIGTERM when the CLI that started it dies (even by SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class CodeServer:
    """The ``cryptoalgo`` code location served on a private Unix socket for the duration of a command."""

    def __init__(self, env: Mapping[str, str], startup_timeout_s: float = 180.0) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="cryptoalgo-cs-"))
        self.socket = self._dir / "grpc.sock"
        self.workspace = self._dir / "workspace.yaml"
        self.log = self._dir / "code_server.log"
        self.env = dict(env)
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._launchers: list[subprocess.Popen[bytes]] = []
        self._inflight: list[subprocess.Popen[bytes]] = []

    def start(self) -> CodeServer:
        """Start loading the code location (idempotent), and one pre-imported launcher process."""
        if self._proc is not None:
            return self
        self.workspace.write_text(
            "load_from:\n  - grpc_server:\n"
            f"      socket: {self.socket}\n      host: localhost\n      location_name: {LOCATION}\n"
        )
        cmd = [sys.executable, "-m", "dagster", "api", "grpc", "--socket", str(self.socket),
               "--location-name", LOCATION, "-m", MODULE, "--log-level", "warning"]
        with open(self.log, "wb") as log:
            # Its own session: a Ctrl-C in the terminal reaches the CLI only, which then cancels the runs through
            # the instance (the code server and its run workers must stay up to be cancelled cleanly).
            self._proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True,
                                          preexec_fn=_set_pdeathsig)  # noqa: PLW1509
        self._warm(1)
        return self

    def _launch_env(self) -> dict[str, str]:
        return {k: v for k, v in self.env.items() if k not in SECRET_ENV}

    def _warm(self, n: int) -> None:
        """`n` launcher processes that have imported dagster and wait for their `dagster job launch` arguments
        on stdin (the public CLI, run as `python -m dagster`); importing dagster overlaps the server's load."""
        for _ in range(n):
            self._launchers.append(subprocess.Popen(
                [sys.executable, "-c", _LAUNCHER], cwd=REPO_ROOT, env=self._launch_env(), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_set_pdeathsig))  # noqa: PLW1509

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise LaunchError(f"the code location {LOCATION} failed to load: {self._tail()}")
            if self.socket.exists():
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    try:
                        s.connect(str(self.socket))
                        return
                    except OSError:
                        pass
            time.sleep(0.05)
        raise LaunchError(f"the code location {LOCATION} did not start within {self.startup_timeout_s:.0f} s")

    def _tail(self, lines: int = 6) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        useful = [ln for ln in text if ln.strip() and "Warning" not in ln]
        return " | ".join(useful[-lines:]) or "(no output)"

    def launch(self, specs: list[RunSpec], common_tags: Mapping[str, str], run_ids: list[str] | None = None) -> list[str]:
        """Submit every spec through the instance (parallel `dagster job launch` processes); their run ids
        (`run_ids`, chosen by the caller so that it can cancel them even while they are being submitted)."""
        run_ids = run_ids or [str(uuid.uuid4()) for _ in specs]
        self.start()
        if len(self._launchers) < len(specs):
            self._warm(len(specs) - len(self._launchers))
        self.wait_ready()
        trace("server_ready")
        procs = []
        for spec, run_id in zip(specs, run_ids, strict=True):
            tags = {**common_tags, **spec.tags}
            args = ["job", "launch", "-w", str(self.workspace), "-j", spec.job, "--run-id", run_id,
                    "--tags", json.dumps(tags), "--config-json", json.dumps(spec.run_config)]
            p = self._launchers.pop(0)
            self._inflight.append(p)
            assert p.stdin is not None
            p.stdin.write((json.dumps(args) + "\n").encode())
            p.stdin.flush()
            procs.append((spec, run_id, p))
        ids, errors = [], []
        for spec, run_id, p in procs:
            out, errb = p.communicate()
            if p.returncode != 0:
                errors.append(f"{spec.job} for {spec.label}: {_error_line((errb or out).decode(errors='replace'))}")
            else:
                ids.append(run_id)
        self._inflight = []
        if errors:
            raise LaunchError("could not submit " + "; ".join(errors))
        return ids

    def abort_launches(self) -> None:
        """Stop submissions still in flight (Ctrl-C while submitting); the caller then cancels the run ids."""
        for p in self._inflight:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        self._inflight = []

    def close(self) -> None:
        """Stop the code server (its runs are finished or cancelled by then) and the unused launchers."""
        for w in self._launchers:
            if w.poll() is None:
                w.kill()
            w.communicate()
        self._launchers = []
        p = self._proc
        if p is not None and p.poll() is None:
            # Every run it served is finished or cancelled by now, so it holds nothing worth a graceful gRPC
            # shutdown (which takes seconds): a short grace period, then it is killed.
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=0.3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        for f in (self.socket, self.workspace, self.log):
            f.unlink(missing_ok=True)
        try:
            self._dir.rmdir()
        except OSError:
            pass

    def __enter__(self) -> CodeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error_line(text: str) -> str:
    """The line of a failed command's output that names the error (`SomethingError: ...`), else its last line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    named = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception): ", ln)]
    return (named or lines or ["no output"])[-1]


def run_tags(command: str, batch: str) -> dict[str, str]:
    return {"cryptoalgo/command": command, TAG_PID: str(os.getpid()), TAG_HOST: socket.gethostname(),
            TAG_BATCH: batch}


def _queued_without_daemon(instance: dg.DagsterInstance, since: float) -> bool:
    """A run waits in a QueuedRunCoordinator but no dagster-daemon has sent a heartbeat since `since`."""
    beats = instance.get_daemon_heartbeats()
    return not any(b.timestamp >= since - 60 for b in beats.values())


def follow(
    instance: dg.DagsterInstance,
    run_ids: list[str],
    tick: Callable[[dict[str, str]], None] | None = None,
    poll_s: float = 0.25,
    queue_grace_s: float = 20.0,
) -> dict[str, str]:
    """Wait until every run is finished; `tick(statuses)` after each poll. Returns run id -> status value."""
    t0 = time.time()
    while True:
        statuses: dict[str, str] = {}
        for rid in run_ids:
            run = instance.get_run_by_id(rid)
            statuses[rid] = "NOT_FOUND" if run is None else run.status.value
        if tick:
            tick(statuses)
        if all(s in ("SUCCESS", "FAILURE", "CANCELED", "NOT_FOUND") for s in statuses.values()):
            return statuses
        queued = [r for r, s in statuses.items() if s == "QUEUED"]
        if queued and time.time() - t0 > queue_grace_s and _queued_without_daemon(instance, t0):
            raise LaunchError(
                f"{len(queued)} run(s) wait in the instance's run queue but no dagster-daemon is running "
                f"(start `dagster dev` or `dagster-daemon run`, or use the DefaultRunCoordinator of "
                f"dagster_home/dagster.yaml); queued: {', '.join(queued)}"
            )
        time.sleep(poll_s)


def cancel(instance: dg.DagsterInstance, run_ids: list[str], wait_s: float = 20.0) -> None:
    """Terminate unfinished runs through the instance's run launcher and wait for them to stop."""
    live = []
    for rid in run_ids:
        run = instance.get_run_by_id(rid)
        if run is not None and not run.is_finished:
            try:
                instance.run_launcher.terminate(rid)
            except Exception:  # noqa: BLE001 - best effort on the way out; the run is reported failed below
                pass
            live.append(rid)
    deadline = time.monotonic() + wait_s
    while live and time.monotonic() < deadline:
        live = [r for r in live if not (instance.get_run_by_id(r) or _Finished()).is_finished]
        time.sleep(0.2)
    for rid in live:
        run = instance.get_run_by_id(rid)
        if run is not None and not run.is_finished:
            instance.report_run_failed(run, message="cancelled by the cryptoalgo CLI (Ctrl-C)")


class _Finished:
    is_finished = True


def outcome(instance: dg.DagsterInstance, run_id: str, label: str) -> RunOutcome:
    """Status, step failures and failed check evaluations of a finished run, from its event log."""
    import dagster as dg

    run = instance.get_run_by_id(run_id)
    if run is None:
        return RunOutcome(run_id, "?", label, "NOT_FOUND", ["run not found in the instance"])
    out = RunOutcome(run_id, run.job_name, label, run.status.value)
    types = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.ASSET_CHECK_EVALUATION,
             dg.DagsterEventType.RUN_FAILURE}
    for entry in instance.all_logs(run_id, of_type=types):
        ev = entry.dagster_event
        if ev is None:
            continue
        if ev.event_type == dg.DagsterEventType.STEP_FAILURE:
            err = ev.step_failure_data.error
            msg = err.message.strip() if err is not None else "step failed"
            out.failures.append(f"{ev.step_key}: {_user_message(msg)}")
        elif ev.event_type == dg.DagsterEventType.RUN_FAILURE and not out.failures:
            out.failures.append(_user_message(entry.message or "run failed"))
        elif ev.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            e = ev.asset_check_evaluation_data
            if not e.passed:
                out.check_failures.append(CheckFailure(e.asset_key.to_user_string(), e.check_name, e.partition,
                                                       e.severity.value, e.description or ""))
    return out


def _user_message(msg: str) -> str:
    """The first line a user needs from a Dagster error (Dagster prefixes its own wrapping lines)."""
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(("dagster._core.errors.", "Error occurred while")):
            continue
        return ln.replace("dagster._core.definitions.events.Failure: ", "")
    return lines[0] if lines else msg


def sweep_orphans(instance: dg.DagsterInstance) -> list[str]:
    """Runs an earlier CLI on this host left unfinished when it was killed (its process is gone): reported
    failed so they do not stay 'started' forever (the default run launcher cannot health-check its workers)."""
    import dagster as dg

    host = socket.gethostname()
    stale = []
    active = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.NOT_STARTED,
              dg.DagsterRunStatus.QUEUED]
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=active, tags={TAG_HOST: host}), limit=200):
        pid = int(run.tags.get(TAG_PID, "0") or 0)
        if pid and not _alive(pid) and not _server_alive(run.tags.get(".dagster/grpc_info", "")):
            instance.report_run_failed(run, message=f"the cryptoalgo command (pid {pid}) that owned this run "
                                                    "was killed before the run finished")
            stale.append(run.run_id)
    release_dead_slots(instance)
    return stale


def release_dead_slots(instance: dg.DagsterInstance) -> list[str]:
    """Free pool slots (and pending claims) held by runs that are no longer running: a run worker killed with
    SIGKILL never frees its slot, and without a dagster-daemon nothing else does, so every later step of that
    pool would wait forever. Returns the run ids whose slots were freed."""
    import dagster as dg

    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    running = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.NOT_STARTED,
               dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.CANCELING}
    freed: list[str] = []
    for pool in storage.get_concurrency_keys():
        info = storage.get_concurrency_info(pool)
        holders = {c.run_id for c in info.claimed_slots} | {p.run_id for p in info.pending_steps}
        for run_id in sorted(holders):
            run = instance.get_run_by_id(run_id)
            if run is None or run.status not in running:
                storage.free_concurrency_slots_for_run(run_id)
                freed.append(run_id)
    return freed


def _server_alive(grpc_info: str) -> bool:
    """Whether the code server that launched a run (its `.dagster/grpc_info` tag) still accepts connections."""
    try:
        path = json.loads(grpc_info).get("socket") if grpc_info else None
    except ValueError:
        return False
    if not path or not os.path.exists(path):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
            return True
        except OSError:
            return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
