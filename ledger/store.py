"""The database schema of a ledger (SQLModel) and the engine set-up.

One schema serves SQLite and PostgreSQL. Entries, Merkle nodes, checkpoints
and log keys are append-only: triggers in the database reject UPDATE and
DELETE, so even a direct SQL client cannot rewrite history without dropping
them first, and ``verify`` catches what it changes then.

The single ``chain_head`` row is the only mutable ledger state: every append
locks it (``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` on
PostgreSQL), which serializes writers across processes and machines.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlmodel import Field, SQLModel, create_engine

from .errors import StoreError

__all__ = [
    "APPEND_ONLY_TABLES",
    "ApiToken",
    "ChainHead",
    "CheckpointRow",
    "EntryRow",
    "IdempotencyRow",
    "LogKeyRow",
    "MerkleNode",
    "PersonalValue",
    "create_schema",
    "is_undecodable_text",
    "make_engine",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

# On SQLite a column declared exactly INTEGER PRIMARY KEY is the rowid, so
# entries are stored in seq order with no separate index on seq. An append
# then writes one page less, and verify reads a range without index lookups.
# SQLite's INTEGER stores 64 bits, like PostgreSQL's BIGINT. Ledger files
# made before this layout keep their BIGINT key, which works the same.
_SEQ_TYPE = BigInteger().with_variant(Integer(), "sqlite")


class EntryRow(SQLModel, table=True):
    """One entry: its exact canonical bytes, its hash and derived columns.

    ``body`` contains the RFC 8785 bytes that were hashed. Every other column
    except ``entry_hash`` is derived from ``body`` for querying, and
    ``verify`` checks that they still agree with it.
    """

    __tablename__ = "entries"

    seq: int = Field(sa_column=Column(_SEQ_TYPE, primary_key=True, autoincrement=False))
    entry_hash: str = Field(max_length=64)
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    kind: str = Field(max_length=32)
    actor: str | None = Field(default=None, max_length=256)
    subject: str | None = Field(default=None, max_length=1024)
    recorded_at: str = Field(max_length=32)
    occurred_at: str | None = Field(default=None, max_length=32)
    model_name: str | None = Field(default=None, max_length=1024)
    model_version: str | None = Field(default=None, max_length=1024)
    confidence: float | None = None
    target_seq: int | None = Field(default=None, sa_column=Column(BigInteger))
    target_hash: str | None = Field(default=None, max_length=64)
    item_dataset: str | None = Field(default=None, max_length=1024)
    item_id: str | None = Field(default=None, max_length=1024)
    source_system: str | None = Field(default=None, max_length=1024)
    source_ref: str | None = Field(default=None, max_length=1024)

    __table_args__ = (
        Index("ix_entries_entry_hash", "entry_hash"),
        Index("ix_entries_kind_recorded", "kind", "recorded_at"),
        Index("ix_entries_actor", "actor"),
        Index("ix_entries_target_seq", "target_seq"),
        Index("ix_entries_subject", "subject"),
        Index("ix_entries_source", "source_system", "source_ref"),
    )


class MerkleNode(SQLModel, table=True):
    """The hash of the perfect subtree at (level, idx), level >= 1.

    Level 0 nodes are the entry hashes themselves and are not repeated here.
    On SQLite the table has no rowid, so the rows live in the primary key's
    own B-tree and a node costs one tree insert instead of two. Files made
    before this layout have a rowid and work the same.
    """

    __tablename__ = "merkle_nodes"
    __table_args__ = {"sqlite_with_rowid": False}

    level: int = Field(primary_key=True)
    idx: int = Field(
        sa_column=Column(BigInteger, primary_key=True, autoincrement=False)
    )
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class ChainHead(SQLModel, table=True):
    """The single mutable row: ledger identity and the head of the chain."""

    __tablename__ = "chain_head"

    id: int = Field(primary_key=True)
    origin: str = Field(max_length=255)
    schema_version: int
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    head_hash: str = Field(max_length=64)
    last_recorded_at: str = Field(max_length=32)
    created_at: str = Field(max_length=32)
    # The hashes of the tree's peaks (root_addresses(size), left to right),
    # 32 bytes each, so an append needs no node reads; verify checks them.
    peaks: bytes = Field(default=b"", sa_column=Column(LargeBinary, nullable=False))


class CheckpointRow(SQLModel, table=True):
    """A signed checkpoint (C2SP signed note) of the tree at ``tree_size``."""

    __tablename__ = "checkpoints"

    id: int | None = Field(default=None, primary_key=True)
    tree_size: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    root_hash: str = Field(max_length=64)
    key_id: str = Field(max_length=8)
    note: str
    created_at: str = Field(max_length=32)


class LogKeyRow(SQLModel, table=True):
    """A public log key, kept forever so that old checkpoints still verify."""

    __tablename__ = "log_keys"

    key_id: str = Field(primary_key=True, max_length=8)
    verifier_key: str = Field(max_length=1024)
    created_at: str = Field(max_length=32)
    created_seq: int | None = Field(default=None, sa_column=Column(BigInteger))


class PersonalValue(SQLModel, table=True):
    """An erasable personal value and its salt. The entry contains only the commitment.

    Rows are deleted on erasure (GDPR Art. 17); the commitment in the entry
    stays and still verifies against a copy of the value and salt.
    """

    __tablename__ = "personal_values"

    seq: int = Field(
        sa_column=Column(BigInteger, primary_key=True, autoincrement=False)
    )
    name: str = Field(primary_key=True, max_length=64)
    subject: str | None = Field(default=None, index=True, max_length=1024)
    salt: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    value: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class ApiToken(SQLModel, table=True):
    """A bearer token of the HTTP service; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=255)
    role: str = Field(max_length=32)
    token_sha256: str = Field(max_length=64, unique=True)
    created_at: str = Field(max_length=32)
    revoked_at: str | None = Field(default=None, max_length=32)


class IdempotencyRow(SQLModel, table=True):
    """The receipts first returned for an ``Idempotency-Key``."""

    __tablename__ = "idempotency_keys"

    key: str = Field(primary_key=True, max_length=255)
    request_sha256: str = Field(max_length=64)
    response: str
    created_at: str = Field(max_length=32)


APPEND_ONLY_TABLES = ("entries", "merkle_nodes", "checkpoints", "log_keys")

_SQLITE_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS {table}_no_{action} BEFORE {verb} ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} rejected'); END
"""

# The doubled %% become single % markers: psycopg substitutes parameters.
_POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION govledger_reject_change() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION '%% is append-only: %% rejected', TG_TABLE_NAME, TG_OP;
END
$$ LANGUAGE plpgsql
"""

_POSTGRES_TRIGGER = """
CREATE OR REPLACE TRIGGER {table}_append_only
BEFORE UPDATE OR DELETE OR TRUNCATE ON {table}
FOR EACH STATEMENT EXECUTE FUNCTION govledger_reject_change()
"""


def _is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _decode_lenient(value: bytes) -> str:
    """Decode SQLite text, keeping bytes that are not UTF-8 as lone surrogates."""
    return value.decode("utf-8", errors="surrogateescape")


def _configure_sqlite(engine: Engine, *, lenient_text: bool) -> None:
    """Set WAL, durable commits and secure_delete on every connection.

    The driver runs in autocommit mode so that the ledger issues BEGIN
    itself: ``BEGIN IMMEDIATE`` for writes, which takes the write lock at
    the start and so serializes appenders across processes.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        if lenient_text:
            dbapi_connection.text_factory = _decode_lenient
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 60000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA secure_delete = ON")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get("sqlite_immediate"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


def is_undecodable_text(error: DBAPIError) -> bool:
    """Return whether ``error`` is SQLite failing to decode text as UTF-8.

    Python's sqlite3 module raises OperationalError with this message when
    a text column contains bytes that are not UTF-8.
    """
    orig = getattr(error, "orig", None)
    return isinstance(orig, sqlite3.OperationalError) and str(orig).startswith(
        "Could not decode to UTF-8"
    )


def make_engine(url: str, *, lenient_text: bool = False) -> Engine:
    """Create an engine for a ledger URL (``sqlite:///...`` or PostgreSQL).

    SQLite stores whatever bytes a text column is given, and the driver
    raises on text that is not UTF-8. With ``lenient_text`` such bytes are
    read as lone surrogates instead, so ``verify`` can report the row as
    changed. It costs a Python call per text value. PostgreSQL checks the
    encoding on write, so the option changes nothing there.

    Raises:
        StoreError: the URL is invalid or names an unsupported database.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"invalid database URL {url!r}; use sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/DB"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise StoreError(
                "an in-memory SQLite ledger would be lost on exit; "
                "give a file: sqlite:///govledger.db"
            )
        parent = Path(database).expanduser().resolve().parent
        if not parent.is_dir():
            raise StoreError(f"directory {parent} does not exist; create it first")
        engine = create_engine(
            parsed, connect_args={"timeout": 60, "check_same_thread": False}
        )
        _configure_sqlite(engine, lenient_text=lenient_text)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, pool_size=8)
    raise StoreError(
        f"unsupported database {backend!r} in {url!r}; "
        "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
    )


def create_schema(engine: Engine) -> None:
    """Create tables and append-only triggers if they do not exist.

    Raises:
        StoreError: the database cannot be reached or written.
    """
    try:
        SQLModel.metadata.create_all(engine)
        with engine.begin() as connection:
            if _is_sqlite(engine):
                for table in APPEND_ONLY_TABLES:
                    for verb in ("UPDATE", "DELETE"):
                        connection.exec_driver_sql(
                            _SQLITE_TRIGGER.format(
                                table=table, action=verb.lower(), verb=verb
                            )
                        )
            else:
                connection.exec_driver_sql(_POSTGRES_FUNCTION)
                for table in APPEND_ONLY_TABLES:
                    connection.exec_driver_sql(_POSTGRES_TRIGGER.format(table=table))
    except OperationalError as error:
        raise StoreError(f"cannot create the ledger schema: {error.orig}") from None


def schema_exists(engine: Engine) -> bool:
    """Return whether the database already contains a ledger.

    Raises:
        StoreError: the database cannot be reached (other than "no table").
    """
    from sqlalchemy import inspect

    try:
        return inspect(engine).has_table("chain_head")
    except DBAPIError as error:
        raise StoreError(
            f"cannot open the ledger database: {error.orig}; check the --db URL"
        ) from None
