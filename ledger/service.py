"""The HTTP service: a thin FastAPI adapter over the ledger.

``create_app`` builds the application for one ledger; ``govledger serve``
runs it under uvicorn. Every route except ``/healthz`` needs a bearer token
(RFC 6750) whose role grants the route's permission (``ledger.tokens``).

Request bodies are read with a size limit and parsed by
``ledger.canonical.parse_json``, the parser the CLI uses, so the API rejects
exactly what the CLI rejects: duplicate keys, NaN, integers outside
+-(2^53 - 1), invalid UTF-8. Every rejection gets a 4xx response with the body
``{"error", "message", "errors": [{"field", "problem"}], "index"?}`` and
writes nothing. Appends go through one group-commit writer per process
(``ledger.groupcommit``), and a receipt is returned only after its commit is
durable.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import logging
import os
import re
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Query
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .canonical import canonical_bytes, parse_json
from .core import Ledger, LedgerConfig, PreparedRecord
from .entries import derived_columns
from .erasure import entry_view, erase_request
from .errors import (
    CanonicalJSONError,
    GovLedgerError,
    InputError,
    KeyFileError,
    RecordError,
    StoreError,
)
from .groupcommit import (
    AppendOutcome,
    GroupCommitter,
    IdempotencyClaim,
    IdempotencyConflictError,
)
from .records import AnnotationRecord, DecisionRecord, ReviewRecord
from .tokens import (
    AuthenticationError,
    PermissionDeniedError,
    TokenInfo,
    authenticate,
    authorize,
    create_token,
    hash_token,
    list_tokens,
    revoke_token,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "BodyTooLargeError",
    "LedgerService",
    "UnsupportedMediaTypeError",
    "app_from_environment",
    "create_app",
    "logging_config",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_RECORDS_PER_REQUEST = 10_000
# JSON nested deeper than this is rejected before validation, so that no
# later step (validation, canonicalization, the writer thread) can hit
# Python's recursion limit on it.
MAX_JSON_DEPTH = 64
# Bodies above this size are parsed and validated in a worker thread, so
# that a large batch does not stall the event loop.
_INLINE_BODY_BYTES = 64 * 1024
# Authenticated tokens kept per process; the cache is emptied when full.
_TOKEN_CACHE_SIZE = 10_000
_IDEMPOTENCY_KEY = r"^[\x21-\x7e]{1,200}$"
# Seqs and tree sizes are stored in INTEGER columns, 32-bit on PostgreSQL,
# so no ledger has a seq or size above 2^31 - 1. Larger values are rejected
# before they reach a query that PostgreSQL would fail.
MAX_SEQ = 2**31 - 1
MAX_TREE_SIZE = 2**31 - 1
# Record fields stored in text columns, which PostgreSQL keeps free of NUL.
_TEXT_FIELDS = {
    "actor": "actor",
    "subject": "subject",
    "model_name": "model.name",
    "model_version": "model.version",
    "target_hash": "target.entry_hash",
    "item_dataset": "item.dataset",
    "item_id": "item.id",
    "source_system": "source.system",
    "source_ref": "source.ref",
}
# Routes that read their JSON body themselves (to parse it with parse_json)
# name the body's schema with this OpenAPI extension, and ``_LedgerAPI``
# puts the schema in its place.
_BODY_MARKER = "x-govledger-request-body"
_REF_TEMPLATE = "#/components/schemas/{model}"
# ``parse_json`` names a duplicate key in its message and the object's path.
_DUPLICATE_KEY = re.compile(
    r"duplicate key (?P<key>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
)
_BATCH_PATH = re.compile(r"records\[(?P<index>\d+)\]\.?(?P<field>.*)", re.DOTALL)
_NOT_FOUND_REASONS = frozenset(
    {"entry-not-found", "no-checkpoint", "token-not-found", "subject-not-found"}
)
_JSON_MEDIA_TYPE = re.compile(
    r"^application/json\s*(;\s*charset\s*=\s*\"?utf-8\"?\s*)?$", re.IGNORECASE
)


# -- errors ------------------------------------------------------------------


class BodyTooLargeError(InputError):
    """A request body exceeds the service's size limit. HTTP 413."""

    reason = "body-too-large"


class UnsupportedMediaTypeError(InputError):
    """A request body is not ``application/json``. HTTP 415."""

    reason = "unsupported-media-type"


class RequestError(InputError):
    """A request's parameters or body fail validation. HTTP 422.

    ``errors`` lists ``{"field": ..., "problem": ...}`` as ``RecordError``
    does.
    """

    reason = "invalid-request"

    def __init__(
        self,
        message: str,
        *,
        errors: list[dict[str, str]],
        reason: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.errors = errors

    @classmethod
    def naming(cls, error: InputError, fields: list[str]) -> InputError:
        """Return ``error`` with its problem attached to request ``fields``.

        Errors that are not about a value of the request (404 reasons) are
        returned as they are.
        """
        if error.reason in _NOT_FOUND_REASONS or isinstance(error, RequestError):
            return error
        return cls(
            error.message,
            errors=[{"field": field, "problem": error.message} for field in fields],
            reason=error.reason,
        )

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "errors": self.errors}


# -- models: one family per resource ----------------------------------------


class FieldProblem(BaseModel):
    """One problem with one field of a request."""

    field: str
    problem: str


class ErrorBody(BaseModel):
    """The body of every 4xx and 5xx response."""

    error: str = Field(description="Reason code, e.g. invalid-record.")
    message: str
    errors: list[FieldProblem] = Field(default_factory=list)
    index: int | None = Field(
        default=None, description="Position of the bad record in a batch."
    )


RecordCreate = Annotated[
    AnnotationRecord | ReviewRecord | DecisionRecord, Field(discriminator="kind")
]


class EntryBatchCreate(BaseModel):
    """A batch of records, appended in one transaction: all of them or none."""

    model_config = ConfigDict(extra="forbid")

    records: list[RecordCreate] = Field(
        min_length=1, max_length=DEFAULT_MAX_RECORDS_PER_REQUEST
    )


class ReceiptPublic(BaseModel):
    """A signed receipt: the log's promise that an entry was appended."""

    origin: str
    seq: int
    entry_hash: str
    recorded_at: str
    key_id: str
    signature: str


class ReceiptList(BaseModel):
    """The receipts of a batch, in the order of its records."""

    receipts: list[ReceiptPublic]


class EntryPublic(BaseModel):
    """A stored entry as JSON, with its entry hash."""

    v: int
    seq: int
    prev: str
    kind: str
    recorded_at: str
    record: dict[str, Any]
    entry_hash: str
    # Per personal field, as ``ledger.erasure.personal_view`` shows it to the
    # token's role. It is null when the record has no personal fields.
    personal: dict[str, dict[str, Any]] | None = None


class InclusionProofPublic(BaseModel):
    """An RFC 9162 inclusion proof of one entry, with the signed checkpoint."""

    type: Literal["inclusion"]
    index: int
    tree_size: int
    leaf_hash: str
    hashes: list[str]
    checkpoint: str | None


class ConsistencyProofPublic(BaseModel):
    """An RFC 9162 consistency proof between two tree sizes."""

    type: Literal["consistency"]
    old_size: int
    new_size: int
    old_root: str
    new_root: str
    hashes: list[str]
    checkpoint: str | None


class FaultPublic(BaseModel):
    """The first fault that verification found."""

    kind: str
    message: str
    seq: int | None = None
    expected: str | None = None
    actual: str | None = None


class VerifyResultPublic(BaseModel):
    """The outcome of a full verification of the ledger."""

    ok: bool
    entries_checked: int
    size: int
    root: str | None
    head_hash: str | None
    checkpoints_checked: int
    chain_intact: bool
    merkle_intact: bool
    checkpoints_valid: bool
    trusted_checkpoint_consistent: bool | None
    trusted_checkpoint_size: int | None
    fault: FaultPublic | None
    warnings: list[str]


class TokenCreate(BaseModel):
    """A request for a new API token."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=255)
    role: Literal["appender", "auditor", "officer", "admin"]


class TokenPublic(BaseModel):
    """An API token's public facts; never the token or its hash."""

    id: str
    name: str
    role: str
    created_at: str
    revoked_at: str | None


class TokenCreated(TokenPublic):
    """A new API token: ``token`` is shown this once."""

    token: str


class TokenList(BaseModel):
    """Every API token, revoked ones included."""

    tokens: list[TokenPublic]


class HealthPublic(BaseModel):
    """The liveness response."""

    status: Literal["ok"]


# -- request bodies ------------------------------------------------------------


@dataclass(frozen=True)
class JsonDocument:
    """A parsed JSON request body and its size in bytes."""

    value: Any
    size: int


def _check_depth(value: Any) -> None:
    """Raise CanonicalJSONError if ``value`` nests deeper than MAX_JSON_DEPTH."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise CanonicalJSONError(
                f"JSON is nested more than {MAX_JSON_DEPTH} levels deep; "
                "flatten the value",
                path="",
                reason="too-deep",
            )
        stack.extend((child, depth + 1) for child in children)


def parse_body(body: bytes) -> Any:
    """Parse a request body as strict UTF-8 JSON (``parse_json``).

    Raises:
        CanonicalJSONError: the body is not UTF-8 JSON (``invalid-json``),
            nests too deeply (``too-deep``), contains a number with too
            many digits (``unsafe-integer``), or a value with no canonical form;
            the error names its JSON path.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CanonicalJSONError(
            f"the request body is not valid UTF-8 ({error.reason} at byte "
            f"{error.start}); send UTF-8 JSON",
            path="",
            reason="invalid-json",
        ) from None
    try:
        value = parse_json(text)
    except RecursionError:
        raise CanonicalJSONError(
            f"JSON is nested more than {MAX_JSON_DEPTH} levels deep; flatten the value",
            path="",
            reason="too-deep",
        ) from None
    except CanonicalJSONError:
        raise
    except ValueError:
        # The JSON decoder's limit on integer digits (sys.int_info).
        raise CanonicalJSONError(
            "a number has too many digits; integers must lie within "
            "+-(2^53 - 1), so send larger values as strings",
            path="",
            reason="unsafe-integer",
        ) from None
    _check_depth(value)
    return value


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> BodyTooLargeError:
    return BodyTooLargeError(
        f"the request body exceeds the limit of {limit} bytes; split the batch "
        "into smaller requests",
    )


async def read_json_body(request: Request) -> JsonDocument:
    """Read a JSON request body within the size limit and parse it strictly.

    Raises:
        UnsupportedMediaTypeError: the Content-Type is not application/json.
        BodyTooLargeError: the body exceeds the service's limit.
        CanonicalJSONError: see ``parse_body``.
    """
    media_type = request.headers.get("content-type", "")
    if not _JSON_MEDIA_TYPE.match(media_type):
        raise UnsupportedMediaTypeError(
            f"Content-Type {media_type or '(none)'!r} is not supported; send "
            "the body as application/json in UTF-8",
        )
    service = _service_of(request)
    body = await _read_limited(request, service.max_body_bytes)
    if len(body) > _INLINE_BODY_BYTES:
        value = await run_in_threadpool(parse_body, body)
    else:
        value = parse_body(body)
    return JsonDocument(value=value, size=len(body))


def _model_error(error: ValidationError, what: str) -> RequestError:
    problems = [
        {
            "field": ".".join(str(part) for part in item["loc"]) or "(body)",
            "problem": item["msg"],
        }
        for item in error.errors()
    ]
    first = problems[0]
    return RequestError(
        f"invalid {what}: {first['field']}: {first['problem']}", errors=problems
    )


# -- the service layer: what the routes call -----------------------------------


class LedgerService:
    """The operations behind the routes, over one open ledger.

    Routes stay thin: they take validated parameters, call one method here,
    and shape the answer.
    """

    def __init__(
        self,
        ledger: Ledger,
        committer: GroupCommitter,
        *,
        max_body_bytes: int,
        max_records_per_request: int,
        token_cache_s: float,
    ) -> None:
        self.ledger = ledger
        self.committer = committer
        self.max_body_bytes = max_body_bytes
        self.max_records_per_request = max_records_per_request
        self.token_cache_s = token_cache_s
        self._token_cache: dict[str, tuple[TokenInfo, float]] = {}

    # -- tokens --------------------------------------------------------------

    async def principal(self, token: str | None, permission: str) -> TokenInfo:
        """Authenticate a bearer token and check its role.

        A token that authenticated within the last ``token_cache_s``
        seconds is not looked up again, so a revoked token keeps working
        that long in a process that saw it just before.

        Raises:
            AuthenticationError: the token is missing, unknown or revoked.
            PermissionDeniedError: the role lacks ``permission``.
            StoreError: the database failed.
        """
        digest = hash_token(token) if token else ""
        cached = self._token_cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            info = cached[0]
        else:
            info = await run_in_threadpool(authenticate, self.ledger, token)
            if self.token_cache_s > 0:
                if len(self._token_cache) >= _TOKEN_CACHE_SIZE:
                    self._token_cache.clear()
                self._token_cache[digest] = (info, now + self.token_cache_s)
        authorize(info, permission)
        return info

    def create_token(self, request: TokenCreate) -> tuple[TokenInfo, str]:
        """Create a token; see ``ledger.tokens.create_token``."""
        try:
            return create_token(self.ledger, name=request.name, role=request.role)
        except InputError as error:
            field = "role" if error.reason == "unknown-role" else "name"
            raise RequestError.naming(error, [field]) from None

    def tokens(self) -> list[TokenInfo]:
        """List every token; see ``ledger.tokens.list_tokens``."""
        return list_tokens(self.ledger)

    def revoke_token(self, token_id: str) -> TokenInfo:
        """Revoke a token, in this process at once; see ``tokens.revoke_token``."""
        info = revoke_token(self.ledger, token_id)
        self._token_cache.clear()
        return info

    # -- appending -----------------------------------------------------------

    async def append(
        self, document: JsonDocument, principal: TokenInfo, idempotency_key: str | None
    ) -> tuple[AppendOutcome, bool]:
        """Validate, queue and commit the records of one request.

        Returns the outcome and whether the body was a single record (not a
        batch). The records are validated before they are queued, so a bad
        record fails only its own request.

        Raises:
            RecordError: a record or the batch is invalid; nothing was
                written.
            IdempotencyConflictError: the key was used with another body.
            StoreError: the database failed or the queue is full; nothing
                of this request was written.
        """
        with self.committer.incoming():
            if document.size > _INLINE_BODY_BYTES:
                prepared, claim = await run_in_threadpool(
                    self._prepare, document.value, principal, idempotency_key
                )
            else:
                prepared, claim = self._prepare(
                    document.value, principal, idempotency_key
                )
            future = self.committer.submit(prepared.records, claim)
        outcome = await asyncio.wrap_future(future)
        return outcome, prepared.single

    def _prepare(
        self, body: Any, principal: TokenInfo, idempotency_key: str | None
    ) -> tuple[_PreparedRequest, IdempotencyClaim | None]:
        records, single = _split_records(body, self.max_records_per_request)
        prepared = self.ledger.prepare(records, single=single)
        _check_storable(prepared, single)
        claim = None
        if idempotency_key is not None:
            digest = hashlib.sha256(canonical_bytes(body)).hexdigest()
            claim = IdempotencyClaim(
                scope=principal.id, key=idempotency_key, request_sha256=digest
            )
        return _PreparedRequest(records=prepared, single=single), claim

    # -- reading ---------------------------------------------------------------

    def entry(self, seq: int, role: str | None = None) -> dict[str, Any]:
        """Return the entry at ``seq`` as JSON.

        With ``role``, the entry gains a ``personal`` member: values and
        salts for officer and admin, commitments for other roles, and the
        erasure facts of erased fields (``ledger.erasure.entry_view``).

        Raises:
            InputError: no entry has that seq (``entry-not-found``).
        """
        if role is None:
            return self.ledger.get(seq).to_json()
        return entry_view(self.ledger, seq, role)

    def checkpoint(self, min_tree_size: int | None) -> str:
        """Return the latest signed checkpoint note, signing one when needed.

        A new checkpoint is signed when none is stored, or when the latest
        covers fewer than ``min_tree_size`` entries.

        Raises:
            InputError: ``min_tree_size`` exceeds the ledger's size.
            KeyFileError: the log key cannot be loaded to sign.
        """
        latest = self.ledger.latest_checkpoint()
        if latest is not None and (
            min_tree_size is None or latest.tree_size >= min_tree_size
        ):
            return latest.note
        if min_tree_size is not None:
            size = self.ledger.size
            if min_tree_size > size:
                problem = f"exceeds the ledger, which has {size} entries"
                raise RequestError(
                    f"min_tree_size {min_tree_size} {problem}",
                    errors=[{"field": "query.min_tree_size", "problem": problem}],
                    reason="bad-tree-size",
                )
        return self.ledger.make_checkpoint().note

    def inclusion_proof(self, seq: int, tree_size: int | None) -> dict[str, Any]:
        """Return an inclusion proof; see ``Ledger.inclusion_proof``."""
        try:
            return self.ledger.inclusion_proof(seq, tree_size)
        except InputError as error:
            fields = (
                ["query.seq"] if tree_size is None else ["query.seq", "query.tree_size"]
            )
            if error.reason == "bad-tree-size":
                fields = ["query.tree_size"]
            raise RequestError.naming(error, fields) from None

    def consistency_proof(self, old: int, new: int | None) -> dict[str, Any]:
        """Return a consistency proof; see ``Ledger.consistency_proof``."""
        try:
            return self.ledger.consistency_proof(old, new)
        except InputError as error:
            fields = ["query.old"] if new is None else ["query.old", "query.new"]
            raise RequestError.naming(error, fields) from None

    def verify(self) -> dict[str, Any]:
        """Verify the whole ledger; return ``VerifyResult.to_dict()``."""
        return self.ledger.verify().to_dict()


@dataclass(frozen=True)
class _PreparedRequest:
    records: list[PreparedRecord]
    single: bool


def _batch_error(field: str, problem: str) -> RecordError:
    return RecordError(
        f"batch: {field}: {problem}", errors=[{"field": field, "problem": problem}]
    )


def _split_records(body: Any, max_records: int) -> tuple[list[Any], bool]:
    """Return the records of an append body and whether it is a single record.

    Raises:
        RecordError: the body is neither a record nor ``{"records": [...]}``
            of 1 to ``max_records`` records.
    """
    if not isinstance(body, dict):
        raise _batch_error(
            "(body)",
            'must be a JSON object: one record, or {"records": [...]} for a batch',
        )
    if "records" not in body:
        return [body], True
    extra = sorted(name for name in body if name != "records")
    if extra:
        raise _batch_error(extra[0], "unknown field; a batch contains only records")
    records = body["records"]
    if not isinstance(records, list):
        raise _batch_error("records", "must be a JSON array of records")
    if not records:
        raise _batch_error("records", "must hold at least one record")
    if len(records) > max_records:
        raise _batch_error(
            "records",
            f"holds {len(records)} records; send at most {max_records} per request",
        )
    return records, False


def _check_storable(prepared: list[PreparedRecord], single: bool) -> None:
    """Reject values that the schema allows but a store column cannot hold.

    PostgreSQL text columns reject NUL characters, and ``target_seq`` is a
    32-bit integer there. Checking here keeps both databases alike and keeps
    one bad record from failing the shared transaction of other requests.

    Raises:
        RecordError: a value cannot be stored; the error names its field.
    """
    for index, item in enumerate(prepared):
        columns = derived_columns(item.checked.kind, "", item.checked.body)
        problems = [
            {"field": field, "problem": "must not contain the NUL character"}
            for column, field in _TEXT_FIELDS.items()
            if isinstance(columns[column], str) and "\x00" in columns[column]
        ]
        target_seq = columns["target_seq"]
        if target_seq is not None and target_seq > MAX_SEQ:
            problems.append(
                {
                    "field": "target.seq",
                    "problem": f"must be at most {MAX_SEQ}",
                }
            )
        if problems:
            where = "record" if single else f"record {index}"
            first = problems[0]
            raise RecordError(
                f"{where}: {first['field']}: {first['problem']}",
                errors=problems,
                index=None if single else index,
            )


# -- errors to HTTP -------------------------------------------------------------


def _status_of(error: GovLedgerError) -> int:
    if isinstance(error, AuthenticationError):
        return 401
    if isinstance(error, PermissionDeniedError):
        return 403
    if isinstance(error, IdempotencyConflictError):
        return 409
    if isinstance(error, BodyTooLargeError):
        return 413
    if isinstance(error, UnsupportedMediaTypeError):
        return 415
    if isinstance(error, CanonicalJSONError) and error.reason == "invalid-json":
        return 400
    if isinstance(error, InputError):
        return 404 if error.reason in _NOT_FOUND_REASONS else 422
    if isinstance(error, (StoreError, KeyFileError)):
        return 503
    return 500


def _json_error_field(error: CanonicalJSONError) -> str:
    """Return the JSON path a parse error is about; a duplicate key's own path."""
    path = error.path
    if error.reason == "duplicate-key":
        match = _DUPLICATE_KEY.match(error.detail)
        if match:
            key = ast.literal_eval(match["key"])
            path = f"{path}.{key}" if path else key
    return path or "(body)"


def _error_body(error: GovLedgerError) -> dict[str, Any]:
    body = error.to_dict()
    if isinstance(error, CanonicalJSONError):
        body.pop("path", None)
        field = _json_error_field(error)
        body["errors"] = [{"field": field, "problem": error.detail}]
        match = _BATCH_PATH.match(field)
        if match:
            body["index"] = int(match["index"])
            body["errors"][0]["field"] = match["field"] or "(record)"
    body.setdefault("errors", [])
    return body


def _error_response(request: Request, error: GovLedgerError) -> JSONResponse:
    status = _status_of(error)
    body = _error_body(error)
    if status == 422 and not body["errors"]:
        # NOTE: an InputError raised without a field (from code the service
        # calls) is attached to the request as a whole.
        body["errors"] = [{"field": "(request)", "problem": error.message}]
    where = f"{request.method} {request.url.path}"
    if status >= 500:
        logger.error("%s failed: %d %s: %s", where, status, error.reason, error)
    else:
        # The message and field names may quote the request, so only the
        # reason code and the number of field problems are logged.
        logger.info(
            "%s rejected: %d %s (%d field problem(s))",
            where,
            status,
            error.reason,
            len(body["errors"]),
        )
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = (
            "Bearer"
            if error.reason == "missing-token"
            else 'Bearer error="invalid_token"'
        )
    if status == 503:
        headers["Retry-After"] = "1"
    return JSONResponse(body, status_code=status, headers=headers)


async def _on_ledger_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, GovLedgerError)
    return _error_response(request, error)


async def _on_validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    problems = []
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ())]
        if location and location[0] == "header":
            location[1:] = [part.title() for part in location[1:]]
        problems.append(
            {"field": ".".join(location) or "(request)", "problem": item["msg"]}
        )
    if not problems:
        problems = [{"field": "(request)", "problem": "invalid request"}]
    first = problems[0]
    message = f"invalid request: {first['field']}: {first['problem']}"
    return _error_response(request, RequestError(message, errors=problems))


async def _on_http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    reason = {404: "not-found", 405: "method-not-allowed"}.get(
        error.status_code, "http-error"
    )
    body = {"error": reason, "message": str(error.detail), "errors": []}
    logger.info(
        "%s %s rejected: %d %s",
        request.method,
        request.url.path,
        error.status_code,
        reason,
    )
    return JSONResponse(
        body, status_code=error.status_code, headers=dict(error.headers or {})
    )


async def _on_database_error(request: Request, error: Exception) -> Response:
    # Only the driver's own message is logged: SQLAlchemy's message quotes
    # the statement's parameters, which can hold record values.
    logger.error(
        "%s %s failed: database error %s: %s",
        request.method,
        request.url.path,
        type(error).__name__,
        getattr(error, "orig", None) or "(no driver message)",
    )
    store_error = StoreError(
        "the database is unavailable; retry in a moment", reason="store-unavailable"
    )
    return JSONResponse(
        store_error.to_dict() | {"errors": []},
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def _on_disconnect(request: Request, error: Exception) -> Response:
    logger.info(
        "%s %s: the client disconnected before sending the whole body",
        request.method,
        request.url.path,
    )
    return Response(status_code=400)


class _GuardMiddleware:
    """The outermost layer: a size limit, and a JSON 500 for unexpected errors.

    A Content-Length above the limit is rejected with 413 before any route
    runs; a body that streams past it raises ``BodyTooLargeError`` while
    it is read. An exception that no handler took is logged by type and
    traceback without its message, which could quote the request, and
    answered with 500 if no response has started.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit():
                if int(value) > self.max_body_bytes:
                    await self._reject_too_large(scope, receive, send)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _too_large(self.max_body_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Exception as error:  # noqa: BLE001 - last line: never a bare traceback
            frames = "".join(traceback.format_tb(error.__traceback__))
            logger.error(
                "%s %s failed with an unexpected %s\n%s",
                scope.get("method"),
                scope.get("path"),
                type(error).__name__,
                frames,
            )
            if not started:
                response = JSONResponse(
                    {
                        "error": "internal-error",
                        "message": "the service failed unexpectedly; the error "
                        "is logged, and nothing was written unless a receipt "
                        "was returned",
                        "errors": [],
                    },
                    status_code=500,
                )
                await response(scope, receive, send)

    async def _reject_too_large(
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        error = _too_large(self.max_body_bytes)
        logger.info(
            "%s %s rejected: 413 %s (by Content-Length)",
            scope.get("method"),
            scope.get("path"),
            error.reason,
        )
        response = JSONResponse(
            _error_body(error), status_code=413, headers={"Connection": "close"}
        )
        await response(scope, receive, send)


# -- dependencies ---------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="An API token from `tokens create`.")


def _service_of(request: Request) -> LedgerService:
    service: LedgerService = request.app.state.service
    return service


async def _service_dependency(request: Request) -> LedgerService:
    # A coroutine, so that FastAPI does not move it to a worker thread.
    return _service_of(request)


ServiceDep = Annotated[LedgerService, Depends(_service_dependency)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _require(permission: str) -> Callable[..., Awaitable[TokenInfo]]:
    async def principal(service: ServiceDep, credentials: Credentials) -> TokenInfo:
        token = credentials.credentials if credentials is not None else None
        return await service.principal(token, permission)

    principal.__name__ = f"require_{permission.replace('-', '_')}"
    return principal


Appender = Annotated[TokenInfo, Depends(_require("append"))]
Reader = Annotated[TokenInfo, Depends(_require("read"))]
Auditor = Annotated[TokenInfo, Depends(_require("verify"))]
TokenAdmin = Annotated[TokenInfo, Depends(_require("manage-tokens"))]
JsonBody = Annotated[JsonDocument, Depends(read_json_body)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=_IDEMPOTENCY_KEY,
        description="Makes retries safe: the same key with the same body returns "
        "the first receipts (200, Idempotent-Replayed: true); with another body "
        "409. Up to 200 printable ASCII characters.",
    ),
]
Seq = Annotated[int, Query(ge=0, le=MAX_SEQ, description="Entry seq.")]
TreeSize = Annotated[
    int | None,
    Query(ge=0, le=MAX_TREE_SIZE, description="Tree size; default: latest checkpoint."),
]

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        401: "Missing, unknown or revoked token.",
        403: "The token's role lacks the permission.",
        422: "Invalid parameters or records; nothing was written.",
        503: "The database is busy or unavailable; retry.",
    }.items()
}
# The same, for a route whose success is not JSON: FastAPI would document
# ``model`` responses with the route's own media type.
_JSON_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "description": response["description"],
        "content": {
            "application/json": {
                "schema": {"$ref": _REF_TEMPLATE.format(model="ErrorBody")}
            }
        },
    }
    for status, response in _ERRORS.items()
}
_BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    400: {"model": ErrorBody, "description": "The body is not JSON."},
    413: {"model": ErrorBody, "description": "The body exceeds the size limit."},
    415: {"model": ErrorBody, "description": "The body is not application/json."},
}


# -- routes ---------------------------------------------------------------------


async def _reject_unknown_query(request: Request) -> None:
    """Reject query parameters that the route does not document.

    A misspelt parameter would otherwise be ignored silently, and a proof
    for ``treesize=5`` would be a proof for the latest checkpoint.

    Raises:
        RequestError: a query parameter is unknown (``unknown-parameter``).
    """
    if not request.query_params:
        return
    route = request.scope.get("route")
    path = getattr(route, "path", "")
    allowed = _query_names(request.app, path, request.method)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        problem = "unknown query parameter; remove it or check its spelling"
        raise RequestError(
            f"query parameter {unknown[0]!r} is unknown to {request.method} "
            f"{path}; it takes {', '.join(sorted(allowed)) or 'none'}",
            errors=[{"field": f"query.{name}", "problem": problem} for name in unknown],
            reason="unknown-parameter",
        )


def _query_names(app: FastAPI, path: str, method: str) -> frozenset[str]:
    """Return the query parameters that the OpenAPI schema documents for a route."""
    cache: dict[tuple[str, str], frozenset[str]] = app.state.query_names
    key = (path, method)
    if key not in cache:
        operation = app.openapi()["paths"].get(path, {}).get(method.lower(), {})
        cache[key] = frozenset(
            parameter["name"]
            for parameter in operation.get("parameters", [])
            if parameter.get("in") == "query"
        )
    return cache[key]


router = APIRouter(dependencies=[Depends(_reject_unknown_query)])


@router.get("/healthz", response_model=HealthPublic, tags=["service"])
async def health() -> dict[str, str]:
    """Tell that the service is running; needs no token."""
    return {"status": "ok"}


@router.post(
    "/v1/entries",
    status_code=201,
    response_model=ReceiptPublic | ReceiptList,
    tags=["entries"],
    responses={
        **_BODY_ERRORS,
        200: {
            "model": ReceiptPublic | ReceiptList,
            "description": "A replay: the first receipts of this Idempotency-Key.",
        },
        409: {"model": ErrorBody, "description": "Idempotency-Key reused."},
    },
    openapi_extra={_BODY_MARKER: "EntryCreate"},
)
async def append_entries(
    service: ServiceDep,
    principal: Appender,
    document: JsonBody,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Append one record, or a batch in one transaction; return signed receipts."""
    outcome, single = await service.append(document, principal, idempotency_key)
    body: Any = outcome.receipts[0] if single else {"receipts": outcome.receipts}
    if outcome.replayed:
        return JSONResponse(
            body, status_code=200, headers={"Idempotent-Replayed": "true"}
        )
    return JSONResponse(body, status_code=201)


@router.get(
    "/v1/entries/{seq}",
    response_model=EntryPublic,
    tags=["entries"],
    responses={**_ERRORS, 404: {"model": ErrorBody, "description": "No such entry."}},
)
def read_entry(
    service: ServiceDep,
    principal: Reader,
    seq: Annotated[int, PathParam(ge=0, le=MAX_SEQ)],
) -> dict[str, Any]:
    """Return one entry with its entry hash; personal values for officer or admin."""
    return service.entry(seq, principal.role)


@router.get(
    "/v1/checkpoint",
    response_class=PlainTextResponse,
    tags=["proofs"],
    responses={
        **_JSON_ERRORS,
        200: {
            "description": "The signed checkpoint (C2SP signed note).",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
    },
)
def read_checkpoint(
    service: ServiceDep,
    principal: Reader,
    min_tree_size: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_TREE_SIZE,
            description="Sign a new checkpoint if the latest covers fewer entries.",
        ),
    ] = None,
) -> PlainTextResponse:
    """Return the latest signed checkpoint; sign one if none covers the request."""
    return PlainTextResponse(service.checkpoint(min_tree_size))


@router.get(
    "/v1/proofs/inclusion",
    response_model=InclusionProofPublic,
    tags=["proofs"],
    responses={
        **_ERRORS,
        404: {"model": ErrorBody, "description": "No checkpoint of that size."},
    },
)
def read_inclusion_proof(
    service: ServiceDep, principal: Reader, seq: Seq, tree_size: TreeSize = None
) -> dict[str, Any]:
    """Return an RFC 9162 inclusion proof of entry ``seq``."""
    return service.inclusion_proof(seq, tree_size)


@router.get(
    "/v1/proofs/consistency",
    response_model=ConsistencyProofPublic,
    tags=["proofs"],
    responses={
        **_ERRORS,
        404: {"model": ErrorBody, "description": "No checkpoint of that size."},
    },
)
def read_consistency_proof(
    service: ServiceDep,
    principal: Reader,
    old: Annotated[int, Query(ge=0, le=MAX_TREE_SIZE, description="Old tree size.")],
    new: TreeSize = None,
) -> dict[str, Any]:
    """Return an RFC 9162 consistency proof from tree size ``old`` to ``new``."""
    return service.consistency_proof(old, new)


@router.get(
    "/v1/verify", response_model=VerifyResultPublic, tags=["proofs"], responses=_ERRORS
)
def run_verify(service: ServiceDep, principal: Auditor) -> dict[str, Any]:
    """Verify every entry, link, Merkle node and checkpoint; return the result."""
    return service.verify()


@router.post(
    "/v1/tokens",
    status_code=201,
    response_model=TokenCreated,
    tags=["tokens"],
    responses=_BODY_ERRORS,
    openapi_extra={_BODY_MARKER: "TokenCreate"},
)
def create_api_token(
    service: ServiceDep, principal: TokenAdmin, document: JsonBody
) -> dict[str, Any]:
    """Create an API token. The response shows the token this once."""
    try:
        request = TokenCreate.model_validate(document.value)
    except ValidationError as error:
        raise _model_error(error, "token request") from None
    info, token = service.create_token(request)
    return {**info.to_dict(), "token": token}


@router.get("/v1/tokens", response_model=TokenList, tags=["tokens"], responses=_ERRORS)
def read_api_tokens(service: ServiceDep, principal: TokenAdmin) -> dict[str, Any]:
    """List every API token, revoked ones included."""
    return {"tokens": [info.to_dict() for info in service.tokens()]}


@router.delete(
    "/v1/tokens/{token_id}",
    response_model=TokenPublic,
    tags=["tokens"],
    responses={**_ERRORS, 404: {"model": ErrorBody, "description": "No such token."}},
)
def revoke_api_token(
    service: ServiceDep,
    principal: TokenAdmin,
    token_id: Annotated[str, PathParam(max_length=32)],
) -> dict[str, Any]:
    """Revoke an API token; it stops working on its next use."""
    return service.revoke_token(token_id).to_dict()


# -- the application --------------------------------------------------------------


def _entry_create_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the JSON Schema of an append body and the models it refers to."""
    adapter: TypeAdapter[Any] = TypeAdapter(RecordCreate | EntryBatchCreate)
    schema = adapter.json_schema(ref_template=_REF_TEMPLATE)
    definitions = schema.pop("$defs", {})
    for name in ("AnnotationRecord", "ReviewRecord", "DecisionRecord"):
        occurred_at = definitions.get(name, {}).get("properties", {}).get("occurred_at")
        if occurred_at is not None:
            occurred_at["format"] = "date-time"
    return schema, definitions


def _token_create_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the JSON Schema of a token request and the models it refers to."""
    definition = TokenCreate.model_json_schema(ref_template=_REF_TEMPLATE)
    return {"$ref": _REF_TEMPLATE.format(model="TokenCreate")}, {
        "TokenCreate": definition
    }


_REQUEST_BODIES: dict[str, Callable[[], tuple[dict[str, Any], dict[str, Any]]]] = {
    "EntryCreate": _entry_create_schema,
    "TokenCreate": _token_create_schema,
}


# -- erasure (GDPR Art. 17) -------------------------------------------------------


class ErasureCreate(BaseModel):
    """A data subject's erasure request."""

    model_config = ConfigDict(extra="forbid", strict=True)

    subject: str = Field(min_length=1, max_length=1024)
    reason: str = Field(min_length=1, max_length=8192)
    request_ref: str = Field(min_length=1, max_length=1024)
    request_received_at: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}
    )


class ErasedFieldsPublic(BaseModel):
    """The erased field names of one entry."""

    seq: int
    fields: list[str]


class ErasurePublic(BaseModel):
    """The outcome of an erasure: erased fields and the erasure entry's receipt."""

    erasure_seq: int | None
    trigger: str
    reason: str
    request_ref: str | None
    subject_sha256: str | None
    count: int
    seqs: list[int]
    erased: list[ErasedFieldsPublic]
    remaining: int
    wal_truncated: bool | None
    receipt: ReceiptPublic | None


Eraser = Annotated[TokenInfo, Depends(_require("erase"))]


@router.post(
    "/v1/erasures",
    status_code=201,
    response_model=ErasurePublic,
    tags=["erasures"],
    responses={
        **_BODY_ERRORS,
        404: {"model": ErrorBody, "description": "The subject has no personal values."},
    },
    openapi_extra={_BODY_MARKER: "ErasureCreate"},
)
def create_erasure(
    service: ServiceDep, principal: Eraser, document: JsonBody
) -> dict[str, Any]:
    """Erase a data subject's personal values and append an erasure entry."""
    # The actor pattern allows at most 256 characters, so long names are cut.
    actor = f"svc:{principal.name.strip()[:200] or principal.id}"
    result = erase_request(service.ledger, document.value, actor=actor)
    return result.to_dict()


def _erasure_create_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the JSON Schema of an erasure request and the models it refers to."""
    definition = ErasureCreate.model_json_schema(ref_template=_REF_TEMPLATE)
    return {"$ref": _REF_TEMPLATE.format(model="ErasureCreate")}, {
        "ErasureCreate": definition
    }


_REQUEST_BODIES["ErasureCreate"] = _erasure_create_schema


class _LedgerAPI(FastAPI):
    """FastAPI that documents the bodies which routes read themselves."""

    def openapi(self) -> dict[str, Any]:
        schema = super().openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                name = operation.pop(_BODY_MARKER, None)
                if name is None:
                    continue
                body_schema, definitions = _REQUEST_BODIES[name]()
                components.update(definitions)
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": body_schema}},
                }
        return schema


def create_app(
    url: str,
    config: LedgerConfig | None = None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_records_per_request: int = DEFAULT_MAX_RECORDS_PER_REQUEST,
    commit_delay_s: float = 0.002,
    commit_max_records: int = 2000,
    token_cache_s: float = 1.0,
) -> FastAPI:
    """Build the HTTP service for the ledger at ``url``.

    The ledger is opened and its log key loaded now, so that a wrong URL,
    key directory or passphrase fails before the server listens. The
    group-commit writer starts with the application and stops, after
    committing what is queued, when it shuts down.

    ``max_body_bytes`` bounds a request body (413 above it) and
    ``max_records_per_request`` a batch (422 above it). The writer waits up
    to ``commit_delay_s`` for more requests while others are being
    validated, and puts at most ``commit_max_records`` records in one
    transaction. A token is looked up again after ``token_cache_s``
    seconds (0: on every request).

    Raises:
        StoreError: the URL names no ledger.
        KeyFileError: the log key cannot be loaded.
    """
    ledger = Ledger.open(url, config=config)
    try:
        ledger.signer()
    except GovLedgerError:
        ledger.close()
        raise
    committer = GroupCommitter(
        ledger, delay_s=commit_delay_s, max_records=commit_max_records
    )
    service = LedgerService(
        ledger,
        committer,
        max_body_bytes=max_body_bytes,
        max_records_per_request=max_records_per_request,
        token_cache_s=token_cache_s,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        committer.start()
        logger.info(
            "govledger service started for ledger %s (%d entries); body limit %d bytes",
            ledger.origin,
            ledger.size,
            max_body_bytes,
        )
        try:
            yield
        finally:
            await run_in_threadpool(committer.stop)
            ledger.close()
            logger.info("govledger service for ledger %s stopped", ledger.origin)

    app = _LedgerAPI(
        title="govledger",
        version="1",
        summary="Append-only, verifiable compliance ledger.",
        lifespan=lifespan,
        # The interactive docs pages load scripts from a public CDN; the
        # schema stays at /openapi.json for any local viewer.
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    app.state.query_names = {}
    app.include_router(router)
    app.add_exception_handler(GovLedgerError, _on_ledger_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(SQLAlchemyError, _on_database_error)
    app.add_exception_handler(ClientDisconnect, _on_disconnect)
    app.add_middleware(_GuardMiddleware, max_body_bytes=max_body_bytes)
    return app


def app_from_environment() -> FastAPI:
    """Build the app from ``GOVLEDGER_*`` variables (uvicorn's ``--factory``).

    ``govledger serve --workers N`` sets ``GOVLEDGER_DB``,
    ``GOVLEDGER_KEY_DIR`` and ``GOVLEDGER_MAX_BODY_BYTES`` for its worker
    processes, which each build their own app.

    Raises:
        StoreError, KeyFileError: as ``create_app``.
    """
    key_dir = os.environ.get("GOVLEDGER_KEY_DIR")
    return create_app(
        os.environ.get("GOVLEDGER_DB", "sqlite:///govledger.db"),
        LedgerConfig(key_dir=Path(key_dir) if key_dir else None),
        max_body_bytes=int(
            os.environ.get("GOVLEDGER_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)
        ),
    )


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """Return a ``logging.config.dictConfig`` for the service and uvicorn.

    Logs go to standard error, one line per record, with the logger name.
    """
    handler = {"class": "logging.StreamHandler", "formatter": "plain"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
        },
        "handlers": {"stderr": handler},
        "loggers": {
            "ledger": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.access": {
                "handlers": ["stderr"],
                "level": level,
                "propagate": False,
            },
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }
