"""Fast paths of the append path: the fast record validator, derived values
and the transaction on the bare driver connection. Each must accept and
write exactly what the slower path does."""

from __future__ import annotations

import copy
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ledger import Ledger, LedgerConfig, StoreError
from ledger.entries import DERIVED_COLUMNS, derived_columns, derived_values
from ledger.records import _ADAPTER, _FAST_VALIDATOR, Item, validate_record
from tests.ledger._service_harness import annotation, create_ledger
from tests.ledger.test_records import DECISION

# Characters around the edges of the Python checks: white space that
# str.strip removes, control (Cc) and format (Cf) characters, non-ASCII
# letters and digits, a character outside the BMP and a lone surrogate.
EDGE_CHARACTERS = (
    "aZ09-_.:/@~! "
    "\t\n\r\x00\x1c\x1f\x7f\x85\xa0\xad\u1680\u180e\u200b\u2028\u202e"
    "\u3000\ufeff\u0661\xe9\U0001f600\U000e0001\ud800"
)


def _accepts(validator: Any, record: dict[str, Any]) -> bool:
    try:
        validator.validate_python(record)
    except ValidationError:
        return False
    return True


def _assert_same_verdict(record: dict[str, Any]) -> None:
    assert _accepts(_FAST_VALIDATOR, record) == _accepts(_ADAPTER, record), record


@settings(max_examples=400, deadline=None)
@given(
    field=st.sampled_from(
        [("actor",), ("subject",), ("item", "id"), ("model", "name"), ("occurred_at",)]
    ),
    prefix=st.sampled_from(["", "user:", "svc:", "2026-01-01T10:00:0"]),
    text=st.text(alphabet=EDGE_CHARACTERS, max_size=6),
)
def test_fast_validator_edge_strings(
    field: tuple[str, ...], prefix: str, text: str
) -> None:
    record = copy.deepcopy(DECISION)
    target = record
    for name in field[:-1]:
        target = target[name]
    target[field[-1]] = prefix + text
    _assert_same_verdict(record)


@pytest.mark.parametrize("position", ["start", "middle", "end", "alone"])
def test_fast_validator_bmp_characters(position: str) -> None:
    for code_point in range(0x10000):
        char = chr(code_point)
        text = {
            "start": f"{char}ab",
            "middle": f"a{char}b",
            "end": f"ab{char}",
            "alone": char,
        }[position]
        record = copy.deepcopy(DECISION)
        record["item"]["id"] = text
        record["actor"] = f"user:{text}"
        _assert_same_verdict(record)


def test_fast_validator_every_date() -> None:
    days = []
    for year in (1, 4, 1900, 2000, 2023, 2024, 9999):
        first = date(year, 1, 1)
        days += [first + timedelta(days=offset) for offset in range(365)]
    texts = [f"{day.isoformat()}T23:59:59Z" for day in days]
    # Impossible dates and times, and forms that only the Python check reads.
    texts += [
        "2023-02-29T00:00:00Z",
        "2023-04-31T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T12:60:00Z",
        "2024-01-01T12:00:60Z",
        "2024-01-01t12:00:00z",
        "2024-01-01 12:00:00Z",
        "2024-01-01T12:00:00.123456789Z",
        "2024-01-01T12:00:00+01:00",
        "0001-01-01T00:00:00+01:00",
        "2024-01-01T12:00:00",
    ]
    for text in texts:
        record = copy.deepcopy(DECISION)
        record["occurred_at"] = text
        _assert_same_verdict(record)


def test_model_instance_falls_back() -> None:
    # Only the schema's models take a model instance in place of a dict, so
    # validate_record falls back to the schema for it.
    record = copy.deepcopy(DECISION)
    record["item"] = Item(dataset="applications", id="app-1")
    assert not _accepts(_FAST_VALIDATOR, record)
    assert _accepts(_ADAPTER, record)
    assert validate_record(record).kind == "decision"


def test_derived_values_column_order() -> None:
    record = {k: v for k, v in DECISION.items() if k != "kind"}
    columns = derived_columns("decision", "2026-01-01T10:00:00.000000Z", record)
    values = derived_values("decision", "2026-01-01T10:00:00.000000Z", record)
    assert list(columns) == list(DERIVED_COLUMNS)
    assert tuple(columns.values()) == values


@pytest.fixture
def ledger(db_url: str, key_dir: Path) -> Ledger:
    ledger, _ = create_ledger(db_url, key_dir)
    with ledger:
        yield ledger


def test_both_transactions_write_verifiable_rows(ledger: Ledger) -> None:
    # append_many runs on the bare driver connection and append_prepared
    # with callbacks on a SQLAlchemy connection. Both must write rows that
    # verify: hash chain, derived columns and Merkle nodes.
    ledger.append_many([annotation(n) for n in range(3)])
    seen = []
    ledger.append_prepared(
        [ledger.prepare([annotation(n) for n in range(3, 6)])],
        before_write=lambda connection: seen.append("before"),
        after_write=lambda connection, groups: seen.append("after"),
    )
    assert seen == ["before", "after"]
    assert ledger.size == 6
    assert ledger.verify().ok


def test_append_lock_timeout_rolls_back(postgres_url: str, key_dir: Path) -> None:
    create_ledger(postgres_url, key_dir)[0].close()
    url = f"{postgres_url}?options=-c%20lock_timeout%3D50"
    with Ledger.open(url, config=LedgerConfig(key_dir=key_dir)) as ledger:
        holder = psycopg.connect(
            postgres_url.replace("postgresql+psycopg://", "postgresql://")
        )
        try:
            holder.execute("SELECT * FROM chain_head WHERE id = 1 FOR UPDATE")
            with pytest.raises(StoreError) as caught:
                ledger.append(annotation(1))
        finally:
            holder.rollback()
            holder.close()
        assert "nothing was written" in str(caught.value)
        assert ledger.size == 0
        # The pooled connection is usable again after the rollback.
        assert ledger.append(annotation(1))["seq"] == 0


def test_dropped_database_gives_store_error(postgres_url: str, key_dir: Path) -> None:
    from tests.conftest import _pg_admin

    ledger, _ = create_ledger(postgres_url, key_dir)
    ledger.append(annotation(0))
    ledger.engine.dispose()
    name = postgres_url.rsplit("/", 1)[1]
    with _pg_admin() as connection:
        connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    with pytest.raises(StoreError) as caught:
        ledger.append(annotation(1))
    assert "nothing was written" in str(caught.value)
