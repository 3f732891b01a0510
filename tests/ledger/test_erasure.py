"""Erasure of personal values (GDPR Art. 17): bytes gone, history intact.

The raw-file tests read the SQLite database and its -wal file, and the
PostgreSQL heap file of ``personal_values``, to show that an erased value is
gone from storage, not only from query results.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from ledger import InputError, Ledger, LedgerConfig
from ledger.canonical import canonical_bytes
from ledger.checkpoints import open_checkpoint
from ledger.erasure import (
    check_commitment,
    commitment,
    entry_view,
    erase_expired,
    erase_request,
    erase_subject,
    personal_view,
    subject_digest,
)
from ledger.note import parse_verifier_key
from ledger.proofs import verify_proof_document
from ledger.receipts import verify_receipt

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "test.example/ledger"

# Distinctive values of subject A: plain ASCII, non-ASCII, a string that JCS
# escapes, a nested object and one long enough to need SQLite overflow pages.
ALICE = {
    "email": "alice.MARKER-7f3a91@example.org",
    "name": "Zoë MARKER-ÄLICE-5c2e Ångström",
    "note": 'line one\nMARKER-QUOTE-"c0d3"',
    "address": {"street": "MARKER-STREET-0b9d", "zip": "MARKER-ZIP-44117"},
    "history": "MARKER-LONG-e1a7 " + "lorem ipsum dolor " * 400,
}
BOB = {"email": "bob.MARKER-2d4c88@example.org", "name": "MARKER-BOB-99ab"}


def _create(url: str, key_dir: Path, **kwargs: Any) -> Ledger:
    return Ledger.create(
        url, origin=ORIGIN, config=LedgerConfig(key_dir=key_dir), **kwargs
    )


def _annotation(subject: str, personal: dict[str, Any], item: str) -> dict[str, Any]:
    return {
        "kind": "annotation",
        "actor": "user:annotator-1",
        "occurred_at": "2026-01-05T10:00:00Z",
        "subject": subject,
        "personal": personal,
        "item": {"dataset": "claims", "id": item},
        "label": "approve",
    }


def _fill(ledger: Ledger) -> dict[str, list[int]]:
    """Append Alice's and Bob's records around one without personal values."""
    receipts = ledger.append_many(
        [
            _annotation("subj-alice", ALICE, "1"),
            _annotation("subj-bob", BOB, "2"),
            {
                "kind": "decision",
                "actor": "svc:model",
                "occurred_at": "2026-01-05T10:01:00Z",
                "item": {"dataset": "claims", "id": "3"},
                "model": {"name": "triage", "version": "1"},
                "output": "approve",
                "confidence": 0.9,
            },
            _annotation("subj-alice", {"email": ALICE["email"]}, "4"),
        ]
    )
    seqs = [receipt["seq"] for receipt in receipts]
    return {"alice": [seqs[0], seqs[3]], "bob": [seqs[1]]}


def _markers(values: dict[str, Any]) -> list[bytes]:
    """Return every form in which a value could sit in storage.

    These are the JCS bytes of each value and, for each string in it, its
    UTF-8 bytes, its JCS bytes and the UTF-8 bytes of each MARKER token.
    """
    found: list[bytes] = []
    for value in values.values():
        found.append(canonical_bytes(value))
        leaves = value.values() if isinstance(value, dict) else [value]
        for leaf in leaves:
            found.append(leaf.encode("utf-8"))
            found.append(canonical_bytes(leaf))
            found.extend(token.encode("utf-8") for token in _tokens(leaf))
    return found


def _tokens(leaf: str) -> list[str]:
    return re.findall(r"MARKER-[^\s\"@]+", leaf)


def _stored_tokens(values: dict[str, Any]) -> list[bytes]:
    """Return the MARKER tokens, which every stored form of a value contains."""
    leaves: list[str] = []
    for value in values.values():
        leaves.extend(value.values() if isinstance(value, dict) else [value])
    return [token.encode("utf-8") for leaf in leaves for token in _tokens(leaf)]


def _sqlite_bytes(url: str) -> bytes:
    database = Path(url[len("sqlite:///") :])
    data = database.read_bytes()
    wal = database.with_name(database.name + "-wal")
    if wal.exists():
        data += wal.read_bytes()
    return data


def _erase_alice(ledger: Ledger) -> Any:
    return erase_subject(
        ledger,
        "subj-alice",
        reason="data subject request under GDPR Art. 17",
        request_ref="DSR-2026-0042",
        actor="user:dpo",
        requested_at="2026-01-10T09:00:00Z",
    )


def _run_cli(url: str, key_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GOVLEDGER_DB": url, "GOVLEDGER_KEY_DIR": str(key_dir)}
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


# -- 1. SQLite: the bytes are gone from the database and the WAL ---------------


def test_erased_values_absent_from_sqlite_files(sqlite_url: str, key_dir: Path) -> None:
    with _create(sqlite_url, key_dir) as ledger:
        _fill(ledger)
        before = _sqlite_bytes(sqlite_url)
        for token in _stored_tokens(ALICE):
            assert token in before, f"{token!r} should be stored before erasure"

        result = _erase_alice(ledger)
        after = _sqlite_bytes(sqlite_url)

        for marker in _markers(ALICE):
            assert marker not in after, f"{marker[:40]!r} survived the erasure"
        for token in _stored_tokens(BOB):
            assert token in after, f"{token!r} of Bob was lost"
        assert result.wal_truncated is True
        assert ledger.verify().ok


def test_erased_values_absent_after_reopen(sqlite_url: str, key_dir: Path) -> None:
    with _create(sqlite_url, key_dir) as ledger:
        _fill(ledger)
        _erase_alice(ledger)
    with Ledger.open(sqlite_url, config=LedgerConfig(key_dir=key_dir)) as ledger:
        assert ledger.verify().ok
    after = _sqlite_bytes(sqlite_url)
    for marker in _markers(ALICE):
        assert marker not in after, f"{marker[:40]!r} survived the erasure"


# -- 2. both databases: the rows are gone, the rest intact ---------------------


def test_erase_subject_deletes_rows(db_url: str, key_dir: Path) -> None:
    with _create(db_url, key_dir) as ledger:
        seqs = _fill(ledger)
        result = _erase_alice(ledger)

        assert result.seqs == seqs["alice"]
        assert result.count == len(ALICE) + 1
        assert result.erased[seqs["alice"][1]] == ("email",)
        with ledger.engine.connect() as connection:
            left = connection.execute(
                text("SELECT seq, name FROM personal_values ORDER BY seq, name")
            ).all()
        assert [tuple(row) for row in left] == [
            (seqs["bob"][0], "email"),
            (seqs["bob"][0], "name"),
        ]
        bob = personal_view(ledger, seqs["bob"][0], "officer")
        assert bob["email"]["value"] == BOB["email"]
        assert bob["name"]["value"] == BOB["name"]
        assert ledger.verify().ok


def test_erasure_entry_names_seqs_not_values(db_url: str, key_dir: Path) -> None:
    with _create(db_url, key_dir) as ledger:
        seqs = _fill(ledger)
        result = _erase_alice(ledger)
        entry = ledger.get(result.erasure_seq)

        assert entry.kind == "erasure"
        assert entry.record["erased"] == [
            {"seq": seqs["alice"][0], "fields": sorted(ALICE)},
            {"seq": seqs["alice"][1], "fields": ["email"]},
        ]
        assert entry.record["request_ref"] == "DSR-2026-0042"
        assert entry.record["request_received_at"] == "2026-01-10T09:00:00.000000Z"
        assert entry.record["reason"] == "data subject request under GDPR Art. 17"
        assert entry.record["subject_sha256"] == subject_digest("subj-alice")
        assert entry.record["trigger"] == "request"
        assert entry.record["fields_erased"] == len(ALICE) + 1
        assert b"subj-alice" not in entry.body
        for marker in _markers(ALICE):
            assert marker not in entry.body


def test_erase_finds_values_by_entry_subject(db_url: str, key_dir: Path) -> None:
    with _create(db_url, key_dir) as ledger:
        seqs = _fill(ledger)
        # A row whose subject column is empty is found through its entry.
        with ledger.engine.begin() as connection:
            connection.execute(
                text("UPDATE personal_values SET subject = NULL WHERE seq = :seq"),
                {"seq": seqs["alice"][1]},
            )
        result = _erase_alice(ledger)

        assert result.seqs == seqs["alice"]
        assert ledger.personal_values(seqs["alice"][1]) == {}


def test_erased_heap_bytes_gone_after_vacuum_full(
    postgres_url: str, key_dir: Path
) -> None:
    with _create(postgres_url, key_dir) as ledger:
        _fill(ledger)
        _erase_alice(ledger)
    dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    short = {name: value for name, value in ALICE.items() if name != "history"}
    with psycopg.connect(dsn, autocommit=True) as connection:
        superuser = connection.execute("SHOW is_superuser").fetchone()
        if superuser is None or superuser[0] != "on":
            pytest.skip("reading the heap file needs a PostgreSQL superuser")
        # VACUUM FULL copies rows that an open snapshot may still see, such as
        # one of an automatic ANALYZE, so it is repeated a bounded number of
        # times until no such snapshot is left.
        for _attempt in range(20):
            heap = _vacuum_full_heap(connection)
            if not any(marker in heap for marker in _markers(short)):
                break
            time.sleep(0.25)
    # Bob's live values are found in the heap, which shows the search works.
    # The long value may be compressed, so only the short ones are searched.
    assert canonical_bytes(BOB["email"]) in heap
    for marker in _markers(short):
        assert marker not in heap, f"{marker[:40]!r} survived VACUUM FULL"


def _vacuum_full_heap(connection: psycopg.Connection[Any]) -> bytes:
    """Run VACUUM FULL on personal_values; return its heap file's bytes."""
    connection.execute("VACUUM FULL personal_values")
    connection.execute("CHECKPOINT")
    row = connection.execute(
        "SELECT pg_relation_filepath('personal_values')"
    ).fetchone()
    assert row is not None
    data = connection.execute("SELECT pg_read_binary_file(%s)", (row[0],)).fetchone()
    assert data is not None
    return bytes(data[0])


# -- 3. exports, proofs, receipts and checkpoints made before still verify -----


def test_proofs_before_erasure_still_verify(
    db_url: str, key_dir: Path, tmp_path: Path
) -> None:
    with _create(db_url, key_dir) as ledger:
        ledger.append(_annotation("subj-carol", {"email": "carol@example.org"}, "0"))
        old_checkpoint = ledger.make_checkpoint()
        receipts = ledger.append_many(
            [
                _annotation("subj-alice", ALICE, "1"),
                _annotation("subj-bob", BOB, "2"),
            ]
        )
        checkpoint = ledger.make_checkpoint()
        verifier_key = ledger.signer().verifier_key()
        proofs = [ledger.inclusion_proof(r["seq"]) for r in receipts]
        consistency = ledger.consistency_proof(old_checkpoint.tree_size)
        export_before = _export(db_url, key_dir, tmp_path / "before.jsonl")

        _erase_alice(ledger)

        export_after = _export(db_url, key_dir, tmp_path / "after.jsonl")
        assert export_after.startswith(export_before)
        assert export_after.count(b"\n") == export_before.count(b"\n") + 1
        for proof in [*proofs, consistency]:
            summary = verify_proof_document(proof, verifier_key)
            assert summary["description"]
        for receipt in receipts:
            verify_receipt(receipt, [parse_verifier_key(verifier_key)])
        signed = open_checkpoint(checkpoint.note, ledger.verifiers(), ORIGIN)
        assert signed.checkpoint.root == ledger.root(checkpoint.tree_size)
        assert signed.checkpoint.root.hex() == checkpoint.root_hash
        later = ledger.consistency_proof(checkpoint.tree_size, ledger.size)
        assert verify_proof_document(later, verifier_key)["description"]
        result = ledger.verify(trusted_checkpoint=checkpoint.note)
        assert result.ok
        assert result.trusted_checkpoint_consistent


def _export(url: str, key_dir: Path, out: Path) -> bytes:
    from cli import cli

    outcome = CliRunner().invoke(
        cli, ["--db", url, "--key-dir", str(key_dir), "export", "--out", str(out)]
    )
    assert outcome.exit_code == 0, outcome.output
    return out.read_bytes()


# -- 4. roles ------------------------------------------------------------------


@pytest.mark.parametrize("role", ["appender", "auditor"])
def test_personal_view_hides_values_from_role(
    sqlite_url: str, key_dir: Path, role: str
) -> None:
    with _create(sqlite_url, key_dir) as ledger:
        seqs = _fill(ledger)
        view = personal_view(ledger, seqs["alice"][0], role)
        entry = entry_view(ledger, seqs["alice"][0], role)

    assert sorted(view) == sorted(ALICE)
    for name, field in view.items():
        assert set(field) == {"commitment"}, name
    assert entry["personal"] == view
    assert ALICE["email"] not in json.dumps(entry, ensure_ascii=False)


@pytest.mark.parametrize("role", ["officer", "admin"])
def test_personal_view_shows_values_to_role(
    sqlite_url: str, key_dir: Path, role: str
) -> None:
    with _create(sqlite_url, key_dir) as ledger:
        seqs = _fill(ledger)
        seq = seqs["alice"][0]
        view = personal_view(ledger, seq, role)
        record = ledger.get(seq).record

    for name, value in ALICE.items():
        assert view[name]["value"] == value
        assert view[name]["commitment"] == record["personal"][name]
        salt = bytes.fromhex(view[name]["salt"])
        assert commitment(salt, value) == record["personal"][name]


def test_personal_view_rejects_unknown_role(sqlite_url: str, key_dir: Path) -> None:
    with _create(sqlite_url, key_dir) as ledger:
        seqs = _fill(ledger)
        with pytest.raises(InputError) as caught:
            personal_view(ledger, seqs["alice"][0], "root")
    assert caught.value.reason == "invalid-role"
    assert "appender" in caught.value.message


def test_entry_view_without_personal_fields(sqlite_url: str, key_dir: Path) -> None:
    with _create(sqlite_url, key_dir) as ledger:
        _fill(ledger)
        view = entry_view(ledger, 2, "admin")
    assert "personal" not in view
    assert view["kind"] == "decision"


# -- 5. nothing to erase -------------------------------------------------------


def test_erase_unknown_subject_appends_nothing(db_url: str, key_dir: Path) -> None:
    with _create(db_url, key_dir) as ledger:
        _fill(ledger)
        head = ledger.head()
        with pytest.raises(InputError) as caught:
            erase_subject(
                ledger,
                "subj-nobody",
                reason="request",
                request_ref="DSR-1",
                actor="user:dpo",
            )
        after = ledger.head()
    assert caught.value.reason == "subject-not-found"
    assert "no personal values found for subject 'subj-nobody'" in str(caught.value)
    assert "nothing was erased" in str(caught.value)
    assert after.size == head.size
    assert after.head_hash == head.head_hash


def test_second_erasure_names_the_first(sqlite_url: str, key_dir: Path) -> None:
    with _create(sqlite_url, key_dir) as ledger:
        _fill(ledger)
        first = _erase_alice(ledger)
        size = ledger.size
        with pytest.raises(InputError) as caught:
            _erase_alice(ledger)
        assert ledger.size == size
    assert f"erasure entry seq {first.erasure_seq}" in str(caught.value)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"reason": " "}, "reason"),
        ({"request_ref": ""}, "request_ref"),
        ({"actor": "dpo"}, "actor"),
        ({"requested_at": "2026-01-10 09:00"}, "request_received_at"),
        ({"requested_at": "2999-01-01T00:00:00Z"}, "in the future"),
        ({"requested_at": "0001-01-01T00:00:00+23:59"}, "years 1 to 9999"),
        ({"subject": "x" * 1025}, "subject"),
        ({"reason": "bad \ud800 surrogate"}, "reason"),
    ],
)
def test_erase_rejects_invalid_argument(
    sqlite_url: str, key_dir: Path, change: dict[str, Any], named: str
) -> None:
    arguments: dict[str, Any] = {
        "subject": "subj-alice",
        "reason": "request",
        "request_ref": "DSR-1",
        "actor": "user:dpo",
        "requested_at": None,
        **change,
    }
    subject = arguments.pop("subject")
    with _create(sqlite_url, key_dir) as ledger:
        seqs = _fill(ledger)
        size = ledger.size
        with pytest.raises(InputError) as caught:
            erase_subject(ledger, subject, **arguments)
        assert ledger.size == size
        assert ledger.personal_values(seqs["alice"][0])
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        (["subj-alice"], "JSON object"),
        ({"subject": "subj-alice", "reason": "r"}, "request_ref"),
        ({"subject": "s", "reason": "r", "request_ref": "x", "values": 1}, "values"),
        (
            {
                "subject": "s",
                "reason": "r",
                "request_ref": "x",
                "request_received_at": 5,
            },
            "request_received_at",
        ),
    ],
)
def test_erase_request_rejects_invalid_body(
    sqlite_url: str, key_dir: Path, payload: Any, named: str
) -> None:
    with _create(sqlite_url, key_dir) as ledger:
        _fill(ledger)
        size = ledger.size
        with pytest.raises(InputError) as caught:
            erase_request(ledger, payload, actor="svc:api")
        assert ledger.size == size
    assert named in str(caught.value)


def test_erase_rejects_nul_in_subject(db_url: str, key_dir: Path) -> None:
    with _create(db_url, key_dir) as ledger:
        _fill(ledger)
        size = ledger.size
        with pytest.raises(InputError) as caught:
            erase_subject(
                ledger,
                "subj-\x00alice",
                reason="request",
                request_ref="DSR-1",
                actor="user:dpo",
            )
        assert ledger.size == size
    assert caught.value.reason in ("invalid-input", "subject-not-found")


def test_erase_request_erases_subject(sqlite_url: str, key_dir: Path) -> None:
    payload = {"subject": "subj-bob", "reason": "Art. 17", "request_ref": "DSR-7"}
    with _create(sqlite_url, key_dir) as ledger:
        seqs = _fill(ledger)
        result = erase_request(ledger, payload, actor="svc:api")
    assert result.seqs == seqs["bob"]
    assert result.to_dict()["request_ref"] == "DSR-7"


# -- consistency under concurrent appends ---------------------------------------


def test_erase_replans_when_subject_gains_value(
    sqlite_url: str, key_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _create(sqlite_url, key_dir) as ledger:
        seqs = _fill(ledger)
        original = ledger.append_ledger_record
        raced: list[int] = []

        def append_with_race(kind: str, body: dict[str, Any], **kwargs: Any) -> Any:
            if not raced:
                # Another writer appends a value for the subject after the
                # erasure planned its rows and before it took the lock.
                receipt = ledger.append(
                    _annotation("subj-alice", {"phone": "MARKER-PHONE-31"}, "9")
                )
                raced.append(receipt["seq"])
            return original(kind, body, **kwargs)

        monkeypatch.setattr(ledger, "append_ledger_record", append_with_race)
        result = _erase_alice(ledger)
        erasures = list(ledger.entries(kind="erasure"))

    assert result.seqs == [*seqs["alice"], raced[0]]
    assert len(erasures) == 1
    assert erasures[0].record["erased"][-1] == {"seq": raced[0], "fields": ["phone"]}


# -- 6. show and check-commitment ----------------------------------------------


def test_show_and_check_commitment_after_erasure(
    sqlite_url: str, key_dir: Path
) -> None:
    with _create(sqlite_url, key_dir) as ledger:
        seqs = _fill(ledger)
        seq = seqs["alice"][0]
        kept = personal_view(ledger, seq, "admin")["email"]
    erased = _run_cli(
        sqlite_url,
        key_dir,
        "erase",
        "--subject",
        "subj-alice",
        "--reason",
        "Art. 17 request",
        "--request-ref",
        "DSR-9",
        "--actor",
        "user:dpo",
    )
    assert erased.returncode == 0, erased.stderr
    assert "erasure entry seq 4" in erased.stdout

    shown = _run_cli(sqlite_url, key_dir, "--json", "show", str(seq), "--personal")
    assert shown.returncode == 0, shown.stderr
    email = json.loads(shown.stdout)["personal"]["email"]
    assert email["erased"] is True
    assert email["erasure_seq"] == 4
    assert email["request_ref"] == "DSR-9"
    assert email["erased_at"].startswith("20")
    assert "value" not in email
    assert "salt" not in email

    matched = _run_cli(
        sqlite_url,
        key_dir,
        "check-commitment",
        str(seq),
        "email",
        "--value",
        json.dumps(kept["value"]),
        "--salt",
        kept["salt"],
    )
    assert matched.returncode == 0, matched.stderr
    assert matched.stdout.startswith("ok:")

    forged = _run_cli(
        sqlite_url,
        key_dir,
        "check-commitment",
        str(seq),
        "email",
        "--value",
        json.dumps("mallory@example.org"),
        "--salt",
        kept["salt"],
    )
    assert forged.returncode == 1
    assert "MISMATCH" in forged.stdout


def test_check_commitment_matches_saved_value(sqlite_url: str, key_dir: Path) -> None:
    with _create(sqlite_url, key_dir) as ledger:
        seqs = _fill(ledger)
        seq = seqs["alice"][0]
        kept = personal_view(ledger, seq, "admin")["address"]
        _erase_alice(ledger)
        salt = bytes.fromhex(kept["salt"])
        good = check_commitment(ledger, seq, "address", ALICE["address"], salt)
        wrong = check_commitment(ledger, seq, "address", {"street": "x"}, salt)
    assert good.matches
    assert not wrong.matches
    assert wrong.expected == kept["commitment"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["0", "email", "--value", "not json", "--salt", "00" * 32], "--value"),
        (["0", "email", "--value", '"x"', "--salt", "zz"], "--salt"),
        (["0", "email", "--value", '"x"', "--salt", "00" * 8], "32"),
        (["0", "phone", "--value", '"x"', "--salt", "00" * 32], "phone"),
        (["99", "email", "--value", '"x"', "--salt", "00" * 32], "99"),
    ],
)
def test_check_commitment_rejects_bad_input(
    sqlite_url: str, key_dir: Path, args: list[str], message: str
) -> None:
    with _create(sqlite_url, key_dir) as ledger:
        _fill(ledger)
    outcome = _run_cli(sqlite_url, key_dir, "check-commitment", *args)
    assert outcome.returncode == 2
    assert message in outcome.stderr
    assert "Traceback" not in outcome.stderr


def test_cli_erase_unknown_subject_exits_2(sqlite_url: str, key_dir: Path) -> None:
    with _create(sqlite_url, key_dir) as ledger:
        _fill(ledger)
        size = ledger.size
    outcome = _run_cli(
        sqlite_url,
        key_dir,
        "erase",
        "--subject",
        "subj-nobody",
        "--reason",
        "r",
        "--request-ref",
        "DSR-1",
    )
    assert outcome.returncode == 2
    assert outcome.stderr.startswith(
        "error: no personal values found for subject 'subj-nobody'; nothing was erased"
    )
    with Ledger.open(sqlite_url, config=LedgerConfig(key_dir=key_dir)) as ledger:
        assert ledger.size == size


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--subject ID or --expired"),
        (["--subject", "s", "--expired"], "--subject ID or --expired"),
        (["--subject", "s", "--reason", "r"], "--request-ref"),
        (["--subject", "s", "--request-ref", "r"], "--reason"),
        (["--expired", "--max-entries", "0"], "max_entries"),
    ],
)
def test_cli_erase_rejects_bad_options(
    sqlite_url: str, key_dir: Path, args: list[str], message: str
) -> None:
    with _create(sqlite_url, key_dir) as ledger:
        _fill(ledger)
    outcome = _run_cli(sqlite_url, key_dir, "erase", *args)
    assert outcome.returncode == 2
    assert message in outcome.stderr


# -- erase --expired -------------------------------------------------------------


class _Clock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def _aged_ledger(url: str, key_dir: Path) -> tuple[Ledger, _Clock, dict[str, int]]:
    """Append entries recorded in 2018, mid-2025 and late 2025."""
    clock = _Clock(datetime(2018, 3, 1, tzinfo=UTC))
    ledger = _create(url, key_dir, clock=clock)
    seqs: dict[str, int] = {}
    seqs["old_annotation"] = ledger.append(
        _annotation("subj-a", {"email": "MARKER-OLD-A"}, "1")
    )["seq"]
    clock.moment = datetime(2025, 6, 1, tzinfo=UTC)
    decision = {
        "kind": "decision",
        "actor": "svc:model",
        "occurred_at": "2025-06-01T00:00:00Z",
        "item": {"dataset": "claims", "id": "2"},
        "model": {"name": "triage", "version": "1"},
        "output": "deny",
        "confidence": 0.4,
        "personal": {"name": "MARKER-MID-D"},
    }
    seqs["mid_decision"] = ledger.append(decision)["seq"]
    seqs["mid_annotation"] = ledger.append(
        _annotation("subj-b", {"email": "MARKER-MID-A"}, "3")
    )["seq"]
    clock.moment = datetime(2025, 12, 1, tzinfo=UTC)
    seqs["new_decision"] = ledger.append({**decision, "personal": {"name": "NEW"}})[
        "seq"
    ]
    clock.moment = datetime(2026, 2, 1, tzinfo=UTC)
    return ledger, clock, seqs


def test_erase_expired_follows_retention(db_url: str, key_dir: Path) -> None:
    ledger, clock, seqs = _aged_ledger(db_url, key_dir)
    with ledger:
        result = erase_expired(
            ledger,
            actor="svc:retention",
            retention={"annotation": 6, "decision": 0.5},
            now=clock.moment,
        )
        entry = ledger.get(result.erasure_seq)
        assert result.seqs == [seqs["old_annotation"], seqs["mid_decision"]]
        assert entry.record["reason"] == "retention expired"
        assert entry.record["trigger"] == "retention"
        assert entry.record["retention"]["decision"] == {
            "years": 0.5,
            "recorded_before": "2025-08-01T00:00:00.000000Z",
        }
        assert "request_received_at" not in entry.record
        assert ledger.personal_values(seqs["mid_annotation"])
        assert ledger.personal_values(seqs["new_decision"])
        assert ledger.verify().ok

        size = ledger.size
        again = erase_expired(
            ledger,
            actor="svc:retention",
            retention={"annotation": 6, "decision": 0.5},
            now=clock.moment,
        )
        assert again.count == 0
        assert again.erasure_seq is None
        assert ledger.size == size


def test_erase_expired_limits_one_run(sqlite_url: str, key_dir: Path) -> None:
    ledger, clock, seqs = _aged_ledger(sqlite_url, key_dir)
    with ledger:
        retention = {"annotation": 0.5, "decision": 0.5}
        first = erase_expired(
            ledger,
            actor="svc:retention",
            retention=retention,
            now=clock.moment,
            max_entries=2,
        )
        second = erase_expired(
            ledger, actor="svc:retention", retention=retention, now=clock.moment
        )
    assert first.seqs == [seqs["old_annotation"], seqs["mid_decision"]]
    assert first.remaining == 1
    assert second.seqs == [seqs["mid_annotation"]]
    assert second.remaining == 0


def test_erase_expired_rejects_short_retention(sqlite_url: str, key_dir: Path) -> None:
    ledger, clock, _seqs = _aged_ledger(sqlite_url, key_dir)
    with ledger:
        size = ledger.size
        with pytest.raises(InputError) as caught:
            erase_expired(ledger, actor="svc:retention", retention={"decision": 0.25})
        assert ledger.size == size
    assert "decision" in str(caught.value)
    assert "six months" in str(caught.value)


def test_cli_erase_expired_reads_config(
    sqlite_url: str, key_dir: Path, tmp_path: Path
) -> None:
    ledger, _clock, seqs = _aged_ledger(sqlite_url, key_dir)
    ledger.close()
    config = tmp_path / "govledger.toml"
    config.write_text("[retention]\nannotation = 6\ndecision = 6\n", encoding="utf-8")
    outcome = _run_cli(
        sqlite_url, key_dir, "--json", "erase", "--expired", "--config", str(config)
    )
    assert outcome.returncode == 0, outcome.stderr
    result = json.loads(outcome.stdout)
    assert result["seqs"] == [seqs["old_annotation"]]
    assert result["reason"] == "retention expired"

    config.write_text("[retention]\nmodel = 6\n", encoding="utf-8")
    rejected = _run_cli(
        sqlite_url, key_dir, "erase", "--expired", "--config", str(config)
    )
    assert rejected.returncode == 2
    assert "'model'" in rejected.stderr


# -- HTTP service ----------------------------------------------------------------


@pytest.fixture
def http_service(sqlite_url: str, key_dir: Path) -> Iterator[tuple[str, Ledger, dict]]:
    """Serve a ledger with Alice's and Bob's records; yield URL, ledger, tokens."""
    from ledger.service import create_app
    from ledger.tokens import create_token
    from tests.ledger._service_harness import threaded_server

    ledger = _create(sqlite_url, key_dir)
    _fill(ledger)
    tokens = {
        role: create_token(ledger, name=f"{role}-token", role=role)[1]
        for role in ("appender", "auditor", "officer", "admin")
    }
    app = create_app(sqlite_url, LedgerConfig(key_dir=key_dir), token_cache_s=0)
    try:
        with threaded_server(app) as base_url:
            yield base_url, ledger, tokens
    finally:
        ledger.close()


def _erasure_post(base_url: str, token: str, body: Any) -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/erasures",
        content=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
        },
        timeout=30,
    )


ERASURE_BODY = {
    "subject": "subj-alice",
    "reason": "GDPR Art. 17 request",
    "request_ref": "DSR-HTTP-1",
}


@pytest.mark.parametrize("role", ["appender", "auditor", "officer"])
def test_http_erasure_forbidden_for_role(
    http_service: tuple[str, Ledger, dict], role: str
) -> None:
    base_url, ledger, tokens = http_service
    before = ledger.head()
    response = _erasure_post(base_url, tokens[role], ERASURE_BODY)
    after = ledger.head()
    assert response.status_code == 403, response.text
    assert after.size == before.size
    assert after.head_hash == before.head_hash
    assert ledger.personal_values(0)


def test_http_erasure_by_admin(http_service: tuple[str, Ledger, dict]) -> None:
    base_url, ledger, tokens = http_service
    response = _erasure_post(base_url, tokens["admin"], ERASURE_BODY)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["seqs"] == [0, 3]
    assert body["request_ref"] == "DSR-HTTP-1"
    assert body["receipt"]["seq"] == body["erasure_seq"]
    assert ledger.personal_values(0) == {}
    assert ledger.get(body["erasure_seq"]).record["actor"] == "svc:admin-token"


def test_http_erasure_unknown_subject_is_404(
    http_service: tuple[str, Ledger, dict],
) -> None:
    base_url, ledger, tokens = http_service
    size = ledger.size
    body = {**ERASURE_BODY, "subject": "subj-nobody"}
    response = _erasure_post(base_url, tokens["admin"], body)
    assert response.status_code == 404, response.text
    assert response.json()["error"] == "subject-not-found"
    assert ledger.size == size


def test_http_erasure_invalid_body_is_422(
    http_service: tuple[str, Ledger, dict],
) -> None:
    base_url, ledger, tokens = http_service
    size = ledger.size
    body = {"subject": "subj-alice", "reason": "r"}
    response = _erasure_post(base_url, tokens["admin"], body)
    assert response.status_code == 422, response.text
    assert "request_ref" in response.json()["message"]
    assert ledger.size == size


def test_http_entry_shows_personal_by_role(
    http_service: tuple[str, Ledger, dict],
) -> None:
    base_url, _ledger, tokens = http_service

    def read(role: str) -> dict[str, Any]:
        response = httpx.get(
            f"{base_url}/v1/entries/0",
            headers={"Authorization": f"Bearer {tokens[role]}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.json()

    auditor = read("auditor")
    officer = read("officer")
    assert set(auditor["personal"]["email"]) == {"commitment"}
    assert ALICE["email"] not in json.dumps(auditor, ensure_ascii=False)
    assert officer["personal"]["email"]["value"] == ALICE["email"]

    erased = _erasure_post(base_url, tokens["admin"], ERASURE_BODY)
    assert erased.status_code == 201, erased.text
    after = read("auditor")
    assert after["personal"]["email"]["erased"] is True
    assert after["personal"]["email"]["request_ref"] == "DSR-HTTP-1"


def test_cli_erase_expired_uses_policy_in_force(sqlite_url: str, key_dir: Path) -> None:
    from policies.config import PolicyConfig, RetentionConfig, record_policy

    ledger, _clock, seqs = _aged_ledger(sqlite_url, key_dir)
    with ledger:
        policy = PolicyConfig(retention=RetentionConfig(annotation=20, decision=0.5))
        receipt = record_policy(ledger, policy, actor="user:officer", source="test")
    assert receipt is not None
    outcome = _run_cli(sqlite_url, key_dir, "--json", "erase", "--expired")
    assert outcome.returncode == 0, outcome.stderr
    result = json.loads(outcome.stdout)
    assert seqs["mid_decision"] in result["seqs"]
    assert seqs["old_annotation"] not in result["seqs"]
    with Ledger.open(sqlite_url, config=LedgerConfig(key_dir=key_dir)) as ledger:
        entry = ledger.get(result["erasure_seq"])
    assert entry.record["policy_seq"] == receipt["seq"]
    assert entry.record["retention"]["annotation"]["years"] == 20
