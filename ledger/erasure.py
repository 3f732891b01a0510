"""Erasure of personal values (GDPR Art. 17) and role-aware reading of them.

An entry never contains a personal value: its record holds, per field, the
commitment ``SHA-256(salt || JCS(value))`` (RFC 8785), and the value and its
32-byte salt live in the ``personal_values`` table. Erasure deletes those
rows and appends an ``erasure`` entry in the same transaction, so the
deletion and its record commit together or not at all. Entry hashes,
Merkle nodes, proofs and checkpoints never covered the values, so they all
still verify afterwards.

The ``erasure`` record (see docs/ERASURE.md) names the erased seqs and field
names and never a value. For a data subject's request it stores the
SHA-256 of the subject id, not the id itself (the reasoning is in
``erase_subject``).

On SQLite the connection runs with ``secure_delete`` on, which zeroes the
deleted cells and freed pages, and a ``wal_checkpoint(TRUNCATE)`` after the
commit empties the write-ahead log, which still held the inserted values.
On PostgreSQL the rows are deleted, but their bytes stay in the table's
pages until ``VACUUM FULL personal_values`` rewrites it. docs/ERASURE.md
lists the commands the operator has to run.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, distinct, func, or_, select, union
from sqlalchemy.engine import Connection

from .canonical import canonical_bytes, check_canonicalizable, parse_json
from .core import Ledger
from .entries import format_timestamp
from .errors import CanonicalJSONError, InputError, StoreError
from .records import INPUT_KINDS, parse_occurred_at
from .retention import load_retention, parse_retention, retention_cutoff
from .store import EntryRow, PersonalValue

__all__ = [
    "ERASE_ROLES",
    "PERSONAL_READ_ROLES",
    "ROLES",
    "CommitmentCheck",
    "ErasureResult",
    "check_commitment",
    "commitment",
    "entry_view",
    "erase_expired",
    "erase_request",
    "erase_subject",
    "personal_view",
    "subject_digest",
]

logger = logging.getLogger(__name__)

ROLES = ("appender", "auditor", "officer", "admin")
# Roles that may read personal values. Every other role gets only commitments.
PERSONAL_READ_ROLES = frozenset({"officer", "admin"})
# Roles that may erase personal values.
ERASE_ROLES = frozenset({"admin"})

SALT_BYTES = 32
RETENTION_REASON = "retention expired"
# An expired-retention run erases at most this many entries' values, so one
# erasure entry stays a bounded size. The next run continues.
DEFAULT_MAX_ENTRIES = 10_000
# A request cannot have been received in the future, but this much clock
# skew between the requester's clock and the ledger's is tolerated.
_FUTURE_TOLERANCE = timedelta(minutes=5)
_PLAN_ATTEMPTS = 3
_CHUNK = 500
_ACTOR = re.compile(r"^(user|svc):\S.*$")
_TEXT_LIMITS = {"subject": 1024, "request_ref": 1024, "reason": 8192}


class _PlanChanged(Exception):
    """The rows to erase changed between planning and the locked transaction."""


@dataclass(frozen=True)
class ErasureResult:
    """What one erasure run deleted and the ``erasure`` entry that records it.

    ``erased`` maps each affected seq to its erased field names.
    ``erasure_seq`` and ``receipt`` are None when nothing was erased (an
    expired-retention run with nothing expired). ``wal_truncated`` is True
    when SQLite's write-ahead log was emptied after the commit, and None on
    PostgreSQL. ``remaining`` counts entries past retention that
    this run left for the next one.
    """

    trigger: str
    reason: str
    request_ref: str | None
    erased: dict[int, tuple[str, ...]]
    erasure_seq: int | None
    receipt: dict[str, Any] | None
    wal_truncated: bool | None
    subject_sha256: str | None = None
    remaining: int = 0

    @property
    def seqs(self) -> list[int]:
        """The seqs whose personal values were erased, ascending."""
        return sorted(self.erased)

    @property
    def count(self) -> int:
        """The number of erased personal fields."""
        return sum(len(names) for names in self.erased.values())

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-ready object for ``--json`` and the API."""
        return {
            "erasure_seq": self.erasure_seq,
            "trigger": self.trigger,
            "reason": self.reason,
            "request_ref": self.request_ref,
            "subject_sha256": self.subject_sha256,
            "count": self.count,
            "seqs": self.seqs,
            "erased": _erased_list(self.erased),
            "remaining": self.remaining,
            "wal_truncated": self.wal_truncated,
            "receipt": self.receipt,
        }


@dataclass(frozen=True)
class CommitmentCheck:
    """The result of checking a value and salt against an entry's commitment."""

    seq: int
    field: str
    expected: str
    actual: str

    @property
    def matches(self) -> bool:
        """True when the recomputed commitment equals the stored one."""
        return self.expected == self.actual

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-ready object."""
        return {
            "seq": self.seq,
            "field": self.field,
            "matches": self.matches,
            "expected": self.expected,
            "actual": self.actual,
        }


# -- commitments ---------------------------------------------------------------


def commitment(salt: bytes, value: Any) -> str:
    """Return the commitment ``SHA-256(salt || JCS(value))`` in lowercase hex.

    Raises:
        CanonicalJSONError: ``value`` has no RFC 8785 canonical form.
    """
    return hashlib.sha256(salt + canonical_bytes(value, path="value")).hexdigest()


def subject_digest(subject: str) -> str:
    """Return the SHA-256 of a subject id's UTF-8 bytes in lowercase hex."""
    return hashlib.sha256(subject.encode("utf-8")).hexdigest()


def check_commitment(
    ledger: Ledger, seq: int, name: str, value: Any, salt: bytes
) -> CommitmentCheck:
    """Recompute a personal field's commitment from a value and salt.

    Anyone who kept the value and salt from before an erasure can prove them
    with this, because the entry keeps the commitment forever.

    Raises:
        InputError: no entry has ``seq``, the entry has no personal field
            ``name``, the salt is not 32 bytes, or ``value`` has no
            canonical form.
    """
    if len(salt) != SALT_BYTES:
        raise InputError(
            f"salt is {len(salt)} bytes, expected {SALT_BYTES}; pass the 64 hex "
            "digits shown by `govledger show SEQ --personal`",
            reason="invalid-salt",
        )
    commitments = _commitments(ledger, seq)
    if name not in commitments:
        raise InputError(
            f"entry {seq} has no personal field {name!r}; its personal fields "
            f"are {sorted(commitments) or 'none'}",
            reason="field-not-found",
        )
    return CommitmentCheck(
        seq=seq,
        field=name,
        expected=commitments[name],
        actual=commitment(salt, value),
    )


# -- erasing -------------------------------------------------------------------


def erase_subject(
    ledger: Ledger,
    subject: str,
    *,
    reason: str,
    request_ref: str,
    actor: str,
    requested_at: str | datetime | None = None,
) -> ErasureResult:
    """Erase every personal value of a data subject (GDPR Art. 17).

    Deletes each ``personal_values`` row whose ``subject`` is ``subject``,
    and each row of an entry whose record names ``subject``, then appends
    an ``erasure`` entry in the same transaction. ``requested_at`` (RFC 3339
    with a time zone, default now) is when the request was received. It is
    stored as ``request_received_at``, so the time taken to fulfil the
    request (Art. 12(3)) can be measured.

    The entry stores ``subject_sha256`` rather than the subject id. The id
    is a pseudonym and the erased entries still carry it, but the erasure
    entry can never be erased itself, so it does not repeat the id next to
    the fact that the subject asked for erasure. Whoever holds the id can
    recompute the digest to find the entry. A digest of a short or guessable
    id can be reversed by trying candidates, so it hides the id only as
    well as the id resists guessing.

    Raises:
        InputError: an argument is missing or invalid, or the subject has
            no personal values (reason ``subject-not-found``); nothing was
            written.
        StoreError: the database failed, or the subject's values kept
            changing during the erasure; nothing was written.
        KeyFileError: the log key cannot be loaded to sign the receipt.
    """
    _check_text("subject", subject)
    _check_text("reason", reason)
    _check_text("request_ref", request_ref)
    _check_actor(actor)
    if "\x00" in subject and ledger.engine.dialect.name == "postgresql":
        # PostgreSQL text cannot contain NUL, so no such subject is stored.
        raise InputError(
            "subject contains a NUL character, which no stored subject has; "
            "check the subject id",
            reason="invalid-input",
        )
    received_at = _request_time(requested_at)
    digest = subject_digest(subject)

    for _attempt in range(_PLAN_ATTEMPTS):
        with ledger.engine.connect() as connection:
            planned = _read_fields(connection, _subject_seqs(connection, subject))
        if not planned:
            raise _nothing_to_erase(ledger, subject, digest)
        body = {
            "actor": actor,
            "occurred_at": _now_text(),
            "trigger": "request",
            "reason": reason,
            "request_ref": request_ref,
            "request_received_at": received_at,
            "subject_sha256": digest,
            "erased": _erased_list(planned),
            "fields_erased": sum(len(names) for names in planned.values()),
        }

        def erase_planned(
            connection: Connection, planned: dict[int, tuple[str, ...]] = planned
        ) -> None:
            current = _read_fields(connection, _subject_seqs(connection, subject))
            if current != planned:
                raise _PlanChanged
            _delete_seqs(connection, planned)

        try:
            receipt = ledger.append_ledger_record(
                "erasure", body, before_write=erase_planned
            )
        except _PlanChanged:
            logger.info("personal values changed during erasure; planning again")
            continue
        result = ErasureResult(
            trigger="request",
            reason=reason,
            request_ref=request_ref,
            erased=planned,
            erasure_seq=receipt["seq"],
            receipt=receipt,
            wal_truncated=truncate_sqlite_wal(ledger),
            subject_sha256=digest,
        )
        logger.info(
            "erased %d personal fields of %d entries for subject sha256 %s "
            "(erasure entry seq %d)",
            result.count,
            len(planned),
            digest[:16],
            receipt["seq"],
        )
        return result
    raise StoreError(
        f"the personal values of the subject changed {_PLAN_ATTEMPTS} times "
        "while they were being erased; nothing was erased; retry the erasure",
        reason="erasure-conflict",
    )


def erase_expired(
    ledger: Ledger,
    *,
    actor: str,
    retention: Mapping[str, float] | None = None,
    config_path: Path | None = None,
    reason: str = RETENTION_REASON,
    request_ref: str | None = None,
    now: datetime | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    policy_seq: int | None = None,
) -> ErasureResult:
    """Erase the personal values of entries older than their kind's retention.

    An entry's age counts from its ``recorded_at`` (the ledger's clock, which
    never goes backwards). ``retention`` maps input kinds to years; without
    it the ``[retention]`` table of ``config_path`` (default
    ``./govledger.toml``) or the defaults apply (HIPAA 164.316(b)(2)(i):
    six years). One ``erasure`` entry records the run. At most
    ``max_entries`` entries are erased per run, and ``remaining`` counts the
    expired ones left for the next run. With nothing expired,
    nothing is appended and the result has ``count`` 0. ``policy_seq``, the
    seq of the ``policy_config`` entry that set ``retention``, is recorded in
    the erasure entry when given.

    Raises:
        InputError: an argument or the retention configuration is invalid;
            nothing was written.
        StoreError: the database failed, or the values kept changing
            during the erasure; nothing was written.
        KeyFileError: the log key cannot be loaded to sign the receipt.
    """
    _check_text("reason", reason)
    if request_ref is not None:
        _check_text("request_ref", request_ref)
    _check_actor(actor)
    if max_entries < 1:
        raise InputError(
            f"max_entries is {max_entries}; give at least 1", reason="invalid-input"
        )
    if retention is None:
        years = load_retention(config_path)
    else:
        years = parse_retention(dict(retention), source="retention")
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    cutoffs = {
        kind: format_timestamp(retention_cutoff(moment, years[kind]))
        for kind in INPUT_KINDS
    }

    for _attempt in range(_PLAN_ATTEMPTS):
        with ledger.engine.connect() as connection:
            seqs, total = _expired_seqs(connection, cutoffs, max_entries)
            planned = _read_fields(connection, seqs)
        if not planned:
            logger.info("no personal values are past their retention")
            return ErasureResult(
                trigger="retention",
                reason=reason,
                request_ref=request_ref,
                erased={},
                erasure_seq=None,
                receipt=None,
                wal_truncated=None,
            )
        body: dict[str, Any] = {
            "actor": actor,
            "occurred_at": format_timestamp(moment),
            "trigger": "retention",
            "reason": reason,
            "retention": {
                kind: {"years": years[kind], "recorded_before": cutoffs[kind]}
                for kind in INPUT_KINDS
            },
            "erased": _erased_list(planned),
            "fields_erased": sum(len(names) for names in planned.values()),
        }
        if request_ref is not None:
            body["request_ref"] = request_ref
        if policy_seq is not None:
            body["policy_seq"] = policy_seq

        def erase_planned(
            connection: Connection, planned: dict[int, tuple[str, ...]] = planned
        ) -> None:
            if _read_fields(connection, list(planned)) != planned:
                raise _PlanChanged
            _delete_seqs(connection, planned)

        try:
            receipt = ledger.append_ledger_record(
                "erasure", body, before_write=erase_planned
            )
        except _PlanChanged:
            logger.info("personal values changed during erasure; planning again")
            continue
        result = ErasureResult(
            trigger="retention",
            reason=reason,
            request_ref=request_ref,
            erased=planned,
            erasure_seq=receipt["seq"],
            receipt=receipt,
            wal_truncated=truncate_sqlite_wal(ledger),
            remaining=total - len(planned),
        )
        logger.info(
            "erased %d expired personal fields of %d entries (erasure entry "
            "seq %d, %d entries left for the next run)",
            result.count,
            len(planned),
            receipt["seq"],
            result.remaining,
        )
        return result
    raise StoreError(
        f"the expired personal values changed {_PLAN_ATTEMPTS} times while "
        "they were being erased; nothing was erased; retry the run",
        reason="erasure-conflict",
    )


def erase_request(ledger: Ledger, payload: Any, *, actor: str) -> ErasureResult:
    """Validate an erasure request body and erase the subject's values.

    This is the body of ``POST /v1/erasures``: a JSON object with
    ``subject``, ``reason`` and ``request_ref``, and optionally
    ``request_received_at`` (RFC 3339). The caller checks that the requester
    has a role in ``ERASE_ROLES``.

    Raises:
        InputError: the body is not an object, lacks a field, has an unknown
            field, or the subject has no personal values.
        StoreError: the database failed.
    """
    allowed = {"subject", "reason", "request_ref", "request_received_at"}
    if not isinstance(payload, dict):
        raise InputError(
            "the erasure request must be a JSON object with subject, reason "
            "and request_ref",
            reason="invalid-input",
        )
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise InputError(
            f"unknown field {unknown[0]!r} in the erasure request; the fields "
            f"are {sorted(allowed)}",
            reason="invalid-input",
        )
    for name in ("subject", "reason", "request_ref"):
        if name not in payload:
            raise InputError(
                f"{name}: required field is missing", reason="invalid-input"
            )
    received = payload.get("request_received_at")
    if received is not None and not isinstance(received, str):
        raise InputError(
            "request_received_at must be an RFC 3339 timestamp string",
            reason="invalid-input",
        )
    return erase_subject(
        ledger,
        payload["subject"],
        reason=payload["reason"],
        request_ref=payload["request_ref"],
        actor=actor,
        requested_at=received,
    )


def truncate_sqlite_wal(ledger: Ledger) -> bool | None:
    """Checkpoint SQLite's write-ahead log into the database and empty it.

    The WAL still contains the page images written when the personal
    values were inserted. ``PRAGMA wal_checkpoint(TRUNCATE)`` copies its
    frames into the database file, where ``secure_delete`` has zeroed the
    deleted cells, and truncates the WAL to zero bytes. Returns True when that
    completed, False when a reader blocked it (the next checkpoint
    finishes the job), and None on PostgreSQL.
    """
    if ledger.engine.dialect.name != "sqlite":
        return None
    raw = ledger.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        busy = cursor.fetchone()[0]
        cursor.close()
    finally:
        raw.close()
    if busy:
        logger.warning(
            "the SQLite write-ahead log could not be emptied because a reader "
            "was active, so erased values may remain in the -wal file until "
            "the next checkpoint; run `govledger erase --expired` or any "
            "erasure again when the ledger is idle"
        )
    return not busy


# -- reading -------------------------------------------------------------------


def personal_view(ledger: Ledger, seq: int, role: str) -> dict[str, dict[str, Any]]:
    """Show an entry's personal fields as the given role may see them.

    Roles in ``PERSONAL_READ_ROLES`` get ``{"value", "salt", "commitment"}``
    per field; other roles get ``{"commitment"}``. An erased field shows, to
    every role, ``{"commitment", "erased": true, "erased_at", "erasure_seq",
    "request_ref", "reason"}`` from the erasure entry that names it. A field
    whose value is gone although no erasure entry names it shows
    ``{"commitment", "erased": false, "missing": true}``. Finding erasure
    entries is linear in the number of erasure entries after ``seq``.

    Raises:
        InputError: ``role`` is not a known role or no entry has ``seq``.
    """
    _check_role(role)
    commitments = _commitments(ledger, seq)
    if not commitments:
        return {}
    reads_values = role in PERSONAL_READ_ROLES
    stored = _stored_values(ledger, seq, with_values=reads_values)
    absent = sorted(set(commitments) - set(stored))
    erasures = _erasure_facts(ledger, seq, absent) if absent else {}
    view: dict[str, dict[str, Any]] = {}
    for name, committed in sorted(commitments.items()):
        if name in stored:
            if reads_values:
                value_bytes, salt = stored[name]
                view[name] = {
                    "value": parse_json(value_bytes),
                    "salt": salt.hex(),
                    "commitment": committed,
                }
            else:
                view[name] = {"commitment": committed}
        elif name in erasures:
            view[name] = {"commitment": committed, "erased": True, **erasures[name]}
        else:
            logger.warning(
                "personal field %r of entry %d has no stored value and no "
                "erasure entry names it; it was deleted outside govledger",
                name,
                seq,
            )
            view[name] = {"commitment": committed, "erased": False, "missing": True}
    return view


def entry_view(ledger: Ledger, seq: int, role: str) -> dict[str, Any]:
    """Return an entry as ``GET /v1/entries/{seq}`` shows it to a role.

    The entry object (``Entry.to_json``) gains a top-level ``personal``
    member from ``personal_view`` when its record has personal fields.

    Raises:
        InputError: ``role`` is not a known role or no entry has ``seq``.
    """
    _check_role(role)
    data = ledger.get(seq).to_json()
    personal = personal_view(ledger, seq, role)
    if personal:
        data["personal"] = personal
    return data


# -- helpers -------------------------------------------------------------------


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InputError(
            f"role {role!r} is not a known role; use one of {', '.join(ROLES)}",
            reason="invalid-role",
        )


def _check_text(name: str, value: Any) -> None:
    limit = _TEXT_LIMITS[name]
    if not isinstance(value, str) or not value.strip():
        raise InputError(
            f"{name} is missing or empty; give a non-empty text",
            reason="invalid-input",
        )
    if len(value) > limit:
        raise InputError(
            f"{name} is {len(value)} characters long; the limit is {limit}",
            reason="invalid-input",
        )
    try:
        check_canonicalizable(value, path=name)
    except CanonicalJSONError as error:
        raise InputError(str(error), reason="invalid-input") from None


def _check_actor(actor: Any) -> None:
    if not isinstance(actor, str) or len(actor) > 256 or not _ACTOR.match(actor):
        raise InputError(
            f"actor {actor!r} is invalid; use user:<id> or svc:<id>",
            reason="invalid-input",
        )


def _request_time(requested_at: str | datetime | None) -> str:
    now = datetime.now(UTC)
    if requested_at is None:
        return format_timestamp(now)
    if isinstance(requested_at, datetime):
        if requested_at.tzinfo is None:
            raise InputError(
                "request_received_at has no time zone; give an aware datetime",
                reason="invalid-input",
            )
        moment = requested_at.astimezone(UTC)
    else:
        try:
            moment = parse_occurred_at(requested_at)
        except ValueError as error:
            raise InputError(
                f"request_received_at {requested_at!r}: {error}",
                reason="invalid-input",
            ) from None
        except OverflowError:
            raise InputError(
                f"request_received_at {requested_at!r} is outside the years "
                "1 to 9999 in UTC; give the time the request was received",
                reason="invalid-input",
            ) from None
    if moment > now + _FUTURE_TOLERANCE:
        raise InputError(
            f"request_received_at {format_timestamp(moment)} is in the future; "
            "give the time the request was received",
            reason="invalid-input",
        )
    return format_timestamp(moment)


def _now_text() -> str:
    return format_timestamp(datetime.now(UTC))


def _erased_list(erased: Mapping[int, Iterable[str]]) -> list[dict[str, Any]]:
    return [{"seq": seq, "fields": sorted(erased[seq])} for seq in sorted(erased)]


def _subject_seqs(connection: Connection, subject: str) -> list[int]:
    """Return the seqs with personal values of a subject, by either column."""
    by_value = select(PersonalValue.seq).where(PersonalValue.subject == subject)
    by_entry = (
        select(PersonalValue.seq)
        .join(EntryRow, EntryRow.seq == PersonalValue.seq)
        .where(EntryRow.subject == subject)
    )
    rows = connection.execute(union(by_value, by_entry)).all()
    return sorted(row[0] for row in rows)


def _expired_seqs(
    connection: Connection, cutoffs: Mapping[str, str], limit: int
) -> tuple[list[int], int]:
    """Return up to ``limit`` expired seqs with personal values, and how many."""
    expired = or_(
        *(
            (EntryRow.kind == kind) & (EntryRow.recorded_at < cutoff)
            for kind, cutoff in cutoffs.items()
        )
    )
    joined = select(PersonalValue.seq).join(EntryRow, EntryRow.seq == PersonalValue.seq)
    seqs = connection.execute(
        joined.where(expired)
        .group_by(PersonalValue.seq)
        .order_by(PersonalValue.seq)
        .limit(limit)
    ).all()
    total = connection.execute(
        select(func.count(distinct(PersonalValue.seq)))
        .select_from(PersonalValue)
        .join(EntryRow, EntryRow.seq == PersonalValue.seq)
        .where(expired)
    ).scalar_one()
    return [row[0] for row in seqs], int(total)


def _read_fields(connection: Connection, seqs: list[int]) -> dict[int, tuple[str, ...]]:
    """Return the stored personal field names of the given seqs."""
    found: dict[int, list[str]] = {}
    for start in range(0, len(seqs), _CHUNK):
        chunk = seqs[start : start + _CHUNK]
        rows = connection.execute(
            select(PersonalValue.seq, PersonalValue.name).where(
                PersonalValue.seq.in_(chunk)
            )
        )
        for seq, name in rows:
            found.setdefault(seq, []).append(name)
    return {seq: tuple(sorted(names)) for seq, names in sorted(found.items())}


def _delete_seqs(connection: Connection, planned: Mapping[int, Any]) -> None:
    seqs = sorted(planned)
    for start in range(0, len(seqs), _CHUNK):
        chunk = seqs[start : start + _CHUNK]
        connection.execute(delete(PersonalValue).where(PersonalValue.seq.in_(chunk)))


def _commitments(ledger: Ledger, seq: int) -> dict[str, str]:
    personal = ledger.get(seq).record.get("personal")
    if not isinstance(personal, dict):
        return {}
    return {name: value for name, value in personal.items() if isinstance(value, str)}


def _stored_values(
    ledger: Ledger, seq: int, *, with_values: bool
) -> dict[str, tuple[bytes, bytes]]:
    """Return name -> (JCS value, salt); without ``with_values`` both are empty."""
    if with_values:
        columns = (PersonalValue.name, PersonalValue.value, PersonalValue.salt)
    else:
        columns = (PersonalValue.name,)
    with ledger.engine.connect() as connection:
        rows = connection.execute(
            select(*columns).where(PersonalValue.seq == seq)
        ).all()
    if not with_values:
        return {row[0]: (b"", b"") for row in rows}
    return {row[0]: (bytes(row[1]), bytes(row[2])) for row in rows}


def _erasure_facts(
    ledger: Ledger, seq: int, names: list[str]
) -> dict[str, dict[str, Any]]:
    """Find the erasure entries that name ``seq``; return facts per field."""
    wanted = set(names)
    facts: dict[str, dict[str, Any]] = {}
    for entry in ledger.entries(kind="erasure", start=seq + 1):
        erased = entry.record.get("erased")
        if not isinstance(erased, list):
            continue
        for item in erased:
            if not isinstance(item, dict) or item.get("seq") != seq:
                continue
            for name in item.get("fields") or []:
                if name in wanted and name not in facts:
                    facts[name] = {
                        "erased_at": entry.recorded_at,
                        "erasure_seq": entry.seq,
                        "request_ref": entry.record.get("request_ref"),
                        "reason": entry.record.get("reason"),
                    }
        if len(facts) == len(wanted):
            break
    return facts


def _nothing_to_erase(ledger: Ledger, subject: str, digest: str) -> InputError:
    """Build the error for a subject without personal values."""
    earlier = [
        entry.seq
        for entry in ledger.entries(kind="erasure")
        if entry.record.get("subject_sha256") == digest
    ]
    message = f"no personal values found for subject {subject!r}; nothing was erased"
    if earlier:
        message += (
            f" (erasure entry seq {earlier[-1]} already erased them; see "
            f"`govledger show {earlier[-1]}`)"
        )
    else:
        message += "; check the subject id"
    return InputError(message, reason="subject-not-found")
