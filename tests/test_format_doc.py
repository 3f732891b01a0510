"""Recompute every value of the worked examples in docs/FORMAT.md."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.canonical import canonical_bytes, parse_json
from ledger.checkpoints import open_checkpoint, sign_checkpoint
from ledger.entries import entry_bytes
from ledger.merkle import node_hash, verify_consistency
from ledger.note import Signer, parse_verifier_key
from ledger.proofs import verify_proof_document
from ledger.receipts import make_receipt, verify_receipt

FORMAT = Path(__file__).resolve().parents[1] / "docs" / "FORMAT.md"


def blocks() -> dict[str, str]:
    """Return the fenced blocks of FORMAT.md that carry a label."""
    text = FORMAT.read_text(encoding="utf-8")
    found = re.findall(r"```\w+ ([\w-]+)\n(.*?)```", text, flags=re.S)
    return {label: body for label, body in found}


@pytest.fixture(scope="module")
def doc() -> dict[str, str]:
    return blocks()


@pytest.fixture(scope="module")
def signer() -> Signer:
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    return Signer("example.org/govledger", key)


def _line(doc: dict[str, str], label: str) -> str:
    return doc[label].strip("\n")


def test_entry_0_bytes_and_hash(doc: dict[str, str]) -> None:
    record = parse_json(doc["record-0"])
    kind = record.pop("kind")
    body = entry_bytes(
        seq=0,
        prev="0" * 64,
        kind=kind,
        recorded_at="2026-03-02T08:15:01.250000Z",
        record_bytes=canonical_bytes(record),
    )
    assert body.decode() == _line(doc, "entry-0")
    assert hashlib.sha256(b"\x00" + body).hexdigest() == _line(doc, "entry-0-hash")


def test_entry_bytes_equal_jcs_of_entry_object(doc: dict[str, str]) -> None:
    for label in ("entry-0", "entry-1"):
        text = _line(doc, label)
        assert canonical_bytes(json.loads(text)).decode() == text


def test_entry_1_links_to_entry_0(doc: dict[str, str]) -> None:
    entry = json.loads(_line(doc, "entry-1"))
    assert entry["prev"] == _line(doc, "entry-0-hash")
    digest = hashlib.sha256(b"\x00" + _line(doc, "entry-1").encode()).hexdigest()
    assert digest == _line(doc, "entry-1-hash")


def test_root_of_two_entries(doc: dict[str, str]) -> None:
    left = bytes.fromhex(_line(doc, "entry-0-hash"))
    right = bytes.fromhex(_line(doc, "entry-1-hash"))
    assert node_hash(left, right).hex() == _line(doc, "root-2")


def test_verifier_key(doc: dict[str, str], signer: Signer) -> None:
    assert signer.verifier_key() == _line(doc, "verifier-key")
    key_id = hashlib.sha256(
        b"example.org/govledger\n\x01" + signer.verifier().public_key_bytes
    ).digest()[:4]
    assert key_id.hex() == "2b5da6ed"


def test_checkpoint_note(doc: dict[str, str], signer: Signer) -> None:
    root = bytes.fromhex(_line(doc, "root-2"))
    note = sign_checkpoint("example.org/govledger", 2, root, signer)
    assert note == doc["checkpoint-2"]
    verifier = parse_verifier_key(_line(doc, "verifier-key"))
    assert open_checkpoint(note, [verifier]).checkpoint.root == root
    assert base64.b64encode(root).decode() in note


def test_receipt(doc: dict[str, str], signer: Signer) -> None:
    documented = json.loads(doc["receipt-1"])
    receipt = make_receipt(
        signer,
        origin="example.org/govledger",
        seq=1,
        entry_hash=_line(doc, "entry-1-hash"),
        recorded_at="2026-03-02T09:02:31.000000Z",
    )
    assert receipt == documented
    verify_receipt(documented, [signer.verifier()])


def test_inclusion_proof(doc: dict[str, str]) -> None:
    proof = json.loads(doc["inclusion-0"])
    summary = verify_proof_document(proof, _line(doc, "verifier-key"))
    assert summary["root"] == _line(doc, "root-2")


def test_consistency_from_one_to_two(doc: dict[str, str]) -> None:
    old_root = bytes.fromhex(_line(doc, "entry-0-hash"))
    new_root = bytes.fromhex(_line(doc, "root-2"))
    proof = [bytes.fromhex(_line(doc, "entry-1-hash"))]
    verify_consistency(1, 2, old_root, new_root, proof)
