"""Exceptions of govledger: one base class, one subclass per area.

Every error carries a ``reason`` code (a short kebab-case string) that the
CLI, the HTTP service and reports rely on, so callers branch on the code and
never on the message text.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "GovLedgerError",
    "InputError",
    "CanonicalJSONError",
    "RecordError",
    "StoreError",
    "VerificationError",
    "ChainError",
    "ProofError",
    "CheckpointError",
    "NoteError",
    "ReceiptError",
    "KeyFileError",
    "PolicyError",
    "ReportError",
]


class GovLedgerError(Exception):
    """Base class of every error that govledger raises on purpose."""

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def to_dict(self) -> dict[str, Any]:
        """Return the error as a JSON-ready object for ``--json`` and the API."""
        return {"error": self.reason, "message": self.message}


class InputError(GovLedgerError):
    """Input from a caller is invalid; nothing was written."""

    reason = "invalid-input"


class CanonicalJSONError(InputError):
    """A JSON value cannot be represented in RFC 8785 canonical form.

    ``path`` names the offending value, e.g. ``record.output.count``.
    """

    reason = "not-canonicalizable"

    def __init__(self, message: str, *, path: str, reason: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message, reason=reason)
        self.path = path
        self.detail = message

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "path": self.path}


class RecordError(InputError):
    """A record fails validation.

    ``index`` is the position of the record in a batch or import (None for a
    single record); ``errors`` lists ``{"field": ..., "problem": ...}``.
    """

    reason = "invalid-record"

    def __init__(
        self,
        message: str,
        *,
        errors: list[dict[str, str]] | None = None,
        index: int | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.errors = errors or []
        self.index = index

    def to_dict(self) -> dict[str, Any]:
        data = {**super().to_dict(), "errors": self.errors}
        if self.index is not None:
            data["index"] = self.index
        return data


class StoreError(GovLedgerError):
    """The database cannot be opened or used as a ledger."""

    reason = "store-error"


class VerificationError(GovLedgerError):
    """A verification check failed. CLI exit code 1."""

    reason = "verification-failed"


class ChainError(VerificationError):
    """The hash chain or a stored entry does not verify.

    ``seq`` is the first entry at fault; ``expected`` and ``actual`` hold the
    compared values (hashes in lowercase hex) when there are any.
    """

    reason = "chain-fault"

    def __init__(
        self,
        message: str,
        *,
        seq: int | None = None,
        reason: str | None = None,
        expected: str | None = None,
        actual: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.seq = seq
        self.expected = expected
        self.actual = actual

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        for name in ("seq", "expected", "actual"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        return data


class ProofError(VerificationError):
    """An inclusion or consistency proof is malformed or does not verify.

    ``expected`` and ``actual`` hold the trusted and the recomputed root in
    hex when the failure is a root mismatch.
    """

    reason = "proof-invalid"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        expected: str | None = None,
        actual: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.expected = expected
        self.actual = actual


class NoteError(VerificationError):
    """A signed note is malformed or carries no valid signature."""

    reason = "note-invalid"


class CheckpointError(VerificationError):
    """A checkpoint is malformed, badly signed, or disagrees with the ledger."""

    reason = "checkpoint-invalid"


class ReceiptError(VerificationError):
    """A receipt is malformed, from an unknown key, or badly signed."""

    reason = "receipt-invalid"


class KeyFileError(GovLedgerError):
    """A key file is missing, unreadable, too open, or its passphrase is wrong."""

    reason = "key-error"


class PolicyError(GovLedgerError):
    """A policy module or its configuration is invalid."""

    reason = "policy-error"


class ReportError(GovLedgerError):
    """An audit pack cannot be rendered, signed or read."""

    reason = "report-error"
