"""Tests for ledger.checkpoints: C2SP tlog-checkpoint bodies and signatures."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from ledger.checkpoints import (
    MAX_TREE_SIZE,
    Checkpoint,
    format_checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from ledger.errors import CheckpointError
from ledger.note import Signer, open_note, parse_signer_key, sign_note

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
SPEC: dict[str, Any] = json.loads(
    (VECTORS / "c2sp" / "spec_examples.json").read_text("utf-8")
)
TREE_NOTE: dict[str, Any] = json.loads(
    (VECTORS / "note" / "tlog_tree_note.json").read_text("utf-8")
)
GOLDEN_NOTE: dict[str, Any] = json.loads(
    (VECTORS / "note" / "golden.json").read_text("utf-8")
)

ORIGIN = "example.org/govledger"
ROOT = hashlib.sha256(b"").digest()
EMPTY_TREE_ROOT_B64 = base64.b64encode(ROOT).decode("ascii")
URLSAFE_ROOT_B64 = base64.urlsafe_b64encode(bytes([0xFF]) * 32).decode("ascii")


def _signer(seed: int, name: str = ORIGIN) -> Signer:
    return Signer(name, Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


def test_spec_checkpoint_example_parses() -> None:
    example = SPEC["checkpoint_example"]
    body = example["note"].split("\n\n", 1)[0] + "\n"
    checkpoint = parse_checkpoint(body)
    assert checkpoint.origin == example["origin"]
    assert checkpoint.size == example["tree_size"]
    assert checkpoint.root == base64.b64decode(example["root_hash_b64"])
    assert checkpoint.extensions == ()
    assert checkpoint.to_text() == body


def test_spec_checkpoint_from_unknown_key_is_rejected() -> None:
    # The spec publishes no verifier key for this example.
    example = SPEC["cosigned_checkpoint_example"]
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(example["note"], [_signer(1).verifier()])
    assert caught.value.reason == "unknown-key"
    assert "example.com/behind-the-sofa+033de0ae" in caught.value.message
    assert "witness.example.com/w1+8d66cf3f" in caught.value.message


def test_format_checkpoint_tree_note_golden() -> None:
    golden = TREE_NOTE["format_tree"]
    root = base64.b64decode(golden["root_hash_b64"])
    text = format_checkpoint("go.sum database tree", golden["tree_size"], root)
    assert text == golden["golden"]
    checkpoint = parse_checkpoint(golden["golden"])
    assert checkpoint.origin == "go.sum database tree"
    assert checkpoint.size == golden["tree_size"]
    assert checkpoint.root == root


def test_parse_checkpoint_tree_note_bad_texts() -> None:
    first, bad_size, bad_root = TREE_NOTE["parse_tree_bad"]
    # A different origin parses; open_checkpoint(origin=...) rejects it.
    assert parse_checkpoint(first).origin == "not-go.sum database tree"
    for text in (bad_size, bad_root):
        with pytest.raises(CheckpointError) as caught:
            parse_checkpoint(text)
        assert caught.value.reason == "malformed-checkpoint"


def test_parse_checkpoint_tree_note_extension_lines() -> None:
    golden = TREE_NOTE["format_tree"]["golden"]
    assert parse_checkpoint(golden + "JOE\n").extensions == ("JOE",)
    many = parse_checkpoint(golden + "JOE\n" * 1000)
    assert many.extensions == ("JOE",) * 1000
    # Unlike Go's ParseTree, a note text must end in a newline.
    with pytest.raises(CheckpointError):
        parse_checkpoint(golden + "JOE")


MALFORMED_BODIES = {
    "leading-zero": f"{ORIGIN}\n012\n{EMPTY_TREE_ROOT_B64}\n",
    "negative-size": f"{ORIGIN}\n-1\n{EMPTY_TREE_ROOT_B64}\n",
    "plus-sign": f"{ORIGIN}\n+1\n{EMPTY_TREE_ROOT_B64}\n",
    "hex-size": f"{ORIGIN}\n0x10\n{EMPTY_TREE_ROOT_B64}\n",
    "non-ascii-digits": f"{ORIGIN}\n\u0661\u0662\n{EMPTY_TREE_ROOT_B64}\n",
    "size-over-uint64": f"{ORIGIN}\n{2**64}\n{EMPTY_TREE_ROOT_B64}\n",
    "space-in-size": f"{ORIGIN}\n 1\n{EMPTY_TREE_ROOT_B64}\n",
    "empty-size": f"{ORIGIN}\n\n{EMPTY_TREE_ROOT_B64}\n",
    "missing-root": f"{ORIGIN}\n1\n",
    "missing-size-and-root": f"{ORIGIN}\n",
    "empty-origin": f"\n1\n{EMPTY_TREE_ROOT_B64}\n",
    "no-final-newline": f"{ORIGIN}\n1\n{EMPTY_TREE_ROOT_B64}",
    "root-bad-base64": f"{ORIGIN}\n1\n{EMPTY_TREE_ROOT_B64[:-2]}!=\n",
    "root-unpadded": f"{ORIGIN}\n1\n{EMPTY_TREE_ROOT_B64.rstrip('=')}\n",
    "root-urlsafe": f"{ORIGIN}\n1\n{URLSAFE_ROOT_B64}\n",
    "root-31-bytes": f"{ORIGIN}\n1\n{base64.b64encode(ROOT[:31]).decode()}\n",
    "root-33-bytes": f"{ORIGIN}\n1\n{base64.b64encode(ROOT + b'x').decode()}\n",
    "empty-extension": f"{ORIGIN}\n1\n{EMPTY_TREE_ROOT_B64}\n\nextra\n",
    "control-character": f"{ORIGIN}\x01\n1\n{EMPTY_TREE_ROOT_B64}\n",
}


@pytest.mark.parametrize("defect", MALFORMED_BODIES)
def test_parse_checkpoint_rejects_malformed(defect: str) -> None:
    with pytest.raises(CheckpointError) as caught:
        parse_checkpoint(MALFORMED_BODIES[defect])
    assert caught.value.reason == "malformed-checkpoint"


def test_parse_checkpoint_message_names_bad_size() -> None:
    with pytest.raises(CheckpointError) as caught:
        parse_checkpoint(MALFORMED_BODIES["leading-zero"])
    assert "'012'" in caught.value.message


@pytest.mark.parametrize(
    ("origin", "size", "root", "extensions"),
    [
        ("", 1, ROOT, ()),
        ("a\nb", 1, ROOT, ()),
        (ORIGIN, -1, ROOT, ()),
        (ORIGIN, MAX_TREE_SIZE + 1, ROOT, ()),
        (ORIGIN, True, ROOT, ()),
        (ORIGIN, 1, ROOT[:31], ()),
        (ORIGIN, 1, ROOT, ("",)),
        (ORIGIN, 1, ROOT, ("two\nlines",)),
    ],
    ids=[
        "empty-origin",
        "newline-in-origin",
        "negative-size",
        "size-over-uint64",
        "bool-size",
        "short-root",
        "empty-extension",
        "newline-in-extension",
    ],
)
def test_format_checkpoint_rejects_invalid_arguments(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    with pytest.raises(CheckpointError) as caught:
        format_checkpoint(origin, size, root, extensions)
    assert caught.value.reason == "malformed-checkpoint"


def test_format_checkpoint_empty_tree() -> None:
    text = format_checkpoint(ORIGIN, 0, ROOT)
    assert text == f"{ORIGIN}\n0\n{EMPTY_TREE_ROOT_B64}\n"


def test_sign_and_open_checkpoint_round_trip() -> None:
    signer = _signer(1)
    note = sign_checkpoint(ORIGIN, 42, ROOT, signer)
    signed = open_checkpoint(note, [signer.verifier()], origin=ORIGIN)
    assert signed.checkpoint == Checkpoint(origin=ORIGIN, size=42, root=ROOT)
    assert signed.note_text == note
    assert signed.key_ids == (signer.key_id,)


def test_open_checkpoint_ignores_witness_cosignature() -> None:
    log = _signer(1)
    witness = _signer(2, "witness.example.org/w1")
    note = sign_checkpoint(ORIGIN, 7, ROOT, log)
    opened = open_note(note, [log.verifier()])
    cosigned = sign_note(opened.text, [witness], existing_signatures=opened.signatures)
    signed = open_checkpoint(cosigned, [log.verifier()], origin=ORIGIN)
    assert signed.key_ids == (log.key_id,)


def test_open_checkpoint_rejects_other_key() -> None:
    trusted = _signer(1)
    other = _signer(2)
    note = sign_checkpoint(ORIGIN, 42, ROOT, other)
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(note, [trusted.verifier()], origin=ORIGIN)
    assert caught.value.reason == "unknown-key"
    assert f"found key {ORIGIN}+{other.key_id:08x}" in caught.value.message
    assert f"expected key {ORIGIN}+{trusted.key_id:08x}" in caught.value.message


def test_open_checkpoint_rejects_wrong_origin() -> None:
    signer = _signer(1, "example.org/other")
    note = sign_checkpoint("example.org/other", 42, ROOT, signer)
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(note, [signer.verifier()], origin=ORIGIN)
    assert caught.value.reason == "wrong-origin"
    assert "'example.org/govledger'" in caught.value.message
    assert "'example.org/other'" in caught.value.message


def test_open_checkpoint_rejects_changed_size() -> None:
    signer = _signer(1)
    note = sign_checkpoint(ORIGIN, 42, ROOT, signer)
    changed = note.replace("\n42\n", "\n43\n", 1)
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(changed, [signer.verifier()])
    assert caught.value.reason == "bad-signature"


def test_open_checkpoint_rejects_signed_malformed_body() -> None:
    signer = _signer(1)
    note = sign_note(f"{ORIGIN}\n042\n{EMPTY_TREE_ROOT_B64}\n", [signer])
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(note, [signer.verifier()])
    assert caught.value.reason == "malformed-checkpoint"


def test_open_checkpoint_rejects_malformed_note() -> None:
    signer = _signer(1)
    body = format_checkpoint(ORIGIN, 1, ROOT)
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(body, [signer.verifier()])
    assert caught.value.reason == "malformed-note"


def test_sign_checkpoint_with_golden_key_is_deterministic() -> None:
    signer = parse_signer_key(GOLDEN_NOTE["keys"]["PeterNeumann"]["signer_key"])
    first = sign_checkpoint(ORIGIN, 1, ROOT, signer)
    assert first == sign_checkpoint(ORIGIN, 1, ROOT, signer)
    assert first.startswith(
        f"{ORIGIN}\n1\n{EMPTY_TREE_ROOT_B64}\n\n\u2014 PeterNeumann "
    )


@given(
    size=st.integers(0, MAX_TREE_SIZE),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(
            alphabet=st.characters(
                blacklist_categories=("Cs",),
                blacklist_characters=[chr(c) for c in range(0x20)],
            ),
            min_size=1,
            max_size=20,
        ),
        max_size=3,
    ),
)
def test_format_parse_round_trip(size: int, root: bytes, extensions: list[str]) -> None:
    text = format_checkpoint(ORIGIN, size, root, extensions)
    checkpoint = parse_checkpoint(text)
    assert checkpoint == Checkpoint(
        origin=ORIGIN, size=size, root=root, extensions=tuple(extensions)
    )
