"""Offline checks of proof documents (the JSON that ``prove`` writes).

A proof document carries its signed checkpoint, so an auditor needs only
the file and the log's verifier key:

- inclusion: ``{"type": "inclusion", "index", "tree_size", "leaf_hash",
  "hashes", "checkpoint"}``; the proof must rebuild the checkpoint's root
  (RFC 9162 section 2.1.3.2);
- consistency: ``{"type": "consistency", "old_size", "new_size",
  "old_root", "new_root", "hashes", "checkpoint"}``; ``new_root`` must be
  the checkpoint's root and the proof must link both roots (RFC 9162
  section 2.1.4.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import merkle
from .checkpoints import open_checkpoint
from .errors import ProofError
from .note import parse_verifier_key

__all__ = ["verify_proof_document"]

_INCLUSION_FIELDS = {"type", "index", "tree_size", "leaf_hash", "hashes", "checkpoint"}
_CONSISTENCY_FIELDS = {
    "type",
    "old_size",
    "new_size",
    "old_root",
    "new_root",
    "hashes",
    "checkpoint",
}


def _field(document: dict[str, Any], name: str, kind: type) -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ProofError(
            f"proof field {name!r} is missing or not a {kind.__name__}",
            reason="malformed-proof",
        )
    return value


def _hash(value: Any, name: str) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != merkle.HASH_SIZE or value != raw.hex():
        raise ProofError(
            f"proof field {name} must be 64 lowercase hex digits, got {value!r}",
            reason="malformed-proof",
        )
    return raw


def _check_fields(document: dict[str, Any], expected: set[str]) -> None:
    present = set(document)
    if present != expected:
        missing = sorted(expected - present)
        extra = sorted(present - expected)
        raise ProofError(
            f"proof fields are wrong: missing {missing}, unexpected {extra}",
            reason="malformed-proof",
        )


def verify_proof_document(
    document: Any, verifier_key: str | Sequence[str]
) -> dict[str, Any]:
    """Verify a proof document offline; return a summary of what it proved.

    ``verifier_key`` is the log's verifier key in note form, or several
    (after a key rotation): the checkpoint must be signed by one of them.

    Raises:
        ProofError: the document is malformed or the proof does not hold.
        CheckpointError: its checkpoint is not signed by ``verifier_key``.
        NoteError: ``verifier_key`` or the signed note is malformed.
    """
    if not isinstance(document, dict):
        raise ProofError(
            "a proof document must be a JSON object", reason="malformed-proof"
        )
    keys = [verifier_key] if isinstance(verifier_key, str) else list(verifier_key)
    verifiers = [parse_verifier_key(key) for key in keys]
    kind = document.get("type")
    if kind == "inclusion":
        _check_fields(document, _INCLUSION_FIELDS)
    elif kind == "consistency":
        _check_fields(document, _CONSISTENCY_FIELDS)
    else:
        raise ProofError(
            f"proof type {kind!r} is unknown; expected inclusion or consistency",
            reason="malformed-proof",
        )
    note = _field(document, "checkpoint", str)
    signed = open_checkpoint(note, verifiers, origin=verifiers[0].name)
    verifier = verifiers[0]
    checkpoint = signed.checkpoint
    hashes = _field(document, "hashes", list)
    proof = [_hash(value, f"hashes[{i}]") for i, value in enumerate(hashes)]
    if kind == "inclusion":
        index = _field(document, "index", int)
        tree_size = _field(document, "tree_size", int)
        leaf = _hash(document["leaf_hash"], "leaf_hash")
        _same_size(tree_size, checkpoint.size, "tree_size")
        merkle.verify_inclusion(index, tree_size, leaf, proof, checkpoint.root)
        return {
            "type": "inclusion",
            "index": index,
            "tree_size": tree_size,
            "root": checkpoint.root.hex(),
            "description": (
                f"entry {index} (leaf {leaf.hex()}) is included in the tree of "
                f"size {tree_size} signed by {verifier.name}"
            ),
        }
    old_size = _field(document, "old_size", int)
    new_size = _field(document, "new_size", int)
    old_root = _hash(document["old_root"], "old_root")
    new_root = _hash(document["new_root"], "new_root")
    _same_size(new_size, checkpoint.size, "new_size")
    if new_root != checkpoint.root:
        raise ProofError(
            "consistency proof new_root differs from the signed checkpoint's root",
            reason="root-mismatch",
            expected=checkpoint.root.hex(),
            actual=new_root.hex(),
        )
    merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)
    return {
        "type": "consistency",
        "old_size": old_size,
        "new_size": new_size,
        "old_root": old_root.hex(),
        "new_root": new_root.hex(),
        "description": (
            f"the tree of size {new_size} signed by {verifier.name} extends the "
            f"tree of size {old_size} with root {old_root.hex()}; compare that "
            "root with your own checkpoint of that size"
        ),
    }


def _same_size(claimed: int, signed: int, name: str) -> None:
    if claimed != signed:
        raise ProofError(
            f"proof {name} is {claimed} but its checkpoint signs a tree of size "
            f"{signed}; fetch the proof again",
            reason="size-mismatch",
            expected=str(signed),
            actual=str(claimed),
        )
