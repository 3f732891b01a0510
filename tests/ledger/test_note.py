"""Tests for ledger.note: C2SP signed notes with Ed25519 keys.

The golden vectors come from the Go reference implementation
(golang.org/x/mod/sumdb/note) and from the C2SP signed-note specification;
tests/vectors/SOURCES.md records where each one was taken from.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import NoteError
from ledger.note import (
    MAX_SIGNATURES,
    Signature,
    Signer,
    UnverifiedNoteError,
    Verifier,
    VerifierList,
    ed25519_key_id,
    format_verifier_key,
    open_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
EM_DASH = "\u2014"


def _load(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((VECTORS / name).read_text("utf-8"))
    return result


GOLDEN = _load("note/golden.json")
TREE_NOTE = _load("note/tlog_tree_note.json")
SPEC = _load("c2sp/spec_examples.json")

PETER = GOLDEN["keys"]["PeterNeumann"]
ENOCH = GOLDEN["keys"]["EnochRoot"]
TEXT: str = GOLDEN["sign"]["text"]
PETER_LINE: str = GOLDEN["open"]["peter_sig_line"]
ENOCH_LINE: str = GOLDEN["open"]["enoch_sig_line"]


def _verifiers(names: list[str]) -> list[Verifier]:
    keys = {"PeterNeumann": PETER, "EnochRoot": ENOCH}
    return [parse_verifier_key(keys[name]["verifier_key"]) for name in names]


def _signer(seed: int, name: str = "example.org/log") -> Signer:
    return Signer(name, Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


# -- keys ------------------------------------------------------------------


def test_key_id_matches_sha256_definition() -> None:
    verifier = parse_verifier_key(PETER["verifier_key"])
    digest = hashlib.sha256(b"PeterNeumann\n\x01" + verifier.public_key_bytes).digest()
    assert ed25519_key_id("PeterNeumann", verifier.public_key_bytes) == int.from_bytes(
        digest[:4], "big"
    )
    assert f"{verifier.key_id:08x}" == PETER["key_hash_hex"]


def test_parse_verifier_key_golden() -> None:
    verifier = parse_verifier_key(PETER["verifier_key"])
    assert verifier.name == "PeterNeumann"
    assert verifier.key_id == 0xC74F20A3
    assert str(verifier) == PETER["verifier_key"]
    assert (
        format_verifier_key("PeterNeumann", verifier.public_key)
        == (PETER["verifier_key"])
    )


def test_parse_signer_key_golden() -> None:
    for key in (PETER, ENOCH):
        signer_text = key.get("signer_key") or key["signer_key_derived"]
        signer = parse_signer_key(signer_text)
        assert signer.verifier_key() == key["verifier_key"]
        assert f"{signer.key_id:08x}" == key["key_hash_hex"]


def test_signer_repr_hides_private_key() -> None:
    signer = parse_signer_key(PETER["signer_key"])
    assert repr(signer) == "Signer(PeterNeumann+c74f20a3)"


@pytest.mark.parametrize(
    "key",
    GOLDEN["bad_verifier_keys"]["keys"],
    ids=GOLDEN["bad_verifier_keys"]["why"],
)
def test_parse_verifier_key_rejects_golden_bad_keys(key: str) -> None:
    with pytest.raises(NoteError) as caught:
        parse_verifier_key(key)
    assert caught.value.reason == "malformed-verifier-key"


def test_parse_verifier_key_rejects_every_proper_substring() -> None:
    good: str = PETER["verifier_key"]
    for start in range(len(good)):
        for end in range(start, len(good) + 1):
            if (start, end) == (0, len(good)):
                continue
            with pytest.raises(NoteError):
                parse_verifier_key(good[start:end])


def test_parse_verifier_key_rejects_incremented_characters() -> None:
    good: str = PETER["verifier_key"]
    for index in range(len(good)):
        mutated = good[:index] + chr(ord(good[index]) + 1) + good[index + 1 :]
        with pytest.raises(NoteError):
            parse_verifier_key(mutated)


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "empty name"),
        (
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "space",
        ),
        (
            "Peter\u00a0Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "nbsp",
        ),
        (
            "Peter\u200bNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "zwsp",
        ),
        (
            "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "upper hex",
        ),
        (
            "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "short hex",
        ),
        (
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
            "bad b64",
        ),
        ("PeterNeumann+c74f20a3", "no key"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "id"),
    ],
)
def test_parse_verifier_key_rejects_malformed(key: str, why: str) -> None:
    with pytest.raises(NoteError) as caught:
        parse_verifier_key(key)
    assert caught.value.reason == "malformed-verifier-key", why


def test_parse_verifier_key_mismatch_names_both_ids() -> None:
    key = "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    with pytest.raises(NoteError) as caught:
        parse_verifier_key(key)
    assert "c74f20a4" in caught.value.message
    assert "c74f20a3" in caught.value.message


def test_parse_signer_key_error_hides_key_text() -> None:
    good: str = PETER["signer_key"]
    bad = good.replace("c74f20a3", "c74f20a4")
    with pytest.raises(NoteError) as caught:
        parse_signer_key(bad)
    assert caught.value.reason == "malformed-signer-key"
    seed_text = good.rsplit("+", 1)[1]
    assert seed_text not in caught.value.message


def test_parse_signer_key_rejects_verifier_key() -> None:
    with pytest.raises(NoteError) as caught:
        parse_signer_key(PETER["verifier_key"])
    assert caught.value.reason == "malformed-signer-key"


@pytest.mark.parametrize("name", ["", "a+b", "a b", "tab\there", "new\nline"])
def test_signer_rejects_invalid_name(name: str) -> None:
    with pytest.raises(NoteError) as caught:
        _signer(1, name)
    assert caught.value.reason == "invalid-key-name"


# -- signing ---------------------------------------------------------------


def test_sign_note_golden() -> None:
    signer = parse_signer_key(PETER["signer_key"])
    assert sign_note(TEXT, [signer]) == GOLDEN["sign"]["expected_signed_note"]


def test_sign_note_replaces_stale_signature() -> None:
    signer = parse_signer_key(PETER["signer_key"])
    stale = Signature("PeterNeumann", 0xC74F20A3, "BADSIGN=")
    note = sign_note(TEXT, [signer], existing_signatures=[stale])
    assert note == GOLDEN["sign"]["expected_signed_note"]


def test_sign_note_adds_second_signature_golden() -> None:
    peter = parse_signer_key(PETER["signer_key"])
    enoch = parse_signer_key(ENOCH["signer_key_derived"])
    opened = open_note(GOLDEN["sign"]["expected_signed_note"], [peter.verifier()])
    cosigned = sign_note(opened.text, [enoch], existing_signatures=opened.signatures)
    assert cosigned == GOLDEN["two_signatures"]["expected_signed_note"]
    assert cosigned.endswith(GOLDEN["two_signatures"]["enoch_signature_line"])


def test_sign_note_both_signers_at_once_golden() -> None:
    peter = parse_signer_key(PETER["signer_key"])
    enoch = parse_signer_key(ENOCH["signer_key_derived"])
    note = sign_note(TEXT, [peter, enoch])
    assert note == GOLDEN["two_signatures"]["expected_signed_note"]


@pytest.mark.parametrize(
    "case", GOLDEN["sign_errors"], ids=[c["why"] for c in GOLDEN["sign_errors"]]
)
def test_sign_note_golden_errors(case: dict[str, Any]) -> None:
    existing = [
        Signature(sig["name"], int(sig.get("hash", "0"), 16), sig["base64"])
        for sig in case.get("existing_sigs", [])
    ]
    signers = [] if existing else [parse_signer_key(PETER["signer_key"])]
    with pytest.raises(NoteError) as caught:
        sign_note(case["text"], signers, existing_signatures=existing)
    assert caught.value.reason == "malformed-note"
    assert caught.value.message.startswith(case["want_error"])


@pytest.mark.parametrize(
    "text",
    ["", "hello\nworld", "hello\x01world\n", "tab\tinside\n", "cr\r\n"],
)
def test_sign_note_rejects_invalid_text(text: str) -> None:
    signer = _signer(1)
    with pytest.raises(NoteError) as caught:
        sign_note(text, [signer])
    assert caught.value.reason == "malformed-note"


def test_sign_note_without_signers_is_rejected() -> None:
    with pytest.raises(NoteError) as caught:
        sign_note(TEXT, [])
    assert caught.value.reason == "malformed-note"


def test_sign_note_text_with_blank_lines_round_trips() -> None:
    # tlog_tree_note.json lists "hello\n\nworld\n" as a bad record text; it is
    # a valid note text, because the signatures start after the last blank line.
    signer = _signer(2)
    note = sign_note("hello\n\nworld\n", [signer])
    opened = open_note(note, [signer.verifier()])
    assert opened.text == "hello\n\nworld\n"


# -- opening ---------------------------------------------------------------


def _open_case_message(case: dict[str, Any]) -> str:
    if "msg" in case:
        message: str = case["msg"]
        return message
    assert case["msg_construction"].endswith("repeated 101 times")
    return TEXT + "\n" + PETER_LINE * 101


OPEN_CASES = GOLDEN["open"]["cases"]


@pytest.mark.parametrize(
    "case", OPEN_CASES, ids=[str(i) for i in range(len(OPEN_CASES))]
)
def test_open_note_golden_cases(case: dict[str, Any]) -> None:
    message = _open_case_message(case)
    verifiers = _verifiers(case["verifiers"])
    if "want_error" in case:
        with pytest.raises(NoteError) as caught:
            open_note(message, verifiers)
        assert caught.value.message.startswith(case["want_error"])
        if "want_unverified" in case:
            assert isinstance(caught.value, UnverifiedNoteError)
            names = [s.name for s in caught.value.note.unverified_signatures]
            assert names == case["want_unverified"]
        return
    note = open_note(message, verifiers)
    assert note.text == TEXT
    assert [s.name for s in note.signatures] == case["want_sigs"]
    if "want_unverified" in case:
        names = [s.name for s in note.unverified_signatures]
        assert names == case["want_unverified"]
    if "want_unverified_base64" in case:
        encoded = [s.base64 for s in note.unverified_signatures]
        assert encoded == case["want_unverified_base64"]


def test_open_note_error_reasons() -> None:
    message = TEXT + "\n" + ENOCH_LINE
    with pytest.raises(NoteError) as ambiguous:
        open_note(message, _verifiers(["EnochRoot", "EnochRoot"]))
    assert ambiguous.value.reason == "ambiguous-key"
    with pytest.raises(UnverifiedNoteError) as unverified:
        open_note(message, _verifiers(["PeterNeumann"]))
    assert unverified.value.reason == "unknown-key"
    assert "EnochRoot+af0cfe78" in unverified.value.message
    assert "PeterNeumann+c74f20a3" in unverified.value.message
    tampered = OPEN_CASES[6]["msg"]
    with pytest.raises(NoteError) as bad:
        open_note(tampered, _verifiers(["PeterNeumann"]))
    assert bad.value.reason == "bad-signature"


def _malformed_messages() -> list[bytes | str]:
    messages: list[bytes | str] = []
    for message in GOLDEN["open"]["malformed"]["msgs"]:
        if message is None:
            # Raw byte 0xFF: invalid UTF-8 that JSON cannot carry.
            messages.append(b"\xff" + (TEXT + "\n" + PETER_LINE).encode("utf-8"))
        else:
            messages.append(message)
    return messages


@pytest.mark.parametrize("message", _malformed_messages())
def test_open_note_golden_malformed(message: bytes | str) -> None:
    with pytest.raises(NoteError) as caught:
        open_note(message, _verifiers(["PeterNeumann"]))
    assert caught.value.reason == "malformed-note"
    assert caught.value.message.startswith("malformed note")


MALFORMED_NOTES = {
    "hyphen-for-em-dash": TEXT + "\n" + PETER_LINE.replace(EM_DASH, "-"),
    "double-space": TEXT + "\n" + PETER_LINE.replace(" x08", "  x08"),
    "no-space": TEXT + "\n" + PETER_LINE.replace(" x08", "x08"),
    "non-canonical-base64": TEXT + "\n" + PETER_LINE.replace("AM=", "AN="),
    "missing-padding": TEXT + "\n" + PETER_LINE.replace("AM=", "AM"),
    "too-short": TEXT + "\n" + f"{EM_DASH} PeterNeumann x08g\n",
    "trailing-blank-line": TEXT + "\n" + PETER_LINE + "\n",
    "carriage-return": TEXT + "\n" + PETER_LINE.replace("\n", "\r\n"),
    "lone-surrogate": TEXT.replace("\n", "\ud800\n", 1) + "\n" + PETER_LINE,
    "too-many-signatures": TEXT + "\n" + PETER_LINE * (MAX_SIGNATURES + 1),
}


@pytest.mark.parametrize("defect", MALFORMED_NOTES)
def test_open_note_rejects_malformed(defect: str) -> None:
    with pytest.raises(NoteError) as caught:
        open_note(MALFORMED_NOTES[defect], _verifiers(["PeterNeumann"]))
    assert caught.value.reason == "malformed-note"


def test_open_note_accepts_max_signatures() -> None:
    signers = [_signer(seed, f"example.org/w{seed}") for seed in range(MAX_SIGNATURES)]
    note = sign_note(TEXT, signers)
    opened = open_note(note, [signers[-1].verifier()])
    assert len(opened.signatures) == 1
    assert len(opened.unverified_signatures) == MAX_SIGNATURES - 1


def test_open_note_accepts_bytes() -> None:
    message = GOLDEN["sign"]["expected_signed_note"].encode("utf-8")
    note = open_note(message, _verifiers(["PeterNeumann"]))
    assert note.text == TEXT


def test_open_note_same_name_other_key_is_unverified() -> None:
    impostor = _signer(7, "PeterNeumann")
    message = sign_note(TEXT, [impostor])
    with pytest.raises(UnverifiedNoteError) as caught:
        open_note(message, _verifiers(["PeterNeumann"]))
    assert caught.value.note.unverified_signatures[0].name == "PeterNeumann"


def test_open_note_checks_every_trusted_signature() -> None:
    # Two different lines from one trusted key: both must verify.
    forged = PETER_LINE.replace("x08go/ZJ", "x08go/ZK")
    message = TEXT + "\n" + PETER_LINE + forged
    with pytest.raises(NoteError) as caught:
        open_note(message, _verifiers(["PeterNeumann"]))
    assert caught.value.reason == "bad-signature"


def test_open_note_accepts_verifier_list() -> None:
    verifiers = VerifierList(_verifiers(["PeterNeumann"]))
    note = open_note(GOLDEN["sign"]["expected_signed_note"], verifiers)
    assert [s.name for s in note.signatures] == ["PeterNeumann"]


@pytest.mark.parametrize(
    "case",
    GOLDEN["verifier_list"]["cases"],
    ids=[f"{c['name']}+{c['hash']}" for c in GOLDEN["verifier_list"]["cases"]],
)
def test_verifier_list_golden(case: dict[str, Any]) -> None:
    verifiers = VerifierList(_verifiers(["PeterNeumann", "EnochRoot", "EnochRoot"]))
    key_id = int(case["hash"], 16)
    if "want_error" in case:
        with pytest.raises(NoteError) as caught:
            verifiers.get(case["name"], key_id)
        assert caught.value.message.startswith(case["want_error"])
        return
    verifier = verifiers.get(case["name"], key_id)
    assert str(verifier) == PETER["verifier_key"]


# -- C2SP specification examples ---------------------------------------------


def test_spec_example_note_verifies() -> None:
    example = SPEC["signed_note_verifiable_example"]
    verifier = parse_verifier_key(example["verifier_key"])
    assert str(verifier) == example["verifier_key"]
    note = open_note(example["note"], [verifier])
    assert note.text == example["text"]
    assert [s.name for s in note.signatures] == ["example.com/foo"]


def test_spec_example_note_rejects_changed_text() -> None:
    example = SPEC["signed_note_verifiable_example"]
    verifier = parse_verifier_key(example["verifier_key"])
    changed = example["note"].replace("example message", "example massage")
    with pytest.raises(NoteError) as caught:
        open_note(changed, [verifier])
    assert caught.value.reason == "bad-signature"


@pytest.mark.parametrize(
    "name",
    ["signed_note_intro_example", "checkpoint_example", "cosigned_checkpoint_example"],
)
def test_spec_parse_only_examples(name: str) -> None:
    example = SPEC[name]
    with pytest.raises(UnverifiedNoteError) as caught:
        open_note(example["note"], [])
    note = caught.value.note
    signature_block = "".join(s.line() for s in note.unverified_signatures)
    assert note.text + "\n" + signature_block == example["note"]
    if "text" in example:
        assert note.text == example["text"]


def test_tree_note_golden_is_signable_text() -> None:
    golden = TREE_NOTE["format_tree"]["golden"]
    signer = _signer(3, "go.sum")
    opened = open_note(sign_note(golden, [signer]), [signer.verifier()])
    assert opened.text == golden


# -- properties --------------------------------------------------------------

_LINE = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters=[chr(c) for c in range(0x20)],
    ),
    max_size=40,
)


@given(lines=st.lists(_LINE, min_size=1, max_size=6), seed=st.integers(1, 255))
def test_sign_open_round_trip(lines: list[str], seed: int) -> None:
    text = "".join(line + "\n" for line in lines)
    signer = _signer(seed)
    note = open_note(sign_note(text, [signer]), [signer.verifier()])
    assert note.text == text
    assert note.signatures[0].key_id == signer.key_id
