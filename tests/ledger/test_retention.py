"""Retention periods: the [retention] table and the cutoff arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ledger import InputError
from ledger.retention import (
    DEFAULT_RETENTION_YEARS,
    load_retention,
    parse_retention,
    retention_cutoff,
)


def test_defaults_are_six_years() -> None:
    assert DEFAULT_RETENTION_YEARS == {
        "annotation": 6.0,
        "review": 6.0,
        "decision": 6.0,
    }


def test_listed_kind_overrides_default() -> None:
    years = parse_retention({"decision": 0.5, "review": 10})
    assert years["decision"] == 0.5
    assert years["review"] == 10.0
    assert years["annotation"] == 6.0


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ({"model": 6}, "'model'"),
        ({"erasure": 6}, "'erasure'"),
        ({"decision": True}, "decision"),
        ({"decision": "6"}, "decision"),
        ({"decision": 0.25}, "six months"),
        ({"decision": 0}, "six months"),
        ({"decision": -1}, "six months"),
        ({"decision": 1001}, "1000"),
        ({"decision": float("nan")}, "decision"),
        (["decision"], "table"),
    ],
)
def test_invalid_retention_rejected(section: Any, named: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_retention(section)
    assert named in str(caught.value)
    assert caught.value.reason == "invalid-retention"


def test_load_reads_retention_table(tmp_path: Path) -> None:
    path = tmp_path / "govledger.toml"
    path.write_text(
        '[policy]\nadverse_outputs = ["deny"]\n\n[retention]\nannotation = 2\n',
        encoding="utf-8",
    )
    years = load_retention(path)
    assert years["annotation"] == 2.0
    assert years["decision"] == 6.0


def test_load_without_table_gives_defaults(tmp_path: Path) -> None:
    path = tmp_path / "govledger.toml"
    path.write_text("[policy]\n", encoding="utf-8")
    assert load_retention(path) == DEFAULT_RETENTION_YEARS


def test_load_without_default_file_gives_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_retention() == DEFAULT_RETENTION_YEARS


def test_load_missing_explicit_file_rejected(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(InputError) as caught:
        load_retention(missing)
    assert str(missing) in str(caught.value)


def test_load_invalid_toml_rejected(tmp_path: Path) -> None:
    path = tmp_path / "govledger.toml"
    path.write_text("[retention\nannotation = 6\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_retention(path)
    assert "not valid TOML" in str(caught.value)


@pytest.mark.parametrize(
    ("now", "years", "expected"),
    [
        (datetime(2026, 2, 1), 0.5, datetime(2025, 8, 1)),
        (datetime(2026, 3, 31, 12), 1 / 12, datetime(2026, 2, 28, 12)),
        (datetime(2024, 2, 29), 6, datetime(2018, 2, 28)),
        (datetime(2026, 1, 15), 6, datetime(2020, 1, 15)),
        (datetime(2026, 1, 31), 1.1, datetime(2024, 12, 24)),
    ],
)
def test_cutoff_subtracts_calendar_months(
    now: datetime, years: float, expected: datetime
) -> None:
    moment = now.replace(tzinfo=UTC)
    assert retention_cutoff(moment, years) == expected.replace(tzinfo=UTC)
