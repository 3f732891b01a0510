"""Entries (format version 1): canonical bytes, entry hash, derived columns.

An entry is the RFC 8785 object::

    {"kind", "prev", "record", "recorded_at", "seq", "v"}

and ``entry_hash = SHA-256(0x00 || JCS(entry))``, which is at once the chain
link and the RFC 9162 leaf hash of the entry at index ``seq``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from .canonical import canonical_bytes, parse_json
from .errors import CanonicalJSONError
from .records import parse_occurred_at

__all__ = [
    "DERIVED_COLUMNS",
    "FORMAT_VERSION",
    "GENESIS_PREV",
    "Entry",
    "derived_columns",
    "derived_values",
    "entry_bytes",
    "entry_hash",
    "entry_members",
    "format_timestamp",
    "parse_entry",
]

FORMAT_VERSION = 1
GENESIS_PREV = "0" * 64
DERIVED_COLUMNS = (
    "kind",
    "actor",
    "subject",
    "recorded_at",
    "occurred_at",
    "model_name",
    "model_version",
    "confidence",
    "target_seq",
    "target_hash",
    "item_dataset",
    "item_id",
    "source_system",
    "source_ref",
)


def format_timestamp(moment: datetime) -> str:
    """Format a time as RFC 3339 in UTC with microseconds and ``Z``."""
    utc = moment.astimezone(UTC)
    # isoformat pads the year to four digits; strftime("%Y") does not on glibc.
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def entry_bytes(
    *, seq: int, prev: str, kind: str, recorded_at: str, record_bytes: bytes
) -> bytes:
    """Assemble the JCS bytes of an entry from its record's JCS bytes.

    The members are written in RFC 8785 order (kind, prev, record,
    recorded_at, seq, v); ``kind``, ``prev`` and ``recorded_at`` are ASCII
    strings that need no escaping, which the callers guarantee.
    """
    return b"".join(
        (
            b'{"kind":"',
            kind.encode("ascii"),
            b'","prev":"',
            prev.encode("ascii"),
            b'","record":',
            record_bytes,
            b',"recorded_at":"',
            recorded_at.encode("ascii"),
            b'","seq":',
            str(seq).encode("ascii"),
            b',"v":1}',
        )
    )


def entry_hash(body: bytes) -> bytes:
    """Return SHA-256(0x00 || body): the entry hash and RFC 9162 leaf hash."""
    return hashlib.sha256(b"\x00" + body).digest()


@dataclass(frozen=True)
class Entry:
    """A stored entry, parsed from its canonical bytes."""

    seq: int
    prev: str
    kind: str
    recorded_at: str
    record: dict[str, Any]
    body: bytes
    entry_hash: str

    def to_json(self) -> dict[str, Any]:
        """Return the entry object with its hash, for display."""
        return {
            "v": FORMAT_VERSION,
            "seq": self.seq,
            "prev": self.prev,
            "kind": self.kind,
            "recorded_at": self.recorded_at,
            "record": self.record,
            "entry_hash": self.entry_hash,
        }


_ENTRY_MEMBERS = frozenset(("kind", "prev", "record", "recorded_at", "seq", "v"))


def parse_entry(
    body: bytes, stored_hash: str | None = None, *, strict: bool = True
) -> Entry:
    """Parse an entry's canonical bytes.

    ``strict=False`` is for ``verify``: it parses with orjson and then
    requires the bytes to be exactly the canonical form (RFC 8785) of what
    they parse to, as govledger writes them, which also rules out duplicate
    keys. The default parses with the strict parser of ``parse_json``.

    Raises:
        CanonicalJSONError: the bytes are not strict JSON.
        ValueError: the object is not a format-1 entry, or with
            ``strict=False`` the bytes are not canonical.
    """
    data = entry_members(body, strict=strict)
    return Entry(
        seq=data["seq"],
        prev=data["prev"],
        kind=data["kind"],
        recorded_at=data["recorded_at"],
        record=data["record"],
        body=body,
        entry_hash=stored_hash or entry_hash(body).hex(),
    )


def entry_members(body: bytes, *, strict: bool = True) -> dict[str, Any]:
    """Parse an entry's bytes, check them and return the six members.

    ``parse_entry`` wraps this function. verify's range check calls it
    directly, which saves building an ``Entry`` for each row.
    """
    data = parse_json(body) if strict else orjson.loads(body)
    if not isinstance(data, dict) or data.keys() != _ENTRY_MEMBERS:
        raise ValueError(
            "entry members are not kind, prev, record, recorded_at, seq, v"
        )
    if type(data["v"]) is not int or data["v"] != FORMAT_VERSION:
        raise ValueError(f"entry format version {data['v']!r} is not 1")
    if not isinstance(data["seq"], int) or isinstance(data["seq"], bool):
        raise ValueError("entry seq is not an integer")
    if not isinstance(data["record"], dict):
        raise ValueError("entry record is not an object")
    for name in ("kind", "prev", "recorded_at"):
        if not isinstance(data[name], str):
            raise ValueError(f"entry {name} is not a string")
    if not strict and not _is_canonical(data, body):
        raise ValueError(
            "entry bytes are not the canonical JSON (RFC 8785) of their value, "
            "which govledger always writes"
        )
    return data


def _is_canonical(value: Any, body: bytes) -> bool:
    """Return whether ``body`` is exactly the canonical form of ``value``.

    ``value`` is what ``body`` parses to. A float with an integral value of
    2**53 or more is written without a fraction: 1e16 is written
    10000000000000000. It parses back as an int beyond the safe range, so
    such ints are compared as the floats they were written from.
    """
    try:
        return canonical_bytes(value) == body
    except CanonicalJSONError as error:
        if error.reason != "unsafe-integer":
            return False
    return canonical_bytes(_large_ints_as_floats(value)) == body


def _large_ints_as_floats(value: Any) -> Any:
    if type(value) is int and not -(2**53) < value < 2**53:
        return float(value)
    if type(value) is dict:
        return {key: _large_ints_as_floats(item) for key, item in value.items()}
    if type(value) is list:
        return [_large_ints_as_floats(item) for item in value]
    return value


def normalize_time(value: str) -> str | None:
    """Return an RFC 3339 time as UTC text with microseconds, or None if invalid."""
    if len(value) == 20 and value[-1] == "Z" and value[10] == "T":
        # The common form 2026-01-01T10:00:00Z needs no date arithmetic.
        return value[:19] + ".000000Z"
    try:
        return format_timestamp(parse_occurred_at(value))
    except ValueError:
        return None


# Read in place of a missing or malformed object member; never written to.
_NO_MEMBERS: dict[str, Any] = {}


def derived_values(
    kind: str, recorded_at: str, record: dict[str, Any]
) -> tuple[Any, ...]:
    """Compute the query columns of an entry from its record.

    The values come in ``DERIVED_COLUMNS`` order. This function is the single
    definition behind ``derived_columns``, which appending and ``verify``
    both use, so the two cannot drift apart. Appending inserts the tuple as
    it is.
    """
    get = record.get
    item = get("item")
    model = get("model")
    target = get("target")
    source = get("source")
    # A member that is not an object derives no columns.
    if not isinstance(item, dict):
        item = _NO_MEMBERS
    if not isinstance(model, dict):
        model = _NO_MEMBERS
    if not isinstance(target, dict):
        target = _NO_MEMBERS
    if not isinstance(source, dict):
        source = _NO_MEMBERS
    actor = get("actor")
    subject = get("subject")
    occurred_at = get("occurred_at")
    confidence = get("confidence")
    model_name = model.get("name")
    model_version = model.get("version")
    target_seq = target.get("seq")
    target_hash = target.get("entry_hash")
    item_dataset = item.get("dataset")
    item_id = item.get("id")
    source_system = source.get("system")
    source_ref = source.get("ref")
    return (
        kind,
        actor if isinstance(actor, str) else None,
        subject if isinstance(subject, str) else None,
        recorded_at,
        normalize_time(occurred_at) if isinstance(occurred_at, str) else None,
        model_name if isinstance(model_name, str) else None,
        model_version if isinstance(model_version, str) else None,
        (
            float(confidence)
            if isinstance(confidence, (int, float)) and not isinstance(confidence, bool)
            else None
        ),
        (
            target_seq
            if isinstance(target_seq, int) and not isinstance(target_seq, bool)
            else None
        ),
        target_hash if isinstance(target_hash, str) else None,
        item_dataset if isinstance(item_dataset, str) else None,
        item_id if isinstance(item_id, str) else None,
        source_system if isinstance(source_system, str) else None,
        source_ref if isinstance(source_ref, str) else None,
    )


def derived_columns(
    kind: str, recorded_at: str, record: dict[str, Any]
) -> dict[str, Any]:
    """Compute the query columns of an entry from its record, by column name.

    See ``derived_values``, which this function wraps.
    """
    return dict(
        zip(DERIVED_COLUMNS, derived_values(kind, recorded_at, record), strict=True)
    )


def dumps_record(record: dict[str, Any]) -> str:
    """Return a record as compact JSON text for display."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))
