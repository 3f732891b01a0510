"""Policy thresholds: defaults, ``govledger.toml``, and ``policy_config`` entries.

The thresholds that checks apply (review below a confidence, review
deadline, retention per record kind, clock-skew tolerance, ...) live in a
``PolicyConfig``. A file states them in two TOML tables::

    [policy]
    review_confidence_below = 0.8
    adverse_outputs = ["deny"]

    [retention]          # years per record kind
    decision = 10

Every change is itself appended to the ledger as a ``policy_config`` entry
holding the complete policy, so an evaluation uses the policy that was in
force at the end of its period and reports the seq that set it.
"""

from __future__ import annotations

import logging
import tomllib
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import select

from ledger.canonical import canonical_bytes, parse_json
from ledger.entries import format_timestamp, parse_entry
from ledger.errors import CanonicalJSONError, InputError, PolicyError
from ledger.records import parse_occurred_at
from ledger.retention import (
    DEFAULT_RETENTION_YEARS,
    MAX_RETENTION_YEARS,
    MIN_RETENTION_YEARS,
)
from ledger.store import EntryRow

if TYPE_CHECKING:
    from ledger import Ledger

__all__ = [
    "CONFIG_TABLES",
    "DEFAULT_GENERIC_ACTOR_NAMES",
    "PolicyConfig",
    "RetentionConfig",
    "apply_policy_file",
    "load_policy_file",
    "normalise_actor",
    "policy_in_force",
    "record_policy",
    "set_policy_value",
]

logger = logging.getLogger(__name__)

# Local parts (after "user:" or "svc:") that name a role or a shared account
# rather than one person or one system. They are compared after NFC and case
# folding.
DEFAULT_GENERIC_ACTOR_NAMES = (
    "admin",
    "administrator",
    "anonymous",
    "default",
    "guest",
    "nobody",
    "none",
    "null",
    "operator",
    "root",
    "service",
    "shared",
    "system",
    "test",
    "unknown",
    "user",
)

# The top-level tables of govledger.toml. ``[retention]`` is also read by
# ledger.retention for `govledger erase --expired`; no other part of
# govledger reads the file.
CONFIG_TABLES = ("policy", "retention")

Fraction01 = Annotated[float, Field(strict=True, ge=0.0, le=1.0)]
Positive = Annotated[float, Field(strict=True, gt=0.0)]
# EU AI Act Art. 19(1) and 26(6) keep logs at least six months, so retention
# is at least MIN_RETENTION_YEARS (0.5), as for `govledger erase --expired`.
Years = Annotated[
    float, Field(strict=True, ge=MIN_RETENTION_YEARS, le=MAX_RETENTION_YEARS)
]


def normalise_actor(actor: str) -> str:
    """Return an actor id in the form used to compare identities.

    Unicode NFC first, then case folding, so ``user:Zoë`` written with a
    combining diaeresis (NFD) and ``user:ZOË`` compare equal to ``user:zoë``.
    """
    return unicodedata.normalize("NFC", actor).casefold()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetentionConfig(_Strict):
    """Years to keep personal values, per input record kind, from ``recorded_at``.

    The defaults (``ledger.retention``: six years) meet HIPAA
    164.316(b)(2)(i) and, being longer than six months, EU AI Act Art.
    19(1). Entries themselves are never deleted; past retention only their
    personal values must be erased, which ``govledger erase --expired`` does
    with the same rules.
    """

    annotation: Years = DEFAULT_RETENTION_YEARS["annotation"]
    review: Years = DEFAULT_RETENTION_YEARS["review"]
    decision: Years = DEFAULT_RETENTION_YEARS["decision"]

    def years(self) -> dict[str, float]:
        """Return the retention in years per record kind."""
        return {name: float(getattr(self, name)) for name in type(self).model_fields}


class PolicyConfig(_Strict):
    """The thresholds that checks apply; see docs/POLICIES.md for each key."""

    review_confidence_below: Fraction01 = 0.7
    adverse_outputs: list[JsonValue] = Field(default_factory=list)
    review_deadline_hours: Positive = 72.0
    clock_skew_tolerance_s: Annotated[float, Field(strict=True, ge=0.0)] = 300.0
    min_alpha: Annotated[float, Field(strict=True, ge=-1.0, le=1.0)] = 0.667
    psi_warning: Positive = 0.1
    psi_alert: Positive = 0.25
    psi_min_decisions: Annotated[int, Field(strict=True, ge=1)] = 30
    drift_baseline: Literal["first-half", "previous-period"] = "first-half"
    override_rate_alert: Fraction01 = 0.2
    erasure_deadline_days: Positive = 30.0
    generic_actor_names: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: list(DEFAULT_GENERIC_ACTOR_NAMES)
    )
    retention: RetentionConfig = Field(default_factory=RetentionConfig)

    @field_validator("adverse_outputs")
    @classmethod
    def _canonical_outputs(cls, value: list[Any]) -> list[Any]:
        for index, output in enumerate(value):
            canonical_bytes(output, path=f"adverse_outputs[{index}]")
        return value

    @field_validator("generic_actor_names")
    @classmethod
    def _normalise_names(cls, value: list[str]) -> list[str]:
        return sorted({normalise_actor(name) for name in value})

    @model_validator(mode="after")
    def _psi_levels_ordered(self) -> PolicyConfig:
        if self.psi_warning >= self.psi_alert:
            raise ValueError(
                f"psi_warning ({self.psi_warning}) must be below psi_alert "
                f"({self.psi_alert})"
            )
        return self

    def to_record(self) -> dict[str, Any]:
        """Return the policy as the JSON body of a ``policy_config`` entry."""
        return self.model_dump(mode="json")


def _key_names() -> str:
    policy = [name for name in PolicyConfig.model_fields if name != "retention"]
    kinds = [f"retention.{kind}" for kind in RetentionConfig.model_fields]
    return ", ".join(policy + kinds)


def _describe(error: Any, where: str) -> str:
    location = list(error["loc"])
    if location and location[0] == "retention":
        section, location = "[retention]", location[1:]
    else:
        section = "[policy]"
    key = ".".join(str(part) for part in location) or "(table)"
    if error["type"] == "extra_forbidden":
        return f"{where}: {section} {key}: unknown key; valid keys are {_key_names()}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {section} {key}: {message}; fix the value"


def validate_policy(data: Any, *, where: str) -> PolicyConfig:
    """Validate a policy mapping (``retention`` nested) into a PolicyConfig.

    Raises:
        InputError: a key is unknown or a value is invalid; the message names
            ``where``, the table and the key, and nothing is written.
    """
    if not isinstance(data, dict):
        raise InputError(f"{where}: the policy must be a table of keys")
    try:
        return PolicyConfig.model_validate(data)
    except CanonicalJSONError as error:
        raise InputError(
            f"{where}: [policy] {error.path}: {error.detail}",
            reason="invalid-policy",
        ) from None
    except ValidationError as error:
        problems = [_describe(item, where) for item in error.errors()]
        message = problems[0]
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problem(s))"
        raise InputError(message, reason="invalid-policy") from None


def _check_top_level(document: dict[str, Any], path: Path) -> None:
    """Reject top-level keys of a policy file other than the known tables.

    Without this, ``min_alpha = 0.8`` written above any table header would
    be ignored silently and the policy appended with min_alpha at its default.

    Raises:
        InputError: a key is not one of ``CONFIG_TABLES``; the message names
            the key and the table it belongs in.
    """
    tables = " and ".join(f"[{name}]" for name in CONFIG_TABLES)
    for key, value in document.items():
        if key in CONFIG_TABLES:
            continue
        if isinstance(value, dict):
            raise InputError(
                f"{path}: unknown table [{key}]; govledger.toml contains only "
                f"{tables}, so remove [{key}] or move its keys into one of them",
                reason="invalid-policy",
            )
        if key in PolicyConfig.model_fields and key != "retention":
            where = f"under the [policy] table header (write [policy] above {key})"
        elif key in RetentionConfig.model_fields:
            where = f"under the [retention] table header (years for {key} entries)"
        else:
            where = f"in [policy] or [retention]; valid keys are {_key_names()}"
        raise InputError(
            f"{path}: top-level key {key!r} is outside any table; it belongs {where}",
            reason="invalid-policy",
        )


def load_policy_file(path: Path) -> PolicyConfig:
    """Read ``[policy]`` and ``[retention]`` from a TOML file (tomllib).

    Keys absent from the file take their defaults. Any other top-level key
    or table is rejected (``CONFIG_TABLES``), because a key above the
    ``[policy]`` header would otherwise be dropped without a word.

    Raises:
        InputError: the file is missing or not TOML, has a top-level key
            other than those tables, or the tables contain an unknown key or
            an invalid value.
    """
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise InputError(
            f"{path} not found; give the TOML file with [policy] and [retention]",
            reason="invalid-policy",
        ) from None
    except OSError as error:
        raise InputError(
            f"cannot read {path}: {error.strerror}", reason="invalid-policy"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise InputError(
            f"{path} is not valid TOML: {error}", reason="invalid-policy"
        ) from None
    _check_top_level(document, path)
    policy = document.get("policy", {})
    retention = document.get("retention", {})
    if not isinstance(policy, dict) or not isinstance(retention, dict):
        raise InputError(
            f"{path}: policy and retention must be TOML tables ([policy], [retention])",
            reason="invalid-policy",
        )
    if "retention" in policy:
        raise InputError(
            f"{path}: [policy] retention: give retention years in a "
            "[retention] table, not inside [policy]",
            reason="invalid-policy",
        )
    return validate_policy({**policy, "retention": retention}, where=str(path))


def set_policy_value(current: PolicyConfig, key: str, raw: str) -> PolicyConfig:
    """Return ``current`` with one key changed; ``raw`` is JSON or plain text.

    ``key`` is a policy key (``review_deadline_hours``, also written
    ``policy.review_deadline_hours``) or ``retention.KIND``. ``raw`` is
    parsed as JSON (``0.8``, ``["deny"]``); text that is not JSON is taken
    as a string (``previous-period``).

    Raises:
        InputError: the key is unknown or the value invalid.
    """
    try:
        value = parse_json(raw)
    except CanonicalJSONError:
        value = raw
    data = current.to_record()
    name = key.removeprefix("policy.")
    if name.startswith("retention."):
        kind = name.removeprefix("retention.")
        if kind not in RetentionConfig.model_fields:
            raise InputError(
                f"{key}: unknown key; valid keys are {_key_names()}",
                reason="invalid-policy",
            )
        data["retention"] = {**data["retention"], kind: value}
    elif name in PolicyConfig.model_fields and name != "retention":
        data[name] = value
    else:
        raise InputError(
            f"{key}: unknown key; valid keys are {_key_names()}",
            reason="invalid-policy",
        )
    return validate_policy(data, where=f"policies set {key}")


def _changed_keys(old: PolicyConfig, new: PolicyConfig) -> list[str]:
    before, after = old.to_record(), new.to_record()
    changed = [
        name
        for name in after
        if name != "retention"
        and canonical_bytes(after[name]) != canonical_bytes(before[name])
    ]
    changed += [
        f"retention.{kind}"
        for kind in after["retention"]
        if after["retention"][kind] != before["retention"][kind]
    ]
    return changed


def policy_in_force(
    ledger: Ledger, *, at: str | None = None, tree_size: int | None = None
) -> tuple[PolicyConfig, int | None]:
    """Return the policy in force at ``at`` and the seq of the entry that set it.

    The policy in force is the latest ``policy_config`` entry recorded at or
    before ``at`` among the first ``tree_size`` entries. ``at`` is RFC 3339
    UTC text like ``recorded_at``, and None means now. Without such an
    entry the defaults are in force and the seq is None.

    Raises:
        PolicyError: that entry does not hold a valid policy.
    """
    statement = (
        select(EntryRow.seq, EntryRow.body, EntryRow.entry_hash)
        .where(EntryRow.kind == "policy_config")
        .order_by(EntryRow.seq.desc())
        .limit(1)
    )
    if at is not None:
        statement = statement.where(EntryRow.recorded_at <= at)
    if tree_size is not None:
        statement = statement.where(EntryRow.seq < tree_size)
    with ledger.engine.connect() as connection:
        row = connection.execute(statement).one_or_none()
    if row is None:
        return PolicyConfig(), None
    seq, body, stored_hash = row
    record = parse_entry(bytes(body), stored_hash).record
    try:
        return validate_policy(record.get("policy"), where=f"entry {seq}"), seq
    except InputError as error:
        raise PolicyError(
            f"policy_config entry seq {seq} does not contain a valid policy ({error}); "
            "append a valid one with `govledger policies apply FILE`",
            reason="invalid-policy-entry",
        ) from None


def record_policy(
    ledger: Ledger,
    new: PolicyConfig,
    *,
    actor: str,
    source: str,
    occurred_at: str | None = None,
) -> dict[str, Any] | None:
    """Append a ``policy_config`` entry for ``new`` unless it is already in force.

    The entry contains the complete policy, the keys that changed and where
    the change came from (``source``), so each entry reads on its own. Returns
    the receipt, or None when nothing changed and nothing was appended.

    Raises:
        InputError: ``actor`` is not ``user:ID`` or ``svc:ID``, or
            ``occurred_at`` is not RFC 3339 with a time zone.
        PolicyError: the policy now in force cannot be read.
    """
    if not actor.startswith(("user:", "svc:")) or len(actor.split(":", 1)[1]) == 0:
        raise InputError(
            f"actor {actor!r} must be user:ID or svc:ID; give --actor",
            reason="invalid-actor",
        )
    if occurred_at is None:
        occurred_at = format_timestamp(datetime.now(UTC))
    else:
        try:
            parse_occurred_at(occurred_at)
        except ValueError as error:
            raise InputError(
                f"occurred_at {occurred_at!r}: {error}", reason="invalid-time"
            ) from None
    current, seq = policy_in_force(ledger)
    changed = _changed_keys(current, new)
    if seq is not None and not changed:
        logger.info("policy unchanged since seq %d; nothing appended", seq)
        return None
    body = {
        "actor": actor,
        "occurred_at": occurred_at,
        "policy": new.to_record(),
        "changed": changed,
        "source": source,
    }
    receipt = ledger.append_ledger_record("policy_config", body)
    logger.info("policy_config seq %d changed %s", receipt["seq"], changed)
    return receipt


def apply_policy_file(
    ledger: Ledger, path: Path, *, actor: str
) -> tuple[dict[str, Any] | None, PolicyConfig]:
    """Load a policy file and append it as a ``policy_config`` entry.

    Returns the receipt (None when the file states the policy in force) and
    the loaded policy.

    Raises:
        InputError: the file or ``actor`` is invalid; nothing was written.
    """
    policy = load_policy_file(path)
    receipt = record_policy(ledger, policy, actor=actor, source=f"file {path.name}")
    return receipt, policy
