"""Fixtures of the report tests: one real signed pack shared by read-only tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from policies.model import Evaluation
from reports.pack import issue_pack
from reports.signing import ensure_signing_identity, load_signing_identity
from reports.verify_pack import read_embedded_files

from .support import PASSPHRASE, Clock, create_ledger, evaluation_for, populate


@dataclass(frozen=True)
class BasePack:
    """A pack issued from a real ledger, and what an auditor would hold."""

    path: Path
    data: bytes
    files: dict[str, bytes]
    manifest: dict[str, Any]
    cert_path: Path
    log_key: str
    url: str
    key_dir: Path
    receipt: dict[str, Any]
    sha256: str
    evaluation: Evaluation


@pytest.fixture(scope="session")
def base_pack(tmp_path_factory: pytest.TempPathFactory) -> BasePack:
    """Issue one full-range pack over three days of records, signed by default."""
    root = tmp_path_factory.mktemp("base-pack")
    url = f"sqlite:///{root / 'ledger.db'}"
    key_dir = root / "keys"
    clock = Clock()
    with create_ledger(url, key_dir, clock) as ledger:
        populate(ledger, clock)
        files = ensure_signing_identity(
            key_dir, "Example Health", passphrase=PASSPHRASE
        )
        identity = load_signing_identity(key_dir, passphrase=PASSPHRASE)
        evaluation = evaluation_for(ledger)
        issued = issue_pack(
            ledger,
            evaluation,
            out=root / "pack.pdf",
            identity=identity,
            organisation="Example Health",
        )
        log_key = ledger.signer().verifier_key()
    data = issued.path.read_bytes()
    return BasePack(
        path=issued.path,
        data=data,
        files=read_embedded_files(data),
        manifest=issued.manifest,
        cert_path=files.certificate,
        log_key=log_key,
        url=url,
        key_dir=key_dir,
        receipt=issued.receipt,
        sha256=issued.sha256,
        evaluation=evaluation,
    )
