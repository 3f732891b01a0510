"""Tests for ledger.keys: log key files, their modes and passphrases."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from ledger.errors import KeyFileError
from ledger.keys import (
    PASSPHRASE_ENV,
    generate_log_key,
    load_private_key,
    passphrase_from_env,
    write_private_key,
)

PASSPHRASE = b"correct horse battery staple"
NAME = "example.org/govledger"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run with umask 0, so only the code's own mode bits protect a file."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_generate_log_key_name_and_key_id() -> None:
    signer = generate_log_key(NAME)
    assert signer.name == NAME
    assert signer.verifier_key().startswith(f"{NAME}+{signer.key_id:08x}+")


def test_write_private_key_mode_0600(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "log.pem"
    write_private_key(path, generate_log_key(NAME).private_key, PASSPHRASE)
    assert _mode(path) == 0o600


def test_write_private_key_creates_directory_0700(
    tmp_path: Path, open_umask: None
) -> None:
    path = tmp_path / "keys" / "log.pem"
    write_private_key(path, generate_log_key(NAME).private_key, PASSPHRASE)
    assert _mode(path.parent) == 0o700
    assert _mode(path) == 0o600


def test_write_private_key_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "log.pem"
    write_private_key(path, generate_log_key(NAME).private_key, PASSPHRASE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.pem"]


def test_written_pem_is_encrypted_pkcs8(tmp_path: Path) -> None:
    path = tmp_path / "log.pem"
    write_private_key(path, generate_log_key(NAME).private_key, PASSPHRASE)
    data = path.read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(data, None)


def test_key_round_trip_same_public_key(tmp_path: Path) -> None:
    path = tmp_path / "log.pem"
    signer = generate_log_key(NAME)
    write_private_key(path, signer.private_key, PASSPHRASE)
    loaded = load_private_key(path, PASSPHRASE)
    assert loaded.public_key().public_bytes_raw() == (
        signer.private_key.public_key().public_bytes_raw()
    )


def test_write_private_key_refuses_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "log.pem"
    first = generate_log_key(NAME)
    write_private_key(path, first.private_key, PASSPHRASE)
    with pytest.raises(KeyFileError) as caught:
        write_private_key(path, generate_log_key(NAME).private_key, PASSPHRASE)
    assert caught.value.reason == "key-file-exists"
    loaded = load_private_key(path, PASSPHRASE)
    assert loaded.public_key() == first.private_key.public_key()


def test_write_private_key_overwrite_replaces_file(tmp_path: Path) -> None:
    path = tmp_path / "log.pem"
    write_private_key(path, generate_log_key(NAME).private_key, PASSPHRASE)
    second = generate_log_key(NAME)
    write_private_key(path, second.private_key, PASSPHRASE, overwrite=True)
    assert _mode(path) == 0o600
    loaded = load_private_key(path, PASSPHRASE)
    assert loaded.public_key() == second.private_key.public_key()


def test_write_without_passphrase_needs_unsafe_flag(tmp_path: Path) -> None:
    path = tmp_path / "log.pem"
    with pytest.raises(KeyFileError) as caught:
        write_private_key(path, generate_log_key(NAME).private_key, None)
    assert caught.value.reason == "no-passphrase"
    assert PASSPHRASE_ENV in caught.value.message
    assert not path.exists()


def test_write_with_empty_passphrase_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as caught:
        write_private_key(tmp_path / "log.pem", generate_log_key(NAME).private_key, b"")
    assert caught.value.reason == "no-passphrase"


def test_write_unencrypted_logs_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "log.pem"
    with caplog.at_level(logging.WARNING, logger="ledger.keys"):
        write_private_key(
            path, generate_log_key(NAME).private_key, None, unsafe_unencrypted=True
        )
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert _mode(path) == 0o600
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "unencrypted" in warnings[0].getMessage()


def test_load_rejects_world_readable_key(tmp_path: Path) -> None:
    path = tmp_path / "log.pem"
    write_private_key(path, generate_log_key(NAME).private_key, PASSPHRASE)
    path.chmod(0o644)
    with pytest.raises(KeyFileError) as caught:
        load_private_key(path, PASSPHRASE)
    assert caught.value.reason == "key-file-too-open"
    assert f"chmod 600 {path}" in caught.value.message
    assert "0644" in caught.value.message


@pytest.mark.parametrize("mode", [0o640, 0o620, 0o604, 0o602, 0o660, 0o666, 0o610])
def test_load_rejects_group_or_other_access(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "log.pem"
    write_private_key(path, generate_log_key(NAME).private_key, PASSPHRASE)
    path.chmod(mode)
    with pytest.raises(KeyFileError) as caught:
        load_private_key(path, PASSPHRASE)
    assert caught.value.reason == "key-file-too-open"


def test_load_accepts_owner_read_only(tmp_path: Path) -> None:
    path = tmp_path / "log.pem"
    write_private_key(path, generate_log_key(NAME).private_key, PASSPHRASE)
    path.chmod(0o400)
    load_private_key(path, PASSPHRASE)


def test_load_rejects_wrong_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "log.pem"
    write_private_key(path, generate_log_key(NAME).private_key, PASSPHRASE)
    with pytest.raises(KeyFileError) as caught:
        load_private_key(path, b"guess-7f3a")
    assert caught.value.reason == "wrong-passphrase"
    assert PASSPHRASE_ENV in caught.value.message
    assert "guess-7f3a" not in caught.value.message


def test_load_encrypted_without_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "log.pem"
    write_private_key(path, generate_log_key(NAME).private_key, PASSPHRASE)
    with pytest.raises(KeyFileError) as caught:
        load_private_key(path, None)
    assert caught.value.reason == "no-passphrase"
    assert PASSPHRASE_ENV in caught.value.message


def test_load_unencrypted_needs_unsafe_flag(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "log.pem"
    signer = generate_log_key(NAME)
    write_private_key(path, signer.private_key, None, unsafe_unencrypted=True)
    with pytest.raises(KeyFileError) as caught:
        load_private_key(path, None)
    assert caught.value.reason == "unencrypted-key"
    assert "GOVLEDGER_UNSAFE_UNENCRYPTED_KEY=1" in caught.value.message
    # A passphrase does not make an unencrypted file acceptable.
    with pytest.raises(KeyFileError):
        load_private_key(path, PASSPHRASE)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ledger.keys"):
        loaded = load_private_key(path, None, unsafe_unencrypted=True)
    assert loaded.public_key() == signer.private_key.public_key()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(path) in warnings[0].getMessage()


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as caught:
        load_private_key(tmp_path / "absent.pem", PASSPHRASE)
    assert caught.value.reason == "key-not-found"


def test_load_rejects_garbage(tmp_path: Path) -> None:
    path = tmp_path / "log.pem"
    path.write_bytes(b"not a key\n")
    path.chmod(0o600)
    with pytest.raises(KeyFileError) as caught:
        load_private_key(path, None, unsafe_unencrypted=True)
    assert caught.value.reason == "malformed-key-file"


def test_load_rejects_non_ed25519_key(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    key = generate_private_key(SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSPHRASE),
        )
    )
    path.chmod(0o600)
    with pytest.raises(KeyFileError) as caught:
        load_private_key(path, PASSPHRASE)
    assert caught.value.reason == "malformed-key-file"


def test_load_rejects_directory(tmp_path: Path) -> None:
    directory = tmp_path / "dir.pem"
    directory.mkdir(mode=0o700)
    with pytest.raises(KeyFileError) as caught:
        load_private_key(directory, PASSPHRASE)
    assert caught.value.reason == "key-file-unreadable"


def test_passphrase_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    assert passphrase_from_env() is None
    monkeypatch.setenv(PASSPHRASE_ENV, "")
    assert passphrase_from_env() is None
    monkeypatch.setenv(PASSPHRASE_ENV, "s\u00e9same")
    assert passphrase_from_env() == "s\u00e9same".encode()
