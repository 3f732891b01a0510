"""Fixtures shared by the whole suite: throwaway ledgers on SQLite and PostgreSQL.

Every test that takes ``db_url`` runs twice: once on a new SQLite file and
once on a new PostgreSQL database on 127.0.0.1:5432, dropped afterwards.
PostgreSQL tests skip when no server answers, except when
GOVLEDGER_REQUIRE_POSTGRES=1 (set by CI), where they fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

VECTORS = Path(__file__).resolve().parent / "vectors"
DATA = Path(__file__).resolve().parents[1] / "data"
PG_ADMIN_URL = os.environ.get(
    "GOVLEDGER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
PASSPHRASE = "test-passphrase"


@pytest.fixture(autouse=True)
def _key_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVLEDGER_KEY_PASSPHRASE", PASSPHRASE)


def _pg_admin():
    import psycopg

    dsn = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(dsn, autocommit=True, connect_timeout=5)


def _postgres_available() -> str | None:
    try:
        with _pg_admin():
            return None
    except Exception as error:  # noqa: BLE001 - any failure means "no server"
        return str(error)


@pytest.fixture(scope="session")
def postgres_server() -> None:
    problem = _postgres_available()
    if problem is None:
        return
    if os.environ.get("GOVLEDGER_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required here but unreachable: {problem}")
    pytest.skip(f"PostgreSQL not reachable: {problem}")


@pytest.fixture
def postgres_url(postgres_server: None) -> Iterator[str]:
    """Create a throwaway PostgreSQL database; yield its URL; drop it."""
    name = f"govledger_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with _pg_admin() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for a new, empty database: SQLite file or PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"
