"""Input record validation and the all-or-nothing batch append."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from ledger import Ledger, LedgerConfig, RecordError
from ledger.canonical import parse_json

DECISION = {
    "kind": "decision",
    "actor": "svc:credit-model",
    "occurred_at": "2026-01-01T10:00:00Z",
    "item": {"dataset": "applications", "id": "app-1"},
    "model": {"name": "credit-risk", "version": "4.2.0"},
    "output": "approve",
    "confidence": 0.91,
}


def decision(**changes: object) -> dict:
    record = copy.deepcopy(DECISION)
    record.update(changes)
    return record


@pytest.fixture
def ledger(db_url: str, key_dir: Path) -> Ledger:
    with Ledger.create(
        db_url, origin="test.example/ledger", config=LedgerConfig(key_dir=key_dir)
    ) as opened:
        yield opened


def _rejection(ledger: Ledger, record: object) -> RecordError:
    head = ledger.head()
    with pytest.raises(RecordError) as error:
        ledger.append(record)
    assert ledger.head() == head, "a rejected record changed the ledger"
    return error.value


def test_valid_decision_appends(ledger: Ledger) -> None:
    receipt = ledger.append(decision())
    assert receipt["seq"] == 0
    entry = ledger.get(0)
    assert entry.kind == "decision"
    assert "kind" not in entry.record
    assert entry.record["confidence"] == 0.91


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"occurred_at": "2026-01-01T10:00:00"}, "occurred_at", "time zone"),
        ({"occurred_at": "yesterday"}, "occurred_at", "RFC 3339"),
        ({"confidnce": 0.9}, "confidnce", "unknown field"),
        ({"confidence": 1.0000001}, "confidence", "less than or equal to 1"),
        ({"confidence": -0.1}, "confidence", "greater than or equal to 0"),
        ({"confidence": "0.9"}, "confidence", "number"),
        ({"actor": "alice"}, "actor", "user:<id>"),
        ({"actor": "user:a\u0000b"}, "actor", "U+0000"),
        ({"actor": "user:bob\u200b"}, "actor", "U+200B"),
        ({"actor": "user:bob "}, "actor", "white space"),
        (
            {"occurred_at": "0001-01-01T00:00:00+01:00"},
            "occurred_at",
            "years 1 to 9999",
        ),
        ({"kind": "opinion"}, "kind", "annotation, review, decision"),
        ({"output": {"count": 9007199254740993}}, "output.count", "2^53"),
        ({"output": "\ud800"}, "output", "surrogate"),
        ({"model": {"name": "m"}}, "model.version", "missing"),
        ({"label": "x"}, "label", "unknown field"),
    ],
)
def test_invalid_record_rejected_naming_field(
    ledger: Ledger, changes: dict, field: str, words: str
) -> None:
    error = _rejection(ledger, decision(**changes))
    fields = [problem["field"] for problem in error.errors]
    assert field in fields
    assert words in str(error)


def test_missing_confidence_rejected(ledger: Ledger) -> None:
    record = decision()
    del record["confidence"]
    error = _rejection(ledger, record)
    assert error.errors[0]["field"] == "confidence"


def test_nan_confidence_from_json_text_rejected(ledger: Ledger) -> None:
    # NaN can only arrive as a float after lenient parsing; the record check
    # rejects it even when the parser let it through.
    error = _rejection(ledger, decision(confidence=float("nan")))
    assert error.errors[0]["field"] == "confidence"


def test_review_needs_exactly_one_target(ledger: Ledger) -> None:
    review = {
        "kind": "review",
        "actor": "user:reviewer-1",
        "occurred_at": "2026-01-01T11:00:00+01:00",
        "target": {"seq": 0, "entry_hash": "0" * 64},
        "verdict": "accept",
    }
    error = _rejection(ledger, review)
    assert error.errors[0]["field"] == "target"


def test_batch_with_one_bad_record_writes_nothing(ledger: Ledger) -> None:
    records = [decision(item={"dataset": "d", "id": str(i)}) for i in range(1000)]
    records[417]["confidence"] = 2
    head = ledger.head()
    with pytest.raises(RecordError) as error:
        ledger.append_many(records)
    assert error.value.index == 417
    assert "record 417" in str(error.value)
    assert "confidence" in str(error.value)
    assert ledger.head() == head


def test_personal_values_stay_out_of_entry(ledger: Ledger) -> None:
    record = decision(subject="subj-7", personal={"email": "jane@example.org"})
    ledger.append(record)
    entry = ledger.get(0)
    commitment = entry.record["personal"]["email"]
    assert len(commitment) == 64
    assert b"jane@example.org" not in entry.body


def test_duplicate_keys_rejected_before_validation() -> None:
    with pytest.raises(Exception) as error:
        parse_json('{"actor": "user:a", "actor": "user:b"}')
    assert "duplicate key 'actor'" in str(error.value)


def test_review_of_seq_beyond_32_bits_is_stored(ledger: Ledger) -> None:
    # PostgreSQL INTEGER stops at 2^31 - 1; seq columns are BIGINT.
    ledger.append(decision())
    review = {
        "kind": "review",
        "actor": "user:reviewer-1",
        "occurred_at": "2026-01-01T11:00:00Z",
        "target": {"seq": 2**40},
        "verdict": "accept",
    }
    with pytest.raises(RecordError) as error:
        ledger.append(review)
    assert "target" in str(error.value)
