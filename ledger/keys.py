"""Log key files: Ed25519 private keys in encrypted PKCS#8 PEM files.

A key file is written with mode 0600 from the moment it exists, and a file
that group or others may access is rejected on load. Keys are encrypted
with a passphrase from the caller, usually from the GOVLEDGER_KEY_PASSPHRASE
environment variable. An unencrypted key is written or loaded only on
explicit request, with a logged warning.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from .errors import KeyFileError
from .note import Signer

__all__ = [
    "PASSPHRASE_ENV",
    "generate_log_key",
    "load_private_key",
    "passphrase_from_env",
    "write_private_key",
]

logger = logging.getLogger(__name__)

PASSPHRASE_ENV = "GOVLEDGER_KEY_PASSPHRASE"

_ENCRYPTED_PEM_HEADER = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"
# A PKCS#8 PEM Ed25519 key is a few hundred bytes; reading stops well above.
_MAX_KEY_FILE_SIZE = 64 * 1024


def generate_log_key(name: str) -> Signer:
    """Generate a new Ed25519 log key (RFC 8032) with the note key name ``name``.

    Raises:
        NoteError: ``name`` is not a valid note key name.
    """
    return Signer(name, Ed25519PrivateKey.generate())


def passphrase_from_env() -> bytes | None:
    """Return GOVLEDGER_KEY_PASSPHRASE as bytes, or None if unset or empty."""
    value = os.environ.get(PASSPHRASE_ENV)
    if not value:
        return None
    # fsencode restores the exact bytes of the environment variable.
    return os.fsencode(value)


def _serialize(private_key: Ed25519PrivateKey, passphrase: bytes | None) -> bytes:
    if passphrase is None:
        encryption: serialization.KeySerializationEncryption = (
            serialization.NoEncryption()
        )
    else:
        encryption = serialization.BestAvailableEncryption(passphrase)
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _make_key_directory(directory: Path) -> None:
    """Create ``directory`` (and missing parents) with mode 0700 if missing."""
    if directory.is_dir():
        return
    try:
        os.makedirs(directory, mode=0o700)
        # makedirs applies the umask; set the mode exactly.
        os.chmod(directory, 0o700)
    except OSError as error:
        raise KeyFileError(
            f"cannot create key directory {directory}: {error.strerror}; "
            "create it with mode 0700 or choose another key directory",
            reason="key-file-unwritable",
        ) from None


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_private_key(
    path: str | os.PathLike[str],
    private_key: Ed25519PrivateKey,
    passphrase: bytes | None,
    *,
    unsafe_unencrypted: bool = False,
    overwrite: bool = False,
) -> None:
    """Write ``private_key`` to ``path`` as a PKCS#8 PEM file with mode 0600.

    The key is encrypted with ``passphrase`` (the library's best available
    PKCS#8 encryption). Without a passphrase the key is written in clear
    only if ``unsafe_unencrypted`` is true, and a warning is logged. The
    file is written to a temporary file created with mode 0600 in the same
    directory, synced, then moved into place, so no reader sees a partial
    or more open file. A missing directory is created with mode 0700. An
    existing file is replaced only with ``overwrite``.

    Raises:
        KeyFileError: no passphrase and not ``unsafe_unencrypted``
            (``no-passphrase``), the file exists (``key-file-exists``), or
            the file cannot be written (``key-file-unwritable``).
    """
    path = Path(path)
    if passphrase is not None and not passphrase:
        raise KeyFileError(
            f"cannot write key file {path}: the passphrase is empty; set "
            f"{PASSPHRASE_ENV} to a non-empty passphrase",
            reason="no-passphrase",
        )
    if passphrase is None:
        if not unsafe_unencrypted:
            raise KeyFileError(
                f"cannot write key file {path}: no passphrase to encrypt it; "
                f"set {PASSPHRASE_ENV}, or allow an unencrypted key "
                "explicitly with unsafe_unencrypted=True (command line: "
                "--unsafe-unencrypted-key)",
                reason="no-passphrase",
            )
        logger.warning(
            "writing log key %s unencrypted (unsafe_unencrypted is set); "
            "anyone who can read the file can sign as the log",
            path,
        )
    data = _serialize(private_key, passphrase)

    directory = path.parent
    _make_key_directory(directory)
    if not overwrite and path.exists():
        raise KeyFileError(
            f"key file {path} already exists; move it away first, because "
            "replacing a log key loses the old one",
            reason="key-file-exists",
        )
    temporary = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        _write_new_file(temporary, data)
        if overwrite:
            os.replace(temporary, path)
        else:
            # link() fails if ``path`` appeared since the check above, so an
            # existing key is never replaced by accident.
            os.link(temporary, path)
            os.unlink(temporary)
        _fsync_directory(directory)
    except FileExistsError:
        temporary.unlink(missing_ok=True)
        raise KeyFileError(
            f"key file {path} already exists; move it away first, because "
            "replacing a log key loses the old one",
            reason="key-file-exists",
        ) from None
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise KeyFileError(
            f"cannot write key file {path}: {error.strerror}; check that the "
            "directory is writable",
            reason="key-file-unwritable",
        ) from None


def _write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 (failing if it exists), write and sync."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(path, flags, 0o600)
    try:
        # The umask can only remove bits; set the mode exactly.
        os.fchmod(descriptor, 0o600)
        view = memoryview(data)
        while view:
            written = os.write(descriptor, view)
            view = view[written:]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _read_key_file(path: Path) -> bytes:
    """Read a key file after checking that only its owner can access it."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyFileError(
            f"key file {path} not found; check the key directory",
            reason="key-not-found",
        ) from None
    except OSError as error:
        raise KeyFileError(
            f"cannot open key file {path}: {error.strerror}",
            reason="key-file-unreadable",
        ) from None
    try:
        # fstat checks the file that was opened, not whatever the path names
        # a moment later.
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise KeyFileError(
                f"key file {path} is not a regular file",
                reason="key-file-unreadable",
            )
        mode = stat.S_IMODE(status.st_mode)
        if mode & 0o077:
            raise KeyFileError(
                f"key file {path} is too open: mode {mode:04o} lets group or "
                f"others access it; expected 0600. Run `chmod 600 {path}` and "
                "consider the key exposed if others could read it",
                reason="key-file-too-open",
            )
        with os.fdopen(descriptor, "rb", closefd=False) as file:
            data = file.read(_MAX_KEY_FILE_SIZE + 1)
    except OSError as error:
        raise KeyFileError(
            f"cannot read key file {path}: {error.strerror}",
            reason="key-file-unreadable",
        ) from None
    finally:
        os.close(descriptor)
    if len(data) > _MAX_KEY_FILE_SIZE:
        raise KeyFileError(
            f"key file {path} is larger than {_MAX_KEY_FILE_SIZE} bytes, so "
            "it is not a PKCS#8 Ed25519 key",
            reason="malformed-key-file",
        )
    return data


def load_private_key(
    path: str | os.PathLike[str],
    passphrase: bytes | None,
    *,
    unsafe_unencrypted: bool = False,
) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from a PKCS#8 PEM key file.

    The file must be a regular file that group and others cannot access
    (mode 0600 or stricter). An encrypted key needs ``passphrase``. An
    unencrypted key loads only with ``unsafe_unencrypted``, and a warning
    is logged.

    Raises:
        KeyFileError: the file is missing (``key-not-found``) or unreadable
            (``key-file-unreadable``), too open (``key-file-too-open``), the
            passphrase is missing (``no-passphrase``) or wrong
            (``wrong-passphrase``), the key is unencrypted without
            ``unsafe_unencrypted`` (``unencrypted-key``), or the file
            contains no Ed25519 key (``malformed-key-file``).
    """
    path = Path(path)
    data = _read_key_file(path)
    if data.lstrip().startswith(_ENCRYPTED_PEM_HEADER):
        key = _load_encrypted(path, data, passphrase)
    else:
        key = _load_unencrypted(path, data, unsafe_unencrypted)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(
            f"key file {path} contains a {type(key).__name__}; expected an "
            "Ed25519 private key",
            reason="malformed-key-file",
        )
    return key


def _load_encrypted(
    path: Path, data: bytes, passphrase: bytes | None
) -> PrivateKeyTypes:
    if not passphrase:
        raise KeyFileError(
            f"key file {path} is encrypted and no passphrase was given; set "
            f"{PASSPHRASE_ENV} to the key's passphrase",
            reason="no-passphrase",
        )
    try:
        return serialization.load_pem_private_key(data, passphrase)
    except ValueError:
        # The library raises the same error for a wrong passphrase and for
        # damaged encrypted data.
        raise KeyFileError(
            f"cannot decrypt key file {path}: the passphrase is wrong or the "
            f"file is damaged; set {PASSPHRASE_ENV} to the passphrase the key "
            "was written with",
            reason="wrong-passphrase",
        ) from None


def _load_unencrypted(
    path: Path, data: bytes, unsafe_unencrypted: bool
) -> PrivateKeyTypes:
    try:
        key = serialization.load_pem_private_key(data, None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFileError(
            f"key file {path} is not a PKCS#8 PEM private key",
            reason="malformed-key-file",
        ) from None
    if not unsafe_unencrypted:
        raise KeyFileError(
            f"key file {path} is not encrypted; re-encrypt it with a "
            "passphrase, or allow an unencrypted key explicitly "
            "(command line: GOVLEDGER_UNSAFE_UNENCRYPTED_KEY=1; Python: "
            "LedgerConfig(unsafe_unencrypted_key=True))",
            reason="unencrypted-key",
        )
    logger.warning(
        "loaded unencrypted log key %s (unsafe_unencrypted is set); anyone "
        "who can read the file can sign as the log",
        path,
    )
    return key
