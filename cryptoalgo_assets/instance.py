"""The Dagster instance the CLI works in (DAGSTER_HOME, default ./dagster_home).

Two commands started at once on a fresh home used to race on creating the instance's SQLite storages (one
try in four left `dagster_home/schedules` half-migrated). `prepare_instance` creates the home, its
dagster.yaml and every storage exactly once, under an exclusive file lock, before anything else touches it.
"""

from __future__ import annotations

import fcntl
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from cryptoalgo_core.errors import CryptoalgoError

if TYPE_CHECKING:
    import dagster as dg

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "dagster_home" / "dagster.yaml"
_READY = ".cryptoalgo-instance-ready"
# the concurrency pools the code location's assets use (defs/model.py TRAINING_POOL; a test keeps them in sync)
POOLS = ("model_training",)


def quiet_dagster() -> None:
    """No Dagster noise on a plain command: preview/beta/deprecation warnings off, its loggers at WARNING."""
    import logging

    warnings.filterwarnings("ignore", module=r"dagster(\.|$)")
    warnings.filterwarnings("ignore", message=r".*(is currently in beta|is currently in preview|BetaWarning).*")
    try:
        import dagster as dg

        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    except (ImportError, AttributeError):  # pragma: no cover - dagster always installed
        pass
    for name in ("dagster", "dagster.code_server"):
        logging.getLogger(name).setLevel(logging.WARNING)


def dagster_home() -> Path:
    """DAGSTER_HOME if set, else ./dagster_home; exported so every child process sees the same instance."""
    home = Path(os.environ.get("DAGSTER_HOME") or (Path.cwd() / "dagster_home")).expanduser().resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@contextmanager
def _locked(home: Path) -> Iterator[None]:
    with open(home / ".cryptoalgo.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def instance_ready() -> bool:
    """Whether DAGSTER_HOME's storages were created already (then other processes may open it at once)."""
    return (dagster_home() / _READY).exists()


class InstanceError(CryptoalgoError):
    """The Dagster instance at DAGSTER_HOME cannot be opened (bad dagster.yaml, missing driver, no server)."""


def prepare_instance() -> dg.DagsterInstance:
    """The instance at DAGSTER_HOME with all of its storages created and migrated (once, under a lock)."""
    try:
        return _prepare_instance()
    except CryptoalgoError:
        raise
    except Exception as exc:  # noqa: BLE001 - Dagster raises many kinds here; the user needs one line, not a trace
        home = os.environ.get("DAGSTER_HOME", "")
        raise InstanceError(f"cannot open the Dagster instance at {home}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc


def _prepare_instance() -> dg.DagsterInstance:
    quiet_dagster()
    import dagster as dg

    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    if (home / _READY).exists():
        instance = dg.DagsterInstance.get()
        if _pools_missing(instance):
            with _locked(home):
                _init_pools(instance)
        return instance
    with _locked(home):
        yaml_path = home / "dagster.yaml"
        if not yaml_path.exists():
            text = TEMPLATE.read_text() if TEMPLATE.exists() else "telemetry:\n  enabled: false\n"
            tmp = home / ".dagster.yaml.tmp"
            tmp.write_text(text)
            os.replace(tmp, yaml_path)
        instance = dg.DagsterInstance.get()
        if not (home / _READY).exists():
            # Touch every storage so that its database and schema exist before a second process opens it.
            instance.get_runs(limit=1)
            instance.all_instigator_state()
            instance.get_asset_keys()
            instance.get_daemon_heartbeats()
            _init_pools(instance)
            (home / _READY).write_text("storages created\n")
        return instance


def _pools_missing(instance: dg.DagsterInstance) -> bool:
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return False
    return not set(POOLS) <= set(storage.get_concurrency_keys())


def _init_pools(instance: dg.DagsterInstance) -> None:
    """Create the pools' limit rows once (under the lock): two runs that start together on a fresh instance
    would otherwise both insert the default row and one of them fails (a duplicate key on PostgreSQL)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    have = set(storage.get_concurrency_keys())
    for pool in POOLS:
        if pool not in have:
            storage.initialize_concurrency_limit_to_default(pool)


def pool_limit(pool: str) -> int:
    """The slot limit the instance gives `pool`: a limit set on the pool (`dagster instance concurrency set`),
    else dagster.yaml's `concurrency.pools.default_limit`, else the machine's CPU count."""
    import yaml

    try:
        import dagster as dg

        info = dg.DagsterInstance.get().event_log_storage.get_concurrency_info(pool)
        if info.slot_count:
            return int(info.slot_count)
    except Exception:  # noqa: BLE001 - a pool never used yet, or an instance without pools
        pass
    try:
        cfg = yaml.safe_load((dagster_home() / "dagster.yaml").read_text()) or {}
        limit = ((cfg.get("concurrency") or {}).get("pools") or {}).get("default_limit")
        if isinstance(limit, int) and limit > 0:
            return limit
    except (OSError, yaml.YAMLError):
        pass
    return os.cpu_count() or 1
