"""Group commit: appends that arrive together share one transaction.

Each service process runs one writer thread. Request handlers validate their
records first (``Ledger.prepare``), so a bad record fails only its own
request, and then queue them. The writer takes what is queued, waits up to
``delay_s`` for more or until ``max_records`` records are waiting, appends
everything with one ``Ledger.append_prepared`` call, and resolves each
request's future with its own receipts only after the commit is durable.

An ``Idempotency-Key`` is stored in the same transaction as the entries it
produced, so a retry after a crash finds it. When the same key comes back
with the same request body the first receipts are returned again; with a
different body the request fails with ``IdempotencyConflictError``.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from .core import driver_cursor
from .entries import format_timestamp
from .errors import GovLedgerError, InputError, StoreError

if TYPE_CHECKING:
    from .core import Ledger, PreparedRecord

__all__ = [
    "AppendOutcome",
    "GroupCommitter",
    "IdempotencyClaim",
    "IdempotencyConflictError",
]

logger = logging.getLogger(__name__)

# Keys looked up per statement, well below SQLite's bound-parameter limit.
_LOOKUP_CHUNK = 500
_IDEMPOTENCY_COLUMNS = ("key", "request_sha256", "response", "created_at")


class IdempotencyConflictError(InputError):
    """An ``Idempotency-Key`` came back with a different request body.

    The HTTP service responds 409.
    """

    reason = "idempotency-key-reused"


@dataclass(frozen=True)
class IdempotencyClaim:
    """An idempotency key of one append request and the digest of its body.

    ``scope`` keeps the keys of different callers apart (the service uses
    the token id); ``request_sha256`` is the hex SHA-256 of the request's
    canonical JSON (RFC 8785) bytes.
    """

    scope: str
    key: str
    request_sha256: str

    @property
    def stored_key(self) -> str:
        """The key as stored: scope and key joined by a colon."""
        return f"{self.scope}:{self.key}"


@dataclass(frozen=True)
class AppendOutcome:
    """The receipts of one append request, and whether they were replayed."""

    receipts: list[dict[str, Any]]
    replayed: bool = False


@dataclass
class _Request:
    prepared: list[PreparedRecord]
    claim: IdempotencyClaim | None
    future: Future[AppendOutcome] = field(default_factory=Future)

    @property
    def claim_digest(self) -> str:
        """The request body's digest, or "" for a request without a key."""
        return "" if self.claim is None else self.claim.request_sha256


class _KeysAlreadyStored(Exception):
    """Raised inside the transaction to roll it back when stored keys were found."""


_STOP = object()
# Queued when the last request under validation leaves ``incoming``, so that
# a writer waiting for it wakes up and commits what it has.
_WAKE = object()


class GroupCommitter:
    """One writer thread that appends queued requests in shared transactions.

    ``delay_s`` is how long the writer waits for more requests after the
    first one; ``max_records`` caps the records of one transaction (a
    single larger request still goes alone); ``max_queued`` caps the
    requests waiting. A transaction that the database rolled back for a
    lock conflict (``database-busy``) runs again up to ``retry_attempts``
    times, with exponential backoff and jitter.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        delay_s: float = 0.002,
        max_records: int = 2000,
        max_queued: int = 10_000,
        retry_attempts: int = 8,
        retry_backoff_s: float = 0.01,
    ) -> None:
        self._ledger = ledger
        self._delay_s = delay_s
        self._max_records = max_records
        self._retry_attempts = retry_attempts
        self._retry_backoff_s = retry_backoff_s
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queued)
        self._thread: threading.Thread | None = None
        self._accepting = False
        self._incoming = 0
        self._incoming_lock = threading.Lock()

    # -- life cycle --------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is not None:
            return
        self._accepting = True
        self._thread = threading.Thread(
            target=self._run, name="govledger-group-commit", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting requests, commit those already queued, and stop."""
        if self._thread is None:
            return
        self._accepting = False
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("group-commit writer did not stop within %.0f s", timeout)
        self._thread = None

    # -- requests ----------------------------------------------------------

    @contextmanager
    def incoming(self) -> Iterator[None]:
        """Mark a request that is being validated and will soon be submitted.

        While any is marked, the writer waits up to ``delay_s`` for it
        before committing.
        """
        with self._incoming_lock:
            self._incoming += 1
        try:
            yield
        finally:
            with self._incoming_lock:
                self._incoming -= 1
                idle = self._incoming == 0
            if idle:
                with suppress(queue.Full):
                    self._queue.put_nowait(_WAKE)

    def submit(
        self, prepared: list[PreparedRecord], claim: IdempotencyClaim | None = None
    ) -> Future[AppendOutcome]:
        """Queue prepared records for the next transaction; return a future.

        The future's result is the request's ``AppendOutcome``, set after
        the commit is durable. Its exception is the ``GovLedgerError`` that
        failed the request: ``IdempotencyConflictError``, or a
        ``StoreError`` after which nothing of the request was written.

        Raises:
            StoreError: the queue is full (``service-busy``) or the writer
                is stopping (``service-stopping``); retry later.
        """
        if not self._accepting:
            raise StoreError(
                "the service is stopping and accepts no appends; retry on "
                "another process or after the restart",
                reason="service-stopping",
            )
        request = _Request(prepared=prepared, claim=claim)
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            raise StoreError(
                f"{self._queue.maxsize} append requests are already waiting; "
                "retry in a moment",
                reason="service-busy",
            ) from None
        return request.future

    # -- writer thread -----------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _WAKE:
                continue
            if first is _STOP:
                stopping = True
                batch = self._drain()
            else:
                batch, stopping = self._collect(first)
            batch = [
                item for item in batch if item.future.set_running_or_notify_cancel()
            ]
            if batch:
                self._commit_batch(batch)

    def _collect(self, first: _Request) -> tuple[list[_Request], bool]:
        """Gather requests for one transaction; tell whether a stop came.

        The writer takes what is queued, and waits up to ``delay_s`` for
        more only while other requests are still being validated: with
        none on the way it commits at once.
        """
        batch = [first]
        records = len(first.prepared)
        deadline = time.monotonic() + self._delay_s
        while records < self._max_records:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._incoming == 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if item is _WAKE:
                continue
            if item is _STOP:
                return batch + self._drain(), True
            batch.append(item)
            records += len(item.prepared)
        return batch, False

    def _drain(self) -> list[_Request]:
        items = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items
            if item is not _STOP and item is not _WAKE:
                items.append(item)

    def _commit_batch(self, batch: list[_Request]) -> None:
        """Append a batch and resolve every request's future; never raises."""
        try:
            outcomes = self._append_batch(batch)
        except Exception as error:  # noqa: BLE001 - the writer thread must survive
            # The traceback is logged without the exception's message, which
            # could quote a record (SQLAlchemy errors quote their parameters).
            logger.error(
                "group commit of %d requests failed with an unexpected %s\n%s",
                len(batch),
                type(error).__name__,
                "".join(traceback.format_tb(error.__traceback__)),
            )
            outcomes = [error] * len(batch)
        for request, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                request.future.set_exception(outcome)
            else:
                request.future.set_result(outcome)

    def _append_batch(
        self, batch: list[_Request]
    ) -> list[AppendOutcome | BaseException]:
        # A key repeated within the batch: its first request is written, and
        # the later ones get its outcome, as retries of it.
        leaders: dict[str, int] = {}
        followers: dict[int, int] = {}
        pending = []
        for index, request in enumerate(batch):
            claim = request.claim
            if claim is not None and claim.stored_key in leaders:
                followers[index] = leaders[claim.stored_key]
                continue
            if claim is not None:
                leaders[claim.stored_key] = index
            pending.append(index)

        followed = set(followers.values())
        outcomes: dict[int, AppendOutcome | BaseException] = {}
        stored: dict[int, tuple[str, list[dict[str, Any]]]] = {}
        attempt = 0
        while pending:
            found: dict[int, tuple[str, list[dict[str, Any]]]] = {}
            try:
                groups = self._write(batch, pending, found)
            except _KeysAlreadyStored:
                stored.update(found)
                pending = [index for index in pending if index not in found]
                continue
            except StoreError as error:
                if error.reason == "database-busy" and attempt < self._retry_attempts:
                    attempt += 1
                    self._pause(attempt, error)
                    continue
                logger.error("append of %d requests failed: %s", len(pending), error)
                outcomes.update((index, error) for index in pending)
                break
            except GovLedgerError as error:
                logger.error("append of %d requests failed: %s", len(pending), error)
                outcomes.update((index, error) for index in pending)
                break
            for index, receipts in zip(pending, groups, strict=True):
                outcomes[index] = AppendOutcome(receipts=receipts)
                if index in followed:
                    rows = [_unsigned(receipt) for receipt in receipts]
                    stored[index] = (batch[index].claim_digest, rows)
            break

        for index, (request_sha256, rows) in stored.items():
            if index not in outcomes:
                outcomes[index] = self._replay(batch[index], request_sha256, rows)
        for index, leader in followers.items():
            if leader in stored:
                request_sha256, rows = stored[leader]
                outcomes[index] = self._replay(batch[index], request_sha256, rows)
            else:
                outcomes[index] = outcomes[leader]
        return [outcomes[index] for index in range(len(batch))]

    def _pause(self, attempt: int, error: StoreError) -> None:
        pause = self._retry_backoff_s * 2**attempt * random.uniform(0.5, 1.0)
        logger.warning(
            "append transaction rolled back (%s); retry %d of %d in %.3f s",
            error.message,
            attempt,
            self._retry_attempts,
            pause,
        )
        time.sleep(pause)

    def _write(
        self,
        batch: list[_Request],
        pending: list[int],
        found: dict[int, tuple[str, list[dict[str, Any]]]],
    ) -> list[list[dict[str, Any]]]:
        """Append the pending requests; fill ``found`` if keys were stored."""
        claimed = {
            batch[index].claim.stored_key: index  # type: ignore[union-attr]
            for index in pending
            if batch[index].claim is not None
        }

        def find_stored_keys(connection: Connection) -> None:
            # Under the chain-head lock no other appender can store a key, so
            # a key missing here is still missing at the commit.
            if not claimed:
                return
            cursor = driver_cursor(connection)
            keys = sorted(claimed)
            for start in range(0, len(keys), _LOOKUP_CHUNK):
                chunk = keys[start : start + _LOOKUP_CHUNK]
                marks = ", ".join("?" for _ in chunk)
                rows = cursor.fetch_all(
                    "SELECT key, request_sha256, response FROM idempotency_keys "
                    f"WHERE key IN ({marks})",
                    tuple(chunk),
                )
                for key, request_sha256, response in rows:
                    found[claimed[key]] = (request_sha256, json.loads(response))
            if found:
                raise _KeysAlreadyStored

        def store_keys(
            connection: Connection, groups: list[list[dict[str, Any]]]
        ) -> None:
            created_at = format_timestamp(datetime.now(UTC))
            values = []
            for index, rows in zip(pending, groups, strict=True):
                claim = batch[index].claim
                if claim is not None:
                    values.append(
                        (
                            claim.stored_key,
                            claim.request_sha256,
                            json.dumps(rows, separators=(",", ":")),
                            created_at,
                        )
                    )
            if values:
                driver_cursor(connection).insert_many(
                    "idempotency_keys", _IDEMPOTENCY_COLUMNS, values
                )

        return self._ledger.append_prepared(
            [batch[index].prepared for index in pending],
            before_write=find_stored_keys,
            after_write=store_keys,
        )

    def _replay(
        self, request: _Request, request_sha256: str, rows: list[dict[str, Any]]
    ) -> AppendOutcome | BaseException:
        """Return a retry's outcome: the first receipts, or a conflict."""
        claim = request.claim
        assert claim is not None
        if request_sha256 != claim.request_sha256:
            return _conflict(claim)
        signer = self._ledger.signer()
        # NOTE: the receipts are signed again from the stored seq, entry hash
        # and time. Ed25519 signatures are deterministic (RFC 8032), so they
        # equal the first receipts unless the log key was rotated since.
        receipts = self._ledger.sign_receipts(signer, rows)
        logger.info("replayed an idempotent append of %d receipts", len(receipts))
        return AppendOutcome(receipts=receipts, replayed=True)


def _unsigned(receipt: dict[str, Any]) -> dict[str, Any]:
    return {name: receipt[name] for name in ("seq", "entry_hash", "recorded_at")}


def _conflict(claim: IdempotencyClaim) -> IdempotencyConflictError:
    return IdempotencyConflictError(
        f"Idempotency-Key {claim.key!r} was already used with a different "
        "request body; send a new key for a new request, or repeat the "
        "first body exactly to get its receipts again",
    )
