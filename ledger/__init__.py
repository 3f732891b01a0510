"""govledger's ledger core: records, entries, store, Merkle tree, proofs."""

from .core import Ledger, LedgerConfig
from .errors import (
    ChainError,
    CheckpointError,
    GovLedgerError,
    InputError,
    KeyFileError,
    ProofError,
    RecordError,
    StoreError,
    VerificationError,
)
from .verify import Fault, VerifyResult

__all__ = [
    "ChainError",
    "CheckpointError",
    "Fault",
    "GovLedgerError",
    "InputError",
    "KeyFileError",
    "Ledger",
    "LedgerConfig",
    "ProofError",
    "RecordError",
    "StoreError",
    "VerificationError",
    "VerifyResult",
]
