"""Shared fixtures: store URLs for SQLite and the real PostgreSQL server, the real-data folder, env isolation."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REAL_DATA = Path(os.environ.get("CRYPTOALGO_REAL_DATA", REPO.parent / "shared" / "data" / "real"))
PG_ENV = "CRYPTOALGO_TEST_PG_URL"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own data dir and Dagster home; nothing touches ./data."""
    monkeypatch.setenv("TRADER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("TRADER_DB_PATH", raising=False)
    monkeypatch.delenv("TRADER_DB_URL", raising=False)
    monkeypatch.delenv("CRYPTOALGO_SOURCE", raising=False)
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").write_text((REPO / "dagster_home" / "dagster.yaml").read_text())


@pytest.fixture
def real_data_dir() -> Path:
    if not (REAL_DATA / "ohlcv_1h").is_dir():
        pytest.skip(f"real market data not present at {REAL_DATA} (a user's clone has no ../shared)")
    return REAL_DATA


def _pg_admin_url() -> str | None:
    return os.environ.get(PG_ENV)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    base = _pg_admin_url()
    require = os.environ.get("CRYPTOALGO_REQUIRE_PG") == "1"  # CI: a missing server is a failure, not a skip
    if not base:
        if require:
            pytest.fail(f"CRYPTOALGO_REQUIRE_PG=1 but {PG_ENV} is not set")
        pytest.skip(f"{PG_ENV} not set: PostgreSQL store tests skipped (CI sets it)")
    import sqlalchemy as sa

    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        if require:
            pytest.fail(f"PostgreSQL at {PG_ENV} not reachable: {exc.orig}")
        pytest.skip(f"PostgreSQL at {PG_ENV} not reachable: {exc.orig}")
    name = f"cryptoalgo_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def dagster_pg_home(pg_url: str, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A DAGSTER_HOME whose instance lives in a fresh PostgreSQL database (dagster_home/dagster.postgres.yaml.example
    as documented): (home, DAGSTER_PG_URL); the database is dropped afterwards."""
    import sqlalchemy as sa

    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    name = f"dagster_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    dagster_url = sa.engine.make_url(pg_url).set(drivername="postgresql+psycopg2", database=name).render_as_string(
        hide_password=False)
    home = tmp_path / "pg_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster_home" / "dagster.postgres.yaml.example").read_text())
    try:
        yield home, dagster_url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                         {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def fill_synthetic_store(db_url: str, days: int, kinds: tuple[str, ...] = ("ohlcv", "funding", "open_interest")) -> None:
    """Ingest the last `days` of the synthetic market for every configured coin (core path, no Dagster)."""
    from cryptoalgo_core.config import load_coins, load_sources
    from cryptoalgo_core.timeutil import DAY_MS
    from resources.ingest import SourceSet, ingest_dataset
    from resources.store import MarketStore

    store = MarketStore(db_url)
    sources = SourceSet("synthetic", load_sources())
    end = sources.now_ms("ohlcv")
    coins = load_coins()
    for spec in coins.values():
        for kind in kinds:
            ingest_dataset(kind, spec, sources, store, end - days * DAY_MS, end, 0.01)
    store.dispose()
