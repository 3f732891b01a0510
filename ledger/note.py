"""C2SP signed notes with Ed25519 keys (c2sp.org/signed-note, signature type 0x01).

A signed note is a text that ends in a newline, a blank line, and one or more
signature lines of the form ``— <key name> base64(key ID || signature)``. The
key ID is the first 4 bytes of SHA-256(key name || 0x0A || 0x01 || public key).
Checkpoints (``ledger.checkpoints``) are signed notes whose text is a tree head.

Parsing is strict. Control characters, non-canonical base64 and more than
``MAX_SIGNATURES`` signature lines make a note malformed, and one bad
signature from a trusted key rejects the whole note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .errors import NoteError

__all__ = [
    "ALGORITHM_ED25519",
    "MAX_SIGNATURES",
    "Note",
    "Signature",
    "Signer",
    "UnverifiedNoteError",
    "Verifier",
    "VerifierList",
    "ed25519_key_id",
    "format_key_id",
    "format_verifier_key",
    "open_note",
    "parse_signer_key",
    "parse_verifier_key",
    "sign_note",
]

ALGORITHM_ED25519 = 0x01

# The signed-note spec requires verifiers to accept at least 16 signatures and
# recommends a limit. 100 is the limit of the Go reference implementation
# (golang.org/x/mod/sumdb/note), as its test vectors show.
MAX_SIGNATURES = 100

_SIGNATURE_PREFIX = "\u2014 "  # em dash U+2014, then a space
_ED25519_KEY_SIZE = 32
_ED25519_SIGNATURE_SIZE = 64
_KEY_ID_SIZE = 4
_PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"

# ASCII control characters other than newline, which no note may contain.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x09\x0b-\x1f]")
_HEX_KEY_ID = re.compile(r"[0-9a-f]{8}")


def ed25519_key_id(name: str, public_key: bytes) -> int:
    """Compute the key ID of an Ed25519 note key, as an unsigned 32-bit integer.

    The key ID is SHA-256(name || 0x0A || 0x01 || public key)[:4], read
    big-endian (C2SP signed-note, "Ed25519 signatures"). ``public_key`` is the
    32-byte RFC 8032 encoding.
    """
    digest = hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([ALGORITHM_ED25519]) + public_key
    ).digest()
    return int.from_bytes(digest[:_KEY_ID_SIZE], "big")


def format_key_id(key_id: int) -> str:
    """Format a key ID as 8 lowercase hex digits, as in verifier keys."""
    return f"{key_id:08x}"


def _is_valid_key_name(name: str) -> bool:
    """Check a key name: non-empty, no '+', no whitespace, only printable text.

    C2SP signed-note forbids empty names, Unicode spaces and '+'. Characters
    that Python does not call printable (control and format characters,
    unassigned code points) are rejected too, because a name is shown to
    people and must read the same everywhere.
    """
    if not name or "+" in name:
        return False
    return all(char.isprintable() and not char.isspace() for char in name)


def _decode_base64(text: str) -> bytes | None:
    """Decode standard padded base64, or return None if ``text`` is not exactly
    the canonical encoding of some byte string (RFC 4648 section 4)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != text:
        # Non-zero padding bits spell the same bytes a second way.
        # NOTE: some note implementations accept such base64, and their
        # notes are rejected here.
        return None
    return raw


def _encode_base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class Verifier:
    """An Ed25519 public key with its note key name and key ID."""

    __slots__ = ("_name", "_key_id", "_public_key", "_public_key_bytes")

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        """Create a verifier for ``public_key`` under the key name ``name``.

        Raises:
            NoteError: ``name`` is not a valid key name (reason
                ``invalid-key-name``).
        """
        if not _is_valid_key_name(name):
            raise NoteError(
                f"invalid key name {name!r}: a key name must be non-empty and "
                "contain no '+', whitespace or non-printable characters; "
                "choose a name such as example.org/govledger",
                reason="invalid-key-name",
            )
        self._name = name
        self._public_key = public_key
        self._public_key_bytes = public_key.public_bytes_raw()
        self._key_id = ed25519_key_id(name, self._public_key_bytes)

    @property
    def name(self) -> str:
        """Key name, as written in signature lines."""
        return self._name

    @property
    def key_id(self) -> int:
        """Key ID, an unsigned 32-bit integer."""
        return self._key_id

    @property
    def public_key(self) -> Ed25519PublicKey:
        """Ed25519 public key."""
        return self._public_key

    @property
    def public_key_bytes(self) -> bytes:
        """32-byte RFC 8032 encoding of the public key."""
        return self._public_key_bytes

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """Check an Ed25519 signature (RFC 8032 section 5.1.7) of ``msg``.

        ``sig`` is the 64-byte signature without the key ID. Returns False for
        a signature of any other length.
        """
        if len(sig) != _ED25519_SIGNATURE_SIZE:
            return False
        try:
            self._public_key.verify(sig, msg)
        except InvalidSignature:
            return False
        return True

    def __str__(self) -> str:
        """Return the verifier key text (C2SP signed-note, "Verifier keys")."""
        encoded = _encode_base64(bytes([ALGORITHM_ED25519]) + self._public_key_bytes)
        return f"{self._name}+{format_key_id(self._key_id)}+{encoded}"

    def __repr__(self) -> str:
        return f"Verifier({self._name}+{format_key_id(self._key_id)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verifier):
            return NotImplemented
        return (self._name, self._public_key_bytes) == (
            other._name,
            other._public_key_bytes,
        )

    def __hash__(self) -> int:
        return hash((self._name, self._public_key_bytes))


class Signer:
    """An Ed25519 private key with its note key name and key ID."""

    __slots__ = ("_name", "_private_key", "_verifier")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        """Create a signer that signs with ``private_key`` under ``name``.

        Raises:
            NoteError: ``name`` is not a valid key name (reason
                ``invalid-key-name``).
        """
        self._name = name
        self._private_key = private_key
        # Validates the name and computes the key ID once.
        self._verifier = Verifier(name=name, public_key=private_key.public_key())

    @property
    def name(self) -> str:
        """Key name, as written in signature lines."""
        return self._name

    @property
    def key_id(self) -> int:
        """Key ID, an unsigned 32-bit integer."""
        return self._verifier.key_id

    @property
    def private_key(self) -> Ed25519PrivateKey:
        """Ed25519 private key, for writing to a key file."""
        return self._private_key

    def sign(self, msg: bytes) -> bytes:
        """Sign ``msg`` with Ed25519 (RFC 8032 section 5.1.6); 64 bytes."""
        return self._private_key.sign(msg)

    def verifier(self) -> Verifier:
        """Return the verifier for this signer's public key."""
        return self._verifier

    def verifier_key(self) -> str:
        """Return the verifier key text ``name+hex(key ID)+base64(0x01 || key)``."""
        return str(self._verifier)

    def __repr__(self) -> str:
        # Never shows the private key.
        return f"Signer({self._name}+{format_key_id(self.key_id)})"


def format_verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """Format a verifier key: ``name+hex(key ID)+base64(0x01 || public key)``.

    The form is the one of C2SP signed-note, "Verifier keys".

    Raises:
        NoteError: ``name`` is not a valid key name (reason
            ``invalid-key-name``).
    """
    return str(Verifier(name=name, public_key=public_key))


def _split_key_text(
    text: str, kind: str, *, reason: str, text_in_messages: bool
) -> tuple[str, int, bytes]:
    """Split ``name+hexkeyid+base64`` and return the name, key ID and key bytes.

    The key bytes are checked to be an Ed25519 key (type byte 0x01, then 32
    bytes), but the key ID is not compared yet. A signer key is secret, so
    its callers pass ``text_in_messages=False``.
    """
    shown = f" {text!r}" if text_in_messages else ""
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise NoteError(
            f"invalid {kind}{shown}: expected name+keyid+base64 with two '+' "
            f"separators, found {len(parts) - 1}",
            reason=reason,
        )
    name, key_id_hex, encoded = parts
    if not _is_valid_key_name(name):
        raise NoteError(
            f"invalid {kind}{shown}: key name {name!r} is empty or contains "
            "whitespace or non-printable characters",
            reason=reason,
        )
    if not _HEX_KEY_ID.fullmatch(key_id_hex):
        raise NoteError(
            f"invalid {kind}{shown}: key ID {key_id_hex!r} is not 8 lowercase "
            "hex digits",
            reason=reason,
        )
    raw = _decode_base64(encoded)
    if raw is None:
        raise NoteError(
            f"invalid {kind}{shown}: the key material is not canonical standard base64",
            reason=reason,
        )
    if not raw or raw[0] != ALGORITHM_ED25519:
        found = f"0x{raw[0]:02x}" if raw else "nothing"
        raise NoteError(
            f"invalid {kind}{shown}: unsupported signature type {found}; "
            f"expected 0x{ALGORITHM_ED25519:02x} (Ed25519)",
            reason=reason,
        )
    if len(raw) != 1 + _ED25519_KEY_SIZE:
        raise NoteError(
            f"invalid {kind}{shown}: Ed25519 key is {len(raw) - 1} bytes; "
            f"expected {_ED25519_KEY_SIZE}",
            reason=reason,
        )
    return name, int(key_id_hex, 16), raw[1:]


def parse_verifier_key(text: str) -> Verifier:
    """Parse a verifier key ``name+hex(key ID)+base64(0x01 || public key)``.

    Follows C2SP signed-note, "Verifier keys"; only Ed25519 (type 0x01) is
    supported.

    Raises:
        NoteError: the text is not a valid Ed25519 verifier key (reason
            ``malformed-verifier-key``). The checks are: a valid key name,
            8 lowercase hex digits of key ID, canonical base64, type 0x01,
            a 32-byte key, and a key ID that matches the name and key.
    """
    reason = "malformed-verifier-key"
    name, key_id, raw = _split_key_text(
        text, "verifier key", reason=reason, text_in_messages=True
    )
    computed = ed25519_key_id(name, raw)
    if computed != key_id:
        raise NoteError(
            f"invalid verifier key {text!r}: key ID mismatch, the key text "
            f"says {format_key_id(key_id)} but name and public key give "
            f"{format_key_id(computed)}; copy the verifier key again from its "
            "source",
            reason=reason,
        )
    return Verifier(name=name, public_key=Ed25519PublicKey.from_public_bytes(raw))


def parse_signer_key(text: str) -> Signer:
    """Parse a signer key ``PRIVATE+KEY+name+hex(key ID)+base64(0x01 || seed)``.

    This is the text form of golang.org/x/mod/sumdb/note, used here only to
    read published test keys. Log keys are stored as PKCS#8 files
    (``ledger.keys``). Error messages never contain the key text.

    Raises:
        NoteError: the text is not a signer key, or its key ID does not
            match the name and the key derived from the seed (reason
            ``malformed-signer-key``).
    """
    reason = "malformed-signer-key"
    if not text.startswith(_PRIVATE_KEY_PREFIX):
        raise NoteError(
            f"invalid signer key: it must start with {_PRIVATE_KEY_PREFIX!r}",
            reason=reason,
        )
    name, key_id, seed = _split_key_text(
        text[len(_PRIVATE_KEY_PREFIX) :],
        "signer key",
        reason=reason,
        text_in_messages=False,
    )
    signer = Signer(name=name, private_key=Ed25519PrivateKey.from_private_bytes(seed))
    if signer.key_id != key_id:
        raise NoteError(
            f"invalid signer key for {name!r}: key ID mismatch, the key text "
            f"says {format_key_id(key_id)} but name and key give "
            f"{format_key_id(signer.key_id)}",
            reason=reason,
        )
    return signer


@dataclass(frozen=True)
class Signature:
    """One signature line of a note: key name, key ID and the base64 field.

    ``base64`` is the text after the name, base64(key ID || signature).
    """

    name: str
    key_id: int
    base64: str

    def line(self) -> str:
        """Return the signature line, ending in a newline."""
        return f"{_SIGNATURE_PREFIX}{self.name} {self.base64}\n"


@dataclass(frozen=True)
class Note:
    """An opened signed note.

    ``text`` ends in a newline. ``signatures`` are those that verified with
    a trusted key, and ``unverified_signatures`` are those from keys that
    the caller did not trust, each kept once.
    """

    text: str
    signatures: tuple[Signature, ...]
    unverified_signatures: tuple[Signature, ...]


class UnverifiedNoteError(NoteError):
    """A note is well formed but no signature in it is from a trusted key.

    ``note`` contains the text and the signatures that could not be verified.
    """

    reason = "unknown-key"

    def __init__(self, message: str, *, note: Note) -> None:
        super().__init__(message)
        self.note = note


class VerifierList:
    """The trusted verifiers, looked up by key name and key ID.

    Two verifiers with the same name and key ID make that key ambiguous.
    That is an error only when a note carries a signature from the key.
    """

    def __init__(self, verifiers: Iterable[Verifier]) -> None:
        self._verifiers = tuple(verifiers)
        self._by_key: dict[tuple[str, int], list[Verifier]] = {}
        for verifier in self._verifiers:
            key = (verifier.name, verifier.key_id)
            self._by_key.setdefault(key, []).append(verifier)

    def __iter__(self) -> Iterator[Verifier]:
        return iter(self._verifiers)

    def __len__(self) -> int:
        return len(self._verifiers)

    def find(self, name: str, key_id: int) -> Verifier | None:
        """Return the verifier for ``name`` and ``key_id``, or None if unknown.

        Raises:
            NoteError: more than one verifier has that name and key ID
                (reason ``ambiguous-key``).
        """
        matches = self._by_key.get((name, key_id), [])
        if len(matches) > 1:
            raise NoteError(
                f"ambiguous key {name}+{format_key_id(key_id)}: "
                f"{len(matches)} trusted verifier keys have this name and key "
                "ID; keep only one of them",
                reason="ambiguous-key",
            )
        return matches[0] if matches else None

    def get(self, name: str, key_id: int) -> Verifier:
        """Return the verifier for ``name`` and ``key_id``.

        Raises:
            NoteError: no verifier has that name and key ID (reason
                ``unknown-key``) or more than one has (``ambiguous-key``).
        """
        verifier = self.find(name, key_id)
        if verifier is None:
            raise NoteError(
                f"unknown key {name}+{format_key_id(key_id)}: no trusted "
                "verifier key has this name and key ID",
                reason="unknown-key",
            )
        return verifier

    def describe(self) -> str:
        """Return the trusted keys as ``name+keyid`` text for messages."""
        if not self._verifiers:
            return "none"
        return ", ".join(
            f"{verifier.name}+{format_key_id(verifier.key_id)}"
            for verifier in self._verifiers
        )


def _malformed(problem: str) -> NoteError:
    return NoteError(f"malformed note: {problem}", reason="malformed-note")


def _check_note_characters(text: str, part: str) -> None:
    """Raise unless ``text`` is valid UTF-8 text without control characters.

    C2SP signed-note allows no ASCII control character other than newline.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _malformed(f"the {part} contains a lone surrogate") from None
    control = _CONTROL_CHARACTERS.search(text)
    if control is not None:
        raise _malformed(
            f"the {part} contains the control character "
            f"U+{ord(control.group()):04X} at offset {control.start()}; only "
            "newline (U+000A) is allowed"
        )


def _check_existing_signature(signature: Signature) -> None:
    if not _is_valid_key_name(signature.name):
        raise _malformed(
            f"existing signature has an invalid key name {signature.name!r}"
        )
    raw = _decode_base64(signature.base64)
    if raw is None or len(raw) <= _KEY_ID_SIZE:
        raise _malformed(
            f"existing signature by {signature.name} is not canonical base64 "
            "of a key ID and a signature"
        )
    found = int.from_bytes(raw[:_KEY_ID_SIZE], "big")
    if found != signature.key_id:
        raise _malformed(
            f"existing signature by {signature.name} carries key ID "
            f"{format_key_id(found)}, but its key ID is "
            f"{format_key_id(signature.key_id)}"
        )


def sign_note(
    text: str,
    signers: Iterable[Signer],
    *,
    existing_signatures: Iterable[Signature] = (),
) -> str:
    """Sign ``text`` with each signer and return the signed note.

    Follows C2SP signed-note, "Format": the note is ``text``, a blank line,
    then the ``existing_signatures`` (for example those of an opened note,
    to add a cosignature), then one line per signer. An existing signature
    with the name and key ID of a signer is replaced by the new one.
    Ed25519 (RFC 8032) is deterministic, so equal inputs give equal notes.

    ``text`` must end in a newline and contain no control character other
    than newline.

    Raises:
        NoteError: ``text`` is not valid note text, an existing signature
            is malformed or its key ID does not match its base64, or the
            note would have no signature or more than ``MAX_SIGNATURES``
            (reason ``malformed-note``).
    """
    if not text.endswith("\n"):
        raise _malformed("the text must end with a newline (U+000A)")
    _check_note_characters(text, "text")
    message = text.encode("utf-8")

    new_lines: list[str] = []
    new_keys: set[tuple[str, int]] = set()
    for signer in signers:
        key = (signer.name, signer.key_id)
        if key in new_keys:
            continue
        new_keys.add(key)
        key_id = signer.key_id.to_bytes(_KEY_ID_SIZE, "big")
        encoded = _encode_base64(key_id + signer.sign(message))
        new_lines.append(Signature(signer.name, signer.key_id, encoded).line())

    kept_lines: list[str] = []
    for signature in existing_signatures:
        if (signature.name, signature.key_id) in new_keys:
            continue
        _check_existing_signature(signature)
        kept_lines.append(signature.line())

    lines = kept_lines + new_lines
    if not lines:
        raise _malformed("there are no signers and no existing signatures")
    if len(lines) > MAX_SIGNATURES:
        raise _malformed(
            f"{len(lines)} signatures; at most {MAX_SIGNATURES} are allowed"
        )
    return text + "\n" + "".join(lines)


def _parse_signature_line(line: str, number: int) -> tuple[Signature, bytes]:
    """Parse one signature line (without its newline); return it and its
    signature bytes after the key ID."""
    if not line.startswith(_SIGNATURE_PREFIX):
        raise _malformed(
            f"signature line {number} does not start with an em dash "
            "(U+2014) and a space"
        )
    name, space, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    if not space:
        raise _malformed(
            f"signature line {number} has no space between key name and signature"
        )
    if not _is_valid_key_name(name):
        raise _malformed(f"signature line {number} has an invalid key name {name!r}")
    raw = _decode_base64(encoded)
    if raw is None:
        raise _malformed(
            f"signature line {number} ({name}) is not canonical standard base64"
        )
    if len(raw) <= _KEY_ID_SIZE:
        raise _malformed(
            f"signature line {number} ({name}) is {len(raw)} bytes; a key ID "
            "and a signature need more than 4"
        )
    key_id = int.from_bytes(raw[:_KEY_ID_SIZE], "big")
    return Signature(name, key_id, encoded), raw[_KEY_ID_SIZE:]


def _split_note(message: str | bytes) -> tuple[str, list[str]]:
    """Split a signed note into its text and its signature lines."""
    if isinstance(message, bytes):
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _malformed(
                f"the note is not valid UTF-8 (byte offset {error.start})"
            ) from None
    _check_note_characters(message, "note")
    # The text ends at the last blank line, so the text may contain blank
    # lines but the signature block never does.
    split = message.rfind("\n\n")
    if split < 0:
        raise _malformed("there is no blank line before the signatures")
    text = message[: split + 1]
    block = message[split + 2 :]
    if not block:
        raise _malformed("there are no signature lines after the blank line")
    if not block.endswith("\n"):
        raise _malformed("the last signature line does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise _malformed(
            f"{len(lines)} signature lines; at most {MAX_SIGNATURES} are allowed"
        )
    return text, lines


def open_note(message: str | bytes, verifiers: Iterable[Verifier]) -> Note:
    """Parse a signed note and verify its signatures from trusted keys.

    Follows C2SP signed-note, "Format" and "Signatures". A signature whose
    name and key ID match a verifier must verify. Signatures from other keys
    are ignored for trust but kept, once each, as unverified. The note is
    valid only with at least one verified signature.

    Raises:
        UnverifiedNoteError: no signature is from a trusted key (reason
            ``unknown-key``); the error carries the parsed note.
        NoteError: the note is malformed (``malformed-note``), a trusted
            key's signature does not verify (``bad-signature``), or two
            trusted verifiers share the name and key ID of a signature
            (``ambiguous-key``).
    """
    trusted = verifiers if isinstance(verifiers, VerifierList) else None
    if trusted is None:
        trusted = VerifierList(verifiers)
    text, lines = _split_note(message)
    text_bytes = text.encode("utf-8")

    verified: list[Signature] = []
    verified_keys: set[tuple[str, int]] = set()
    unverified: list[Signature] = []
    seen: set[Signature] = set()
    for number, line in enumerate(lines, start=1):
        signature, signature_bytes = _parse_signature_line(line, number)
        if signature in seen:
            continue
        seen.add(signature)
        verifier = trusted.find(signature.name, signature.key_id)
        if verifier is None:
            unverified.append(signature)
            continue
        if not verifier.verify(text_bytes, signature_bytes):
            raise NoteError(
                f"invalid signature for key {signature.name}+"
                f"{format_key_id(signature.key_id)}: Ed25519 verification of "
                "the note text failed, so the note was changed after signing "
                "or was not signed by this key; obtain an unaltered copy",
                reason="bad-signature",
            )
        key = (signature.name, signature.key_id)
        if key not in verified_keys:
            verified_keys.add(key)
            verified.append(signature)

    note = Note(
        text=text,
        signatures=tuple(verified),
        unverified_signatures=tuple(unverified),
    )
    if not verified:
        found = ", ".join(
            f"{signature.name}+{format_key_id(signature.key_id)}"
            for signature in unverified
        )
        raise UnverifiedNoteError(
            "note has no verifiable signatures: it is signed by "
            f"{found}, but the trusted keys are {trusted.describe()}; check "
            "that the verifier key is the signer's",
            note=note,
        )
    return note
