"""Signed receipts: the log's promise that an entry was appended.

A receipt is the JSON object

    {"origin", "seq", "entry_hash", "recorded_at", "key_id", "signature"}

where ``signature`` is the standard base64 Ed25519 signature (RFC 8032) by
the log key over the RFC 8785 (JCS) bytes of the object holding only
``origin``, ``seq``, ``entry_hash`` and ``recorded_at``. ``key_id`` is the
C2SP signed-note key ID of the log key in 8 lowercase hex digits, and the
key's name must equal ``origin``.

The same key signs checkpoint notes, but the two messages cannot be
confused: JCS bytes contain no raw newline, and note text always ends in one.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from .canonical import MAX_SAFE_INTEGER, canonical_bytes
from .errors import ReceiptError
from .note import Signer, Verifier, format_key_id

__all__ = [
    "RECEIPT_FIELDS",
    "SIGNED_FIELDS",
    "make_receipt",
    "receipt_signed_bytes",
    "verify_receipt",
]

SIGNED_FIELDS = ("origin", "seq", "entry_hash", "recorded_at")
RECEIPT_FIELDS = (*SIGNED_FIELDS, "key_id", "signature")

_ENTRY_HASH = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[0-9a-f]{8}")
# The entry format's timestamp: RFC 3339 in UTC with microseconds and "Z".
_RECORDED_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_ED25519_SIGNATURE_SIZE = 64


def _malformed(problem: str) -> ReceiptError:
    return ReceiptError(f"malformed receipt: {problem}", reason="malformed-receipt")


def _check_signed_fields(
    origin: object, seq: object, entry_hash: object, recorded_at: object
) -> None:
    if not isinstance(origin, str) or not origin:
        raise _malformed(f"origin must be a non-empty string, got {origin!r}")
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise _malformed(f"seq must be an integer, got {seq!r}")
    if not 0 <= seq <= MAX_SAFE_INTEGER:
        raise _malformed(f"seq {seq} is outside 0..{MAX_SAFE_INTEGER}")
    if not isinstance(entry_hash, str) or not _ENTRY_HASH.fullmatch(entry_hash):
        raise _malformed(
            f"entry_hash must be 64 lowercase hex digits, got {entry_hash!r}"
        )
    if not isinstance(recorded_at, str) or not _RECORDED_AT.fullmatch(recorded_at):
        raise _malformed(
            "recorded_at must be RFC 3339 UTC with microseconds, like "
            f"2026-01-01T00:00:00.000000Z; got {recorded_at!r}"
        )
    try:
        # The pattern above fixed the form; this rejects impossible dates and
        # times. fromisoformat, in C, costs far less than strptime per receipt.
        datetime.fromisoformat(recorded_at)
    except ValueError:
        raise _malformed(f"recorded_at {recorded_at!r} is not a valid time") from None


def receipt_signed_bytes(
    *, origin: str, seq: int, entry_hash: str, recorded_at: str
) -> bytes:
    """Return the bytes a receipt signature covers: the JCS (RFC 8785) bytes of
    ``{"origin", "seq", "entry_hash", "recorded_at"}``.

    Raises:
        ReceiptError: a field has the wrong type or form (reason
            ``malformed-receipt``).
    """
    _check_signed_fields(origin, seq, entry_hash, recorded_at)
    return canonical_bytes(
        {
            "origin": origin,
            "seq": seq,
            "entry_hash": entry_hash,
            "recorded_at": recorded_at,
        }
    )


def make_receipt(
    signer: Signer, *, origin: str, seq: int, entry_hash: str, recorded_at: str
) -> dict[str, Any]:
    """Sign a receipt for the entry ``seq`` with the log key ``signer``.

    ``entry_hash`` is 64 lowercase hex digits and ``recorded_at`` has the
    entry format's form ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. The signer's key
    name should equal ``origin``, or ``verify_receipt`` will not find it.

    Raises:
        ReceiptError: a field has the wrong type or form (reason
            ``malformed-receipt``).
    """
    message = receipt_signed_bytes(
        origin=origin, seq=seq, entry_hash=entry_hash, recorded_at=recorded_at
    )
    signature = signer.sign(message)
    return {
        "origin": origin,
        "seq": seq,
        "entry_hash": entry_hash,
        "recorded_at": recorded_at,
        "key_id": format_key_id(signer.key_id),
        "signature": base64.b64encode(signature).decode("ascii"),
    }


def _check_fields(receipt: object) -> Mapping[str, Any]:
    if not isinstance(receipt, Mapping):
        raise _malformed(f"expected a JSON object, got {type(receipt).__name__}")
    missing = [name for name in RECEIPT_FIELDS if name not in receipt]
    if missing:
        raise _malformed(f"missing field(s) {', '.join(missing)}")
    extra = sorted(str(name) for name in receipt if name not in RECEIPT_FIELDS)
    if extra:
        raise _malformed(
            f"unexpected field(s) {', '.join(extra)}; a receipt has exactly "
            f"{', '.join(RECEIPT_FIELDS)}"
        )
    return receipt


def _decode_signature(text: object) -> bytes:
    if not isinstance(text, str):
        raise _malformed(f"signature must be a base64 string, got {text!r}")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed("signature is not standard base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise _malformed("signature is not canonical base64")
    if len(raw) != _ED25519_SIGNATURE_SIZE:
        raise _malformed(
            f"signature is {len(raw)} bytes; an Ed25519 signature is "
            f"{_ED25519_SIGNATURE_SIZE}"
        )
    return raw


def verify_receipt(receipt: Mapping[str, Any], verifiers: Iterable[Verifier]) -> None:
    """Check that ``receipt`` is well formed and signed by a trusted log key.

    The key is the verifier whose name equals the receipt's ``origin`` and
    whose key ID equals ``key_id``. The signature must verify over the JCS
    bytes of the four signed fields (RFC 8785, RFC 8032).

    Raises:
        ReceiptError: a field is missing, extra or of the wrong type or form
            (``malformed-receipt``), no trusted key has that origin and key
            ID (``unknown-key``), or the signature does not verify
            (``bad-signature``).
    """
    # 1. Shape: exactly the six fields, each of its type and form.
    fields = _check_fields(receipt)
    message = receipt_signed_bytes(
        origin=fields["origin"],
        seq=fields["seq"],
        entry_hash=fields["entry_hash"],
        recorded_at=fields["recorded_at"],
    )
    key_id_text = fields["key_id"]
    if not isinstance(key_id_text, str) or not _KEY_ID.fullmatch(key_id_text):
        raise _malformed(f"key_id must be 8 lowercase hex digits, got {key_id_text!r}")
    signature = _decode_signature(fields["signature"])

    # 2. Key: a trusted log key named after the origin, with this key ID.
    origin = fields["origin"]
    key_id = int(key_id_text, 16)
    trusted = list(verifiers)
    candidates = [
        verifier
        for verifier in trusted
        if verifier.name == origin and verifier.key_id == key_id
    ]
    if not candidates:
        known = ", ".join(
            f"{verifier.name}+{format_key_id(verifier.key_id)}" for verifier in trusted
        )
        raise ReceiptError(
            f"receipt key check failed: {origin}+{key_id_text} is not a trusted "
            f"log key; trusted keys are {known or 'none'}. Verify with the "
            "verifier key of the log that issued the receipt",
            reason="unknown-key",
        )

    # 3. Signature over the JCS bytes of the signed fields.
    if not any(verifier.verify(message, signature) for verifier in candidates):
        raise ReceiptError(
            f"receipt signature check failed for seq {fields['seq']}: the "
            f"Ed25519 signature by {origin}+{key_id_text} does not match the "
            "signed fields, so the signature or one of origin, seq, "
            "entry_hash and recorded_at was altered after signing",
            reason="bad-signature",
        )
