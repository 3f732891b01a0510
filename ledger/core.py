"""The Ledger: open, append, read, prove and checkpoint.

``Ledger.append`` and ``Ledger.append_many`` validate records outside the
transaction, then, holding the chain-head lock, assign seqs, link ``prev``,
store the entries' canonical bytes and the new Merkle nodes, and commit
durably before any receipt is returned.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from . import merkle
from .canonical import canonical_bytes
from .entries import (
    DERIVED_COLUMNS,
    GENESIS_PREV,
    Entry,
    derived_values,
    entry_bytes,
    entry_hash,
    format_timestamp,
    parse_entry,
)
from .errors import (
    ChainError,
    GovLedgerError,
    InputError,
    KeyFileError,
    NoteError,
    RecordError,
    StoreError,
)
from .records import (
    LEDGER_KINDS,
    CheckedRecord,
    canonical_record_bytes,
    validate_record,
)
from .store import (
    SCHEMA_VERSION,
    ChainHead,
    CheckpointRow,
    EntryRow,
    LogKeyRow,
    PersonalValue,
    create_schema,
    is_undecodable_text,
    make_engine,
    schema_exists,
)

__all__ = ["Ledger", "LedgerConfig", "default_key_dir"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def default_key_dir(url: str) -> Path:
    """Return the default key directory of a ledger URL.

    ``GOVLEDGER_KEY_DIR`` wins; a SQLite ledger keeps its keys beside the
    database file (``NAME-keys/``), any other ledger in ``./govledger-keys``.
    """
    configured = os.environ.get("GOVLEDGER_KEY_DIR")
    if configured:
        return Path(configured)
    if url.startswith("sqlite:///"):
        database = Path(url[len("sqlite:///") :]).expanduser()
        return database.with_name(database.stem + "-keys")
    return Path("govledger-keys")


@dataclass
class LedgerConfig:
    """Tunable behaviour of an open ledger.

    ``checkpoint_every`` entries or ``checkpoint_interval_s`` seconds after
    the last checkpoint, an append also signs a new checkpoint; 0 turns
    either trigger off.
    """

    checkpoint_every: int = 1000
    checkpoint_interval_s: float = 300.0
    key_dir: Path | None = None
    passphrase: bytes | None = None
    unsafe_unencrypted_key: bool = False


@dataclass(frozen=True)
class _SourceTarget:
    """A review target named by the reviewed entry's source, not yet a seq."""

    system: str
    ref: str
    index: int | None


@dataclass(frozen=True)
class _Prepared:
    checked: CheckedRecord
    record_bytes: bytes
    salts: dict[str, bytes]
    target_source: _SourceTarget | None = None
    index: int | None = None


# A record that ``Ledger.prepare`` validated, ready for ``append_prepared``.
PreparedRecord = _Prepared


class _ConnectionNodeReader:
    """Read Merkle nodes inside one connection: level 0 from the entries.

    ``connection`` is a SQLAlchemy connection, or the driver cursor of an
    append transaction.
    """

    def __init__(self, connection: Connection | _DriverCursor) -> None:
        if isinstance(connection, _DriverCursor):
            self._fetch = connection.fetch_all
        else:
            self._fetch = partial(_fetch_driver_sql, connection)

    def read_nodes(self, addresses: Sequence[tuple[int, int]]) -> list[bytes]:
        # At most two statements per call, whatever the number of levels: a
        # proof touches O(log n) nodes and each round trip costs more than
        # the index lookup itself.
        leaves = sorted({idx for level, idx in addresses if level == 0})
        inner = sorted({(level, idx) for level, idx in addresses if level > 0})
        found: dict[tuple[int, int], bytes] = {}
        if leaves:
            marks = ", ".join("?" for _ in leaves)
            rows = self._fetch(
                f"SELECT seq, entry_hash FROM entries WHERE seq IN ({marks})",
                tuple(leaves),
            )
            for seq, hex_hash in rows:
                found[(0, seq)] = bytes.fromhex(hex_hash)
        if inner:
            condition = " OR ".join("(level = ? AND idx = ?)" for _ in inner)
            rows = self._fetch(
                f"SELECT level, idx, hash FROM merkle_nodes WHERE {condition}",
                tuple(value for pair in inner for value in pair),
            )
            for level, idx, node in rows:
                found[(level, idx)] = bytes(node)
        try:
            return [found[address] for address in addresses]
        except KeyError as error:
            raise StoreError(
                f"Merkle node {error.args[0]} is missing from the store; "
                "run `govledger verify`"
            ) from None


class Ledger:
    """An open ledger on SQLite or PostgreSQL.

    Use ``Ledger.create`` once to make a new ledger and ``Ledger.open`` to
    use an existing one. The object is safe to share between threads: each
    operation takes its own connection.
    """

    def __init__(
        self, engine: Engine, url: str, config: LedgerConfig, clock: Clock
    ) -> None:
        self.engine = engine
        self.url = url
        self.config = config
        self._clock = clock
        self._signer: Any = None
        self._receipt_thread: ThreadPoolExecutor | None = None
        self._receipt_thread_pid = 0
        self._receipt_thread_lock = threading.Lock()
        self._last_checkpoint: tuple[int, datetime] | None = None
        try:
            with engine.connect() as connection:
                head = connection.execute(
                    select(ChainHead.origin).where(ChainHead.id == 1)
                ).one_or_none()
        except DBAPIError as error:
            if not is_undecodable_text(error):
                raise
            engine.dispose()
            raise _altered_table("chain_head", str(error.orig)) from None
        if head is None:
            engine.dispose()
            raise _missing_head(url)
        self.origin: str = head[0]

    # -- opening -----------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str,
        *,
        config: LedgerConfig | None = None,
        clock: Clock | None = None,
    ) -> Ledger:
        """Open an existing ledger.

        Raises:
            StoreError: the URL is invalid, the database is unreachable, or
                it contains no ledger.
        """
        if url.startswith("sqlite:///"):
            database = Path(url[len("sqlite:///") :]).expanduser()
            if not database.is_file():
                # Opening would create an empty file, so report what is missing.
                raise StoreError(
                    f"ledger file {database} does not exist; check --db, or run "
                    "`govledger init` to create a new ledger"
                )
        engine = make_engine(url)
        if not schema_exists(engine):
            engine.dispose()
            raise StoreError(
                f"{_redact(url)} contains no ledger; run `govledger init` first"
            )
        return cls(engine, url, config or LedgerConfig(), clock or _utc_now)

    @classmethod
    def create(
        cls,
        url: str,
        *,
        origin: str,
        config: LedgerConfig | None = None,
        clock: Clock | None = None,
    ) -> Ledger:
        """Create a new ledger with a new log key and open it.

        ``origin`` names the log in checkpoints and receipts (C2SP
        tlog-checkpoint origin line), e.g. ``example.org/govledger``.

        Raises:
            StoreError: the database already contains a ledger or cannot be
                written.
            KeyFileError: the log key cannot be written.
            InputError: ``origin`` is not a valid log name.
        """
        from .keys import generate_log_key, passphrase_from_env, write_private_key

        _check_origin(origin)
        config = config or LedgerConfig()
        engine = make_engine(url)
        if schema_exists(engine):
            engine.dispose()
            raise StoreError(f"{_redact(url)} already contains a ledger")
        signer = generate_log_key(origin)
        key_dir = config.key_dir or default_key_dir(url)
        passphrase = config.passphrase or passphrase_from_env()
        key_path = key_dir / f"log-{signer.key_id:08x}.pem"
        write_private_key(
            key_path,
            signer.private_key,
            passphrase,
            unsafe_unencrypted=config.unsafe_unencrypted_key,
        )
        create_schema(engine)
        now = format_timestamp((clock or _utc_now)())
        with engine.begin() as connection:
            connection.execute(
                insert(ChainHead).values(
                    id=1,
                    origin=origin,
                    schema_version=SCHEMA_VERSION,
                    size=0,
                    head_hash=GENESIS_PREV,
                    last_recorded_at=now,
                    created_at=now,
                    peaks=b"",
                )
            )
            connection.execute(
                insert(LogKeyRow).values(
                    key_id=f"{signer.key_id:08x}",
                    verifier_key=signer.verifier_key(),
                    created_at=now,
                    created_seq=None,
                )
            )
        ledger = cls(engine, url, config, clock or _utc_now)
        ledger._signer = signer
        logger.info("created ledger %s with log key %08x", origin, signer.key_id)
        return ledger

    def on_engine(self, engine: Engine) -> Ledger:
        """Return a Ledger object for the same ledger that uses ``engine``.

        ``engine`` must be made by ``store.make_engine`` for the same database.
        """
        return Ledger(engine, self.url, self.config, self._clock)

    def close(self) -> None:
        """Stop the receipt thread and release the database connections."""
        self.stop_receipt_thread()
        self.engine.dispose()

    def stop_receipt_thread(self) -> None:
        """Stop the thread that signs receipts, once its work is done.

        The next signed append starts it again. ``verify`` calls this before
        it forks worker processes, which is safe only while this process
        runs one thread.
        """
        with self._receipt_thread_lock:
            thread, self._receipt_thread = self._receipt_thread, None
        if thread is not None and self._receipt_thread_pid == os.getpid():
            thread.shutdown(wait=True)

    def _start_signing(
        self, signer: Any, rows: list[dict[str, Any]]
    ) -> Future[list[dict[str, Any]]]:
        """Sign the receipts of ``rows`` on the receipt thread.

        Appends call this just before the commit. The sqlite3 module and
        psycopg release the GIL while a commit waits for the disk or the
        server, so the signing overlaps that wait. The caller returns the
        receipts only after the commit succeeded.
        """
        with self._receipt_thread_lock:
            # A forked child inherits the executor but not its thread, so
            # work submitted there would never run.
            if self._receipt_thread is None or self._receipt_thread_pid != os.getpid():
                self._receipt_thread = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="govledger-receipts"
                )
                self._receipt_thread_pid = os.getpid()
            try:
                return self._receipt_thread.submit(self.sign_receipts, signer, rows)
            except RuntimeError:
                # Executors reject new work once the interpreter starts to shut
                # down, which happens before it waits for other non-daemon
                # threads and before atexit handlers run. Appends made then
                # sign in the calling thread.
                pass
        signed: Future[list[dict[str, Any]]] = Future()
        signed.set_result(self.sign_receipts(signer, rows))
        return signed

    def sign_receipts(
        self, signer: Any, rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Sign a receipt with ``signer`` for each row (``seq``, ``entry_hash``,
        ``recorded_at``) of this ledger's entries."""
        from .receipts import make_receipt

        return [
            make_receipt(
                signer,
                origin=self.origin,
                seq=row["seq"],
                entry_hash=row["entry_hash"],
                recorded_at=row["recorded_at"],
            )
            for row in rows
        ]

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- keys --------------------------------------------------------------

    def key_rows(self) -> list[LogKeyRow]:
        """Return every log key the ledger has used, oldest first.

        Raises:
            ChainError: a row is not readable (reason ``row-altered``).
        """
        statement = select(LogKeyRow).order_by(LogKeyRow.created_at, LogKeyRow.key_id)
        return self._read_rows(LogKeyRow, statement)

    def _read_rows(self, model: Any, statement: Any) -> list[Any]:
        """Run ``statement`` and validate each row as ``model``.

        Raises:
            ChainError: a row contains text that is not UTF-8 or a value of
                the wrong type, which govledger never writes (reason
                ``row-altered``).
        """
        table = model.__tablename__
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(statement).all()
            return [model.model_validate(row._mapping) for row in rows]
        except DBAPIError as error:
            if not is_undecodable_text(error):
                raise
            raise _altered_table(table, str(error.orig)) from None
        except ValidationError as error:
            first = error.errors()[0]
            column = ".".join(str(part) for part in first["loc"])
            raise _altered_table(
                table, f"column {column} of a row is invalid ({first['msg']})"
            ) from None

    def verifiers(self) -> list[Any]:
        """Return a note verifier for every log key the ledger has used.

        Raises:
            ChainError: a stored key is not readable or not a valid verifier
                key (reason ``row-altered``).
        """
        from .note import parse_verifier_key

        rows = self.key_rows()
        try:
            return [parse_verifier_key(row.verifier_key) for row in rows]
        except NoteError as error:
            raise _altered_table(
                "log_keys", f"a stored verifier key is invalid: {error.message}"
            ) from None

    def current_key_id(self) -> str:
        """Return the key ID (8 hex digits) of the key that signs now."""
        rows = self.key_rows()
        current = [row for row in rows if row.created_seq is not None]
        if current:
            return max(current, key=lambda row: row.created_seq or 0).key_id
        return rows[0].key_id

    def signer(self) -> Any:
        """Load the current log key for signing, once.

        Raises:
            KeyFileError: the key file is missing, too open, or its
                passphrase is wrong.
        """
        if self._signer is not None:
            return self._signer
        from .keys import load_private_key, passphrase_from_env
        from .note import Signer

        key_id = self.current_key_id()
        key_dir = self.config.key_dir or default_key_dir(self.url)
        path = key_dir / f"log-{key_id}.pem"
        if not path.exists():
            raise KeyFileError(
                f"log key {key_id} not found at {path}; set GOVLEDGER_KEY_DIR "
                "or --key-dir to the directory that holds it",
                reason="key-not-found",
            )
        private_key = load_private_key(
            path,
            self.config.passphrase or passphrase_from_env(),
            unsafe_unencrypted=self.config.unsafe_unencrypted_key,
        )
        signer = Signer(self.origin, private_key)
        if f"{signer.key_id:08x}" != key_id:
            raise KeyFileError(
                f"key file {path} contains key {signer.key_id:08x}, expected "
                f"{key_id}; restore the right key file",
                reason="key-mismatch",
            )
        self._signer = signer
        return signer

    # -- appending ---------------------------------------------------------

    def append(self, record: Any) -> dict[str, Any]:
        """Append one input record; return its signed receipt.

        Raises:
            RecordError: the record is invalid; nothing was written.
            KeyFileError: the log key cannot be loaded to sign the receipt.
            StoreError: the database failed; nothing was written.
        """
        return self.append_many([record], single=True)[0]

    def append_many(
        self,
        records: Sequence[Any],
        *,
        skip_known_sources: bool = False,
        sign_receipts: bool = True,
        single: bool = False,
        resolve_source_targets: bool = False,
    ) -> list[dict[str, Any]]:
        """Append records in one transaction: all of them or none.

        With ``skip_known_sources`` a record whose ``source`` (system, ref)
        is already in the ledger, or earlier in the batch, is skipped, which
        makes imports idempotent; only new records get receipts.
        ``sign_receipts=False`` returns unsigned receipts (origin, seq,
        entry_hash, recorded_at) for bulk loads that keep none: an Ed25519
        signature per record costs more than the rest of the append.

        With ``resolve_source_targets`` a review may name the entry it
        reviews by that entry's source, ``"target": {"source": {"system":
        S, "ref": R}}``, when its seq is not known yet. Under the chain-head
        lock the target becomes ``{"seq": N}`` of the earliest entry with
        that source, either already in the ledger or earlier in the batch,
        so the stored entry holds an ordinary seq target.

        Raises:
            RecordError: a record is invalid, or no entry has the source a
                review targets; the error names its index and field, and
                nothing was written.
            KeyFileError: the log key cannot be loaded.
            StoreError: the database failed; nothing was written.
        """
        prepare = (
            self._prepare_source_target if resolve_source_targets else self._prepare
        )
        prepared = [
            prepare(record, None if single else index)
            for index, record in enumerate(records)
        ]
        return self._append_prepared(
            prepared,
            skip_known_sources=skip_known_sources,
            sign_receipts=sign_receipts,
        )

    def prepare(
        self, records: Sequence[Any], *, single: bool = False
    ) -> list[PreparedRecord]:
        """Validate records and compute their canonical bytes, writing nothing.

        The result is the input of ``append_prepared``, so that a caller can
        reject a bad record before it joins a transaction shared with other
        requests. ``single`` leaves the index out of errors, as ``append``
        does.

        Raises:
            RecordError: a record is invalid; the error names its index
                (unless ``single``) and field.
        """
        return [
            self._prepare(record, None if single else index)
            for index, record in enumerate(records)
        ]

    def append_prepared(
        self,
        groups: Sequence[Sequence[PreparedRecord]],
        *,
        before_write: Callable[[Connection], None] | None = None,
        after_write: Callable[[Connection, list[list[dict[str, Any]]]], None]
        | None = None,
    ) -> list[list[dict[str, Any]]]:
        """Append groups of prepared records in one transaction (group commit).

        Returns the signed receipts of each group, in group order. The
        groups share one durable commit. The receipts are signed while it
        runs and returned after it. ``before_write`` runs inside the
        transaction once the chain head is locked and may raise to roll
        everything back. ``after_write`` receives each group's rows
        (``seq``, ``entry_hash``, ``recorded_at``) inside the same
        transaction, so whatever it writes commits or rolls back with the
        entries.

        Raises:
            KeyFileError: the log key cannot be loaded.
            StoreError: nothing was written. The reason is ``database-busy``
                when a lock timeout, deadlock or serialization failure
                rolled the transaction back, so running it again may
                succeed.
        """
        sizes = [len(group) for group in groups]

        def split(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
            grouped, start = [], 0
            for size in sizes:
                grouped.append(rows[start : start + size])
                start += size
            return grouped

        def write_groups(connection: Connection, rows: list[dict[str, Any]]) -> None:
            if after_write is not None:
                after_write(connection, split(rows))

        signer = self.signer()
        flat = [item for group in groups for item in group]
        signing: list[Future[list[dict[str, Any]]]] = []
        try:
            rows = self._commit(
                flat,
                False,
                write_groups,
                before_write=before_write,
                before_commit=lambda rows: signing.append(
                    self._start_signing(signer, rows)
                ),
            )
        except StoreError as error:
            cause = error.__context__
            if isinstance(cause, DBAPIError) and _is_transient(cause):
                raise StoreError(error.message, reason="database-busy") from cause
            raise
        receipts = signing[0].result() if signing else []
        try:
            self._maybe_checkpoint(rows[-1]["seq"] + 1 if rows else None)
        except DBAPIError as error:
            # The entries are committed; a checkpoint missed here is made by
            # a later append or on demand.
            logger.warning("automatic checkpoint failed: %s", error.orig)
        return split(receipts)

    def append_ledger_record(
        self,
        kind: str,
        body: dict[str, Any],
        *,
        before_write: Callable[[Connection], None] | None = None,
    ) -> dict[str, Any]:
        """Append an entry of one of the ledger's own kinds; return its receipt.

        ``body`` is the complete record (``actor``, ``occurred_at`` and the
        kind's fields); only the ledger writes these kinds, so they are not
        validated against the input schema. ``before_write`` runs inside the
        append transaction, after the chain-head lock is taken and before the
        entry is written, so its changes commit or roll back with the entry
        (erasure deletes personal values there).

        Raises:
            InputError: ``kind`` is not a ledger kind or ``body`` has no
                canonical form.
        """
        if kind not in LEDGER_KINDS:
            raise InputError(f"{kind!r} is not a ledger kind: {LEDGER_KINDS}")
        return self._append_prepared(
            [self._prepare_ledger_record(kind, body)], before_write=before_write
        )[0]

    def _prepare_ledger_record(self, kind: str, body: dict[str, Any]) -> _Prepared:
        checked = CheckedRecord(
            kind=kind,
            body=body,
            personal={},
            occurred_at=self._clock(),
        )
        record_bytes = canonical_record_bytes(body, index=None)
        return _Prepared(checked=checked, record_bytes=record_bytes, salts={})

    def _append_prepared(
        self,
        prepared: list[_Prepared],
        *,
        skip_known_sources: bool = False,
        sign_receipts: bool = True,
        after_write: Callable[[Connection, list[dict[str, Any]]], None] | None = None,
        before_write: Callable[[Connection], None] | None = None,
    ) -> list[dict[str, Any]]:
        signer = self.signer()
        signing: list[Future[list[dict[str, Any]]]] = []

        def start_signing(rows: list[dict[str, Any]]) -> None:
            if sign_receipts:
                signing.append(self._start_signing(signer, rows))

        rows = self._commit(
            prepared,
            skip_known_sources,
            after_write,
            before_write=before_write,
            before_commit=start_signing,
        )
        size = rows[-1]["seq"] + 1 if rows else None
        if not sign_receipts:
            self._maybe_checkpoint(size)
            return [{"origin": self.origin, **row} for row in rows]
        receipts = signing[0].result() if signing else []
        self._maybe_checkpoint(size)
        return receipts

    def rotate_key(self) -> tuple[dict[str, Any], str]:
        """Replace the log key; return the key_rotated receipt and new verifier key.

        The ``key_rotated`` entry names both keys and carries the old key's
        signature over the JCS bytes of ``{"new_key", "old_key", "origin"}``,
        so the handover is provable; its receipt is signed by the old key.
        Checkpoints signed by the old key keep verifying because every
        public key stays in the ``log_keys`` table.

        Raises:
            KeyFileError: the old key cannot be loaded or the new one written.
        """
        import base64

        from .keys import generate_log_key, passphrase_from_env, write_private_key

        old = self.signer()
        new = generate_log_key(self.origin)
        key_dir = self.config.key_dir or default_key_dir(self.url)
        write_private_key(
            key_dir / f"log-{new.key_id:08x}.pem",
            new.private_key,
            self.config.passphrase or passphrase_from_env(),
            unsafe_unencrypted=self.config.unsafe_unencrypted_key,
        )
        statement = {
            "new_key": new.verifier_key(),
            "old_key": old.verifier_key(),
            "origin": self.origin,
        }
        body = {
            "actor": "svc:govledger",
            "occurred_at": format_timestamp(self._clock()),
            **statement,
            "old_key_signature": base64.b64encode(
                old.sign(canonical_bytes(statement))
            ).decode("ascii"),
        }

        def record_key(connection: Connection, rows: list[dict[str, Any]]) -> None:
            connection.execute(
                insert(LogKeyRow).values(
                    key_id=f"{new.key_id:08x}",
                    verifier_key=new.verifier_key(),
                    created_at=rows[0]["recorded_at"],
                    created_seq=rows[0]["seq"],
                )
            )

        receipt = self._append_prepared(
            [self._prepare_ledger_record("key_rotated", body)], after_write=record_key
        )[0]
        self._signer = new
        logger.info("rotated log key %08x -> %08x", old.key_id, new.key_id)
        return receipt, new.verifier_key()

    def _prepare(self, record: Any, index: int | None) -> _Prepared:
        checked = validate_record(record, index=index)
        body = checked.body
        salts: dict[str, bytes] = {}
        if checked.personal:
            commitments = {}
            for name, value in checked.personal.items():
                value_bytes = canonical_record_bytes(
                    value, index=index, path=f"personal.{name}"
                )
                salt = secrets.token_bytes(32)
                salts[name] = salt
                commitments[name] = hashlib.sha256(salt + value_bytes).hexdigest()
            body = {**body, "personal": commitments}
        record_bytes = canonical_record_bytes(body, index=index)
        return _Prepared(
            checked=checked, record_bytes=record_bytes, salts=salts, index=index
        )

    def _prepare_source_target(self, record: Any, index: int | None) -> _Prepared:
        """Prepare a record; a review targeting ``{"source": ...}`` waits for a seq.

        The review is validated with a placeholder ``{"seq": 0}`` (any seq
        passes the schema), and ``_resolve_source_targets`` puts in the real
        seq before its bytes are hashed.

        Raises:
            RecordError: the record is invalid, or ``target.source`` is not
                an object of two non-empty strings, system and ref.
        """
        target = record.get("target") if isinstance(record, dict) else None
        if not (
            isinstance(record, dict)
            and record.get("kind") == "review"
            and isinstance(target, dict)
            and set(target) == {"source"}
        ):
            return self._prepare(record, index)
        source = target["source"]
        if not (
            isinstance(source, dict)
            and set(source) == {"system", "ref"}
            and all(isinstance(value, str) and value for value in source.values())
        ):
            where = "record" if index is None else f"record {index}"
            problem = 'must be {"system": ..., "ref": ...} with non-empty strings'
            raise RecordError(
                f"{where}: target.source: {problem}",
                errors=[{"field": "target.source", "problem": problem}],
                index=index,
            )
        prepared = self._prepare({**record, "target": {"seq": 0}}, index)
        return replace(
            prepared,
            target_source=_SourceTarget(
                system=source["system"], ref=source["ref"], index=index
            ),
        )

    def _resolve_source_targets(
        self, cursor: _DriverCursor, head: _LockedHead, prepared: list[_Prepared]
    ) -> list[_Prepared]:
        """Turn every ``target.source`` into the seq of the entry with that source.

        Runs under the chain-head lock, after known sources were dropped, so
        the seqs of the batch are final: entry ``i`` of ``prepared`` gets
        seq ``head.size + i``. An entry already in the ledger wins over one
        in the batch, and a batch entry counts only if it comes earlier.

        Raises:
            RecordError: no entry has the targeted source.
        """
        wanted = {
            (item.target_source.system, item.target_source.ref)
            for item in prepared
            if item.target_source is not None
        }
        if not wanted:
            return prepared
        in_ledger = self._seqs_by_source(cursor, wanted)
        in_batch: dict[tuple[str, str], int] = {}
        resolved = []
        for offset, item in enumerate(prepared):
            target = item.target_source
            if target is not None:
                key = (target.system, target.ref)
                seq = in_ledger.get(key, in_batch.get(key))
                if seq is None:
                    where = (
                        "record" if target.index is None else f"record {target.index}"
                    )
                    problem = (
                        f"no entry has source system {target.system!r} and ref "
                        f"{target.ref!r}; append the reviewed record first or "
                        "earlier in the same batch"
                    )
                    raise RecordError(
                        f"{where}: target.source: {problem}",
                        errors=[{"field": "target.source", "problem": problem}],
                        index=target.index,
                    )
                item = self._retarget(item, seq)
            source = item.checked.body.get("source") or {}
            if source.get("ref") is not None:
                key = (source["system"], source["ref"])
                in_batch.setdefault(key, head.size + offset)
            resolved.append(item)
        return resolved

    def _seqs_by_source(
        self, cursor: _DriverCursor, keys: set[tuple[str, str]]
    ) -> dict[tuple[str, str], int]:
        """Return the smallest seq of each (system, ref) present in the ledger."""
        found: dict[tuple[str, str], int] = {}
        for system in {system for system, _ in keys}:
            refs = sorted(ref for other, ref in keys if other == system)
            for start in range(0, len(refs), 500):
                chunk = refs[start : start + 500]
                rows = cursor.fetch_all(
                    "SELECT source_ref, min(seq) FROM entries WHERE "
                    f"source_system = ? AND source_ref IN ({_marks(chunk)}) "
                    "GROUP BY source_ref",
                    (system, *chunk),
                )
                found.update(((system, ref), int(seq)) for ref, seq in rows)
        return found

    def _retarget(self, item: _Prepared, seq: int) -> _Prepared:
        """Replace the placeholder target of a prepared review with ``seq``.

        The record was validated with a placeholder seq, and every seq >= 0
        passes the schema, so it is not validated again.
        """
        index = item.target_source.index if item.target_source else None
        checked = replace(
            item.checked, body={**item.checked.body, "target": {"seq": seq}}
        )
        stored = json.loads(item.record_bytes)
        stored["target"] = {"seq": seq}
        return _Prepared(
            checked=checked,
            record_bytes=canonical_record_bytes(stored, index=index),
            salts=item.salts,
            index=index,
        )

    def _commit(
        self,
        prepared: list[_Prepared],
        skip_known_sources: bool,
        after_write: Callable[[Connection, list[dict[str, Any]]], None] | None,
        *,
        before_write: Callable[[Connection], None] | None = None,
        before_commit: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Write the entries of ``prepared`` in one transaction; return their rows.

        ``before_commit`` receives the rows (``seq``, ``entry_hash``,
        ``recorded_at``) after every write and before the commit, unless
        there are none. The entries are committed only when this returns.
        """
        try:
            callbacks = before_write is not None or after_write is not None
            with self._write_transaction(callbacks) as transaction:
                cursor = transaction.cursor
                if skip_known_sources:
                    prepared = self._drop_known_sources(cursor, prepared)
                head = self._lock_head(cursor)
                prepared = self._resolve_source_targets(cursor, head, prepared)
                if before_write is not None:
                    before_write(transaction.connection)
                rows = self._write_entries(cursor, head, prepared)
                if after_write is not None:
                    after_write(transaction.connection, rows)
                if before_commit is not None and rows:
                    before_commit(rows)
            return rows
        except IntegrityError as error:
            raise StoreError(
                f"append failed and was rolled back: {error.orig}; retry"
            ) from None
        except DBAPIError as error:
            raise StoreError(
                f"database error, nothing was written: {error.orig}"
            ) from None

    def _write_transaction(self, callbacks: bool) -> Any:
        """Return a context manager of an append transaction.

        With ``callbacks`` the transaction runs on a SQLAlchemy connection,
        which ``before_write`` and ``after_write`` receive. Without, it runs
        on the pooled driver connection alone, which saves SQLAlchemy's work
        around BEGIN and COMMIT on every one-record append.
        """
        if callbacks:
            connection = self.engine.connect()
            if self.engine.dialect.name == "sqlite":
                connection = connection.execution_options(sqlite_immediate=True)
            return _Transaction(connection)
        return _DriverTransaction(self.engine)

    def _peaks_of(
        self, cursor: _DriverCursor, head: _LockedHead
    ) -> list[tuple[int, int, bytes]]:
        """Return the tree's peaks from the head row, or from the nodes if the
        head row does not hold them."""
        addresses = merkle.root_addresses(head.size)
        stored = bytes(head.peaks or b"")
        if len(stored) == 32 * len(addresses):
            hashes = [stored[i : i + 32] for i in range(0, len(stored), 32)]
        else:
            hashes = _ConnectionNodeReader(cursor).read_nodes(addresses)
        return [
            (level, idx, node)
            for (level, idx), node in zip(addresses, hashes, strict=True)
        ]

    def _lock_head(self, cursor: _DriverCursor) -> _LockedHead:
        """Read the chain head, locking it until the transaction ends.

        SQLite holds the database write lock since BEGIN IMMEDIATE;
        PostgreSQL takes the row lock here, which serializes appenders in
        every process on every machine.

        Raises:
            ChainError: the chain_head row is missing.
        """
        statement = _LOCK_HEAD_SQL
        if self.engine.dialect.name != "sqlite":
            statement += " FOR UPDATE"
        rows = cursor.fetch_all(statement)
        if len(rows) != 1:
            raise ChainError(
                "the chain_head row is missing: the database was altered "
                "outside govledger; restore it from a backup and verify it "
                "against a trusted checkpoint",
                reason="head-missing",
            )
        return _LockedHead(*rows[0])

    def _drop_known_sources(
        self, cursor: _DriverCursor, prepared: list[_Prepared]
    ) -> list[_Prepared]:
        keyed: dict[tuple[str, str], None] = {}
        for item in prepared:
            source = item.checked.body.get("source") or {}
            if source.get("ref") is not None:
                keyed[(source["system"], source["ref"])] = None
        known: set[tuple[str, str]] = set()
        stored_records: dict[tuple[str, str], bytes] = {}
        systems = {system for system, _ in keyed}
        for system in systems:
            refs = [ref for sys_, ref in keyed if sys_ == system]
            for start in range(0, len(refs), 500):
                chunk = refs[start : start + 500]
                rows = cursor.fetch_all(
                    "SELECT source_ref, body FROM entries WHERE "
                    f"source_system = ? AND source_ref IN ({_marks(chunk)})",
                    (system, *chunk),
                )
                for ref, body in rows:
                    known.add((system, ref))
                    stored_records[(system, ref)] = _record_part(bytes(body))
        result = []
        changed = 0
        for item in prepared:
            source = item.checked.body.get("source") or {}
            key = (source.get("system"), source.get("ref"))
            if source.get("ref") is not None:
                if key in known:
                    stored = stored_records.get(key)  # type: ignore[arg-type]
                    comparable = not item.salts and item.target_source is None
                    if (
                        comparable
                        and stored is not None
                        and stored != item.record_bytes
                    ):
                        changed += 1
                    continue
                known.add(key)  # type: ignore[arg-type]
            result.append(item)
        if changed:
            logger.warning(
                "%d skipped records differ from the entries already stored with "
                "the same source ref; entries are append-only, so they were not "
                "updated (append a review with a correction instead)",
                changed,
            )
        return result

    def _check_review_targets(
        self, cursor: _DriverCursor, size: int, prepared: list[_Prepared]
    ) -> None:
        """Reject a review whose target is not an earlier entry.

        A target seq must be below the review's own seq; a target entry
        hash must be stored already (a hash of an entry in the same batch
        cannot be known before the batch is written).

        Raises:
            RecordError: the target does not exist; nothing is written.
        """
        hashes: dict[str, tuple[int, _Prepared]] = {}
        for offset, item in enumerate(prepared):
            if item.checked.kind != "review":
                continue
            target = item.checked.body.get("target")
            if not isinstance(target, dict):
                continue
            seq = size + offset
            target_seq = target.get("seq")
            if isinstance(target_seq, int) and not 0 <= target_seq < seq:
                raise _target_error(
                    item, offset, f"seq {target_seq} is not an earlier entry"
                )
            if isinstance(target.get("entry_hash"), str):
                hashes[target["entry_hash"]] = (offset, item)
        if not hashes:
            return
        known: set[str] = set()
        target_hashes = sorted(hashes)
        for start in range(0, len(target_hashes), 500):
            chunk = target_hashes[start : start + 500]
            rows = cursor.fetch_all(
                f"SELECT entry_hash FROM entries WHERE entry_hash IN ({_marks(chunk)})",
                tuple(chunk),
            )
            known.update(row[0] for row in rows)
        for value, (offset, item) in hashes.items():
            if value not in known:
                raise _target_error(item, offset, f"entry_hash {value} is not stored")

    def _write_entries(
        self, cursor: _DriverCursor, head: _LockedHead, prepared: list[_Prepared]
    ) -> list[dict[str, Any]]:
        if not prepared:
            return []
        self._check_review_targets(cursor, head.size, prepared)
        now = format_timestamp(self._clock())
        # recorded_at never goes backwards, even if the system clock does.
        recorded_at = max(now, head.last_recorded_at)
        size = head.size
        prev = head.head_hash
        entry_rows = []
        personal_rows = []
        leaves = []

        seq = size
        for item in prepared:
            checked = item.checked
            body = entry_bytes(
                seq=seq,
                prev=prev,
                kind=checked.kind,
                recorded_at=recorded_at,
                record_bytes=item.record_bytes,
            )
            leaf = entry_hash(body)
            prev = leaf.hex()
            entry_rows.append(
                (
                    seq,
                    prev,
                    body,
                    *derived_values(checked.kind, recorded_at, checked.body),
                )
            )
            leaves.append(leaf)
            for name, salt in item.salts.items():
                personal_rows.append(
                    (
                        seq,
                        name,
                        checked.body.get("subject"),
                        salt,
                        canonical_bytes(checked.personal[name]),
                    )
                )
            seq += 1

        peaks = self._peaks_of(cursor, head)
        new_nodes, new_peaks = merkle.extend(peaks, size, leaves)

        cursor.insert_many("entries", _ENTRY_COLUMNS, entry_rows)
        if new_nodes:
            cursor.insert_many("merkle_nodes", ("level", "idx", "hash"), new_nodes)
        if personal_rows:
            cursor.insert_many("personal_values", _PERSONAL_COLUMNS, personal_rows)

        cursor.execute(
            "UPDATE chain_head SET size = ?, head_hash = ?, last_recorded_at = ?, "
            "peaks = ? WHERE id = 1",
            (
                size + len(prepared),
                prev,
                recorded_at,
                b"".join(node for _, _, node in new_peaks),
            ),
        )
        return [
            {"seq": row[0], "entry_hash": row[1], "recorded_at": recorded_at}
            for row in entry_rows
        ]

    # -- reading -----------------------------------------------------------

    def head(self) -> ChainHead:
        """Return the chain head: size, head hash, origin.

        Raises:
            ChainError: the head row is missing (reason ``head-missing``) or
                not readable (reason ``row-altered``).
        """
        rows = self._read_rows(ChainHead, select(ChainHead).where(ChainHead.id == 1))
        if len(rows) != 1:
            raise _missing_head(self.url)
        return rows[0]

    @property
    def size(self) -> int:
        """The number of entries in the ledger."""
        return self.head().size

    def get(self, seq: int) -> Entry:
        """Return the entry at ``seq``.

        Raises:
            InputError: no entry has that seq.
        """
        if not 0 <= seq < 2**63:
            row = None
        else:
            with self.engine.connect() as connection:
                row = connection.execute(
                    select(EntryRow.body, EntryRow.entry_hash).where(
                        EntryRow.seq == seq
                    )
                ).one_or_none()
        if row is None:
            raise InputError(
                f"no entry with seq {seq}; the ledger has {self.size} entries "
                f"(seq 0 to {self.size - 1})",
                reason="entry-not-found",
            )
        return parse_entry(bytes(row[0]), row[1])

    def iter_raw(
        self, start: int = 0, end: int | None = None, *, chunk: int = 5000
    ) -> Iterator[tuple[int, str, bytes, tuple[Any, ...]]]:
        """Stream (seq, stored hash, body, derived columns) in seq order.

        Memory stays flat: rows are read in chunks by keyset pagination.
        """
        columns = ", ".join(("seq", "entry_hash", "body", *DERIVED_COLUMNS))
        bound = "" if end is None else " AND seq < ?"
        statement = (
            f"SELECT {columns} FROM entries WHERE seq > ?{bound} ORDER BY seq LIMIT ?"
        )
        last = start - 1
        while True:
            parameters = (last, chunk) if end is None else (last, end, chunk)
            with self.engine.connect() as connection:
                rows = _fetch_driver_sql(connection, statement, parameters)
            if not rows:
                return
            for row in rows:
                yield row[0], row[1], _as_bytes(row[2]), row[3:]
            last = rows[-1][0]

    def entries(
        self,
        *,
        kind: str | None = None,
        actor: str | None = None,
        since: str | None = None,
        until: str | None = None,
        start: int = 0,
        limit: int | None = None,
    ) -> Iterator[Entry]:
        """Stream entries in seq order, filtered on the derived columns.

        ``since`` and ``until`` bound ``recorded_at`` (RFC 3339 UTC text,
        ``until`` exclusive).
        """
        last = start - 1
        remaining = limit
        while remaining is None or remaining > 0:
            batch = 1000 if remaining is None else min(1000, remaining)
            statement = (
                select(EntryRow.seq, EntryRow.body, EntryRow.entry_hash)
                .where(EntryRow.seq > last)
                .order_by(EntryRow.seq)
                .limit(batch)
            )
            if kind:
                statement = statement.where(EntryRow.kind == kind)
            if actor:
                statement = statement.where(EntryRow.actor == actor)
            if since:
                statement = statement.where(EntryRow.recorded_at >= since)
            if until:
                statement = statement.where(EntryRow.recorded_at < until)
            with self.engine.connect() as connection:
                rows = connection.execute(statement).all()
            if not rows:
                return
            for _seq, body, hex_hash in rows:
                yield parse_entry(bytes(body), hex_hash)
            last = rows[-1][0]
            if remaining is not None:
                remaining -= len(rows)

    def personal_values(self, seq: int) -> dict[str, dict[str, Any]]:
        """Return the stored personal values of an entry with their salts."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(PersonalValue).where(PersonalValue.seq == seq)
            ).all()
        result = {}
        for row in rows:
            value = PersonalValue.model_validate(row._mapping)
            result[value.name] = {
                "value_jcs": bytes(value.value),
                "salt": bytes(value.salt).hex(),
            }
        return result

    def stats(self) -> dict[str, Any]:
        """Summarise the ledger with SQL aggregates: counts, actors, span, head."""
        from sqlalchemy import distinct, func

        with self.engine.connect() as connection:
            kinds = dict(
                connection.execute(
                    select(EntryRow.kind, func.count()).group_by(EntryRow.kind)
                ).all()
            )
            actors = connection.execute(
                select(func.count(distinct(EntryRow.actor)))
            ).scalar_one()
            items = connection.execute(
                select(func.count()).select_from(
                    select(EntryRow.item_dataset, EntryRow.item_id)
                    .where(EntryRow.item_id.is_not(None))
                    .group_by(EntryRow.item_dataset, EntryRow.item_id)
                    .subquery()
                )
            ).scalar_one()
            first, last = connection.execute(
                select(func.min(EntryRow.occurred_at), func.max(EntryRow.occurred_at))
            ).one()
            checkpoints = connection.execute(
                select(func.count()).select_from(CheckpointRow)
            ).scalar_one()
        head = self.head()
        return {
            "origin": self.origin,
            "entries": head.size,
            "kinds": kinds,
            "actors": actors,
            "items": items,
            "first_occurred_at": first,
            "last_occurred_at": last,
            "head_hash": head.head_hash,
            "checkpoints": checkpoints,
        }

    # -- Merkle tree -------------------------------------------------------

    def root(self, size: int | None = None) -> bytes:
        """Return the RFC 9162 root of the first ``size`` entries.

        Raises:
            InputError: ``size`` exceeds the ledger.
        """
        with self.engine.connect() as connection:
            current = self._size_on(connection)
            size = current if size is None else size
            _check_size(size, current, "tree size")
            return merkle.root(_ConnectionNodeReader(connection), size)

    def inclusion_proof(self, seq: int, tree_size: int | None = None) -> dict[str, Any]:
        """Build an RFC 9162 inclusion proof of entry ``seq`` (JSON form).

        Without ``tree_size`` the proof is against the latest checkpoint,
        whose signed note is included so the proof verifies offline.

        Raises:
            InputError: ``seq`` or ``tree_size`` is out of range, or no
                checkpoint covers the entry yet.
        """
        note = None
        if tree_size is None:
            checkpoint = self.latest_checkpoint()
            if checkpoint is None or checkpoint.tree_size <= seq:
                checkpoint = self.make_checkpoint()
            tree_size, note = checkpoint.tree_size, checkpoint.note
        else:
            note = self._checkpoint_note_for(tree_size)
        with self.engine.connect() as connection:
            current = self._size_on(connection)
            _check_size(tree_size, current, "tree_size")
            if not 0 <= seq < tree_size:
                raise InputError(
                    f"seq {seq} is outside a tree of size {tree_size}; "
                    f"give a seq below {tree_size}",
                    reason="index-out-of-range",
                )
            reader = _ConnectionNodeReader(connection)
            path = merkle.inclusion_proof(reader, seq, tree_size)
            leaf = reader.read_nodes([(0, seq)])[0]
        return {
            "type": "inclusion",
            "index": seq,
            "tree_size": tree_size,
            "leaf_hash": leaf.hex(),
            "hashes": [node.hex() for node in path],
            "checkpoint": note,
        }

    def consistency_proof(
        self, old_size: int, new_size: int | None = None
    ) -> dict[str, Any]:
        """Build an RFC 9162 consistency proof between two tree sizes.

        Without ``new_size`` the proof runs to the latest checkpoint.

        Raises:
            InputError: a size is out of range or ``old_size`` is 0 or
                larger than ``new_size``.
        """
        note = None
        if new_size is None:
            checkpoint = self.latest_checkpoint()
            if checkpoint is None or checkpoint.tree_size < old_size:
                checkpoint = self.make_checkpoint()
            new_size, note = checkpoint.tree_size, checkpoint.note
        else:
            note = self._checkpoint_note_for(new_size)
        if not 0 < old_size <= new_size:
            raise InputError(
                f"old size {old_size} must be at least 1 and at most the new "
                f"size {new_size}",
                reason="bad-tree-size",
            )
        with self.engine.connect() as connection:
            current = self._size_on(connection)
            _check_size(new_size, current, "new size")
            reader = _ConnectionNodeReader(connection)
            path = merkle.consistency_proof(reader, old_size, new_size)
            old_root = merkle.root(reader, old_size)
            new_root = merkle.root(reader, new_size)
        return {
            "type": "consistency",
            "old_size": old_size,
            "new_size": new_size,
            "old_root": old_root.hex(),
            "new_root": new_root.hex(),
            "hashes": [node.hex() for node in path],
            "checkpoint": note,
        }

    def _size_on(self, connection: Connection) -> int:
        return int(
            connection.execute(
                select(ChainHead.size).where(ChainHead.id == 1)
            ).scalar_one()
        )

    # -- checkpoints -------------------------------------------------------

    def latest_checkpoint(self) -> CheckpointRow | None:
        """Return the stored checkpoint of the largest tree, if any."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(CheckpointRow)
                .order_by(CheckpointRow.tree_size.desc(), CheckpointRow.id.desc())
                .limit(1)
            ).one_or_none()
        return None if row is None else CheckpointRow.model_validate(row._mapping)

    def _checkpoint_note_for(self, tree_size: int) -> str:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(CheckpointRow.note)
                .where(CheckpointRow.tree_size == tree_size)
                .order_by(CheckpointRow.id.desc())
                .limit(1)
            ).one_or_none()
        if row is not None:
            return str(row[0])
        if tree_size == self.size:
            return self.make_checkpoint().note
        raise InputError(
            f"no checkpoint of tree size {tree_size} is stored, so the proof "
            "could not be checked offline; omit the size to use the latest "
            "checkpoint, or pick a size from `govledger checkpoint --list`",
            reason="no-checkpoint",
        )

    def make_checkpoint(self) -> CheckpointRow:
        """Sign and store a checkpoint of the current tree; return it.

        A checkpoint of the same size as the latest one is not repeated.

        Raises:
            KeyFileError: the log key cannot be loaded.
        """
        from .checkpoints import sign_checkpoint

        signer = self.signer()
        with self.engine.connect() as connection:
            size = self._size_on(connection)
            root = merkle.root(_ConnectionNodeReader(connection), size)
        latest = self.latest_checkpoint()
        if latest is not None and latest.tree_size == size:
            return latest
        note = sign_checkpoint(self.origin, size, root, signer)
        row = {
            "tree_size": size,
            "root_hash": root.hex(),
            "key_id": f"{signer.key_id:08x}",
            "note": note,
            "created_at": format_timestamp(self._clock()),
        }
        with self.engine.begin() as connection:
            connection.execute(insert(CheckpointRow).values(**row))
        self._last_checkpoint = (size, self._clock())
        logger.debug("signed checkpoint of tree size %d", size)
        return self.latest_checkpoint()  # type: ignore[return-value]

    def _maybe_checkpoint(self, size: int | None = None) -> None:
        """Sign a checkpoint if ``checkpoint_every`` entries or
        ``checkpoint_interval_s`` seconds have passed since the last one.

        The last checkpoint is cached per Ledger object. Another process may
        have signed a newer one, so this one may sign a little early, which
        is harmless.
        """
        every = self.config.checkpoint_every
        interval = self.config.checkpoint_interval_s
        if not every and not interval:
            return
        if self._last_checkpoint is None:
            latest = self.latest_checkpoint()
            if latest is not None:
                signed_at = datetime.strptime(
                    latest.created_at, "%Y-%m-%dT%H:%M:%S.%fZ"
                )
                self._last_checkpoint = (
                    latest.tree_size,
                    signed_at.replace(tzinfo=UTC),
                )
        size = self.size if size is None else size
        if self._last_checkpoint is None:
            due = size > 0
        else:
            last_size, signed_at = self._last_checkpoint
            due = bool(every) and size - last_size >= every
            if not due and interval and size > last_size:
                age = self._clock() - signed_at
                due = age.total_seconds() >= interval
        if due:
            try:
                self.make_checkpoint()
            except GovLedgerError as error:
                logger.warning("automatic checkpoint failed: %s", error)

    def checkpoints(self) -> list[CheckpointRow]:
        """Return every stored checkpoint, smallest tree first.

        Raises:
            ChainError: a row is not readable (reason ``row-altered``).
        """
        statement = select(CheckpointRow).order_by(
            CheckpointRow.tree_size, CheckpointRow.id
        )
        return self._read_rows(CheckpointRow, statement)

    # -- verification ------------------------------------------------------

    def verify(
        self,
        *,
        trusted_checkpoint: str | None = None,
        trusted_keys: Sequence[str] = (),
        progress: Callable[[int], None] | None = None,
        workers: int | None = None,
    ) -> Any:
        """Verify the whole ledger; return a ``VerifyResult``.

        See ``ledger.verify.verify_ledger``.
        """
        from .verify import verify_ledger

        return verify_ledger(
            self,
            trusted_checkpoint=trusted_checkpoint,
            trusted_keys=trusted_keys,
            progress=progress,
            workers=workers,
        )


_ENTRY_COLUMNS = ("seq", "entry_hash", "body", *DERIVED_COLUMNS)
_PERSONAL_COLUMNS = ("seq", "name", "subject", "salt", "value")
_LOCK_HEAD_SQL = (
    "SELECT size, head_hash, last_recorded_at, peaks FROM chain_head WHERE id = 1"
)


class _LockedHead(NamedTuple):
    """The chain_head columns that an append reads under the lock."""

    size: int
    head_hash: str
    last_recorded_at: str
    peaks: bytes | None


_COPY_MIN_ROWS = 16
"""Batches of at least this many rows use COPY on PostgreSQL; smaller ones
use executemany, whose set-up costs less."""


class _DriverCursor:
    """A DBAPI cursor inside an append transaction.

    The append path runs its fixed statements here, written with ``?``
    markers. SQLAlchemy's per-statement work (execution context, result
    metadata) costs more than a one-row statement itself. Driver errors are
    raised as SQLAlchemy's ``DBAPIError`` subclasses, as
    ``Connection.execute`` raises them, with the driver error as ``orig``.
    """

    def __init__(self, dialect: Any, driver_connection: Any) -> None:
        self._dialect = dialect
        self._driver_error = dialect.loaded_dbapi.Error
        self._cursor = driver_connection.cursor()

    def _statement(self, statement: str) -> str:
        if self._dialect.paramstyle == "qmark":
            return statement
        return statement.replace("?", "%s")

    def _wrap(
        self, statement: str, parameters: Any, error: Exception, many: bool
    ) -> DBAPIError:
        return DBAPIError.instance(
            statement,
            parameters,
            error,
            self._driver_error,
            dialect=self._dialect,
            ismulti=many,
        )

    def fetch_all(
        self, statement: str, parameters: tuple[Any, ...] = ()
    ) -> list[tuple[Any, ...]]:
        """Run one query; return its rows."""
        statement = self._statement(statement)
        try:
            self._cursor.execute(statement, parameters)
            return list(self._cursor.fetchall())
        except self._driver_error as error:
            raise self._wrap(statement, parameters, error, False) from error

    def execute(self, statement: str, parameters: tuple[Any, ...] = ()) -> None:
        """Run one statement that returns no rows."""
        statement = self._statement(statement)
        try:
            self._cursor.execute(statement, parameters)
        except self._driver_error as error:
            raise self._wrap(statement, parameters, error, False) from error

    def insert_many(
        self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None:
        """Insert rows, each a tuple in ``columns`` order.

        The columns hold plain str, int, float and bytes, which both drivers
        take as they are. On PostgreSQL a batch goes through COPY, which
        sends the rows in one stream; the table's constraints and triggers
        apply as for INSERT.
        """
        if self._dialect.name == "postgresql" and len(rows) >= _COPY_MIN_ROWS:
            statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
            try:
                with self._cursor.copy(statement) as copy:
                    for row in rows:
                        copy.write_row(row)
            except self._driver_error as error:
                raise self._wrap(statement, rows, error, True) from error
            return
        marks = ", ".join("?" for _ in columns)
        statement = self._statement(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        )
        try:
            self._cursor.executemany(statement, rows)
        except self._driver_error as error:
            raise self._wrap(statement, rows, error, True) from error


def _record_part(body: bytes) -> bytes:
    """Return the JCS bytes of the record inside an entry's canonical bytes."""
    start = body.find(b',"record":') + len(b',"record":')
    end = body.rfind(b',"recorded_at":"')
    return body[start:end]


def _target_error(item: _Prepared, offset: int, problem: str) -> RecordError:
    index = item.index if item.index is not None else offset
    return RecordError(
        f"record {index}: target: {problem}; a review must target an entry "
        "already in the ledger",
        errors=[{"field": "target", "problem": problem}],
        index=index,
        reason="unknown-target",
    )


def _as_bytes(value: Any) -> bytes:
    """Return a stored body as bytes, even if someone rewrote it as text."""
    if isinstance(value, str):
        return value.encode("utf-8", errors="surrogateescape")
    return bytes(value)


def _fetch_driver_sql(
    connection: Connection, statement: str, parameters: tuple[Any, ...]
) -> list[tuple[Any, ...]]:
    """Run one query written with ``?`` markers on either driver; return rows."""
    if connection.dialect.paramstyle != "qmark":
        statement = statement.replace("?", "%s")
    return [tuple(row) for row in connection.exec_driver_sql(statement, parameters)]


def driver_cursor(connection: Connection) -> _DriverCursor:
    """Return a driver cursor inside the open transaction of ``connection``.

    Callbacks of ``Ledger.append_prepared`` use it to run their statements
    without SQLAlchemy's per-statement work. Its methods take statements
    written with ``?`` markers and raise SQLAlchemy's ``DBAPIError``
    subclasses.
    """
    return _DriverCursor(connection.dialect, connection.connection.dbapi_connection)


def _marks(values: Sequence[Any]) -> str:
    """Return one ``?`` marker per value, comma-separated."""
    return ", ".join("?" for _ in values)


class _Transaction:
    """A SQLAlchemy connection with an open transaction, committed on clean exit.

    Inside, ``connection`` is the SQLAlchemy connection and ``cursor`` a
    driver cursor in the same transaction.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def __enter__(self) -> _Transaction:
        self._transaction = self.connection.begin()
        self.cursor = driver_cursor(self.connection)
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if exc_type is None:
                self._transaction.commit()
            else:
                self._transaction.rollback()
        finally:
            self.connection.close()


class _DriverTransaction:
    """A pooled driver connection with an open transaction, committed on clean exit.

    It does what ``_Transaction`` does without a SQLAlchemy connection: on
    SQLite it starts with BEGIN IMMEDIATE, as the engine's begin hook does
    for writes (``store.make_engine``), and psycopg opens the transaction at
    the first statement. Inside, ``cursor`` runs the statements and
    ``connection`` is None. Driver errors are raised as SQLAlchemy's
    ``DBAPIError`` subclasses.
    """

    connection = None

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __enter__(self) -> _DriverTransaction:
        driver_error = self._engine.dialect.loaded_dbapi.Error
        try:
            self._pooled = self._engine.raw_connection()
        except driver_error as error:
            # Unlike Engine.connect, raw_connection leaves a failed connect
            # as the driver's own exception.
            raise DBAPIError.instance(
                "connect", (), error, driver_error, dialect=self._engine.dialect
            ) from error
        try:
            self._driver = self._pooled.dbapi_connection
            self.cursor = _DriverCursor(self._engine.dialect, self._driver)
            if self._engine.dialect.name == "sqlite":
                self.cursor.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._pooled.close()
            raise
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if exc_type is None:
                try:
                    self._driver.commit()
                except self._engine.dialect.loaded_dbapi.Error as error:
                    self._rollback()
                    raise DBAPIError.instance(
                        "COMMIT",
                        (),
                        error,
                        self._engine.dialect.loaded_dbapi.Error,
                        dialect=self._engine.dialect,
                    ) from error
            else:
                self._rollback()
        finally:
            self._pooled.close()

    def _rollback(self) -> None:
        """Roll back; a connection that cannot is dropped from the pool."""
        try:
            self._driver.rollback()
        except self._engine.dialect.loaded_dbapi.Error as error:
            logger.warning("rollback failed, dropping the connection: %s", error)
            self._pooled.invalidate()


def _check_size(size: int, current: int, name: str) -> None:
    if not 0 <= size <= current:
        raise InputError(
            f"{name} {size} is outside the ledger, which has {current} entries",
            reason="bad-tree-size",
        )


def _check_origin(origin: str) -> None:
    if len(origin) > 255:
        raise InputError(
            f"origin is {len(origin)} characters long; use at most 255",
            reason="bad-origin",
        )
    if (
        not origin
        or origin != origin.strip()
        or any(
            char.isspace() or not char.isprintable() or char == "+" for char in origin
        )
    ):
        raise InputError(
            f"origin {origin!r} is not a valid log name; use a name such as "
            "example.org/govledger (no spaces or '+')",
            reason="bad-origin",
        )


# SQLITE_BUSY and SQLITE_LOCKED (the low byte of an extended result code),
# and the PostgreSQL SQLSTATEs serialization_failure, deadlock_detected and
# lock_not_available: the database rolled the transaction back, and running
# it again may succeed.
_SQLITE_BUSY_CODES = frozenset({5, 6})
_POSTGRES_RETRY_STATES = frozenset({"40001", "40P01", "55P03"})


def _is_transient(error: DBAPIError) -> bool:
    """Tell whether a failed transaction may succeed when run again."""
    original = error.orig
    code = getattr(original, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _SQLITE_BUSY_CODES
    state = getattr(original, "sqlstate", None)
    if state is not None:
        return state in _POSTGRES_RETRY_STATES
    return "database is locked" in str(original)


def _missing_head(url: str) -> ChainError:
    return ChainError(
        f"{_redact(url)} has ledger tables but its chain_head row is "
        "missing: the database was altered outside govledger. Do not "
        "run `govledger init` on it; restore it from a backup and "
        "verify it against a trusted checkpoint",
        reason="head-missing",
    )


def _altered_table(table: str, problem: str) -> ChainError:
    return ChainError(
        f"the {table} table was altered outside govledger: {problem}. Restore "
        "the database from a backup and verify it against a trusted checkpoint",
        reason="row-altered",
    )


def _redact(url: str) -> str:
    """Hide a password in a database URL before it reaches a message."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given
        return url
