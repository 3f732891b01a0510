"""verify against an attacker with direct access to the database.

Each test drops the append-only triggers with plain SQL, as someone holding
the SQLite file or a PostgreSQL superuser could, changes the ledger one way,
and checks that verify names the fault and the seq.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ledger import Ledger, LedgerConfig
from ledger.canonical import canonical_bytes
from ledger.entries import derived_columns

SIZE = 150


def _records(count: int) -> list[dict]:
    return [
        {
            "kind": "decision",
            "actor": "svc:fraud-model",
            "occurred_at": "2026-02-01T09:00:00+01:00",
            "item": {"dataset": "payments", "id": f"tx-{i}"},
            "model": {"name": "fraud", "version": "1.3"},
            "output": {"flag": i % 7 == 0},
            "confidence": (i % 100) / 100,
        }
        for i in range(count)
    ]


@pytest.fixture
def ledger(db_url: str, key_dir: Path) -> Iterator[Ledger]:
    config = LedgerConfig(key_dir=key_dir, checkpoint_every=0, checkpoint_interval_s=0)
    with Ledger.create(db_url, origin="test.example/ledger", config=config) as opened:
        opened.append_many(_records(SIZE))
        yield opened


@contextmanager
def raw_sql(url: str) -> Iterator[Any]:
    """Open the database with its plain driver, outside govledger."""
    if url.startswith("sqlite:///"):
        connection = sqlite3.connect(url[len("sqlite:///") :])
        try:
            yield connection
            connection.commit()
        finally:
            connection.close()
    else:
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as connection:
            yield connection


def drop_triggers(url: str) -> None:
    with raw_sql(url) as connection:
        if url.startswith("sqlite"):
            names = [
                row[0]
                for row in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                )
            ]
            for name in names:
                connection.execute(f"DROP TRIGGER {name}")
        else:
            for table in ("entries", "merkle_nodes", "checkpoints", "log_keys"):
                connection.execute(f"DROP TRIGGER {table}_append_only ON {table}")


def execute(url: str, statement: str, parameters: tuple = ()) -> None:
    if not url.startswith("sqlite"):
        statement = statement.replace("?", "%s")
    with raw_sql(url) as connection:
        connection.execute(statement, parameters)


def fetch(url: str, statement: str, parameters: tuple = ()) -> list[tuple]:
    if not url.startswith("sqlite"):
        statement = statement.replace("?", "%s")
    with raw_sql(url) as connection:
        return list(connection.execute(statement, parameters).fetchall())


def body_of(url: str, seq: int) -> bytes:
    return bytes(fetch(url, "SELECT body FROM entries WHERE seq = ?", (seq,))[0][0])


def insert_forged(url: str, entry: dict) -> None:
    """Insert a forged entry the way a careful attacker would: canonical bytes,
    a correct hash and every derived column filled in."""
    body = canonical_bytes(entry)
    columns = derived_columns(entry["kind"], entry["recorded_at"], entry["record"])
    names = ["seq", "entry_hash", "body", *columns]
    values = (
        entry["seq"],
        hashlib.sha256(b"\x00" + body).hexdigest(),
        body,
        *columns.values(),
    )
    marks = ", ".join("?" for _ in names)
    execute(url, f"INSERT INTO entries ({', '.join(names)}) VALUES ({marks})", values)


def fault_of(ledger: Ledger) -> tuple[str, int | None]:
    result = ledger.verify()
    assert not result.ok, "verify passed a tampered ledger"
    return result.fault.kind, result.fault.seq


def test_untouched_ledger_verifies(ledger: Ledger) -> None:
    ledger.make_checkpoint()
    result = ledger.verify()
    assert result.ok, result.fault
    assert result.entries_checked == SIZE
    assert result.checkpoints_checked == 1
    assert result.root == ledger.root().hex()


def test_triggers_reject_update_and_delete(ledger: Ledger) -> None:
    for statement in (
        "UPDATE entries SET actor = 'svc:other' WHERE seq = 3",
        "DELETE FROM entries WHERE seq = 3",
        "DELETE FROM merkle_nodes",
    ):
        with pytest.raises((sqlite3.DatabaseError, psycopg.Error)) as error:
            execute(ledger.url, statement)
        assert "append-only" in str(error.value)
    assert ledger.verify().ok


def test_verify_detects_changed_body(ledger: Ledger) -> None:
    drop_triggers(ledger.url)
    body = body_of(ledger.url, 42).replace(b'"fraud"', b'"frauD"')
    execute(ledger.url, "UPDATE entries SET body = ? WHERE seq = 42", (body,))
    assert fault_of(ledger) == ("body-changed", 42)


def test_verify_detects_changed_body_of_last_entry(ledger: Ledger) -> None:
    drop_triggers(ledger.url)
    last = SIZE - 1
    body = body_of(ledger.url, last).replace(b"tx-", b"tX-")
    execute(ledger.url, "UPDATE entries SET body = ? WHERE seq = ?", (body, last))
    assert fault_of(ledger) == ("body-changed", last)


def test_verify_detects_changed_stored_hash(ledger: Ledger) -> None:
    drop_triggers(ledger.url)
    execute(ledger.url, "UPDATE entries SET entry_hash = ? WHERE seq = 7", ("ab" * 32,))
    assert fault_of(ledger) == ("hash-changed", 7)


def test_verify_detects_deleted_entry(ledger: Ledger) -> None:
    drop_triggers(ledger.url)
    execute(ledger.url, "DELETE FROM entries WHERE seq = 60")
    assert fault_of(ledger) == ("entry-deleted", 60)


def test_verify_detects_deleted_tail(ledger: Ledger) -> None:
    drop_triggers(ledger.url)
    execute(ledger.url, "DELETE FROM entries WHERE seq >= ?", (SIZE - 20,))
    assert fault_of(ledger) == ("entry-deleted", SIZE - 20)


def test_verify_detects_appended_row_behind_head(ledger: Ledger) -> None:
    drop_triggers(ledger.url)
    last = json.loads(body_of(ledger.url, SIZE - 1))
    prev = fetch(
        ledger.url, "SELECT entry_hash FROM entries WHERE seq = ?", (SIZE - 1,)
    )[0][0]
    insert_forged(ledger.url, dict(last, seq=SIZE, prev=prev))
    assert fault_of(ledger) == ("entry-inserted", SIZE)


def test_verify_detects_entry_inserted_in_middle(ledger: Ledger) -> None:
    drop_triggers(ledger.url)
    # Shift entries 80.. up by one seq, then forge a new entry 80.
    execute(ledger.url, "UPDATE entries SET seq = seq + 100000 WHERE seq >= 80")
    execute(ledger.url, "UPDATE entries SET seq = seq - 99999 WHERE seq >= 100000")
    original = json.loads(body_of(ledger.url, 81))
    insert_forged(
        ledger.url,
        dict(original, record=dict(original["record"], output={"flag": True})),
    )
    assert fault_of(ledger) == ("entry-inserted", 81)


def test_verify_detects_swapped_entries(ledger: Ledger) -> None:
    drop_triggers(ledger.url)
    execute(ledger.url, "UPDATE entries SET seq = -1 WHERE seq = 100")
    execute(ledger.url, "UPDATE entries SET seq = 100 WHERE seq = 101")
    execute(ledger.url, "UPDATE entries SET seq = 101 WHERE seq = -1")
    assert fault_of(ledger) == ("entries-reordered", 100)


def test_verify_detects_swapped_bodies_only(ledger: Ledger) -> None:
    drop_triggers(ledger.url)
    first, second = body_of(ledger.url, 100), body_of(ledger.url, 101)
    execute(ledger.url, "UPDATE entries SET body = ? WHERE seq = 100", (second,))
    execute(ledger.url, "UPDATE entries SET body = ? WHERE seq = 101", (first,))
    assert fault_of(ledger) == ("entries-reordered", 100)


def test_verify_detects_wrong_prev(ledger: Ledger) -> None:
    drop_triggers(ledger.url)
    entry = json.loads(body_of(ledger.url, 30))
    entry["prev"] = "0" * 64
    body = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    execute(
        ledger.url,
        "UPDATE entries SET body = ?, entry_hash = ? WHERE seq = 30",
        (body, hashlib.sha256(b"\x00" + body).hexdigest()),
    )
    kind, seq = fault_of(ledger)
    assert kind == "prev-mismatch"
    assert seq == 30


def test_verify_detects_rehashed_rewrite_at_next_link(ledger: Ledger) -> None:
    drop_triggers(ledger.url)
    body = body_of(ledger.url, 12).replace(b'"flag":false', b'"flag":true ')
    body = body.replace(b'"flag":true ', b'"flag":true')
    execute(
        ledger.url,
        "UPDATE entries SET body = ?, entry_hash = ? WHERE seq = 12",
        (body, hashlib.sha256(b"\x00" + body).hexdigest()),
    )
    assert fault_of(ledger) == ("prev-mismatch", 13)


def test_verify_detects_changed_derived_column(ledger: Ledger) -> None:
    drop_triggers(ledger.url)
    execute(ledger.url, "UPDATE entries SET confidence = 0.99 WHERE seq = 5")
    result = ledger.verify()
    assert result.fault.kind == "derived-column-changed"
    assert result.fault.seq == 5
    assert "confidence" in result.fault.message


def test_verify_detects_changed_actor_column(ledger: Ledger) -> None:
    drop_triggers(ledger.url)
    execute(ledger.url, "UPDATE entries SET actor = 'user:somebody' WHERE seq = 9")
    assert fault_of(ledger) == ("derived-column-changed", 9)


def test_verify_detects_altered_merkle_node(ledger: Ledger) -> None:
    drop_triggers(ledger.url)
    execute(
        ledger.url,
        "UPDATE merkle_nodes SET hash = ? WHERE level = 2 AND idx = 3",
        (b"\x11" * 32,),
    )
    kind, seq = fault_of(ledger)
    assert kind == "merkle-node-changed"
    assert seq == 12


def test_verify_detects_rewrite_under_stored_checkpoint(ledger: Ledger) -> None:
    ledger.make_checkpoint()
    drop_triggers(ledger.url)
    # Rewrite the whole chain consistently: every body and hash recomputed.
    rows = fetch(ledger.url, "SELECT seq, body FROM entries ORDER BY seq")
    prev = "0" * 64
    for seq, raw in rows:
        entry = json.loads(bytes(raw))
        entry["prev"] = prev
        if seq == 3:
            entry["record"]["output"] = {"flag": True, "edited": True}
        body = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
        prev = hashlib.sha256(b"\x00" + body).hexdigest()
        execute(
            ledger.url,
            "UPDATE entries SET body = ?, entry_hash = ? WHERE seq = ?",
            (body, prev, seq),
        )
    execute(ledger.url, "UPDATE chain_head SET head_hash = ?", (prev,))
    result = ledger.verify()
    assert not result.ok
    assert result.fault.kind in ("merkle-node-changed", "checkpoint-root-mismatch")


def test_verify_memory_is_flat(ledger: Ledger) -> None:
    # Streaming in chunks: a small chunk size must give the same result.
    assert [row[0] for row in ledger.iter_raw(chunk=7)] == list(range(SIZE))


def test_verify_detects_changed_personal_value(db_url: str, key_dir: Path) -> None:
    config = LedgerConfig(key_dir=key_dir, checkpoint_every=0, checkpoint_interval_s=0)
    with Ledger.create(db_url, origin="test.example/ledger", config=config) as ledger:
        record = dict(_records(1)[0], subject="s-1", personal={"email": "a@b.example"})
        ledger.append_many([*_records(3), record])
        assert ledger.verify().ok
        drop_triggers(ledger.url)
        execute(
            ledger.url,
            "UPDATE personal_values SET value = ? WHERE seq = 3",
            (b'"evil@example.org"',),
        )
        assert fault_of(ledger) == ("personal-value-changed", 3)


def test_verify_detects_planted_merkle_node(ledger: Ledger) -> None:
    execute(
        ledger.url,
        "INSERT INTO merkle_nodes (level, idx, hash) VALUES (?, ?, ?)",
        (1, 500, b"\x00" * 32),
    )
    result = ledger.verify()
    assert result.fault.kind == "merkle-node-inserted"
    assert "level 1, index 500" in result.fault.message


def test_verify_detects_changed_checkpoint_columns(ledger: Ledger) -> None:
    ledger.make_checkpoint()
    drop_triggers(ledger.url)
    execute(ledger.url, "UPDATE checkpoints SET root_hash = ?", ("ab" * 32,))
    assert fault_of(ledger)[0] == "checkpoint-row-changed"


def test_verify_detects_deleted_checkpoint_row(ledger: Ledger) -> None:
    for count in (3, 4, 5):
        ledger.append_many(_records(count))
        ledger.make_checkpoint()
    drop_triggers(ledger.url)
    middle = fetch(ledger.url, "SELECT id FROM checkpoints ORDER BY id")[1][0]
    execute(ledger.url, "DELETE FROM checkpoints WHERE id = ?", (middle,))
    assert fault_of(ledger)[0] == "checkpoint-deleted"


def test_verify_with_pinned_key_rejects_replaced_key_table(ledger: Ledger) -> None:
    from ledger.checkpoints import sign_checkpoint
    from ledger.keys import generate_log_key

    original = ledger.signer().verifier_key()
    ledger.make_checkpoint()
    drop_triggers(ledger.url)
    attacker = generate_log_key("test.example/ledger")
    note = sign_checkpoint("test.example/ledger", SIZE, ledger.root(), attacker)
    execute(
        ledger.url,
        "UPDATE checkpoints SET note = ?, key_id = ?",
        (note, f"{attacker.key_id:08x}"),
    )
    execute(ledger.url, "DELETE FROM log_keys")
    execute(
        ledger.url,
        "INSERT INTO log_keys (key_id, verifier_key, created_at) VALUES (?, ?, ?)",
        (f"{attacker.key_id:08x}", attacker.verifier_key(), "2026-01-01"),
    )
    assert ledger.verify().ok, "the ledger's own key table now vouches for it"
    pinned = ledger.verify(trusted_keys=[original])
    assert pinned.fault.kind == "checkpoint-signature-invalid"


def test_missing_chain_head_is_a_verification_fault(ledger: Ledger) -> None:
    from ledger.errors import ChainError

    drop_triggers(ledger.url)
    execute(ledger.url, "DELETE FROM chain_head")
    with pytest.raises(ChainError) as error:
        Ledger.open(ledger.url, config=ledger.config)
    assert "Do not run `govledger init`" in str(error.value)
