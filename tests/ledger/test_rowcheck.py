"""Differential tests of the compiled range check, ``ledger._rowcheck``.

The reference is the walk in ledger/verify.py (``_ChainChecker.check``).
The compiled ``check_rows`` may leave any row to the Python check, but
every row that it vouches for must pass the walk, and a range that
``verify_rows.check_rows`` passes must pass the walk row by row. The rows
here are canonical entries and mutants of them: changed bytes, duplicate
or reordered keys, escapes, rewritten numbers, other member types and
changed derived columns. Each mutant's stored hash is recomputed over its
body, as an attacker who edits the table would do.

The module is skipped when ``ledger._rowcheck`` is not built, unless
GOVLEDGER_REQUIRE_ACCELERATOR is set, in which case every test fails.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ledger.verify_rows as verify_rows
from ledger.canonical import canonical_bytes
from ledger.entries import DERIVED_COLUMNS, GENESIS_PREV, derived_values, normalize_time
from ledger.errors import CanonicalJSONError
from ledger.verify import _ChainChecker, _Stop

try:
    from ledger import _rowcheck
except ImportError as error:
    if "GOVLEDGER_REQUIRE_ACCELERATOR" not in os.environ:
        pytest.skip(f"ledger._rowcheck is not built ({error})", allow_module_level=True)
    _rowcheck = None
    _IMPORT_ERROR: ImportError | None = error
else:
    _IMPORT_ERROR = None

REPOSITORY = Path(__file__).resolve().parents[2]
RECORDED_AT = "2026-03-01T12:00:00.000000Z"
ROW_WIDTH = 3 + len(DERIVED_COLUMNS)


@pytest.fixture(autouse=True)
def _accelerator_built() -> None:
    if _IMPORT_ERROR is not None:
        pytest.fail(
            "GOVLEDGER_REQUIRE_ACCELERATOR is set but ledger._rowcheck failed to "
            f"import ({_IMPORT_ERROR}); rebuild with `pip install -e .` and check "
            "that a C compiler, the Python headers and libssl-dev are installed"
        )


# The reference: the walk, one row at a time.


def walk_passes(row: tuple[Any, ...], prev: Any, *, seq: int) -> bool:
    """Return whether the walk passes ``row`` when it expects ``seq`` and ``prev``.

    A stored hash that differs from the body's hash is left pending by
    ``check`` and reported at the next row or the head, so it counts as a
    failure here. verify turns TypeError, ValueError and AttributeError
    raised by ``check`` into a fault too.
    """
    checker = _ChainChecker()
    checker.expected_seq = seq
    checker.prev_hash = prev
    try:
        checker.check(row[0], row[1], row[2], tuple(row[3:]))
    except _Stop:
        return False
    except (TypeError, ValueError, AttributeError):
        return False
    return checker.pending is None


def _hash_hex(body: bytes) -> str:
    return hashlib.sha256(b"\x00" + body).hexdigest()


def _digest(body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + body).digest()


def _columns(kind: str, recorded_at: str, record: dict[str, Any]) -> tuple[Any, ...]:
    return derived_values(kind, recorded_at, record)


def _row(seq: Any, body: bytes, columns: tuple[Any, ...]) -> tuple[Any, ...]:
    return (seq, _hash_hex(body), body, *columns)


def _can_decide(start: int, rows: list[Any]) -> bool:
    """Return whether every row meets the conditions for a non-None result."""
    for index, row in enumerate(rows):
        if type(row) is not tuple or len(row) != ROW_WIDTH:
            return False
        if type(row[0]) is not int or row[0] != start + index:
            return False
        if type(row[2]) is not bytes or type(row[1]) is not str:
            return False
        if row[1] != _hash_hex(row[2]):
            return False
    return True


@dataclass
class Tally:
    """Counts over many checked ranges, so tests can assert their coverage."""

    ranges: int = 0
    rows: int = 0
    vouched: int = 0
    walk_failures_left: int = 0
    range_passes: int = 0
    vouched_changed: int = 0


def assert_vouched_rows_pass(
    start: int, rows: list[tuple[Any, ...]], result: Any, tally: Tally | None = None
) -> None:
    """Check one result of ``_rowcheck.check_rows`` against the walk."""
    assert result is None or type(result) is tuple
    if result is None:
        assert not _can_decide(start, rows), "decidable rows returned None"
        return
    assert _can_decide(start, rows), "undecidable rows returned a result"
    leaves, undecided, first_prev = result
    assert type(leaves) is bytes
    assert leaves == b"".join(_digest(row[2]) for row in rows)
    assert type(undecided) is list
    assert undecided == sorted(set(undecided))
    assert all(0 <= index < len(rows) for index in undecided)
    if 0 in undecided:
        assert first_prev is None
    else:
        assert type(first_prev) is str
    for index, row in enumerate(rows):
        prev = first_prev if index == 0 else rows[index - 1][1]
        if index in undecided:
            if tally is not None and not walk_passes(row, prev, seq=start + index):
                tally.walk_failures_left += 1
            continue
        assert walk_passes(row, prev, seq=start + index), (
            f"the compiled check vouched for row {index} of a range at {start}, "
            f"which the walk fails: {row!r}"
        )
    if tally is not None:
        tally.vouched += len(rows) - len(undecided)


def _range_check(start: int, rows: list[tuple[Any, ...]]) -> Any:
    # check_range treats these errors as a failed range, so they count as one.
    try:
        return verify_rows.check_rows(start, start + len(rows), rows)
    except (TypeError, ValueError):
        return None


def _python_range_check(start: int, rows: list[tuple[Any, ...]]) -> Any:
    try:
        return verify_rows._check_rows_in_python(start, start + len(rows), rows)
    except (TypeError, ValueError):
        return None


def assert_range_check_sound(
    start: int, rows: list[tuple[Any, ...]], tally: Tally | None = None
) -> None:
    """Check the compiled result and the whole range check against the walk."""
    assert verify_rows._rowcheck is _rowcheck
    assert_vouched_rows_pass(start, rows, _rowcheck.check_rows(start, rows), tally)

    outcome = _range_check(start, rows)
    passed = outcome is not None and outcome[0].passed
    python_outcome = _python_range_check(start, rows)
    if python_outcome is not None and python_outcome[0].passed:
        # Rows that the compiled check leaves undecided get the Python check,
        # so the fast path passes everything the Python path passes.
        assert passed, "the Python range check passes a range the fast path fails"

    if tally is not None:
        tally.ranges += 1
        tally.rows += len(rows)
        tally.range_passes += passed
    if not passed:
        return

    report, leaves = outcome
    assert leaves == b"".join(_digest(row[2]) for row in rows)
    assert report.last_hash == rows[-1][1]
    prev = report.first_prev
    for index, row in enumerate(rows):
        assert walk_passes(row, prev, seq=start + index), (
            f"check_rows passed a range at {start} whose row {index} fails "
            f"the walk: {row!r}"
        )
        prev = row[1]


def _text_members(entry: dict[str, Any]) -> list[Any]:
    """Return the record members that derive the optional text columns."""
    record = entry.get("record")
    record = record if type(record) is dict else {}
    values = [record.get("actor"), record.get("subject")]
    for name, members in TEXT_MEMBERS.items():
        value = record.get(name)
        if type(value) is dict:
            values += [value.get(member) for member in members]
    return values


TEXT_MEMBERS = {
    "model": ("name", "version"),
    "target": ("entry_hash",),
    "item": ("dataset", "id"),
    "source": ("system", "ref"),
}


# A JSON tree that keeps what a dict loses: duplicate keys, member order,
# number tokens and raw key text.


@dataclass
class Token:
    """A value written as these bytes: a number, a literal or anything invalid."""

    text: bytes


@dataclass
class Members:
    """An object as its members in order. A key is a str or its raw bytes."""

    pairs: list[list[Any]]


def parse_tree(body: bytes) -> Any:
    return json.loads(
        body,
        object_pairs_hook=lambda pairs: Members([list(pair) for pair in pairs]),
        parse_int=lambda text: Token(text.encode()),
        parse_float=lambda text: Token(text.encode()),
        parse_constant=lambda text: Token(text.encode()),
    )


def _string_bytes(text: str) -> bytes:
    # Lone surrogates become their three-byte forms, which are invalid UTF-8.
    quoted = json.dumps(text, ensure_ascii=False)
    return quoted.encode("utf-8", errors="surrogatepass")


def emit(value: Any, space: Callable[[], bytes] = lambda: b"") -> bytes:
    """Write a tree as JSON, with the bytes that ``space`` returns between tokens."""
    if isinstance(value, Token):
        return value.text
    if isinstance(value, Members):
        parts = []
        for key, item in value.pairs:
            key_text = key if isinstance(key, bytes) else _string_bytes(key)
            parts.append(key_text + space() + b":" + space() + emit(item, space))
        return b"{" + space() + (b"," + space()).join(parts) + space() + b"}"
    if isinstance(value, list):
        parts = [emit(item, space) for item in value]
        return b"[" + space() + (b"," + space()).join(parts) + space() + b"]"
    if value is True:
        return b"true"
    if value is False:
        return b"false"
    if value is None:
        return b"null"
    if isinstance(value, str):
        return _string_bytes(value)
    raise TypeError(f"not a tree value: {value!r}")


def _entry_dict(
    record: dict[str, Any],
    *,
    seq: int,
    prev: str = GENESIS_PREV,
    kind: str = "decision",
    recorded_at: str = RECORDED_AT,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "prev": prev,
        "record": record,
        "recorded_at": recorded_at,
        "seq": seq,
        "v": 1,
    }


def _walk_view(body: bytes) -> tuple[Any, ...] | None:
    """Return the columns the walk derives from ``body``, or None if it cannot."""
    try:
        entry = orjson.loads(body)
        return _columns(entry["kind"], entry["recorded_at"], entry["record"])
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None


def _naive_view(body: bytes, *, first_wins: bool) -> tuple[Any, ...] | None:
    """Return the columns a laxer parser would derive: a plausible misreading.

    Python's json reads 1e400 as inf, keeps integers of any size and lone
    surrogate escapes, and here optionally keeps the first duplicate key.
    """

    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        members: dict[str, Any] = {}
        for key, value in pairs:
            if not first_wins or key not in members:
                members[key] = value
        return members

    try:
        text = body.decode("utf-8", errors="surrogateescape")
        entry = json.loads(text, object_pairs_hook=build)
        return _columns(entry["kind"], entry["recorded_at"], entry["record"])
    except (
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        RecursionError,
        OverflowError,
    ):
        return None


# Values and tokens that mutations write.

NUMBER_TOKENS = [
    b"0",
    b"-0",
    b"-0.0",
    b"1",
    b"2.0",
    b"1E2",
    b"1e2",
    b"1e+2",
    b"1e-2",
    b"1e99",
    b"1e400",
    b"-1e400",
    b"1e-400",
    b"0.1e1",
    b"5e-324",
    b"1.7976931348623157e308",
    b"9007199254740993",
    b"999999999999999999",
    b"-999999999999999999",
    b"9999999999999999999",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-9223372036854775808",
    b"-9223372036854775809",
    b"99999999999999999999999",
    b"123456789012345678901234",
    b"1234567890123456789012345",
    b"1" + b"0" * 400,
    b"0.91",
    b"0.910",
    b"91e-2",
    b"true",
    b"false",
    b"null",
    b'"1"',
    b"[]",
    b"{}",
    b"01",
    b"1.",
    b".5",
    b"+1",
    b"-",
    b"1e",
    b"NaN",
    b"Infinity",
    b"0x10",
    b"1_0",
]

TEXT_VALUES = [
    "",
    "svc:credit-model",
    "svc:other",
    "é",
    "日本",
    "\U0001f600",
    "tab\there",
    'quote"inside',
    "back\\slash",
    "slash/",
    "\x7f",
    "\x00",
    "\u2028",
    "\ufffe",
    "\ud800",
    "\udfff",
    "2026-03-01T11:59:00Z",
    "2026-03-01T11:59:00z",
    "2026-03-01T11:59:00.5Z",
    "2026-03-01T12:59:00+01:00",
    "2026-13-45T99:99:99Z",
    "2026-03-01T1\xe9:00:0Z",
    "2026-03-01T1\xe9:00:00Z",
    "9999-12-31T23:59:59Z",
]

RAW_STRINGS = [
    b'"a\\u0062c"',
    b'"\\ud800"',
    b'"\\ud83d\\ude00"',
    b'"\\udc00\\ud800"',
    b'"\\u0000"',
    b'"a\\/b"',
    b'"a\\qb"',
    b'"a\\',
    b'"\xff"',
    b'"\xc0\xaf"',
    b'"\xed\xa0\x80"',
    b'"\xf4\x90\x80\x80"',
    b'"\xf0\x9f\x98\x80"',
    b'"\xe2\x82"',
    b'"a\x00b"',
    b'"a\nb"',
    b'"a\x1fb"',
]

KEY_NAMES = [
    "actor",
    "confidence",
    "item",
    "model",
    "occurred_at",
    "source",
    "subject",
    "target",
    "dataset",
    "entry_hash",
    "id",
    "name",
    "ref",
    "seq",
    "system",
    "version",
    "kind",
    "prev",
    "record",
    "recorded_at",
    "v",
    "output",
    "Actor",
    "actor\x00",
    "act",
    "actorz",
    "é",
]

INTERESTING_BYTES = b' \t\n\r\x00",:{}[]\\/0123456789-+.eEtfn\x7f\x80\xc3\xed\xf4\xff'


def _random_text_value(rng: random.Random) -> Any:
    if rng.random() < 0.3:
        return Token(rng.choice(RAW_STRINGS))
    return rng.choice(TEXT_VALUES)


def _nested(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = [value]
    return value


def _random_value(rng: random.Random) -> Any:
    choice = rng.randrange(8)
    if choice == 0:
        return Token(rng.choice(NUMBER_TOKENS))
    if choice == 1:
        return _random_text_value(rng)
    if choice == 2:
        return rng.choice([True, False, None])
    if choice == 3:
        return Members([[rng.choice(KEY_NAMES), _random_text_value(rng)]])
    if choice == 4:
        return [Token(rng.choice(NUMBER_TOKENS)), rng.choice(TEXT_VALUES)]
    if choice == 5:
        return _nested(Token(b"1"), rng.choice([1, 60, 61, 62, 63, 64, 200]))
    if choice == 6:
        return Members([])
    return Members(
        [[name, _random_text_value(rng)] for name in ("name", "seq", "version")]
    )


def _all_members(tree: Any) -> list[Members]:
    found = []
    stack = [tree]
    while stack:
        value = stack.pop()
        if isinstance(value, Members):
            found.append(value)
            stack.extend(item for _key, item in value.pairs)
        elif isinstance(value, list):
            stack.extend(value)
    return found


def _all_slots(tree: Any) -> list[tuple[Any, int]]:
    """Return (container, index) for every value below the root."""
    slots = []
    stack = [tree]
    while stack:
        value = stack.pop()
        if isinstance(value, Members):
            for index, (_key, item) in enumerate(value.pairs):
                slots.append((value, index))
                stack.append(item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                slots.append((value, index))
                stack.append(item)
    return slots


def _set_slot(container: Any, index: int, value: Any) -> None:
    if isinstance(container, Members):
        container.pairs[index][1] = value
    else:
        container[index] = value


def _get_slot(container: Any, index: int) -> Any:
    if isinstance(container, Members):
        return container.pairs[index][1]
    return container[index]


def _escaped_key(key: str, rng: random.Random) -> bytes:
    """Write ``key`` with one character as a \\u escape, or \\/ for a slash."""
    if not key:
        return b'""'
    position = rng.randrange(len(key))
    character = key[position]
    if character == "/":
        escape = "\\/"
    else:
        escape = f"\\u{ord(character):04x}" if ord(character) < 0x10000 else character
        if rng.random() < 0.5:
            escape = escape.upper().replace("\\U", "\\u")
    text = json.dumps(key[:position], ensure_ascii=False)[1:-1]
    rest = json.dumps(key[position + 1 :], ensure_ascii=False)[1:-1]
    return ('"' + text + escape + rest + '"').encode("utf-8", "surrogatepass")


def mutate_tree(tree: Any, rng: random.Random) -> None:
    """Apply one structural mutation to ``tree`` in place."""
    objects = _all_members(tree)
    slots = _all_slots(tree)
    target = rng.choice(objects)
    choice = rng.randrange(9)
    if choice == 0 and target.pairs:
        # A duplicate key, before or after the original, with the same or
        # another value.
        index = rng.randrange(len(target.pairs))
        key, value = target.pairs[index]
        # The copy may share subtrees with the original, which is harmless
        # because the tree is written out as it is.
        copy_value = value if rng.random() < 0.3 else _random_value(rng)
        position = index + 1 if rng.random() < 0.5 else index
        target.pairs.insert(position, [key, copy_value])
    elif choice == 1 and len(target.pairs) > 1:
        first, second = rng.sample(range(len(target.pairs)), 2)
        pairs = target.pairs
        pairs[first], pairs[second] = pairs[second], pairs[first]
    elif choice == 2 and slots:
        container, index = rng.choice(slots)
        _set_slot(container, index, Token(rng.choice(NUMBER_TOKENS)))
    elif choice == 3 and slots:
        container, index = rng.choice(slots)
        _set_slot(container, index, _random_value(rng))
    elif choice == 4 and target.pairs:
        index = rng.randrange(len(target.pairs))
        key = target.pairs[index][0]
        if isinstance(key, str):
            target.pairs[index][0] = _escaped_key(key, rng)
    elif choice == 5 and target.pairs:
        del target.pairs[rng.randrange(len(target.pairs))]
    elif choice == 6:
        position = rng.randrange(len(target.pairs) + 1)
        target.pairs.insert(position, [rng.choice(KEY_NAMES), _random_value(rng)])
    elif choice == 7 and slots:
        container, index = rng.choice(slots)
        depth = rng.choice([1, 2, 30, 60, 61, 62, 63, 64, 65])
        _set_slot(container, index, _nested(_get_slot(container, index), depth))
    elif slots:
        container, index = rng.choice(slots)
        value = _get_slot(container, index)
        if isinstance(value, str):
            _set_slot(container, index, Token(_escaped_key(value, rng)))
        else:
            _set_slot(container, index, _random_text_value(rng))


def mutate_bytes(body: bytes, rng: random.Random) -> bytes:
    """Apply one byte-level mutation.

    The mutation is a replaced, inserted or deleted byte, a deleted span, an
    appended suffix, a changed digit or a truncation.
    """
    if not body:
        return bytes([rng.choice(INTERESTING_BYTES)])
    position = rng.randrange(len(body))
    choice = rng.randrange(7)
    if choice == 0:
        return body[:position] + bytes([rng.randrange(256)]) + body[position + 1 :]
    if choice == 1:
        replacement = bytes([rng.choice(INTERESTING_BYTES)])
        return body[:position] + replacement + body[position + 1 :]
    if choice == 2:
        inserted = bytes([rng.choice(INTERESTING_BYTES)])
        return body[:position] + inserted + body[position:]
    if choice == 3:
        end = min(len(body), position + rng.randint(1, 8))
        return body[:position] + body[end:]
    if choice == 4:
        return body + rng.choice([b" ", b"\n", b"\x00", b"x", b"{}", b",", b"\xff"])
    if choice == 5:
        # Bump a digit: seq, v, target.seq, a confidence digit or a hash digit.
        digits = [index for index, byte in enumerate(body) if 0x30 <= byte <= 0x39]
        if not digits:
            return body
        index = rng.choice(digits)
        digit = bytes([0x30 + (body[index] - 0x30 + rng.randint(1, 9)) % 10])
        return body[:index] + digit + body[index + 1 :]
    return body[:position]


_ALTERNATIVES: list[Any] = [
    None,
    "",
    "svc:other",
    "\ud800",
    "svc:credit-model\ud800",
    b"svc:credit-model",
    0,
    1,
    -1,
    2**64,
    0.0,
    -0.0,
    1.0,
    0.91,
    math.inf,
    math.nan,
    True,
    False,
    "2026-03-01T11:59:00.000000Z",
]


class _Text(str):
    pass


class _Float(float):
    pass


class _Int(int):
    pass


def _other_type(value: Any, rng: random.Random) -> Any:
    """Return an equal or similar value of another Python type."""
    if type(value) is str:
        return rng.choice(
            [value.encode("utf-8", "surrogatepass"), _Text(value), value + "\ud800"]
        )
    if type(value) is float:
        if value.is_integer():
            return rng.choice([int(value), _Float(value), str(value)])
        return rng.choice([_Float(value), str(value), math.nextafter(value, 2.0)])
    if type(value) is int:
        return rng.choice([float(value), _Int(value), value == 1, str(value)])
    return rng.choice(["", 0, 0.0, False, b""])


def mutate_columns(columns: tuple[Any, ...], rng: random.Random) -> tuple[Any, ...]:
    changed = list(columns)
    index = rng.randrange(len(changed))
    value = changed[index]
    if type(value) is str and rng.random() < 0.3:
        # The text as the body spells it, escapes and all.
        changed[index] = json.dumps(value, ensure_ascii=False)[1:-1]
    elif rng.random() < 0.5:
        changed[index] = rng.choice(_ALTERNATIVES)
    else:
        changed[index] = _other_type(value, rng)
    return tuple(changed)


def _driver_type(value: Any) -> bool:
    """Return whether sqlite3 or psycopg could return ``value`` for a column."""
    return value is None or type(value) in (str, int, float, bytes)


def _candidate_columns(
    body: bytes, original: tuple[Any, ...], rng: random.Random
) -> tuple[Any, ...]:
    """Pick the stored columns for a mutated body, as an attacker might."""
    views = [original]
    for view in (
        _walk_view(body),
        _naive_view(body, first_wins=True),
        _naive_view(body, first_wins=False),
    ):
        if view is not None and all(_driver_type(value) for value in view):
            views.append(view)
    columns = rng.choice(views)
    if rng.random() < 0.2:
        columns = mutate_columns(columns, rng)
    return columns


# Base records.

_HEX = "0123456789abcdef"


def _random_record(rng: random.Random, *, plain: bool = False) -> dict[str, Any]:
    """Return a record like those services append.

    With ``plain`` every string needs no escape and every time is in the
    form 2026-03-01T12:00:00Z, so the compiled check can read all of it.
    """
    texts = ["svc:credit-model", "approve", "é", "日本語", "\U0001f600", "a/b", ""]
    if not plain:
        texts += ['say "hi"', "back\\slash", "line\nbreak", "\x01", "\u2028"]
    times = ["2026-03-01T11:59:00Z", "1999-12-31T23:59:59Z"]
    if not plain:
        times += ["2026-03-01T11:59:00.250Z", "2026-03-01T12:59:00+01:00", "junk"]
    record: dict[str, Any] = {}
    if rng.random() < 0.9:
        record["actor"] = rng.choice(texts)
    if rng.random() < 0.5:
        record["subject"] = rng.choice([rng.choice(texts), {"id": "patient-7"}, None])
    if rng.random() < 0.8:
        record["occurred_at"] = rng.choice(times)
    if rng.random() < 0.8:
        # Numbers that canonical JSON writes with an exponent (1e-7, 1.5e21)
        # are left to the Python check.
        choices = [rng.random(), 0.91, 1, 0, -2, 123456.789, True, None, "0.9"]
        if not plain:
            choices += [1e-7, 1.5e21]
        record["confidence"] = rng.choice(choices)
    if rng.random() < 0.7:
        record["model"] = {"name": rng.choice(texts), "version": "4.2.0"}
        if rng.random() < 0.3:
            record["model"]["extra"] = [1, {"x": "y"}]
    if rng.random() < 0.5:
        record["target"] = {
            "seq": rng.choice([0, 4, 12345, -3] + ([] if plain else [2**53 - 1])),
            "entry_hash": "".join(rng.choice(_HEX) for _ in range(64)),
        }
    if rng.random() < 0.6:
        record["item"] = {"dataset": "applications", "id": f"app-{rng.randrange(99)}"}
    if rng.random() < 0.4:
        record["source"] = {"system": "label-studio", "ref": rng.choice(texts)}
    if rng.random() < 0.6:
        record["output"] = rng.choice(
            ["approve", {"score": 0.5, "flags": [True, None, "x"]}, [1, 2.5, "z"], 7]
        )
    if not plain and rng.random() < 0.3:
        record[rng.choice(["zz", "é", "\U0001f600", "a\tb"])] = rng.choice(texts)
    return record


def _build_chain(
    start: int, records: list[dict[str, Any]], first_prev: str = GENESIS_PREV
) -> list[tuple[Any, ...]]:
    rows = []
    prev = first_prev
    for offset, record in enumerate(records):
        body = canonical_bytes(_entry_dict(record, seq=start + offset, prev=prev))
        row = _row(start + offset, body, _columns("decision", RECORDED_AT, record))
        rows.append(row)
        prev = row[1]
    return rows


def _relink(rows: list[tuple[Any, ...]], index: int) -> list[tuple[Any, ...]]:
    """Rewrite the prev of the rows after ``index``, as an attacker would.

    Relinking stops at a row whose body cannot be read back as canonical JSON.
    """
    rows = list(rows)
    for later in range(index + 1, len(rows)):
        seq, _hash, body, *columns = rows[later]
        try:
            entry = orjson.loads(body)
            entry["prev"] = rows[later - 1][1]
            new_body = canonical_bytes(entry)
        except (
            orjson.JSONDecodeError,
            CanonicalJSONError,
            TypeError,
            KeyError,
            RecursionError,
        ):
            break
        rows[later] = _row(seq, new_body, tuple(columns))
    return rows


def mutate_range(
    start: int, rows: list[tuple[Any, ...]], rng: random.Random
) -> list[tuple[Any, ...]]:
    """Mutate one row of a range, recompute its hash and maybe relink the rest."""
    index = rng.randrange(len(rows))
    seq, _hash, body, *columns = rows[index]
    expected = start + index
    original = tuple(columns)

    strategy = rng.randrange(10)
    if strategy < 4:
        # Trees nest a few hundred levels at most, and the recursive emit can
        # still exceed Python's recursion limit on a body mutated many times.
        try:
            tree = parse_tree(body)
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                mutate_tree(tree, rng)
            if rng.random() < 0.1:
                whitespace = [b"", b"", b"", b" ", b"\n", b"\t", b"\r"]
                body = emit(tree, lambda: rng.choice(whitespace))
            else:
                body = emit(tree)
        except (ValueError, RecursionError):
            strategy = 4  # not JSON after an earlier mutation: change bytes
    if 4 <= strategy < 8:
        for _ in range(rng.choice([1, 1, 2])):
            body = mutate_bytes(body, rng)
    elif strategy == 8:
        original = mutate_columns(original, rng)
    elif strategy == 9:
        seq = rng.choice(
            [expected + 1, expected - 1, float(expected), str(expected), expected == 1]
        )

    new_row = _row(seq, body, _candidate_columns(body, original, rng))
    rows = list(rows)
    rows[index] = new_row
    if rng.random() < 0.02:
        stored = rng.choice(
            [new_row[1].upper(), new_row[1].encode(), _Text(new_row[1])]
        )
        rows[index] = (new_row[0], stored, *new_row[2:])

    if rng.random() < 0.7 and strategy < 8:
        rows = _relink(rows, index)
    return rows


# Tests.


def test_ordinary_rows_are_vouched_for() -> None:
    rng = random.Random(7)
    records = [_random_record(rng, plain=True) for _ in range(300)]
    rows = _build_chain(8192, records)
    leaves, undecided, first_prev = _rowcheck.check_rows(8192, rows)
    assert undecided == []
    assert first_prev == GENESIS_PREV
    assert leaves == b"".join(_digest(row[2]) for row in rows)
    report, _leaves = verify_rows.check_rows(8192, 8192 + len(rows), rows)
    assert report.passed
    assert report.first_prev == GENESIS_PREV
    assert report.last_hash == rows[-1][1]
    assert_range_check_sound(8192, rows)


def test_rows_with_escapes_are_left_to_python() -> None:
    records = [{"actor": "svc:a"}, {"actor": 'say "hi"'}, {"actor": "svc:b"}]
    rows = _build_chain(0, records)
    assert b'\\"' in rows[1][2]
    _leaves, undecided, _first_prev = _rowcheck.check_rows(0, rows)
    assert undecided == [1]
    report, _leaves = verify_rows.check_rows(0, 3, rows)
    assert report.passed


def test_chain_links_are_checked() -> None:
    rows = _build_chain(0, [{"actor": "a"}, {"actor": "b"}, {"actor": "c"}])
    other = _build_chain(0, [{"actor": "x"}, {"actor": "b"}])
    # Row 1 of `other` links to a different row 0.
    mixed = [rows[0], other[1], rows[2]]
    result = _rowcheck.check_rows(0, mixed)
    assert result is not None
    assert 1 in result[1]
    assert not verify_rows.check_rows(0, 3, mixed)[0].passed
    assert_range_check_sound(0, mixed)


def test_soundness_check_catches_false_vouch() -> None:
    # The assertions above must be able to fail: a result that vouches for a
    # row whose derived column was changed is rejected.
    (row,) = _build_chain(0, [{"actor": "svc:a"}])
    changed = (*row[:4], "svc:other", *row[5:])
    forged = (_digest(changed[2]), [], GENESIS_PREV)
    with pytest.raises(AssertionError, match="vouched for row 0"):
        assert_vouched_rows_pass(0, [changed], forged)
    assert _rowcheck.check_rows(0, [changed])[1] == [0]


def test_tree_emit_round_trips_canonical_bodies() -> None:
    rng = random.Random(3)
    for _ in range(200):
        record = _random_record(rng)
        body = canonical_bytes(_entry_dict(record, seq=rng.randrange(10**6)))
        assert emit(parse_tree(body)) == body


BASE_RECORD: dict[str, Any] = {
    "actor": "svc:a",
    "confidence": 0.5,
    "item": {"dataset": "d", "id": "i"},
    "model": {"name": "m", "version": "1"},
    "occurred_at": "2026-03-01T11:59:00Z",
    "source": {"ref": "r", "system": "s"},
    "subject": "p",
    "target": {"entry_hash": "ab" * 32, "seq": 4},
}
BASE_TEXT = canonical_bytes(BASE_RECORD)


def _record_text(old: bytes, new: bytes) -> bytes:
    assert BASE_TEXT.count(old) == 1, old
    return BASE_TEXT.replace(old, new)


def _body(record_text: bytes, *, seq: int = 0, prev: str = GENESIS_PREV) -> bytes:
    placeholder = canonical_bytes(_entry_dict({"p": 0}, seq=seq, prev=prev))
    return placeholder.replace(b'{"p":0}', record_text)


def _base_columns(**changes: Any) -> tuple[Any, ...]:
    derived = _columns("decision", RECORDED_AT, BASE_RECORD)
    values = dict(zip(DERIVED_COLUMNS, derived, strict=True))
    values.update(changes)
    return tuple(values[name] for name in DERIVED_COLUMNS)


CONFIDENCE = b'"confidence":0.5'
TARGET_SEQ = b'"seq":4}'
ACTOR = b'"actor":"svc:a"'
MODEL = b'"model":{"name":"m","version":"1"}'
OCCURRED = b'"occurred_at":"2026-03-01T11:59:00Z"'


def _unread(value: bytes) -> bytes:
    """Add member "p", which no column comes from, in sorted key order."""
    return _record_text(OCCURRED, OCCURRED + b',"p":' + value)


# (case, record text, stored column changes, whether the walk passes).
EDGE_CASES: list[tuple[str, bytes, dict[str, Any], bool]] = [
    ("canonical", BASE_TEXT, {}, True),
    (
        "confidence 1e400",
        _record_text(CONFIDENCE, b'"confidence":1e400'),
        {"confidence": math.inf},
        False,
    ),
    (
        "confidence 1E2",
        _record_text(CONFIDENCE, b'"confidence":1E2'),
        {"confidence": 100.0},
        False,
    ),
    (
        "confidence -0",
        _record_text(CONFIDENCE, b'"confidence":-0'),
        {"confidence": -0.0},
        False,
    ),
    (
        "confidence 1e-400",
        _record_text(CONFIDENCE, b'"confidence":1e-400'),
        {"confidence": 0.0},
        False,
    ),
    (
        "confidence 1e23",
        _record_text(CONFIDENCE, b'"confidence":99999999999999999999999'),
        {"confidence": 1e23},
        False,
    ),
    (
        "confidence 24 chars",
        _record_text(CONFIDENCE, b'"confidence":123456789012345678901234'),
        {"confidence": 1.2345678901234568e23},
        False,
    ),
    (
        "confidence 400 digits",
        _record_text(CONFIDENCE, b'"confidence":1' + b"0" * 400),
        {"confidence": math.inf},
        False,
    ),
    (
        "confidence true",
        _record_text(CONFIDENCE, b'"confidence":true'),
        {"confidence": 1.0},
        False,
    ),
    ("confidence string", _record_text(CONFIDENCE, b'"confidence":"0.5"'), {}, False),
    (
        "confidence next float",
        BASE_TEXT,
        {"confidence": math.nextafter(0.5, 1.0)},
        False,
    ),
    (
        "confidence as int",
        _record_text(CONFIDENCE, b'"confidence":1'),
        {"confidence": 1},
        True,
    ),
    (
        "target seq 2.0",
        _record_text(TARGET_SEQ, b'"seq":2.0}'),
        {"target_seq": 2},
        False,
    ),
    (
        "target seq 1E0",
        _record_text(TARGET_SEQ, b'"seq":1E0}'),
        {"target_seq": 1},
        False,
    ),
    (
        "target seq 2**64",
        _record_text(TARGET_SEQ, b'"seq":18446744073709551616}'),
        {"target_seq": 2**64},
        False,
    ),
    (
        "target seq 2**64 - 1",
        _record_text(TARGET_SEQ, b'"seq":18446744073709551615}'),
        {"target_seq": 2**64 - 1},
        False,
    ),
    (
        "target seq 18 digits",
        _record_text(TARGET_SEQ, b'"seq":-999999999999999999}'),
        {"target_seq": -(10**18 - 1)},
        False,
    ),
    (
        "target seq 2**64 as wrapped",
        _record_text(TARGET_SEQ, b'"seq":18446744073709551616}'),
        {"target_seq": 0},
        False,
    ),
    (
        "target seq 2**63 as wrapped",
        _record_text(TARGET_SEQ, b'"seq":9223372036854775808}'),
        {"target_seq": -(2**63)},
        False,
    ),
    ("target seq -0", _record_text(TARGET_SEQ, b'"seq":-0}'), {"target_seq": 0}, False),
    (
        "target seq true",
        _record_text(TARGET_SEQ, b'"seq":true}'),
        {"target_seq": 1},
        False,
    ),
    ("target seq bool column", BASE_TEXT, {"target_seq": True}, False),
    (
        "duplicate actor last",
        _record_text(ACTOR, b'"actor":"svc:x","actor":"svc:a"'),
        {},
        False,
    ),
    (
        "duplicate actor first",
        _record_text(ACTOR, b'"actor":"svc:a","actor":"svc:x"'),
        {},
        False,
    ),
    (
        "duplicate model",
        _record_text(MODEL, MODEL + b',"model":{"name":"x"}'),
        {},
        False,
    ),
    (
        "duplicate model then string",
        _record_text(MODEL, MODEL + b',"model":"x"'),
        {},
        False,
    ),
    (
        "duplicate model then null",
        _record_text(MODEL, MODEL + b',"model":null'),
        {},
        False,
    ),
    (
        "duplicate model name",
        _record_text(b'"name":"m"', b'"name":"m","name":"x"'),
        {},
        False,
    ),
    ("escaped key", _record_text(ACTOR, b'"\\u0061ctor":"svc:a"'), {}, False),
    (
        "escaped key hides actor",
        _record_text(ACTOR, b'"\\u0061ctor":"svc:a"'),
        {"actor": None},
        False,
    ),
    (
        "escaped duplicate key",
        _record_text(ACTOR, ACTOR + b',"\\u0061ctor":"svc:x"'),
        {},
        False,
    ),
    ("escaped value", _record_text(ACTOR, b'"actor":"svc:\\u0061"'), {}, False),
    (
        "escaped value raw column",
        _record_text(ACTOR, b'"actor":"svc:\\u0061"'),
        {"actor": "svc:\\u0061"},
        False,
    ),
    (
        "slash escape",
        _record_text(ACTOR, b'"actor":"svc:\\/a"'),
        {"actor": "svc:/a"},
        False,
    ),
    (
        "model is a string",
        _record_text(MODEL, b'"model":"m"'),
        {"model_version": None},
        False,
    ),
    (
        "model is a list",
        _record_text(MODEL, b'"model":[{"name":"m","version":"1"}]'),
        {},
        False,
    ),
    (
        "model is null",
        _record_text(MODEL, b'"model":null'),
        {"model_name": None, "model_version": None},
        True,
    ),
    ("depth 62", _unread(b"[" * 62 + b"]" * 62), {}, True),
    ("depth 64", _unread(b"[" * 64 + b"]" * 64), {}, True),
    ("depth 1022", _unread(b"[" * 1022 + b"]" * 1022), {}, False),
    ("depth 1023", _unread(b"[" * 1023 + b"]" * 1023), {}, False),
    ("depth 1100", _unread(b"[" * 1100 + b"]" * 1100), {}, False),
    ("quote in unread string", _unread(b'"a\\"b"'), {}, True),
    ("backslash ends unread string", _unread(b'"a\\\\"'), {}, True),
    (
        "slash escape raw column",
        _record_text(ACTOR, b'"actor":"svc:\\/a"'),
        {"actor": "svc:\\/a"},
        False,
    ),
    (
        "newline escape raw column",
        _record_text(ACTOR, b'"actor":"svc:\\na"'),
        {"actor": "svc:\\na"},
        False,
    ),
    (
        "quote escape",
        _record_text(ACTOR, b'"actor":"svc:\\"a"'),
        {"actor": 'svc:"a'},
        True,
    ),
    ("raw NUL in string", _unread(b'"a\x00b"'), {}, False),
    ("invalid UTF-8", _unread(b'"\xff"'), {}, False),
    ("overlong UTF-8", _unread(b'"\xc0\xaf"'), {}, False),
    ("raw surrogate", _unread(b'"\xed\xa0\x80"'), {}, False),
    ("above U+10FFFF", _unread(b'"\xf4\x90\x80\x80"'), {}, False),
    ("four-byte UTF-8", _unread(b'"\xf0\x9f\x98\x80"'), {}, True),
    ("lone surrogate escape", _unread(b'"\\ud800"'), {}, False),
    ("surrogate pair escape", _unread(b'"\\ud83d\\ude00"'), {}, False),
    ("huge number unread", _unread(b"1e400"), {}, False),
    ("huge integer unread", _unread(b"1" + b"0" * 400), {}, False),
    ("lone surrogate column", BASE_TEXT, {"actor": "svc:a\ud800"}, False),
    ("bytes column", BASE_TEXT, {"actor": b"svc:a"}, False),
    (
        "occurred_at fast form",
        BASE_TEXT,
        {"occurred_at": "2026-03-01T11:59:00.000000Z"},
        True,
    ),
    (
        "occurred_at raw column",
        BASE_TEXT,
        {"occurred_at": "2026-03-01T11:59:00Z"},
        False,
    ),
    (
        "occurred_at non-ASCII",
        _record_text(OCCURRED, '"occurred_at":"2026-03-01T1\xe9:00:0Z"'.encode()),
        {"occurred_at": "2026-03-01T1\xe9:00:0.000000Z"},
        False,
    ),
    (
        "occurred_at 21 chars",
        _record_text(OCCURRED, b'"occurred_at":"2026-03-01T11:59:00Zx"'),
        {"occurred_at": "2026-03-01T11:59:00.000000Z"},
        False,
    ),
    (
        "occurred_at lower z",
        _record_text(OCCURRED, b'"occurred_at":"2026-03-01T11:59:00z"'),
        {"occurred_at": "2026-03-01T11:59:00.000000Z"},
        True,
    ),
    (
        "occurred_at unchecked date",
        _record_text(OCCURRED, b'"occurred_at":"2026-13-45T99:99:99Z"'),
        {"occurred_at": "2026-13-45T99:99:99.000000Z"},
        True,
    ),
]


@pytest.mark.parametrize(
    ("record_text", "changes", "walk_expected"),
    [pytest.param(*case[1:], id=case[0]) for case in EDGE_CASES],
)
def test_edge_case_record(
    record_text: bytes, changes: dict[str, Any], walk_expected: bool
) -> None:
    (first,) = _build_chain(0, [{"actor": "svc:first"}])
    body = _body(record_text, seq=1, prev=first[1])
    row = _row(1, body, _base_columns(**changes))
    assert walk_passes(row, first[1], seq=1) is walk_expected
    assert_range_check_sound(0, [first, row])
    assert_range_check_sound(1, [row])
    if not walk_expected:
        report, _leaves = verify_rows.check_rows(0, 2, [first, row])
        assert not report.passed


def test_canonical_edge_case_is_vouched_for() -> None:
    (first,) = _build_chain(0, [{"actor": "svc:first"}])
    row = _row(1, _body(BASE_TEXT, seq=1, prev=first[1]), _base_columns())
    assert _rowcheck.check_rows(0, [first, row])[1] == []


ENTRY_CASES: list[tuple[str, bytes, bytes, bool]] = [
    ("seq 1.0", b'"seq":1,', b'"seq":1.0,', False),
    ("seq -0", b'"seq":1,', b'"seq":-0,', False),
    ("seq true", b'"seq":1,', b'"seq":true,', False),
    ("seq 2", b'"seq":1,', b'"seq":2,', False),
    ("v 1.0", b'"v":1}', b'"v":1.0}', False),
    ("v true", b'"v":1}', b'"v":true}', False),
    ("v 2", b'"v":1}', b'"v":2}', False),
    ("kind escaped", b'"kind":"decision"', b'"kind":"decisio\\u006e"', False),
    (
        "kind duplicate last",
        b'"kind":"decision"',
        b'"kind":"x","kind":"decision"',
        False,
    ),
    (
        "kind duplicate first",
        b'"kind":"decision"',
        b'"kind":"decision","kind":"x"',
        False,
    ),
    ("kind number", b'"kind":"decision"', b'"kind":7', False),
    ("record duplicate", b'"recorded_at"', b'"record":{},"recorded_at"', False),
    ("extra member", b'"v":1}', b'"v":1,"w":1}', False),
    ("leading space", b'{"kind"', b' {"kind"', False),
    ("inner space", b'"kind":"decision"', b'"kind" : "decision"', False),
    ("trailing space", b'"v":1}', b'"v":1} ', False),
    ("trailing NUL", b'"v":1}', b'"v":1}\x00', False),
    ("trailing object", b'"v":1}', b'"v":1}{}', False),
    ("missing brace", b'"v":1}', b'"v":1', False),
    (
        "recorded_at escaped",
        b'"recorded_at":"2026',
        b'"recorded_at":"\\u0032026',
        False,
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "walk_expected"),
    [case[1:] for case in ENTRY_CASES],
    ids=[case[0] for case in ENTRY_CASES],
)
def test_edge_case_entry(old: bytes, new: bytes, walk_expected: bool) -> None:
    first, second = _build_chain(0, [{"actor": "svc:first"}, {"actor": "svc:a"}])
    assert second[2].count(old) == 1
    body = second[2].replace(old, new)
    row = _row(1, body, second[3:])
    assert walk_passes(row, first[1], seq=1) is walk_expected
    assert_range_check_sound(0, [first, row])
    if not walk_expected:
        report, _leaves = verify_rows.check_rows(0, 2, [first, row])
        assert not report.passed


@pytest.mark.parametrize(
    ("old", "new", "column", "stored"),
    [
        (b'"kind":"decision"', b'"kind":null', 3, None),
        (b'"kind":"decision"', b'"kind":7', 3, 7),
        (b'"recorded_at":"2026-03-01T12:00:00.000000Z"', b'"recorded_at":1.5', 6, 1.5),
        (b'"actor":"svc:a"', b'"actor":false', 4, 0),
        (b'"actor":"svc:a"', b'"actor":2.5', 4, 2.5),
    ],
    ids=["kind-null", "kind-int", "recorded-at-float", "actor-false", "actor-float"],
)
def test_non_string_text_fails_range_check(
    old: bytes, new: bytes, column: int, stored: Any
) -> None:
    (row,) = _build_chain(0, [{"actor": "svc:a"}])
    body = row[2].replace(old, new)
    columns = list(row[3:])
    columns[column - 3] = stored
    changed = _row(0, body, tuple(columns))
    assert not walk_passes(changed, GENESIS_PREV, seq=0)
    assert _rowcheck.check_rows(0, [changed])[1] == [0]
    report, _leaves = verify_rows.check_rows(0, 1, [changed])
    assert not report.passed


@pytest.mark.parametrize(
    "prev",
    [GENESIS_PREV, "x", "", "é" * 64, "\U0001f600", "a/b", 'q"', "\\"],
)
def test_first_prev_matches_walk(prev: str) -> None:
    (row,) = _build_chain(5, [{"actor": "svc:a"}], first_prev=prev)
    result = _rowcheck.check_rows(5, [row])
    assert result is not None
    _leaves, undecided, first_prev = result
    if undecided:
        assert first_prev is None
    else:
        assert first_prev == prev
    report, _leaves = verify_rows.check_rows(5, 6, [row])
    assert report.passed
    assert report.first_prev == prev
    assert_range_check_sound(5, [row])


def test_escaped_first_prev_is_left_to_python() -> None:
    # Canonical JSON escapes the quote, which the compiled check leaves.
    body = canonical_bytes(_entry_dict({"actor": "a"}, seq=0, prev='a"b'))
    assert b'"a\\"b"' in body
    row = _row(0, body, _columns("decision", RECORDED_AT, {"actor": "a"}))
    assert _rowcheck.check_rows(0, [row]) == (_digest(body), [0], None)
    report, _leaves = verify_rows.check_rows(0, 1, [row])
    assert report.first_prev == 'a"b'


def test_mutated_ranges_are_sound() -> None:
    rng = random.Random(20260301)
    tally = Tally()
    for _ in range(1500):
        length = rng.choice([1, 1, 2, 3])
        start = rng.choice([0, 1, 8192, 10**12])
        records = [_random_record(rng, plain=rng.random() < 0.6) for _ in range(length)]
        base = _build_chain(start, records)
        rows = base
        for _ in range(6):
            # Mostly one change to the clean range, sometimes one more change.
            rows = mutate_range(start, rows if rng.random() < 0.3 else base, rng)
            assert_range_check_sound(start, rows, tally)
            changed = [
                index
                for index in range(length)
                if rows[index][2] != base[index][2]
                or rows[index][3:] != base[index][3:]
            ]
            result = _rowcheck.check_rows(start, rows)
            if result is not None:
                tally.vouched_changed += sum(
                    1 for index in changed if index not in result[1]
                )
    # The mutants must reach the rows that the compiled check reads in full,
    # and many of them must fail the walk, or the test proves little.
    assert tally.ranges == 9000
    assert tally.vouched > 3000
    assert tally.vouched_changed > 1000
    assert tally.walk_failures_left > 4000
    assert tally.range_passes > 1200


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)
_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT
)
_JSON = st.recursive(
    _SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3)
    ),
    max_leaves=6,
)
_MEMBER = st.dictionaries(
    st.sampled_from(["name", "version", "seq", "entry_hash", "dataset", "id", "x"]),
    _SCALAR,
    max_size=4,
)
_TIMES = st.sampled_from(
    ["2026-03-01T11:59:00Z", "2026-03-01T11:59:00.5Z", "2026-03-01T12:59:00+01:00"]
)
_RECORDS = st.fixed_dictionaries(
    {},
    optional={
        "actor": _TEXT | _SCALAR,
        "subject": _TEXT | _JSON,
        "occurred_at": _TIMES | _TEXT | _SCALAR,
        "confidence": _SCALAR,
        "model": _MEMBER | _JSON,
        "target": _MEMBER | _JSON,
        "item": _MEMBER,
        "source": _MEMBER,
        "output": _JSON,
    },
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    records=st.lists(_RECORDS, min_size=1, max_size=3),
    kind=st.sampled_from(["decision", "label", "é", 'k"']),
    start=st.sampled_from([0, 3, 8192]),
    rng=st.randoms(use_true_random=False),
    mutations=st.integers(0, 3),
)
def test_generated_records_are_sound(
    records: list[dict[str, Any]],
    kind: str,
    start: int,
    rng: random.Random,
    mutations: int,
) -> None:
    rows = []
    prev = GENESIS_PREV
    for offset, record in enumerate(records):
        entry = _entry_dict(record, seq=start + offset, prev=prev, kind=kind)
        body = canonical_bytes(entry)
        # The columns come from the body as parsed: JCS writes a float such
        # as 2.0 as 2, which then reads back as an int.
        columns = _walk_view(body)
        assert columns is not None
        row = _row(start + offset, body, columns)
        rows.append(row)
        prev = row[1]
    # Unchanged, every row passes the walk, and so does the range check.
    prev = GENESIS_PREV
    for offset, row in enumerate(rows):
        assert walk_passes(row, prev, seq=start + offset)
        prev = row[1]
    assert_range_check_sound(start, rows)
    assert _range_check(start, rows)[0].passed
    for _ in range(mutations):
        rows = mutate_range(start, rows, rng)
        assert_range_check_sound(start, rows)


# The SQLite reader: read_sqlite_range must decide exactly as check_rows does
# on the rows that Python's sqlite3 module returns for the same file.

_ENTRIES_TABLE = (
    "CREATE TABLE entries (seq BIGINT, entry_hash VARCHAR(64), body BLOB, "
    "kind VARCHAR(32), actor VARCHAR(256), subject VARCHAR(1024), "
    "recorded_at VARCHAR(32), occurred_at VARCHAR(32), model_name VARCHAR(1024), "
    "model_version VARCHAR(1024), confidence FLOAT, target_seq BIGINT, "
    "target_hash VARCHAR(64), item_dataset VARCHAR(1024), item_id VARCHAR(1024), "
    "source_system VARCHAR(1024), source_ref VARCHAR(1024))"
)
_NODES_TABLE = "CREATE TABLE merkle_nodes (level INTEGER, idx BIGINT, hash BLOB)"
_TEXT_COLUMNS = ["entry_hash", "kind", "actor", "recorded_at", "occurred_at"]

# Changes that only SQLite's storage allows: (statement, needs a text column).
_SQLITE_CHANGES = [
    ("UPDATE entries SET {column} = CAST(x'ff00fe' AS TEXT) WHERE seq = ?", True),
    ("UPDATE entries SET {column} = CAST({column} AS BLOB) WHERE seq = ?", True),
    ("UPDATE entries SET body = CAST(body AS TEXT) WHERE seq = ?", False),
    ("UPDATE entries SET confidence = CAST(confidence AS TEXT) WHERE seq = ?", False),
    ("UPDATE entries SET confidence = 1 WHERE seq = ?", False),
    ("UPDATE entries SET target_seq = CAST(target_seq AS REAL) WHERE seq = ?", False),
    ("UPDATE entries SET target_seq = 'x' WHERE seq = ?", False),
    ("INSERT INTO entries SELECT * FROM entries WHERE seq = ?", False),
    ("DELETE FROM entries WHERE seq = ?", False),
]


def _storable(row: tuple[Any, ...]) -> bool:
    """Return whether sqlite3 stores every value of ``row`` as it is."""
    for value in row:
        if value is None or type(value) in (bytes, float):
            continue
        if type(value) is int and -(2**63) <= value < 2**63:
            continue
        if type(value) is str:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return False
            continue
        return False
    return True


_SELECT_TYPED_NODES = (
    "SELECT idx, typeof(idx), typeof(hash), CAST(hash AS BLOB) FROM merkle_nodes "
    "WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx"
)


def _nodes_match(connection: Any, start: int, levels: list[bytes]) -> bool:
    """Return whether the stored nodes are exactly ``levels``, one row each."""
    for level, joined in enumerate(levels, start=1):
        low = start >> level
        count = len(joined) // 32
        stored = connection.execute(
            _SELECT_TYPED_NODES, (level, low, low + count)
        ).fetchall()
        expected = [
            (low + index, "integer", "blob", joined[32 * index : 32 * index + 32])
            for index in range(count)
        ]
        if stored != expected:
            return False
    return True


def _write_range(
    connection: Any, rows: list[tuple[Any, ...]], start: int, rng: random.Random
) -> int | None:
    """Store ``rows`` and their nodes, and return the seq of a row changed in SQLite."""
    connection.execute("DELETE FROM entries")
    connection.execute("DELETE FROM merkle_nodes")
    connection.executemany(
        f"INSERT INTO entries VALUES ({', '.join('?' * ROW_WIDTH)})", rows
    )
    leaves = b"".join(_digest(row[2]) for row in rows if type(row[2]) is bytes)
    for level, joined in enumerate(_plain_levels(leaves), start=1):
        low = start >> level
        connection.executemany(
            "INSERT INTO merkle_nodes VALUES (?, ?, ?)",
            [
                (level, low + index, joined[32 * index : 32 * index + 32])
                for index in range(len(joined) // 32)
            ],
        )
    changed = None
    if rng.random() < 0.3:
        statement, needs_column = rng.choice(_SQLITE_CHANGES)
        changed = start + rng.randrange(len(rows))
        column = rng.choice(_TEXT_COLUMNS) if needs_column else ""
        connection.execute(statement.format(column=column), (changed,))
    if rng.random() < 0.2:
        node = rng.choice(
            [
                "UPDATE merkle_nodes SET hash = x'00' || hash WHERE rowid = "
                "(SELECT min(rowid) FROM merkle_nodes)",
                "UPDATE merkle_nodes SET idx = idx + 0.5 WHERE rowid = "
                "(SELECT max(rowid) FROM merkle_nodes)",
                "INSERT INTO merkle_nodes SELECT * FROM merkle_nodes LIMIT 1",
                "DELETE FROM merkle_nodes WHERE rowid = "
                "(SELECT max(rowid) FROM merkle_nodes)",
                "UPDATE merkle_nodes SET hash = randomblob(32) WHERE level = 1",
            ]
        )
        connection.execute(node)
    connection.commit()
    return changed


def test_sqlite_reader_agrees_with_check_rows(tmp_path: Path) -> None:
    path = str(tmp_path / "ranges.db")
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode = MEMORY")
    connection.execute("PRAGMA synchronous = OFF")
    connection.execute(_ENTRIES_TABLE)
    connection.execute(_NODES_TABLE)

    rng = random.Random(97)
    decided = vouched = unreadable = 0
    try:
        for _ in range(250):
            length = rng.choice([1, 2, 3, 5, 8])
            start = rng.choice([0, 64, 8192])
            records = [
                _random_record(rng, plain=rng.random() < 0.7) for _ in range(length)
            ]
            rows = _build_chain(start, records)
            if rng.random() < 0.6:
                rows = mutate_range(start, rows, rng)
            if not all(_storable(row) for row in rows):
                continue
            changed = _write_range(connection, rows, start, rng)

            end = start + length
            fast = _rowcheck.read_sqlite_range(
                path,
                verify_rows._SELECT_ROWS,
                verify_rows._SELECT_NODE_ROWS,
                start,
                end,
            )
            try:
                fetched = connection.execute(
                    verify_rows._SELECT_ROWS, (start, end)
                ).fetchall()
            except sqlite3.OperationalError:
                # Text that is not UTF-8, which Python cannot read: that row
                # must be left to Python, whose read then fails the range.
                unreadable += 1
                assert changed is not None
                assert fast is None or changed - start in fast[1]
                continue

            # check_rows does not know the end, so its caller checks the count.
            expected = None
            if len(fetched) == length:
                expected = _rowcheck.check_rows(start, fetched)
            if expected is None:
                assert fast is None
                continue
            assert fast is not None
            assert fast[:3] == expected
            assert_vouched_rows_pass(start, fetched, expected)
            decided += 1
            vouched += len(fetched) - len(expected[1])

            levels = _plain_levels(expected[0])
            if fast[3] is None:
                assert not _nodes_match(connection, start, levels)
            else:
                assert fast[3] == levels
                assert _nodes_match(connection, start, levels)
    finally:
        connection.close()
    assert decided > 100
    assert vouched > 150
    assert unreadable > 3


def test_sqlite_reader_rejects_odd_arguments(tmp_path: Path) -> None:
    query, nodes = verify_rows._SELECT_ROWS, verify_rows._SELECT_NODE_ROWS
    missing = str(tmp_path / "missing.db")
    assert _rowcheck.read_sqlite_range(missing, query, nodes, 0, 1) is None
    assert not Path(missing).exists()
    with pytest.raises(ValueError):
        _rowcheck.read_sqlite_range(missing, query, nodes, 5, 5)
    with pytest.raises(TypeError):
        _rowcheck.read_sqlite_range(missing, query, nodes, 0)
    with pytest.raises(TypeError):
        _rowcheck.read_sqlite_range(b"x", query, nodes, 0, 1)
    with pytest.raises(ValueError):
        _rowcheck.read_sqlite_range("a\x00b", query, nodes, 0, 1)
    path = str(tmp_path / "ranges.db")
    with sqlite3.connect(path) as connection:
        connection.execute(_ENTRIES_TABLE)
        connection.execute(_NODES_TABLE)
    assert _rowcheck.read_sqlite_range(path, "SELECT 1", nodes, 0, 1) is None
    assert _rowcheck.read_sqlite_range(path, "not SQL", nodes, 0, 1) is None
    assert _rowcheck.read_sqlite_range(path, query, nodes, 0, 1) is None


def test_sqlite_reader_range_too_long(tmp_path: Path) -> None:
    query, nodes = verify_rows._SELECT_ROWS, verify_rows._SELECT_NODE_ROWS
    missing = str(tmp_path / "missing.db")
    with pytest.raises(ValueError):
        _rowcheck.read_sqlite_range(missing, query, nodes, -(2**63), 2**63 - 1)


# Odd arguments: errors or None, never a crash or a leak.

GOOD_ROW = _build_chain(0, [{"actor": "svc:a"}])[0]


def _replace(row: tuple[Any, ...], index: int, value: Any) -> tuple[Any, ...]:
    return (*row[:index], value, *row[index + 1 :])


class _Tuple(tuple):
    pass


class _Bytes(bytes):
    pass


class _Explosive:
    """A column value whose comparison raises, to show it is never compared."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("compared")

    __hash__ = object.__hash__


@pytest.mark.parametrize(
    "arguments",
    [
        (),
        (0,),
        (0, [], None),
        ("0", []),
        (0.0, []),
        (None, []),
        (0, ()),
        (0, None),
        (0, (GOOD_ROW,)),
        (0, iter([GOOD_ROW])),
        (0, {0: GOOD_ROW}),
        (0, b"rows"),
    ],
)
def test_check_rows_rejects_odd_arguments(arguments: tuple[Any, ...]) -> None:
    with pytest.raises(TypeError):
        _rowcheck.check_rows(*arguments)


def test_check_rows_start_out_of_range() -> None:
    with pytest.raises(OverflowError):
        _rowcheck.check_rows(2**64, [GOOD_ROW])
    with pytest.raises(OverflowError):
        _rowcheck.check_rows(-(2**64), [GOOD_ROW])


def test_check_rows_empty_list() -> None:
    assert _rowcheck.check_rows(0, []) in (None, (b"", [], None))


ODD_ROWS: list[Any] = [
    None,
    1,
    b"row",
    list(GOOD_ROW),
    _Tuple(GOOD_ROW),
    (),
    (0,),
    GOOD_ROW[:3],
    GOOD_ROW[:-1],
    (*GOOD_ROW, None),
    _replace(GOOD_ROW, 0, False),
    _replace(GOOD_ROW, 0, 0.0),
    _replace(GOOD_ROW, 0, "0"),
    _replace(GOOD_ROW, 0, None),
    _replace(GOOD_ROW, 0, 2**100),
    _replace(GOOD_ROW, 0, -(2**100)),
    _replace(GOOD_ROW, 0, _Int(0)),
    _replace(GOOD_ROW, 1, None),
    _replace(GOOD_ROW, 1, GOOD_ROW[1].encode()),
    _replace(GOOD_ROW, 1, GOOD_ROW[1].upper()),
    _replace(GOOD_ROW, 1, _Text(GOOD_ROW[1])),
    _replace(GOOD_ROW, 1, "é" * 64),
    _replace(GOOD_ROW, 1, "\ud800" * 64),
    _replace(GOOD_ROW, 1, GOOD_ROW[1][:-1]),
    _replace(GOOD_ROW, 2, None),
    _replace(GOOD_ROW, 2, GOOD_ROW[2].decode()),
    _replace(GOOD_ROW, 2, bytearray(GOOD_ROW[2])),
    _replace(GOOD_ROW, 2, memoryview(GOOD_ROW[2])),
    _replace(GOOD_ROW, 2, _Bytes(GOOD_ROW[2])),
    _replace(GOOD_ROW, 2, b""),
]


@pytest.mark.parametrize("row", ODD_ROWS, ids=range(len(ODD_ROWS)))
def test_check_rows_odd_row_returns_none(row: Any) -> None:
    assert _rowcheck.check_rows(0, [row]) is None
    # The same row after a good one, whose first_prev must then be released.
    second = row
    if type(row) is tuple and len(row) > 1 and type(row[0]) is int and row[0] == 0:
        second = _replace(row, 0, 1)
    assert _rowcheck.check_rows(0, [GOOD_ROW, second]) is None


@pytest.mark.parametrize(
    "value",
    [
        _Explosive(),
        object(),
        [1],
        {"a": 1},
        b"\xff",
        "\ud800",
        _Text("svc:a"),
        math.nan,
    ],
    ids=[
        "explosive",
        "object",
        "list",
        "dict",
        "bytes",
        "surrogate",
        "str-subclass",
        "nan",
    ],
)
def test_check_rows_odd_column_is_undecided(value: Any) -> None:
    for index in range(3, ROW_WIDTH):
        row = _replace(GOOD_ROW, index, value)
        result = _rowcheck.check_rows(0, [row])
        assert result == (_digest(row[2]), [0], None)


def test_check_rows_keeps_reference_counts() -> None:
    rows = _build_chain(0, [{"actor": "svc:a"}, {"actor": 'q"'}, {"actor": "svc:c"}])
    broken = [*rows[:2], _replace(rows[2], 1, "0" * 64)]
    # Objects referenced only from these rows, so nothing else moves their counts.
    watched = [rows, broken, *rows, *(row[index] for row in rows for index in (1, 2))]
    before = [sys.getrefcount(item) for item in watched]
    for _ in range(200):
        _rowcheck.check_rows(0, rows)
        _rowcheck.check_rows(0, broken)
        _rowcheck.check_rows(1, rows)
    after = [sys.getrefcount(item) for item in watched]
    assert after == before


def test_check_rows_does_not_leak() -> None:
    rows = _build_chain(0, [{"actor": "svc:a"}, {"actor": "svc:b"}])
    broken = [rows[0], _replace(rows[1], 1, "0" * 64)]
    surrogate = [_replace(rows[0], 4, "svc:a\ud800"), rows[1]]

    def run() -> None:
        for _ in range(2000):
            _rowcheck.check_rows(0, rows)
            _rowcheck.check_rows(0, broken)
            _rowcheck.check_rows(0, surrogate)

    run()
    gc.collect()
    tracemalloc.start()
    try:
        first, _peak = tracemalloc.get_traced_memory()
        run()
        gc.collect()
        second, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A leaked first_prev or undecided list would add over 100 kB here.
    assert second - first < 20_000


# subtree_levels against a plain hashlib computation.


def _plain_levels(leaves: bytes) -> list[bytes]:
    nodes = [leaves[offset : offset + 32] for offset in range(0, len(leaves), 32)]
    levels = []
    while len(nodes) > 1:
        nodes = [
            hashlib.sha256(b"\x01" + nodes[index] + nodes[index + 1]).digest()
            for index in range(0, len(nodes) - 1, 2)
        ]
        levels.append(b"".join(nodes))
    return levels


def test_subtree_levels_match_hashlib() -> None:
    rng = random.Random(11)
    for count in range(71):
        leaves = rng.randbytes(32 * count)
        levels = _rowcheck.subtree_levels(leaves)
        assert levels == _plain_levels(leaves), count
        assert [len(level) // 32 for level in levels] == [
            count >> level for level in range(1, count.bit_length())
        ]
        assert _rowcheck.subtree_levels(bytearray(leaves)) == levels
        assert _rowcheck.subtree_levels(memoryview(leaves)) == levels


@pytest.mark.parametrize(
    ("argument", "error"),
    [
        (b"x" * 33, ValueError),
        (b"x" * 31, ValueError),
        ("x" * 64, TypeError),
        (None, TypeError),
        (64, TypeError),
        ([b"x" * 32], TypeError),
        (memoryview(b"x" * 128)[::2], (BufferError, TypeError, ValueError)),
    ],
    ids=["33-bytes", "31-bytes", "str", "none", "int", "list", "strided"],
)
def test_subtree_levels_rejects_odd_arguments(argument: Any, error: Any) -> None:
    with pytest.raises(error):
        _rowcheck.subtree_levels(argument)


# Inputs that broke an earlier version of the compiled module.


def test_seq_past_the_64_bit_limit_fails() -> None:
    # start + 1 wraps to -2**63 in 64-bit arithmetic, the seq of this row.
    top = 2**63 - 1

    def row(seq: int, prev: str) -> tuple[Any, ...]:
        body = (
            b'{"kind":"k","prev":"%s","record":{},"recorded_at":"t","seq":%d,"v":1}'
            % (prev.encode(), seq)
        )
        return _row(seq, body, _columns("k", "t", {}))

    first = row(top, GENESIS_PREV)
    wrapped = row(-(2**63), first[1])
    assert not walk_passes(wrapped, first[1], seq=top + 1)
    with pytest.raises(ValueError, match="64-bit"):
        _rowcheck.check_rows(top, [first, wrapped])
    report, _leaves = verify_rows.check_rows(top, top + 2, [first, wrapped])
    assert not report.passed


_FINALIZER_SCRIPT = textwrap.dedent(
    """
    import gc
    from ledger import _rowcheck

    rows = [(i, "0" * 64, b"x", *([None] * 14)) for i in range(1000)]

    class Clearer:
        def __del__(self):
            rows.clear()

    gc.disable()
    # Empty the list and tuple free lists, so that the list check_rows
    # allocates is a new object and can start a collection.
    kept = [[] for _ in range(3000)], [(i, -i) for i in range(3000)]
    first, second = Clearer(), Clearer()
    first.other, second.other = second, first
    del first, second
    spare = (len(rows), 0)
    del spare  # the call's argument tuple comes from the free list
    gc.set_threshold(1)
    gc.enable()
    print(_rowcheck.check_rows(0, rows))
    """
)


def test_finalizer_emptying_rows_does_not_crash() -> None:
    # A collection started by check_rows's own allocation runs a finalizer
    # that empties rows. Reading the old length afterwards crashed.
    completed = subprocess.run(
        [sys.executable, "-c", _FINALIZER_SCRIPT],
        cwd=REPOSITORY,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")


def _random_time(rng: random.Random) -> str:
    """Return a time in the normalized form, valid or not (a 31st of June)."""
    year = rng.choice([0, 1, 1900, 2000, 2023, 2024, 9999])
    month = rng.choice([0, 1, 2, 6, 12, 13])
    day = rng.choice([0, 1, 28, 29, 30, 31, 32])
    hour, minute, second = rng.choice([0, 23, 24]), rng.choice([0, 59, 60]), 59
    fraction = rng.randrange(1_000_000)
    return (
        f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
        f".{fraction:06d}Z"
    )


def test_normalized_times_match_normalize_time() -> None:
    # The compiled check reads times in the normalized form itself. It may
    # vouch only where normalize_time returns the time unchanged.
    rng = random.Random(5)
    times = [_random_time(rng) for _ in range(3000)]
    rows = _build_chain(0, [{"occurred_at": time} for time in times])
    _leaves, undecided, _first_prev = _rowcheck.check_rows(0, rows)
    for index, time in enumerate(times):
        valid = normalize_time(time) == time
        assert (index not in undecided) == valid, time
    assert_range_check_sound(0, rows)
    # A stored column that keeps an invalid time, as a lax reader would.
    for time in times:
        if normalize_time(time) is None:
            (row,) = _build_chain(0, [{"occurred_at": time}])
            columns = list(row)
            columns[3 + DERIVED_COLUMNS.index("occurred_at")] = time
            assert_range_check_sound(0, [tuple(columns)])
