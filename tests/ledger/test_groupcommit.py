"""The group-commit writer: shared transactions, lock retries, idempotency keys."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ledger import Ledger, LedgerConfig, StoreError
from ledger.groupcommit import (
    GroupCommitter,
    IdempotencyClaim,
    IdempotencyConflictError,
)
from tests.ledger._service_harness import annotation, create_ledger


@pytest.fixture
def ledger(db_url: str, key_dir: Path) -> Iterator[Ledger]:
    ledger, _ = create_ledger(db_url, key_dir)
    with ledger:
        yield ledger


def _claim(key: str, digest: str = "a" * 64) -> IdempotencyClaim:
    return IdempotencyClaim(scope="token", key=key, request_sha256=digest)


def test_requests_share_one_transaction(ledger: Ledger) -> None:
    committer = GroupCommitter(ledger, delay_s=5.0)
    committer.start()
    try:
        # While a request is marked incoming, the writer waits for it.
        with committer.incoming():
            futures = [
                committer.submit(ledger.prepare([annotation(n)], single=True))
                for n in range(5)
            ]
        outcomes = [future.result(timeout=30) for future in futures]
    finally:
        committer.stop()
    assert [outcome.receipts[0]["seq"] for outcome in outcomes] == [0, 1, 2, 3, 4]
    assert len({outcome.receipts[0]["recorded_at"] for outcome in outcomes}) == 1
    assert ledger.verify().ok


def test_key_in_same_batch_replays_or_conflicts(ledger: Ledger) -> None:
    committer = GroupCommitter(ledger, delay_s=5.0)
    committer.start()
    prepared = ledger.prepare([annotation(1)], single=True)
    try:
        with committer.incoming():
            first = committer.submit(prepared, _claim("k"))
            again = committer.submit(prepared, _claim("k"))
            other = committer.submit(prepared, _claim("k", "b" * 64))
        created = first.result(timeout=30)
        replayed = again.result(timeout=30)
        with pytest.raises(IdempotencyConflictError):
            other.result(timeout=30)
    finally:
        committer.stop()
    assert not created.replayed
    assert replayed.replayed
    assert replayed.receipts == created.receipts
    assert ledger.size == 1


def test_stored_key_replays_after_restart(ledger: Ledger) -> None:
    prepared = ledger.prepare([annotation(1)], single=True)
    committer = GroupCommitter(ledger)
    committer.start()
    try:
        created = committer.submit(prepared, _claim("k")).result(timeout=30)
    finally:
        committer.stop()
    # A new writer, as after a restart, finds the key in the database.
    committer = GroupCommitter(ledger)
    committer.start()
    try:
        replayed = committer.submit(prepared, _claim("k")).result(timeout=30)
    finally:
        committer.stop()
    assert replayed.replayed
    assert replayed.receipts == created.receipts
    assert ledger.size == 1


def test_stopped_writer_rejects_submit(ledger: Ledger) -> None:
    committer = GroupCommitter(ledger)
    with pytest.raises(StoreError) as caught:
        committer.submit(ledger.prepare([annotation(1)], single=True))
    assert caught.value.reason == "service-stopping"


def test_full_queue_rejects_submit(ledger: Ledger) -> None:
    committer = GroupCommitter(ledger, max_queued=2)
    # Accept requests without a writer to take them, so that the queue fills.
    committer._accepting = True
    prepared = ledger.prepare([annotation(1)], single=True)
    committer.submit(prepared)
    committer.submit(prepared)
    with pytest.raises(StoreError) as caught:
        committer.submit(prepared)
    assert caught.value.reason == "service-busy"
    committer.start()
    committer.stop()
    assert ledger.size == 2


# -- lock conflicts on PostgreSQL ---------------------------------------------


def _with_lock_timeout(url: str, milliseconds: int) -> str:
    return f"{url}?options=-c%20lock_timeout%3D{milliseconds}"


def _hold_chain_head(url: str) -> psycopg.Connection:
    """Open a transaction that holds the chain-head row lock, as an appender does."""
    connection = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    connection.execute("SELECT * FROM chain_head WHERE id = 1 FOR UPDATE")
    return connection


def test_lock_timeout_is_retried(
    postgres_url: str, key_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    create_ledger(postgres_url, key_dir)[0].close()
    config = LedgerConfig(key_dir=key_dir)
    ledger = Ledger.open(_with_lock_timeout(postgres_url, 100), config=config)
    committer = GroupCommitter(ledger, retry_attempts=30, retry_backoff_s=0.01)
    committer.start()
    holder = _hold_chain_head(postgres_url)
    try:
        with caplog.at_level(logging.WARNING, logger="ledger.groupcommit"):
            future = committer.submit(ledger.prepare([annotation(1)], single=True))
            time.sleep(0.6)
            assert not future.done()
            holder.rollback()
            outcome = future.result(timeout=30)
    finally:
        holder.close()
        committer.stop()
    assert outcome.receipts[0]["seq"] == 0
    assert "rolled back" in caplog.text
    assert ledger.verify().ok
    ledger.close()


def test_lock_timeout_fails_after_retries(postgres_url: str, key_dir: Path) -> None:
    create_ledger(postgres_url, key_dir)[0].close()
    config = LedgerConfig(key_dir=key_dir)
    ledger = Ledger.open(_with_lock_timeout(postgres_url, 50), config=config)
    committer = GroupCommitter(ledger, retry_attempts=2, retry_backoff_s=0.01)
    committer.start()
    holder = _hold_chain_head(postgres_url)
    try:
        future = committer.submit(ledger.prepare([annotation(1)], single=True))
        with pytest.raises(StoreError) as caught:
            future.result(timeout=30)
    finally:
        holder.rollback()
        holder.close()
        committer.stop()
    assert caught.value.reason == "database-busy"
    assert ledger.size == 0
    ledger.close()
