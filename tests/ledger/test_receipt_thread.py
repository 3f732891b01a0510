"""Receipts signed on a helper thread while the append commits.

An append hands its receipts to the ledger's receipt thread just before
the commit and returns them only after it. These tests check that the
receipts are the ones for the stored entries, that a failed commit returns
none, and that verify and forked children are not hurt by the thread.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import psycopg
import pytest

from ledger import Ledger, LedgerConfig, StoreError
from ledger.receipts import verify_receipt
from tests.ledger._service_harness import ROOT, annotation, create_ledger

THREAD_PREFIX = "govledger-receipts"


@pytest.fixture
def ledger(db_url: str, key_dir: Path) -> Ledger:
    ledger, _ = create_ledger(db_url, key_dir)
    with ledger:
        yield ledger


def _receipt_threads() -> list[threading.Thread]:
    return [
        thread
        for thread in threading.enumerate()
        if thread.name.startswith(THREAD_PREFIX)
    ]


def _fail_commits_with_entries(url: str) -> None:
    """Make every later transaction that inserts an entry fail at COMMIT."""
    if url.startswith("sqlite:///"):
        import sqlite3

        connection = sqlite3.connect(url[len("sqlite:///") :])
        connection.executescript(
            """
            CREATE TABLE parent (id INTEGER PRIMARY KEY);
            CREATE TABLE child (
                parent_id INTEGER REFERENCES parent (id)
                DEFERRABLE INITIALLY DEFERRED
            );
            CREATE TRIGGER fail_at_commit AFTER INSERT ON entries
            BEGIN INSERT INTO child VALUES (-1); END;
            """
        )
        connection.close()
        return
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as connection:
        connection.execute(
            """
            CREATE FUNCTION fail_at_commit() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'commit rejected by test'; END
            $$ LANGUAGE plpgsql
            """
        )
        connection.execute(
            "CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT ON entries "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
            "EXECUTE FUNCTION fail_at_commit()"
        )


def test_receipts_match_stored_entries(ledger: Ledger) -> None:
    single = ledger.append(annotation(0))
    batch = ledger.append_many([annotation(n) for n in range(1, 40)])
    verifiers = ledger.verifiers()
    for receipt in [single, *batch]:
        verify_receipt(receipt, verifiers)
        stored = ledger.get(receipt["seq"])
        assert stored.entry_hash == receipt["entry_hash"]
        assert stored.recorded_at == receipt["recorded_at"]
    assert [receipt["seq"] for receipt in [single, *batch]] == list(range(40))


def test_failed_commit_returns_no_receipt(ledger: Ledger, db_url: str) -> None:
    ledger.append(annotation(0))
    _fail_commits_with_entries(db_url)
    with pytest.raises(StoreError) as caught:
        ledger.append(annotation(1))
    message = str(caught.value)
    assert "rolled back" in message or "nothing was written" in message
    with pytest.raises(StoreError):
        ledger.append_many([annotation(n) for n in range(2, 6)])
    assert ledger.size == 1
    assert ledger.verify(workers=0).ok


def test_verify_stops_receipt_thread(ledger: Ledger) -> None:
    ledger.append(annotation(0))
    assert len(_receipt_threads()) == 1
    assert ledger.verify().ok
    assert _receipt_threads() == []
    ledger.append(annotation(1))
    assert len(_receipt_threads()) == 1
    ledger.close()
    assert _receipt_threads() == []


def _append_in_child(ledger: Ledger, results: multiprocessing.Queue) -> None:
    # A forked child must not reuse the parent's pooled connections.
    ledger.engine.dispose(close=False)
    results.put(ledger.append(annotation(99))["seq"])


def test_forked_child_signs_receipts(sqlite_url: str, key_dir: Path) -> None:
    ledger, _ = create_ledger(sqlite_url, key_dir)
    with ledger:
        ledger.append(annotation(0))
        assert len(_receipt_threads()) == 1
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        child = context.Process(target=_append_in_child, args=(ledger, results))
        child.start()
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
            pytest.fail("the forked child hung on its append")
        assert child.exitcode == 0
        assert results.get(timeout=5) == 1
        assert ledger.size == 2
        assert ledger.verify(workers=0).ok


# Python stops executors from taking work once shutdown begins, before it
# waits for non-daemon threads and before atexit handlers run. Appends made
# then must still succeed.
_LATE_APPENDS = """
import atexit, sys, threading
from pathlib import Path
from ledger import Ledger, LedgerConfig
from tests.ledger._service_harness import annotation

ledger = Ledger.open(sys.argv[1], config=LedgerConfig(key_dir=Path(sys.argv[2])))
ledger.append(annotation(0))
results = []

def append_late(first):
    for number in range(first, first + 20):
        results.append(ledger.append(annotation(number))["seq"])

def report():
    append_late(100)
    print(len(results), len(set(results)), flush=True)

atexit.register(report)
for first in (1, 40):
    threading.Thread(target=append_late, args=(first,)).start()
"""


def test_appends_during_interpreter_shutdown(sqlite_url: str, key_dir: Path) -> None:
    create_ledger(sqlite_url, key_dir)[0].close()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(_LATE_APPENDS),
            sqlite_url,
            str(key_dir),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.split() == ["60", "60"]
    with Ledger.open(sqlite_url, config=LedgerConfig(key_dir=key_dir)) as ledger:
        assert ledger.size == 61
        assert ledger.verify(workers=0).ok
