"""The SQLite table layout of new ledgers, and files made with the earlier one.

New SQLite ledgers key entries by the rowid (seq is INTEGER PRIMARY KEY)
and keep Merkle nodes in a table without a rowid. Ledger files made before
have a BIGINT seq with its own index and a rowid table of nodes. Those
files must keep appending, proving and verifying as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import Ledger, LedgerConfig
from ledger.proofs import verify_proof_document

from .test_records import DECISION


def _records(count: int) -> list[dict]:
    return [
        {**DECISION, "item": {"dataset": "loans", "id": f"app-{i}"}}
        for i in range(count)
    ]


def _config(key_dir: Path) -> LedgerConfig:
    return LedgerConfig(key_dir=key_dir, checkpoint_every=0, checkpoint_interval_s=0)


@pytest.fixture
def path(tmp_path: Path, key_dir: Path) -> Iterator[Path]:
    """A SQLite ledger of 40 entries, closed again."""
    file = tmp_path / "ledger.db"
    with Ledger.create(
        f"sqlite:///{file}", origin="test.example/layout", config=_config(key_dir)
    ) as ledger:
        ledger.append_many(_records(40))
    yield file


def _rebuild_in_earlier_layout(file: Path) -> None:
    """Rewrite entries and merkle_nodes as ledgers made before had them."""
    connection = sqlite3.connect(file, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        for table, old, new in (
            ("entries", "seq INTEGER NOT NULL", "seq BIGINT NOT NULL"),
            ("merkle_nodes", "WITHOUT ROWID", ""),
        ):
            (create,) = connection.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                (table,),
            ).fetchone()
            assert old in create
            extras = [
                sql
                for (sql,) in connection.execute(
                    "SELECT sql FROM sqlite_master WHERE tbl_name = ? "
                    "AND type IN ('index', 'trigger') AND sql IS NOT NULL",
                    (table,),
                )
            ]
            earlier = create.replace(old, new).replace(
                f"CREATE TABLE {table}", "CREATE TABLE earlier", 1
            )
            connection.execute(earlier)
            connection.execute(f"INSERT INTO earlier SELECT * FROM {table}")
            connection.execute(f"DROP TABLE {table}")
            connection.execute(f"ALTER TABLE earlier RENAME TO {table}")
            for sql in extras:
                connection.execute(sql)
        connection.execute("COMMIT")
    finally:
        connection.close()


def test_new_ledger_keys_entries_by_rowid(path: Path) -> None:
    connection = sqlite3.connect(path)
    try:
        pairs = connection.execute("SELECT rowid, seq FROM entries").fetchall()
        assert pairs == [(seq, seq) for seq in range(40)]
        key_indexes = [
            row
            for row in connection.execute("PRAGMA index_list(entries)")
            if row[3] == "pk"
        ]
        assert key_indexes == []
        with pytest.raises(sqlite3.OperationalError, match="rowid"):
            connection.execute("SELECT rowid FROM merkle_nodes")
    finally:
        connection.close()


def test_seq_column_takes_only_integers(path: Path) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.execute("DROP TRIGGER entries_no_update")
        with pytest.raises(sqlite3.IntegrityError, match="datatype mismatch"):
            connection.execute("UPDATE entries SET seq = 'five' WHERE seq = 5")
    finally:
        connection.close()


def test_earlier_layout_keeps_working(path: Path, key_dir: Path) -> None:
    _rebuild_in_earlier_layout(path)
    url = f"sqlite:///{path}"
    with Ledger.open(url, config=_config(key_dir)) as ledger:
        ledger.append_many(_records(30))
        ledger.append(DECISION)
        result = ledger.verify(workers=0)
        assert result.ok, result.fault
        assert result.size == 71
        checkpoint = ledger.make_checkpoint()
        proof = ledger.inclusion_proof(57)
        verifier = ledger.signer().verifier_key()
        assert verify_proof_document(proof, verifier)["tree_size"] == 71
    connection = sqlite3.connect(path)
    try:
        indexes = [row[3] for row in connection.execute("PRAGMA index_list(entries)")]
        assert "pk" in indexes  # still the earlier layout
        connection.execute("DROP TRIGGER entries_no_update")
        connection.execute(
            "UPDATE entries SET body = CAST(replace(CAST(body AS TEXT), "
            "'app-12', 'app-99') AS BLOB) WHERE seq = 12"
        )
        connection.commit()
    finally:
        connection.close()
    with Ledger.open(url, config=_config(key_dir)) as ledger:
        result = ledger.verify(workers=0)
        assert not result.ok
        assert (result.fault.kind, result.fault.seq) == ("body-changed", 12)
        assert ledger.latest_checkpoint().tree_size == checkpoint.tree_size
