"""Tests for ledger.receipts: signed append receipts."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.errors import ReceiptError, VerificationError
from ledger.note import Signer
from ledger.receipts import (
    RECEIPT_FIELDS,
    make_receipt,
    receipt_signed_bytes,
    verify_receipt,
)

ORIGIN = "example.org/govledger"
ENTRY_HASH = "00" * 32
RECORDED_AT = "2026-01-01T00:00:00.000000Z"

# Worked example: seed 0x00..0x1f, quoted in the docs. Ed25519 is
# deterministic (RFC 8032 section 5.1.6), so the signature is fixed.
EXAMPLE_SEED = bytes(range(32))
EXAMPLE_JCS = (
    b'{"entry_hash":"0000000000000000000000000000000000000000000000000000000000000000",'
    b'"origin":"example.org/govledger",'
    b'"recorded_at":"2026-01-01T00:00:00.000000Z",'
    b'"seq":0}'
)
EXAMPLE_PUBLIC_KEY_HEX = (
    "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
)
EXAMPLE_VERIFIER_KEY = (
    "example.org/govledger+2b5da6ed+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
)
EXAMPLE_KEY_ID = "2b5da6ed"
EXAMPLE_SIGNATURE = (
    "xROY7DO06nx2zmOEumNjz8GAHjd33/w+PLyhvUAoRqz76MSjoyKK5E0Z7pxAP1H8wXdSsZV0pjr0"
    "qNVoDFgWBg=="
)


def _signer(seed: bytes, name: str = ORIGIN) -> Signer:
    return Signer(name, Ed25519PrivateKey.from_private_bytes(seed))


SIGNER = _signer(EXAMPLE_SEED)


def _receipt(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "origin": ORIGIN,
        "seq": 0,
        "entry_hash": ENTRY_HASH,
        "recorded_at": RECORDED_AT,
    }
    fields.update(overrides)
    return make_receipt(SIGNER, **fields)


# -- worked example ----------------------------------------------------------


def test_worked_example_signed_bytes() -> None:
    message = receipt_signed_bytes(
        origin=ORIGIN, seq=0, entry_hash=ENTRY_HASH, recorded_at=RECORDED_AT
    )
    assert message == EXAMPLE_JCS


def test_worked_example_key() -> None:
    public_key = bytes.fromhex(EXAMPLE_PUBLIC_KEY_HEX)
    assert SIGNER.verifier().public_key_bytes == public_key
    # Key ID by the C2SP signed-note definition, computed here with hashlib.
    digest = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public_key).digest()
    assert digest[:4].hex() == EXAMPLE_KEY_ID
    assert SIGNER.verifier_key() == EXAMPLE_VERIFIER_KEY


def test_worked_example_receipt() -> None:
    receipt = _receipt()
    assert receipt == {
        "origin": ORIGIN,
        "seq": 0,
        "entry_hash": ENTRY_HASH,
        "recorded_at": RECORDED_AT,
        "key_id": EXAMPLE_KEY_ID,
        "signature": EXAMPLE_SIGNATURE,
    }
    # The signature checks with the bare library over the pinned bytes.
    public_key = Ed25519PrivateKey.from_private_bytes(EXAMPLE_SEED).public_key()
    public_key.verify(base64.b64decode(EXAMPLE_SIGNATURE), EXAMPLE_JCS)


# -- round trip and tampering --------------------------------------------------


def test_receipt_round_trip() -> None:
    receipt = _receipt(seq=12345, entry_hash="ab" * 32)
    verify_receipt(receipt, [SIGNER.verifier()])
    assert tuple(receipt) == RECEIPT_FIELDS


TAMPERED_FIELDS = {
    "seq": 1,
    "entry_hash": "01" + "00" * 31,
    "recorded_at": "2026-01-01T00:00:00.000001Z",
    "origin": "example.org/other",
    "key_id": "2b5da6ee",
    "signature": "yROY" + EXAMPLE_SIGNATURE[4:],
}


@pytest.mark.parametrize("field", TAMPERED_FIELDS)
def test_verify_receipt_rejects_tampered_field(field: str) -> None:
    receipt = {**_receipt(), field: TAMPERED_FIELDS[field]}
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(receipt, [SIGNER.verifier()])
    expected = "unknown-key" if field in ("origin", "key_id") else "bad-signature"
    assert caught.value.reason == expected


def test_verify_receipt_rejects_other_key() -> None:
    other = _signer(bytes(32))
    receipt = make_receipt(
        other, origin=ORIGIN, seq=0, entry_hash=ENTRY_HASH, recorded_at=RECORDED_AT
    )
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(receipt, [SIGNER.verifier()])
    assert caught.value.reason == "unknown-key"
    assert f"{other.key_id:08x}" in caught.value.message
    assert EXAMPLE_KEY_ID in caught.value.message


def test_verify_receipt_rejects_forged_key_id() -> None:
    other = _signer(bytes(32))
    receipt = make_receipt(
        other, origin=ORIGIN, seq=0, entry_hash=ENTRY_HASH, recorded_at=RECORDED_AT
    )
    receipt["key_id"] = EXAMPLE_KEY_ID
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(receipt, [SIGNER.verifier()])
    assert caught.value.reason == "bad-signature"


def test_verify_receipt_rejects_key_named_for_other_origin() -> None:
    other_log = _signer(EXAMPLE_SEED, "example.org/other")
    receipt = make_receipt(
        other_log, origin=ORIGIN, seq=0, entry_hash=ENTRY_HASH, recorded_at=RECORDED_AT
    )
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(receipt, [other_log.verifier()])
    assert caught.value.reason == "unknown-key"


def test_verify_receipt_accepts_any_trusted_key() -> None:
    old = _signer(bytes(32))
    verify_receipt(_receipt(), [old.verifier(), SIGNER.verifier()])


def test_receipt_error_is_verification_error() -> None:
    with pytest.raises(VerificationError):
        verify_receipt({}, [SIGNER.verifier()])


# -- malformed receipts --------------------------------------------------------


@pytest.mark.parametrize("field", RECEIPT_FIELDS)
def test_verify_receipt_rejects_missing_field(field: str) -> None:
    receipt = _receipt()
    del receipt[field]
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(receipt, [SIGNER.verifier()])
    assert caught.value.reason == "malformed-receipt"
    assert field in caught.value.message


def test_verify_receipt_rejects_extra_field() -> None:
    receipt = {**_receipt(), "note": "hello"}
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(receipt, [SIGNER.verifier()])
    assert caught.value.reason == "malformed-receipt"
    assert "note" in caught.value.message


WRONG_VALUES = {
    "origin-not-string": ("origin", 1),
    "origin-empty": ("origin", ""),
    "seq-string": ("seq", "0"),
    "seq-bool": ("seq", False),
    "seq-float": ("seq", 0.0),
    "seq-negative": ("seq", -1),
    "seq-unsafe-integer": ("seq", 2**53),
    "entry-hash-uppercase": ("entry_hash", "AB" * 32),
    "entry-hash-short": ("entry_hash", "00" * 31),
    "entry-hash-bytes": ("entry_hash", bytes(32)),
    "recorded-at-offset": ("recorded_at", "2026-01-01T00:00:00.000000+00:00"),
    "recorded-at-milliseconds": ("recorded_at", "2026-01-01T00:00:00.000Z"),
    "recorded-at-impossible-date": ("recorded_at", "2026-02-30T00:00:00.000000Z"),
    "key-id-uppercase": ("key_id", "2B5DA6ED"),
    "key-id-int": ("key_id", 0x2B5DA6ED),
    "key-id-short": ("key_id", "2b5da6e"),
    "signature-not-base64": ("signature", "not base64!"),
    "signature-non-canonical": ("signature", EXAMPLE_SIGNATURE[:-3] + "h=="),
    "signature-short": ("signature", base64.b64encode(bytes(63)).decode()),
    "signature-bytes": ("signature", bytes(64)),
}


@pytest.mark.parametrize("case", WRONG_VALUES)
def test_verify_receipt_rejects_wrong_value(case: str) -> None:
    field, value = WRONG_VALUES[case]
    receipt = {**_receipt(), field: value}
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(receipt, [SIGNER.verifier()])
    assert caught.value.reason == "malformed-receipt"


def test_verify_receipt_rejects_non_object() -> None:
    with pytest.raises(ReceiptError) as caught:
        verify_receipt([], [SIGNER.verifier()])  # type: ignore[arg-type]
    assert caught.value.reason == "malformed-receipt"


def test_make_receipt_rejects_malformed_entry_hash() -> None:
    with pytest.raises(ReceiptError) as caught:
        _receipt(entry_hash="zz" * 32)
    assert caught.value.reason == "malformed-receipt"
