"""verify against rows of the side tables altered with plain SQL.

Besides the entries, a ledger stores Merkle nodes, signed checkpoints, the
log keys and the chain head. An attacker with file access can write any
bytes into SQLite text columns, including bytes that are not UTF-8, which
the driver cannot decode. verify must report each such change as a fault
or as a verification error (CLI exit 1), never crash with exit 3.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import ChainError, Ledger, LedgerConfig

from .test_verify import _records, drop_triggers, execute, fault_of

CLI = Path(__file__).resolve().parents[2] / "cli.py"
NOT_UTF8 = "CAST(x'ff00ff' AS TEXT)"


def _config(key_dir: Path) -> LedgerConfig:
    return LedgerConfig(key_dir=key_dir, checkpoint_every=0, checkpoint_interval_s=0)


@pytest.fixture
def ledger(db_url: str, key_dir: Path) -> Iterator[Ledger]:
    """A ledger of 40 entries with checkpoints at sizes 20 and 40."""
    config = _config(key_dir)
    with Ledger.create(db_url, origin="test.example/ledger", config=config) as opened:
        opened.append_many(_records(20))
        opened.make_checkpoint()
        opened.append_many(_records(20))
        opened.make_checkpoint()
        yield opened


def test_first_checkpoint_row_deleted(ledger: Ledger) -> None:
    drop_triggers(ledger.url)
    execute(ledger.url, "DELETE FROM checkpoints WHERE tree_size = 20")
    assert fault_of(ledger) == ("checkpoint-deleted", None)


def test_checkpoint_key_id_changed(ledger: Ledger) -> None:
    drop_triggers(ledger.url)
    execute(
        ledger.url, "UPDATE checkpoints SET key_id = 'ffffffff' WHERE tree_size = 40"
    )
    assert fault_of(ledger) == ("checkpoint-row-changed", 40)


def test_verifier_key_replaced_with_garbage(ledger: Ledger) -> None:
    drop_triggers(ledger.url)
    execute(ledger.url, "UPDATE log_keys SET verifier_key = 'not a key'")
    kind, _seq = fault_of(ledger)
    assert kind == "key-row-changed"
    with pytest.raises(ChainError) as caught:
        ledger.verifiers()
    assert caught.value.reason == "row-altered"


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (
            f"UPDATE merkle_nodes SET hash = {NOT_UTF8} WHERE level = 1 AND idx = 3",
            ("merkle-node-changed", 6),
        ),
        (
            "UPDATE merkle_nodes SET hash = CAST(hash AS TEXT) "
            "WHERE level = 2 AND idx = 2",
            ("merkle-node-changed", 8),
        ),
        (
            f"UPDATE entries SET entry_hash = {NOT_UTF8} WHERE seq = 7",
            ("hash-changed", 7),
        ),
        (
            f"UPDATE entries SET actor = {NOT_UTF8} WHERE seq = 9",
            ("derived-column-changed", 9),
        ),
        (f"UPDATE entries SET body = {NOT_UTF8} WHERE seq = 11", ("body-changed", 11)),
        (
            f"UPDATE checkpoints SET note = {NOT_UTF8} WHERE tree_size = 40",
            ("checkpoint-signature-invalid", 40),
        ),
        (
            f"UPDATE checkpoints SET root_hash = {NOT_UTF8} WHERE tree_size = 40",
            ("checkpoint-row-changed", None),
        ),
        (f"UPDATE log_keys SET verifier_key = {NOT_UTF8}", ("key-row-changed", None)),
        (f"UPDATE chain_head SET head_hash = {NOT_UTF8}", ("head-mismatch", None)),
    ],
)
@pytest.mark.parametrize("workers", [0, 2, None])
def test_text_that_is_not_utf8(
    sqlite_url: str,
    key_dir: Path,
    statement: str,
    expected: tuple[str, int | None],
    workers: int | None,
) -> None:
    with Ledger.create(
        sqlite_url, origin="test.example/ledger", config=_config(key_dir)
    ) as ledger:
        ledger.append_many(_records(40))
        ledger.make_checkpoint()
        ledger.append_many(_records(5))
        ledger.make_checkpoint()
    drop_triggers(sqlite_url)
    connection = sqlite3.connect(sqlite_url[len("sqlite:///") :])
    connection.execute(statement)
    connection.commit()
    connection.close()
    with Ledger.open(sqlite_url, config=_config(key_dir)) as ledger:
        result = ledger.verify(workers=workers)
    assert not result.ok
    kind, seq = expected
    assert result.fault.kind == kind
    if seq is not None:
        assert result.fault.seq == seq


def _tampered_file(tmp_path: Path, statement: str) -> tuple[str, Path]:
    """Make a SQLite ledger of 12 entries and a checkpoint, and run
    ``statement`` on it with the triggers dropped.

    Returns the ledger's URL and key directory.
    """
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    key_dir = tmp_path / "keys"
    config = _config(key_dir)
    with Ledger.create(url, origin="test.example/ledger", config=config) as ledger:
        ledger.append_many(_records(12))
        ledger.make_checkpoint()
    drop_triggers(url)
    connection = sqlite3.connect(tmp_path / "ledger.db")
    connection.execute(statement)
    connection.commit()
    connection.close()
    return url, key_dir


@pytest.mark.parametrize(
    "statement",
    [
        f"UPDATE chain_head SET origin = {NOT_UTF8}",
        f"UPDATE chain_head SET last_recorded_at = {NOT_UTF8}",
        f"UPDATE merkle_nodes SET hash = {NOT_UTF8} WHERE level = 2 AND idx = 1",
    ],
)
def test_cli_verify_exits_one(tmp_path: Path, statement: str) -> None:
    url, key_dir = _tampered_file(tmp_path, statement)
    result = subprocess.run(
        [sys.executable, str(CLI), "--db", url, "--key-dir", str(key_dir), "verify"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "unexpected" not in result.stderr
    assert "altered" in result.stdout + result.stderr


def _drop_entries_key(url: str) -> None:
    """Remove the primary key of entries, as an attacker with the file could."""
    if not url.startswith("sqlite:///"):
        execute(url, "ALTER TABLE entries DROP CONSTRAINT entries_pkey")
        return
    connection = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
    (create,) = connection.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'entries'"
    ).fetchone()
    without_key = create.replace("PRIMARY KEY (seq)", "CHECK (1)").replace(
        "seq INTEGER NOT NULL", "seq BIGINT NOT NULL"
    )
    connection.execute("BEGIN")
    connection.execute("ALTER TABLE entries RENAME TO entries_before")
    connection.execute(without_key)
    connection.execute("INSERT INTO entries SELECT * FROM entries_before ORDER BY seq")
    connection.execute("DROP TABLE entries_before")
    connection.execute("CREATE INDEX ix_entries_seq ON entries (seq)")
    connection.execute("COMMIT")
    connection.close()


def test_second_row_with_same_seq(ledger: Ledger) -> None:
    # The walk reads each seq once, so only the row count shows the copy.
    drop_triggers(ledger.url)
    _drop_entries_key(ledger.url)
    columns = ", ".join(
        name for name in ("seq", "entry_hash", "body", "kind", "recorded_at")
    )
    execute(
        ledger.url,
        f"INSERT INTO entries ({columns}) SELECT seq, entry_hash, body, 'review', "
        "recorded_at FROM entries WHERE seq = 19",
    )
    assert fault_of(ledger) == ("entry-inserted", 19)


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        (
            "UPDATE entries SET entry_hash = CAST(entry_hash AS BLOB) WHERE seq = 7",
            "hash-changed",
        ),
        (
            f"UPDATE entries SET actor = {NOT_UTF8} WHERE seq = 7",
            "derived-column-changed",
        ),
    ],
)
def test_cli_json_fault_is_utf8(tmp_path: Path, statement: str, kind: str) -> None:
    # Faults quote stored values, which may be bytes or text that is not
    # UTF-8. The output must still be valid UTF-8 JSON.
    url, key_dir = _tampered_file(tmp_path, statement)
    result = subprocess.run(
        [
            sys.executable,
            str(CLI),
            "--json",
            "--db",
            url,
            "--key-dir",
            str(key_dir),
            "verify",
        ],
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    output = json.loads(result.stdout.decode("utf-8"))
    assert output["fault"]["kind"] == kind
    assert output["fault"]["seq"] == 7


def test_cli_fault_escapes_control_characters(tmp_path: Path) -> None:
    # A stored value with a NUL or a terminal escape sequence is quoted in
    # the fault, escaped, so it cannot cut or colour the output.
    url, key_dir = _tampered_file(
        tmp_path, "UPDATE chain_head SET head_hash = CAST(x'00731b5b33316d' AS TEXT)"
    )
    result = subprocess.run(
        [sys.executable, str(CLI), "--db", url, "--key-dir", str(key_dir), "verify"],
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert b"\x00" not in result.stdout
    assert b"\x1b" not in result.stdout
    assert b"\\x00s\\x1b[31m" in result.stdout
