"""C2SP tlog-checkpoint bodies, signed as C2SP signed notes with the log key.

A checkpoint body is the origin line, the tree size in decimal, the base64
Merkle root (RFC 9162 section 2.1) and optional extension lines, each ending
in a newline. The log signs the body as a note (``ledger.note``).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import CheckpointError, NoteError
from .note import (
    Signer,
    UnverifiedNoteError,
    Verifier,
    format_key_id,
    open_note,
    sign_note,
)

__all__ = [
    "MAX_TREE_SIZE",
    "Checkpoint",
    "SignedCheckpoint",
    "format_checkpoint",
    "open_checkpoint",
    "parse_checkpoint",
    "publish_checkpoint",
    "sign_checkpoint",
]

# RFC 9162 section 4.10 carries the tree size as a uint64.
MAX_TREE_SIZE = 2**64 - 1

_HASH_SIZE = 32
# Decimal without leading zeros; 20 digits hold any uint64.
_TREE_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
# ASCII control characters other than newline, which no note text may contain.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x09\x0b-\x1f]")


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """A parsed checkpoint body (C2SP tlog-checkpoint, "Note text").

    ``root`` is the 32-byte Merkle root of the first ``size`` leaves.
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def to_text(self) -> str:
        """Return the checkpoint body, as ``format_checkpoint`` writes it."""
        return format_checkpoint(self.origin, self.size, self.root, self.extensions)


@dataclass(frozen=True, kw_only=True)
class SignedCheckpoint:
    """A checkpoint whose signed note verified with a trusted log key.

    ``key_ids`` are the key IDs of the trusted keys whose signatures
    verified, in note order.
    """

    checkpoint: Checkpoint
    note_text: str
    key_ids: tuple[int, ...]


def _malformed(problem: str) -> CheckpointError:
    return CheckpointError(
        f"malformed checkpoint: {problem}", reason="malformed-checkpoint"
    )


def _check_line(line: str, part: str) -> None:
    """Raise unless ``line`` is non-empty and free of newlines and control
    characters, so that it is one line of note text."""
    if not line:
        raise _malformed(f"the {part} is empty")
    if "\n" in line:
        raise _malformed(f"the {part} {line!r} contains a newline")
    control = _CONTROL_CHARACTERS.search(line)
    if control is not None:
        raise _malformed(
            f"the {part} {line!r} contains the control character "
            f"U+{ord(control.group()):04X}"
        )
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        raise _malformed(f"the {part} contains a lone surrogate") from None


def format_checkpoint(
    origin: str, size: int, root: bytes, extensions: Iterable[str] = ()
) -> str:
    """Format a checkpoint body (C2SP tlog-checkpoint, "Note text").

    ``origin`` and each extension line must be non-empty single lines
    without control characters. ``size`` is in 0..``MAX_TREE_SIZE`` and
    ``root`` is 32 bytes.

    Raises:
        CheckpointError: an argument breaks these rules (reason
            ``malformed-checkpoint``).
    """
    _check_line(origin, "origin")
    if isinstance(size, bool) or not isinstance(size, int):
        raise _malformed(f"tree size {size!r} is not an integer")
    if not 0 <= size <= MAX_TREE_SIZE:
        raise _malformed(f"tree size {size} is outside 0..{MAX_TREE_SIZE}")
    if not isinstance(root, bytes) or len(root) != _HASH_SIZE:
        raise _malformed(f"root hash must be {_HASH_SIZE} bytes, got {len(root)} bytes")
    lines = [origin, str(size), base64.b64encode(root).decode("ascii")]
    for extension in extensions:
        _check_line(extension, "extension line")
        lines.append(extension)
    return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body (C2SP tlog-checkpoint, "Note text").

    The body has at least three non-empty lines, each ending in a newline:
    origin, tree size (decimal, no leading zeros, at most ``MAX_TREE_SIZE``),
    root hash (canonical standard base64 of 32 bytes), then extension lines.

    Raises:
        CheckpointError: the body breaks any of these rules (reason
            ``malformed-checkpoint``).
    """
    if not text.endswith("\n"):
        raise _malformed("the body does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise _malformed(
            f"the body has {len(lines)} lines; origin, tree size and root "
            "hash lines are required"
        )
    origin, size_text, root_text, *extensions = lines
    _check_line(origin, "origin")
    if not _TREE_SIZE.fullmatch(size_text):
        raise _malformed(
            f"tree size {size_text!r} is not a decimal number without leading zeros"
        )
    size = int(size_text)
    if size > MAX_TREE_SIZE:
        raise _malformed(f"tree size {size} exceeds {MAX_TREE_SIZE}")
    root = _decode_root(root_text)
    for extension in extensions:
        _check_line(extension, "extension line")
    return Checkpoint(origin=origin, size=size, root=root, extensions=tuple(extensions))


def _decode_root(text: str) -> bytes:
    try:
        root = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(f"root hash {text!r} is not standard base64") from None
    if base64.b64encode(root).decode("ascii") != text:
        raise _malformed(f"root hash {text!r} is not canonical base64")
    if len(root) != _HASH_SIZE:
        raise _malformed(f"root hash is {len(root)} bytes; expected {_HASH_SIZE}")
    return root


def sign_checkpoint(origin: str, size: int, root: bytes, signer: Signer) -> str:
    """Format a checkpoint body and return it as a note signed by ``signer``.

    C2SP tlog-checkpoint recommends that the signer's key name equal
    ``origin``, but this function does not enforce it.

    Raises:
        CheckpointError: the body is malformed (see ``format_checkpoint``).
    """
    body = format_checkpoint(origin, size, root)
    try:
        return sign_note(body, [signer])
    except NoteError as error:  # pragma: no cover - the body is checked above
        raise CheckpointError(
            f"cannot sign checkpoint: {error.message}", reason=error.reason
        ) from error


def _describe_keys(names_and_ids: Iterable[tuple[str, int]]) -> str:
    described = [f"{name}+{format_key_id(key_id)}" for name, key_id in names_and_ids]
    return ", ".join(described) if described else "none"


def open_checkpoint(
    note_text: str,
    verifiers: Iterable[Verifier],
    origin: str | None = None,
) -> SignedCheckpoint:
    """Verify a signed checkpoint with the trusted log keys and parse it.

    The note must carry a valid signature from one of ``verifiers`` (C2SP
    signed-note, "Signatures"), its body must be a well-formed checkpoint,
    and if ``origin`` is given the origin line must equal it. Signatures
    from other keys, such as witness cosignatures, are ignored.

    Raises:
        CheckpointError: the note is malformed (``malformed-note``), no
            trusted key signed it (``unknown-key``), a trusted key's
            signature is invalid (``bad-signature``), the body is malformed
            (``malformed-checkpoint``), or the origin differs
            (``wrong-origin``).
    """
    trusted = tuple(verifiers)
    try:
        note = open_note(note_text, trusted)
    except UnverifiedNoteError as error:
        found = _describe_keys(
            (signature.name, signature.key_id)
            for signature in error.note.unverified_signatures
        )
        expected = _describe_keys(
            (verifier.name, verifier.key_id) for verifier in trusted
        )
        raise CheckpointError(
            "checkpoint signature check failed: no signature is from a trusted "
            f"log key; found key {found}, expected key {expected}. Verify with "
            "the verifier key of the log that issued the checkpoint",
            reason=error.reason,
        ) from error
    except NoteError as error:
        raise CheckpointError(
            f"checkpoint signature check failed: {error.message}",
            reason=error.reason,
        ) from error

    checkpoint = parse_checkpoint(note.text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(
            f"checkpoint origin check failed: expected {origin!r}, found "
            f"{checkpoint.origin!r}; the checkpoint belongs to another log",
            reason="wrong-origin",
        )
    return SignedCheckpoint(
        checkpoint=checkpoint,
        note_text=note_text,
        key_ids=tuple(signature.key_id for signature in note.signatures),
    )


def publish_checkpoint(directory: Path, size: int, note_text: str) -> Path:
    """Write a signed checkpoint where witnesses copy it from.

    ``DIR/checkpoint`` always holds the latest note; ``DIR/history/SIZE``
    keeps every published one, so a witness that missed some can still
    fetch them. Each file is written to a temporary name and renamed, so a
    reader never sees a partial note. Returns the path of the latest note.

    Raises:
        CheckpointError: the directory cannot be written.
    """
    history = directory / "history"
    try:
        history.mkdir(parents=True, exist_ok=True)
        for path in (history / str(size), directory / "checkpoint"):
            temporary = path.with_name(f".{path.name}.tmp")
            temporary.write_text(note_text, encoding="utf-8")
            os.replace(temporary, path)
    except OSError as error:
        raise CheckpointError(
            f"cannot publish the checkpoint to {directory}: {error.strerror}",
            reason="publish-failed",
        ) from None
    return directory / "checkpoint"
