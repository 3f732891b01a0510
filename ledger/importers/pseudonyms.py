"""Pseudonymous actor ids for people known to an importer only by email.

An email is a direct identifier, so it never becomes an actor id and never
enters an entry. The actor id is an HMAC-SHA256 (RFC 2104) of the email,
keyed with a per-ledger secret kept in the key directory, outside the
database. Without the secret, guessed emails cannot be tested against the
actor ids in a ledger. This keeps the ids pseudonymous in the sense of GDPR
Art. 4(5), which requires the additional information to be kept separately.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

from ..errors import KeyFileError

__all__ = [
    "PSEUDONYM_KEY_SIZE",
    "email_actor",
    "load_or_create_pseudonym_key",
    "pseudonym_key_path",
]

logger = logging.getLogger(__name__)

PSEUDONYM_KEY_SIZE = 32
# 128 bits of the HMAC: collisions among the people of one ledger are
# negligible, and the id stays short enough to read in a listing.
_ACTOR_HEX_DIGITS = 32


def pseudonym_key_path(key_dir: Path, origin: str) -> Path:
    """Return the path of the pseudonym secret of the ledger named ``origin``.

    The file name carries a digest of the origin, so that ledgers sharing
    one key directory still get separate secrets.
    """
    digest = hashlib.sha256(origin.encode("utf-8")).hexdigest()[:16]
    return key_dir / f"pseudonym-{digest}.key"


def load_or_create_pseudonym_key(key_dir: Path, origin: str) -> bytes:
    """Load the ledger's pseudonym secret; create it on first use.

    The secret is 32 random bytes, stored as hex in a file of mode 0600 in
    ``key_dir`` (created with mode 0700 if missing). Losing the file changes
    the actor id that later imports give to a person known only by email.

    Raises:
        KeyFileError: the file cannot be created or read, is too open, or
            does not contain 32 bytes in hex.
    """
    path = pseudonym_key_path(key_dir, origin)
    if not path.exists():
        _create_secret(path)
    return _read_secret(path)


def email_actor(email: str, key: bytes) -> str:
    """Return the actor id ``user:ls-hmac-<hex>`` of a person known by email.

    The email is stripped and lower-cased first, so that one person gets one
    id however a tool spells the address.
    """
    normalized = email.strip().lower().encode("utf-8", errors="surrogatepass")
    digest = hmac.new(key, normalized, hashlib.sha256).hexdigest()
    return f"user:ls-hmac-{digest[:_ACTOR_HEX_DIGITS]}"


def _create_secret(path: Path) -> None:
    directory = path.parent
    try:
        if not directory.is_dir():
            os.makedirs(directory, mode=0o700)
            os.chmod(directory, 0o700)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        descriptor = os.open(path, flags, 0o600)
    except FileExistsError:
        # Another import created it first; the caller reads that one.
        return
    except OSError as error:
        raise KeyFileError(
            f"cannot create pseudonym secret {path}: {error.strerror}; check "
            "that the key directory is writable",
            reason="key-file-unwritable",
        ) from None
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, secrets.token_hex(PSEUDONYM_KEY_SIZE).encode() + b"\n")
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    logger.info("created pseudonym secret %s", path)


def _read_secret(path: Path) -> bytes:
    try:
        status = path.stat()
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as error:
        detail = getattr(error, "strerror", None) or "not ASCII text"
        raise KeyFileError(
            f"cannot read pseudonym secret {path}: {detail}",
            reason="key-file-unreadable",
        ) from None
    mode = stat.S_IMODE(status.st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"pseudonym secret {path} is too open: mode {mode:04o} lets group "
            f"or others read it; expected 0600. Run `chmod 600 {path}`",
            reason="key-file-too-open",
        )
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != PSEUDONYM_KEY_SIZE:
        raise KeyFileError(
            f"pseudonym secret {path} must hold {PSEUDONYM_KEY_SIZE} bytes in "
            "hex; restore the file from a backup, because a new secret gives "
            "people new actor ids",
            reason="malformed-key-file",
        )
    return key
