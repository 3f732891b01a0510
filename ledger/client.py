"""The Python client of the HTTP service: appends whose receipts it checks.

``LedgerClient`` speaks HTTP only (httpx). It pins the log's verifier key
(C2SP signed-note form) and checks with it every receipt the service
returns, every checkpoint, and, on request, that earlier receipts are still
included in the log (RFC 9162 inclusion proofs against a signed
checkpoint). It also remembers the largest checkpoint it has verified and
requires each later one to extend it (RFC 9162 consistency proof), so a
log that was rewritten between two calls is caught.

Connection errors and 503 responses are retried with exponential backoff and
full jitter. Each append request carries one ``Idempotency-Key`` that all
its retries reuse, so a retry never appends twice.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from .canonical import canonical_bytes
from .checkpoints import SignedCheckpoint, open_checkpoint
from .errors import CheckpointError, GovLedgerError, ProofError, ReceiptError
from .merkle import verify_consistency, verify_inclusion
from .note import Verifier, parse_verifier_key
from .receipts import verify_receipt

__all__ = ["ClientStats", "LedgerClient", "ReceiptCheck", "ServiceError"]

logger = logging.getLogger(__name__)

# Statuses after which the request is sent again: the service or a proxy
# in front of it was busy or restarting, and nothing was written.
_RETRY_STATUSES = frozenset({502, 503, 504})
_MAX_RETRY_AFTER_S = 30.0


class ServiceError(GovLedgerError):
    """The service rejected a request, or stayed unavailable through retries.

    ``status`` is the HTTP status (0 when no response came), ``reason`` the
    service's reason code, ``errors`` its ``{"field", "problem"}`` list and
    ``index`` the position of the bad record in an ``append_many`` call.
    """

    reason = "service-error"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        reason: str | None = None,
        errors: list[dict[str, str]] | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.status = status
        self.errors = errors or []
        self.index = index

    def to_dict(self) -> dict[str, Any]:
        data = {**super().to_dict(), "status": self.status, "errors": self.errors}
        if self.index is not None:
            data["index"] = self.index
        return data


@dataclass(frozen=True)
class ReceiptCheck:
    """Whether one receipt's entry is included in the log.

    ``tree_size`` and ``root`` (hex) are those of the signed checkpoint
    the inclusion proof was checked against; ``problem`` is the reason the
    check failed.
    """

    seq: int | None
    entry_hash: str | None
    included: bool
    tree_size: int | None = None
    root: str | None = None
    problem: str | None = None


@dataclass
class ClientStats:
    """Counts of what a client saw: HTTP statuses, retries, connection errors."""

    statuses: Counter[int] = field(default_factory=Counter)
    retries: int = 0
    transport_errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, *, status: int | None = None, retry: bool = False) -> None:
        """Count an answer's status, a retry, or (neither given) a connection error."""
        with self._lock:
            if status is not None:
                self.statuses[status] += 1
            elif retry:
                self.retries += 1
            else:
                self.transport_errors += 1

    @property
    def server_errors(self) -> int:
        """The number of responses with a 5xx status, retried ones included."""
        return sum(count for status, count in self.statuses.items() if status >= 500)


class LedgerClient:
    """A client of one govledger service, pinned to the log's verifier key.

    ``verifier_key`` is the note-form key printed by ``govledger init`` or
    ``keys show`` (``name+hexid+base64``), or several of them after a key
    rotation. ``retries`` counts attempts after the first; ``batch_size``
    is the largest number of records ``append_many`` sends in one request.
    The client is safe to use from several threads.

    Raises:
        NoteError: a verifier key is malformed.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        verifier_key: str | Sequence[str],
        *,
        timeout: float = 30.0,
        retries: int = 5,
        backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
        batch_size: int = 1000,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        keys = [verifier_key] if isinstance(verifier_key, str) else list(verifier_key)
        self._verifiers: list[Verifier] = [parse_verifier_key(key) for key in keys]
        self.origin = self._verifiers[0].name
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.batch_size = batch_size
        self.stats = ClientStats()
        self._trusted: SignedCheckpoint | None = None
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- appending -------------------------------------------------------------

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Append one record; return its receipt, whose signature was checked.

        Raises:
            CanonicalJSONError: the record has no canonical JSON form.
            ServiceError: the service rejected the record (``status`` 422
                names the field) or stayed unavailable; nothing was written.
            ReceiptError: the receipt is not validly signed by the pinned key.
        """
        receipts = self._append_request(canonical_bytes(record), expected=1)
        return receipts[0]

    def append_many(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Append records in requests of up to ``batch_size``; return the receipts.

        Each request is one transaction on the service, but a call with more
        than ``batch_size`` records makes several: when one fails, the
        earlier ones stay appended and the error's ``index`` counts from
        the start of ``records``.

        Raises:
            CanonicalJSONError: a record has no canonical JSON form.
            ServiceError: the service rejected a request or stayed
                unavailable.
            ReceiptError: a receipt is not validly signed by the pinned key.
        """
        receipts: list[dict[str, Any]] = []
        for start in range(0, len(records), self.batch_size):
            chunk = list(records[start : start + self.batch_size])
            body = canonical_bytes({"records": chunk}, path="")
            try:
                receipts.extend(self._append_request(body, expected=len(chunk)))
            except ServiceError as error:
                if error.index is not None:
                    error.index += start
                raise
        return receipts

    def _append_request(self, body: bytes, *, expected: int) -> list[dict[str, Any]]:
        key = str(uuid.uuid4())
        response = self._request(
            "POST",
            "/v1/entries",
            content=body,
            headers={"Content-Type": "application/json", "Idempotency-Key": key},
        )
        data = response.json()
        receipts = data["receipts"] if "receipts" in data else [data]
        self._check_receipts_signed(receipts, expected)
        return receipts

    def _check_receipts_signed(
        self, receipts: list[dict[str, Any]], expected: int
    ) -> None:
        if len(receipts) != expected:
            raise ReceiptError(
                f"receipt count check failed: sent {expected} records, got "
                f"{len(receipts)} receipts; do not trust this service's answer",
                reason="receipt-count",
            )
        for receipt in receipts:
            verify_receipt(receipt, self._verifiers)
        seqs = {receipt["seq"] for receipt in receipts}
        if len(seqs) != len(receipts):
            raise ReceiptError(
                "receipt check failed: two receipts of one request share a seq",
                reason="duplicate-seq",
            )

    # -- reading -----------------------------------------------------------------

    def get_entry(self, seq: int) -> dict[str, Any]:
        """Return the entry at ``seq`` as JSON, with its entry hash.

        Raises:
            ServiceError: no such entry (404) or the service failed.
        """
        data: dict[str, Any] = self._request("GET", f"/v1/entries/{seq}").json()
        return data

    def verify(self) -> dict[str, Any]:
        """Run the service's full verification; return its result object.

        Raises:
            ServiceError: the token lacks the auditor role, or the service
                failed.
        """
        data: dict[str, Any] = self._request("GET", "/v1/verify").json()
        return data

    def checkpoint(self, *, min_tree_size: int | None = None) -> SignedCheckpoint:
        """Fetch the latest checkpoint and check it with the pinned key.

        With ``min_tree_size`` the service signs a new checkpoint if the
        latest covers fewer entries. A checkpoint must extend the largest
        one this client verified before: a smaller tree is a rollback, and
        a larger one must come with a valid consistency proof.

        Raises:
            CheckpointError: the signature, the origin or the consistency
                with the earlier checkpoint fails (reason ``rollback`` for a
                smaller tree).
            ProofError: the consistency proof does not verify.
            ServiceError: the service failed.
        """
        params = {} if min_tree_size is None else {"min_tree_size": min_tree_size}
        note = self._request("GET", "/v1/checkpoint", params=params).text
        signed = open_checkpoint(note, self._verifiers, origin=self.origin)
        self._check_extends_trusted(signed)
        self._trusted = signed
        return signed

    def _check_extends_trusted(self, signed: SignedCheckpoint) -> None:
        trusted = self._trusted
        if trusted is None or trusted.checkpoint.size == 0:
            return
        old, new = trusted.checkpoint, signed.checkpoint
        if new.size < old.size:
            raise CheckpointError(
                f"checkpoint consistency check failed: the log shrank from "
                f"{old.size} to {new.size} entries since this client's last "
                "checkpoint; keep both checkpoints as evidence",
                reason="rollback",
            )
        if new.size == old.size:
            if new.root != old.root:
                raise CheckpointError(
                    f"checkpoint consistency check failed: two checkpoints of "
                    f"size {new.size} have different roots: expected "
                    f"{old.root.hex()}, actual {new.root.hex()}; keep both as "
                    "evidence",
                    reason="fork",
                )
            return
        proof = self._request(
            "GET",
            "/v1/proofs/consistency",
            params={"old": old.size, "new": new.size},
        ).json()
        verify_consistency(
            old.size, new.size, old.root, new.root, _hashes(proof.get("hashes"))
        )

    def check_receipts(
        self, receipts: Iterable[Mapping[str, Any]]
    ) -> list[ReceiptCheck]:
        """Check that each receipt's entry is still included in the log.

        Fetches a checkpoint covering every receipt (signature checked with
        the pinned key), then for each receipt an inclusion proof against
        that checkpoint's tree size, and proves the receipt's entry hash is
        the leaf at its seq (RFC 9162 2.1.3.2). A receipt that fails any
        step gets ``included=False`` and the reason in ``problem``; so does
        a receipt whose seq lies beyond the log, which a truncated log
        shows. Each receipt costs one HTTP request.

        Raises:
            CheckpointError, ProofError: the checkpoint fails its checks.
            ServiceError: the service failed.
        """
        receipts = list(receipts)
        if not receipts:
            return []
        seqs = [
            seq
            for seq in (receipt.get("seq") for receipt in receipts)
            if isinstance(seq, int) and not isinstance(seq, bool)
        ]
        try:
            signed = self.checkpoint(min_tree_size=max(seqs) + 1 if seqs else None)
        except ServiceError as error:
            if error.reason != "bad-tree-size":
                raise
            # Some seq lies beyond the log: check against the latest checkpoint.
            signed = self.checkpoint()
        return [self._check_one(receipt, signed) for receipt in receipts]

    def _check_one(
        self, receipt: Mapping[str, Any], signed: SignedCheckpoint
    ) -> ReceiptCheck:
        seq, entry_hash = receipt.get("seq"), receipt.get("entry_hash")
        size, root = signed.checkpoint.size, signed.checkpoint.root
        found = ReceiptCheck(
            seq=seq if isinstance(seq, int) else None,
            entry_hash=entry_hash if isinstance(entry_hash, str) else None,
            included=False,
            tree_size=size,
            root=root.hex(),
        )
        try:
            verify_receipt(receipt, self._verifiers)
            assert isinstance(seq, int) and isinstance(entry_hash, str)
            if seq >= size:
                raise ProofError(
                    f"inclusion check failed for seq {seq}: the log's latest "
                    f"checkpoint has tree size {size}, so the log does not "
                    "include the entry; keep the receipt as evidence",
                    reason="index-out-of-range",
                )
            proof = self._request(
                "GET", "/v1/proofs/inclusion", params={"seq": seq, "tree_size": size}
            ).json()
            if proof.get("leaf_hash") != entry_hash:
                raise ProofError(
                    f"inclusion check failed for seq {seq}: the log contains leaf "
                    f"{proof.get('leaf_hash')}, the receipt promised {entry_hash}",
                    reason="leaf-mismatch",
                )
            verify_inclusion(
                seq, size, bytes.fromhex(entry_hash), _hashes(proof.get("hashes")), root
            )
        except (ReceiptError, ProofError) as error:
            return replace(found, problem=error.message)
        return replace(found, included=True)

    # -- HTTP ---------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request, retrying connection errors and 502/503/504.

        Raises:
            ServiceError: the response is another 4xx or 5xx, or the retries
                ran out.
        """
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as error:
                self.stats.count()
                if attempt >= self.retries:
                    raise ServiceError(
                        f"{method} {path} failed after {attempt + 1} attempts: "
                        f"{type(error).__name__}: {error}; check that the "
                        "service runs and the URL is right",
                        status=0,
                        reason="unreachable",
                    ) from None
                self._pause(attempt, None, f"{type(error).__name__}")
                attempt += 1
                continue
            self.stats.count(status=response.status_code)
            if response.status_code in _RETRY_STATUSES and attempt < self.retries:
                self._pause(attempt, response, f"status {response.status_code}")
                attempt += 1
                continue
            if response.status_code >= 400:
                raise _service_error(method, path, response)
            return response

    def _pause(self, attempt: int, response: httpx.Response | None, why: str) -> None:
        self.stats.count(retry=True)
        ceiling = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        delay = random.uniform(0, ceiling)
        retry_after = response.headers.get("Retry-After") if response else None
        if retry_after is not None and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), _MAX_RETRY_AFTER_S))
        logger.debug(
            "retrying after %s in %.3f s (attempt %d)", why, delay, attempt + 2
        )
        time.sleep(delay)


def _service_error(method: str, path: str, response: httpx.Response) -> ServiceError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    message = body.get("message") or response.reason_phrase
    return ServiceError(
        f"{method} {path} failed with {response.status_code}: {message}",
        status=response.status_code,
        reason=body.get("error") or f"http-{response.status_code}",
        errors=body.get("errors") if isinstance(body.get("errors"), list) else [],
        index=body.get("index") if isinstance(body.get("index"), int) else None,
    )


def _hashes(values: Any) -> list[bytes]:
    """Decode a proof's hex hashes; raise ProofError when they are malformed."""
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ProofError("malformed proof: hashes must be a list of hex strings")
    try:
        return [bytes.fromhex(value) for value in values]
    except ValueError:
        raise ProofError("malformed proof: a hash is not hex") from None
