"""Checkpoints kept outside the ledger catch truncation, rewrites and rollback;
receipts, proofs and key rotation keep verifying."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import Ledger, LedgerConfig
from ledger.checkpoints import open_checkpoint, publish_checkpoint, sign_checkpoint
from ledger.errors import CheckpointError, ProofError
from ledger.keys import generate_log_key
from ledger.merkle import fold_right, leaf_hash, node_hash
from ledger.note import parse_verifier_key
from ledger.proofs import verify_proof_document
from ledger.receipts import verify_receipt

from .test_verify import _records, drop_triggers, execute, fetch

ORIGIN = "test.example/ledger"


@pytest.fixture
def ledger(db_url: str, key_dir: Path) -> Iterator[Ledger]:
    config = LedgerConfig(key_dir=key_dir, checkpoint_every=0, checkpoint_interval_s=0)
    with Ledger.create(db_url, origin=ORIGIN, config=config) as opened:
        opened.append_many(_records(100))
        yield opened


def trusted_note(ledger: Ledger) -> str:
    """Sign a checkpoint and keep its note outside the ledger, as a witness."""
    return ledger.make_checkpoint().note


def test_trusted_checkpoint_passes_after_growth(ledger: Ledger) -> None:
    note = trusted_note(ledger)
    ledger.append_many(_records(30))
    result = ledger.verify(trusted_checkpoint=note)
    assert result.ok, result.fault
    assert result.trusted_checkpoint_consistent is True
    assert result.trusted_checkpoint_size == 100


def test_trusted_checkpoint_detects_truncation(ledger: Ledger) -> None:
    note = trusted_note(ledger)
    drop_triggers(ledger.url)
    execute(ledger.url, "DELETE FROM entries WHERE seq >= 80")
    execute(ledger.url, "DELETE FROM checkpoints")
    execute(
        ledger.url,
        "UPDATE chain_head SET size = 80, head_hash = ?, peaks = ?",
        (fetch(ledger.url, "SELECT entry_hash FROM entries WHERE seq = 79")[0][0], b""),
    )
    result = ledger.verify(trusted_checkpoint=note)
    assert result.fault.kind == "rollback"
    assert "smaller than the trusted checkpoint" in result.fault.message
    assert result.fault.expected == "100"
    assert result.fault.actual == "80"


def test_trusted_checkpoint_detects_rollback_to_backup(
    sqlite_url: str, key_dir: Path, tmp_path: Path
) -> None:
    # Restoring an older copy of the SQLite file gives a self-consistent
    # ledger; only a checkpoint kept outside it shows the rollback.
    config = LedgerConfig(key_dir=key_dir, checkpoint_every=0, checkpoint_interval_s=0)
    ledger = Ledger.create(sqlite_url, origin=ORIGIN, config=config)
    ledger.append_many(_records(100))
    database = Path(ledger.url[len("sqlite:///") :])
    backup = tmp_path / "backup.db"
    with sqlite3.connect(database) as source, sqlite3.connect(backup) as target:
        source.backup(target)
    ledger.append_many(_records(10))
    note = trusted_note(ledger)
    ledger.close()
    with sqlite3.connect(backup) as source, sqlite3.connect(database) as target:
        source.backup(target)
    restored = Ledger.open(ledger.url, config=ledger.config)
    result = restored.verify(trusted_checkpoint=note)
    assert restored.verify().ok, "the restored backup is self-consistent"
    assert result.fault.kind == "rollback"
    restored.close()


def _rewrite_everything(ledger: Ledger, attacker_key_dir: Path) -> None:
    """Rewrite entry 5, recompute every hash, node and the head, and re-sign
    the stored checkpoints with a key of the attacker's."""
    drop_triggers(ledger.url)
    rows = fetch(ledger.url, "SELECT seq, body FROM entries ORDER BY seq")
    prev = "0" * 64
    leaves = []
    for seq, raw in rows:
        entry = json.loads(bytes(raw))
        entry["prev"] = prev
        if seq == 5:
            entry["record"]["output"] = {"flag": True, "edited": True}
        body = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
        leaf = leaf_hash(body)
        prev = leaf.hex()
        leaves.append(leaf)
        execute(
            ledger.url,
            "UPDATE entries SET body = ?, entry_hash = ? WHERE seq = ?",
            (body, prev, seq),
        )
    execute(ledger.url, "DELETE FROM merkle_nodes")
    level, nodes = 0, leaves
    while len(nodes) > 1:
        level += 1
        nodes = [node_hash(nodes[i], nodes[i + 1]) for i in range(0, len(nodes) - 1, 2)]
        for idx, node in enumerate(nodes):
            execute(
                ledger.url,
                "INSERT INTO merkle_nodes (level, idx, hash) VALUES (?, ?, ?)",
                (level, idx, node),
            )
    root = _root(leaves)
    attacker = generate_log_key(ORIGIN)
    execute(ledger.url, "DELETE FROM checkpoints")
    execute(ledger.url, "DELETE FROM log_keys")
    execute(
        ledger.url,
        "INSERT INTO log_keys (key_id, verifier_key, created_at) VALUES (?, ?, ?)",
        (f"{attacker.key_id:08x}", attacker.verifier_key(), "2026-01-01T00:00:00Z"),
    )
    note = sign_checkpoint(ORIGIN, len(leaves), root, attacker)
    # The attacker also gives the new checkpoint id 1, as the first row of
    # a ledger has, so no id shows the deleted rows.
    execute(
        ledger.url,
        "INSERT INTO checkpoints (id, tree_size, root_hash, key_id, note, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (1, len(leaves), root.hex(), f"{attacker.key_id:08x}", note, "2026-01-01"),
    )
    execute(ledger.url, "UPDATE chain_head SET head_hash = ?, peaks = ?", (prev, b""))


def _root(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(_root(leaves[:split]), _root(leaves[split:]))


def test_whole_chain_rewrite_is_self_consistent_but_caught(
    ledger: Ledger, tmp_path: Path
) -> None:
    original_key = ledger.signer().verifier_key()
    note = trusted_note(ledger)
    _rewrite_everything(ledger, tmp_path / "attacker")
    assert ledger.verify().ok, "a full rewrite is self-consistent without a witness"
    result = ledger.verify(trusted_checkpoint=note, trusted_keys=[original_key])
    assert not result.ok
    # The re-signed stored checkpoints fail against the pinned key first.
    assert result.fault.kind == "checkpoint-signature-invalid"
    assert f"{original_key.split('+')[1]}" in result.fault.message
    # With only the trusted checkpoint's evidence, the rewrite is named as such.
    execute(ledger.url, "DELETE FROM checkpoints")
    rewritten = ledger.verify(trusted_checkpoint=note, trusted_keys=[original_key])
    assert rewritten.fault.kind == "rewritten"
    assert "rewritten" in rewritten.fault.message
    # Without pinning the key, the ledger's own (replaced) keys are used and
    # the witness's checkpoint does not verify with them: still a failure.
    unpinned = ledger.verify(trusted_checkpoint=note)
    assert unpinned.fault.kind == "trusted-checkpoint-invalid"


def test_trusted_checkpoint_signed_by_other_key_rejected(ledger: Ledger) -> None:
    other = generate_log_key(ORIGIN)
    note = sign_checkpoint(ORIGIN, 100, ledger.root(100), other)
    result = ledger.verify(trusted_checkpoint=note)
    assert result.fault.kind == "trusted-checkpoint-invalid"
    assert f"{other.key_id:08x}" in result.fault.message


def test_stored_checkpoint_with_wrong_root_detected(ledger: Ledger) -> None:
    ledger.make_checkpoint()
    drop_triggers(ledger.url)
    fake = sign_checkpoint(ORIGIN, 50, b"\x07" * 32, ledger.signer())
    execute(
        ledger.url,
        "INSERT INTO checkpoints (tree_size, root_hash, key_id, note, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (50, "07" * 32, f"{ledger.signer().key_id:08x}", fake, "2026-01-01"),
    )
    result = ledger.verify()
    assert result.fault.kind == "checkpoint-root-mismatch"
    assert result.fault.seq == 50


def test_receipts_verify_with_log_key(ledger: Ledger) -> None:
    receipt = ledger.append(_records(1)[0])
    verify_receipt(receipt, ledger.verifiers())
    assert receipt["seq"] == 100
    assert receipt["entry_hash"] == ledger.get(100).entry_hash


def test_inclusion_and_consistency_proofs_verify_offline(ledger: Ledger) -> None:
    key = ledger.signer().verifier_key()
    old_note = trusted_note(ledger)
    ledger.append_many(_records(37))
    ledger.make_checkpoint()
    inclusion = ledger.inclusion_proof(42)
    assert verify_proof_document(inclusion, key)["index"] == 42
    consistency = ledger.consistency_proof(100)
    summary = verify_proof_document(consistency, key)
    old = open_checkpoint(old_note, [parse_verifier_key(key)]).checkpoint
    assert summary["old_root"] == old.root.hex()


@pytest.mark.parametrize("field", ["leaf_hash", "hashes", "tree_size", "checkpoint"])
def test_tampered_inclusion_proof_rejected(ledger: Ledger, field: str) -> None:
    key = ledger.signer().verifier_key()
    proof = ledger.inclusion_proof(42)
    if field == "leaf_hash":
        proof["leaf_hash"] = hashlib.sha256(b"other").hexdigest()
    elif field == "hashes":
        proof["hashes"][0] = "00" * 32
    elif field == "tree_size":
        proof["tree_size"] += 1
    else:
        proof["checkpoint"] = proof["checkpoint"].replace("\n100\n", "\n101\n")
    with pytest.raises((ProofError, CheckpointError)):
        verify_proof_document(proof, key)


def test_key_rotation_keeps_old_checkpoints_valid(ledger: Ledger) -> None:
    old_key = ledger.signer().verifier_key()
    old_note = trusted_note(ledger)
    receipt, new_key = ledger.rotate_key()
    verify_receipt(receipt, [parse_verifier_key(old_key)])
    entry = ledger.get(receipt["seq"])
    assert entry.kind == "key_rotated"
    assert entry.record["old_key"] == old_key
    assert entry.record["new_key"] == new_key
    ledger.append_many(_records(5))
    new_note = ledger.make_checkpoint().note
    assert open_checkpoint(new_note, [parse_verifier_key(new_key)])
    result = ledger.verify(trusted_checkpoint=old_note, trusted_keys=[old_key])
    assert result.ok, result.fault
    assert result.checkpoints_checked == 2


def test_publish_keeps_history(ledger: Ledger, tmp_path: Path) -> None:
    first = ledger.make_checkpoint()
    publish_checkpoint(tmp_path / "witness", first.tree_size, first.note)
    ledger.append_many(_records(3))
    second = ledger.make_checkpoint()
    latest = publish_checkpoint(tmp_path / "witness", second.tree_size, second.note)
    assert latest.read_text() == second.note
    assert (tmp_path / "witness" / "history" / "100").read_text() == first.note
    assert (tmp_path / "witness" / "history" / "103").read_text() == second.note


def test_root_matches_fold_of_peaks(ledger: Ledger) -> None:
    leaves = [bytes.fromhex(row[1]) for row in ledger.iter_raw()]
    assert ledger.root() == _root(leaves)
    assert fold_right(
        [_root(leaves[:64]), _root(leaves[64:96]), _root(leaves[96:])]
    ) == (ledger.root())
