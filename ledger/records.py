"""Input records: the schema that systems submit, validated with pydantic v2.

A record is one annotation, review or model decision. The ledger adds ``v``,
``seq``, ``prev`` and ``recorded_at``, moves ``kind`` up into the entry, and
replaces each ``personal`` value with a salted commitment. Unknown fields are
rejected, never dropped, so nothing a system sends is lost silently.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from .canonical import canonical_bytes
from .errors import CanonicalJSONError, RecordError
from .fast_validation import fast_validator

__all__ = [
    "INPUT_KINDS",
    "LEDGER_KINDS",
    "CheckedRecord",
    "ValidRecord",
    "canonical_record_bytes",
    "parse_occurred_at",
    "validate_record",
]

INPUT_KINDS = ("annotation", "review", "decision")
# Kinds that only the ledger itself writes.
LEDGER_KINDS = ("erasure", "report_issued", "policy_config", "key_rotated")

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?"
    r"(?P<zone>[Zz]|[+-]\d{2}:\d{2})?$"
)


def _plain_identifier(value: str) -> str:
    """Reject what makes an identifier print or compare misleadingly.

    Control characters (Unicode category Cc, NUL included) and invisible
    format characters (Cf: zero-width spaces, bidirectional overrides)
    could make two ids that look the same differ, rewrite a terminal line
    when printed, or be refused by PostgreSQL text columns (NUL).
    """
    if value.isascii() and value.isprintable():
        # Printable ASCII has no control or format characters.
        if value != value.strip():
            raise ValueError("has leading or trailing white space; remove it")
        return value
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cf"):
            raise ValueError(
                f"contains the invisible or control character U+{ord(char):04X}; "
                "remove it"
            )
    if value != value.strip():
        raise ValueError("has leading or trailing white space; remove it")
    return value


Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Text = Annotated[
    str,
    StringConstraints(min_length=1, max_length=1024),
    AfterValidator(_plain_identifier),
]
_ACTOR_FORM = re.compile(r"(user|svc):\S+(?: \S+)*")


def _actor_form(value: str) -> str:
    if not _ACTOR_FORM.fullmatch(value):
        raise ValueError(
            "must be user:<id> or svc:<id>, e.g. user:ann-17 or svc:credit-model"
        )
    return value


Actor = Annotated[
    str,
    StringConstraints(max_length=256),
    AfterValidator(_plain_identifier),
    AfterValidator(_actor_form),
]


Unit = Annotated[float, Field(ge=0.0, le=1.0)]


def parse_occurred_at(value: str) -> datetime:
    """Parse an RFC 3339 timestamp that carries a time zone; return it in UTC.

    Raises:
        ValueError: the text is not RFC 3339 or has no time zone.
    """
    match = _RFC3339.match(value)
    if match is None:
        raise ValueError("must be an RFC 3339 timestamp such as 2026-01-01T10:00:00Z")
    if match.group("zone") is None:
        raise ValueError("a time zone is required: add Z or an offset such as +01:00")
    text = value.replace("z", "Z").replace("Z", "+00:00")
    fraction = match.group(1)
    if fraction and len(fraction) > 7:
        # datetime keeps microseconds: cut nanosecond digits before parsing.
        text = text.replace(fraction, fraction[:7], 1)
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid date and time") from None
    except OverflowError:
        raise ValueError(
            f"{value!r} is outside the years 1 to 9999 once converted to UTC"
        ) from None


def _check_occurred_at(value: str) -> str:
    parse_occurred_at(value)
    return value


OccurredAt = Annotated[str, AfterValidator(_check_occurred_at)]


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        frozen=True,
    )


class Source(_Strict):
    """The origin of a record: the source system and that system's id for it."""

    system: Text
    ref: Text | None = None


class Item(_Strict):
    """The data item that was annotated or decided on."""

    dataset: Text
    id: Text
    sha256: Hex64 | None = None


class Model(_Strict):
    """The model that made a decision."""

    name: Text
    version: Text


class Target(_Strict):
    """The entry a review is about: by seq or by entry hash, exactly one."""

    seq: Annotated[int, Field(ge=0)] | None = None
    entry_hash: Hex64 | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Target:
        if (self.seq is None) == (self.entry_hash is None):
            raise ValueError("give exactly one of seq and entry_hash")
        return self


class _RecordBase(_Strict):
    actor: Actor
    occurred_at: OccurredAt
    subject: Text | None = None
    source: Source | None = None
    personal: dict[str, Any] | None = None

    @field_validator("personal")
    @classmethod
    def _personal_names(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            for name in value:
                if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
                    raise ValueError(
                        f"field name {name!r} must be 1-64 letters, digits, "
                        "'_', '.' or '-'"
                    )
        return value


class AnnotationRecord(_RecordBase):
    """A person's or a service's label on a data item."""

    kind: Literal["annotation"]
    item: Item
    label: Any = Field(...)
    guideline: Text | None = None
    lead_time_s: Annotated[float, Field(ge=0.0)] | None = None


class ReviewRecord(_RecordBase):
    """A human review of an earlier entry."""

    kind: Literal["review"]
    target: Target
    verdict: Literal["accept", "reject", "correct", "escalate"]
    correction: Any = None
    reason: Annotated[str, StringConstraints(max_length=8192)] | None = None


class DecisionRecord(_RecordBase):
    """A model's decision on a data item."""

    kind: Literal["decision"]
    item: Item
    model: Model
    output: Any = Field(...)
    confidence: Unit
    threshold: Unit | None = None
    explanation: Any = None
    input_sha256: Hex64 | None = None


ValidRecord = AnnotationRecord | ReviewRecord | DecisionRecord
_ADAPTER: TypeAdapter[ValidRecord] = TypeAdapter(
    Annotated[ValidRecord, Field(discriminator="kind")]
)

# Patterns for the common forms of strings that otherwise need a Python check.
# Each accepts only strings that its Python check accepts too.
# - _ASCII_TEXT: printable ASCII without leading or trailing space, which
#   passes _plain_identifier.
# - _ASCII_ACTOR: such text in the form user:ID or svc:ID, with single spaces
#   between words, which passes _plain_identifier and _actor_form.
# - _UTC_SECONDS: YYYY-MM-DDTHH:MM:SSZ with a year from 0001 to 9999, a valid
#   time and a day that the month has in every year, which passes
#   parse_occurred_at. February 29 is left to the Python check.
_ASCII_TEXT = r"^[!-~](?:[ -~]*[!-~])?$"
_ASCII_ACTOR = r"^(?:user|svc):[!-~]+(?: [!-~]+)*$"
_UTC_SECONDS = (
    r"^(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])-"
    r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    r"|(?:0[13-9]|1[0-2])-(?:29|30)"
    r"|(?:0[13578]|1[02])-31)"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$"
)
# Validates what _ADAPTER validates, faster for records in the common forms
# above. Its errors name union choices, so a record that it rejects is
# validated again by _ADAPTER, whose errors name each field plainly.
_FAST_VALIDATOR = fast_validator(
    _ADAPTER.core_schema,
    {
        _plain_identifier: _ASCII_TEXT,
        _actor_form: _ASCII_ACTOR,
        _check_occurred_at: _UTC_SECONDS,
    },
)


def _describe(error: dict[str, Any]) -> dict[str, str]:
    location = [part for part in error["loc"] if part not in INPUT_KINDS]
    field = ""
    for part in location:
        if isinstance(part, int):
            field += f"[{part}]"
        else:
            field = f"{field}.{part}" if field else str(part)
    kind = error["type"]
    message = error["msg"]
    if kind == "extra_forbidden":
        message = "unknown field (remove it or check its spelling)"
    elif kind == "missing":
        message = "required field is missing"
    elif kind == "union_tag_invalid" or (kind == "union_tag_not_found"):
        field = "kind"
        message = (
            "must be one of annotation, review, decision "
            f"(got {error.get('input', {}).get('kind')!r})"
            if isinstance(error.get("input"), dict)
            else "must be one of annotation, review, decision"
        )
    elif message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return {"field": field or "(record)", "problem": message}


def _record_error(problems: list[dict[str, str]], index: int | None) -> RecordError:
    where = "record" if index is None else f"record {index}"
    # An unknown field often explains a "missing" one (a misspelling), so
    # unknown fields come first; the message names up to three problems.
    problems = sorted(problems, key=lambda p: not p["problem"].startswith("unknown"))
    shown = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:3])
    text = f"{where}: {shown}"
    if len(problems) > 3:
        text += f" (and {len(problems) - 3} more problems)"
    return RecordError(text, errors=problems, index=index)


@dataclass(frozen=True)
class CheckedRecord:
    """A validated input record, split the way the ledger stores it.

    ``body`` is the record without ``kind`` and without ``personal``;
    ``personal`` contains the erasable values, which never enter an entry.
    """

    kind: str
    body: dict[str, Any]
    personal: dict[str, Any]
    occurred_at: datetime


def validate_record(data: Any, *, index: int | None = None) -> CheckedRecord:
    """Validate one input record against the schema of its kind.

    Raises:
        RecordError: the record is invalid; ``index`` is echoed so that a
            batch error names the bad record, and each problem names its
            field.
    """
    if not isinstance(data, dict):
        raise _record_error(
            [{"field": "(record)", "problem": "must be a JSON object"}], index
        )
    try:
        fields = _FAST_VALIDATOR.validate_python(data)
        kind, occurred_at = fields["kind"], fields["occurred_at"]
    except ValidationError:
        try:
            record = _ADAPTER.validate_python(data)
        except ValidationError as error:
            problems = [_describe(item) for item in error.errors()]
            raise _record_error(problems, index) from None
        kind, occurred_at = record.kind, record.occurred_at
    if type(data) is dict:
        # Copying in C is faster than the comprehension. A dict subclass may
        # override items(), so it takes the comprehension as before.
        body = data.copy()
        del body["kind"]
        body.pop("personal", None)
    else:
        body = {
            name: value
            for name, value in data.items()
            if name not in ("kind", "personal")
        }
    personal = dict(data.get("personal") or {})
    return CheckedRecord(
        kind=kind,
        body=body,
        personal=personal,
        occurred_at=_parse_known_good_time(occurred_at),
    )


def _parse_known_good_time(value: str) -> datetime:
    """Parse an ``occurred_at`` that validation already accepted."""
    if len(value) == 20 and value[-1] == "Z":
        # The common form 2026-01-01T10:00:00Z needs no offset arithmetic.
        return datetime.fromisoformat(value[:19] + "+00:00")
    return parse_occurred_at(value)


def canonical_record_bytes(value: Any, *, index: int | None, path: str = "") -> bytes:
    """Return the JCS bytes of a record part, as a RecordError on failure.

    Raises:
        RecordError: a value has no canonical form; the problem names its
            JSON path relative to the record (e.g. ``output.count``).
    """
    try:
        return canonical_bytes(value, path=path)
    except CanonicalJSONError as error:
        raise _record_error(
            [{"field": error.path or "(record)", "problem": error.detail}], index
        ) from None
