"""Policy configuration: TOML loading, validation and policy_config entries."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from ledger import Ledger, LedgerConfig
from ledger.errors import InputError, PolicyError
from policies.config import (
    PolicyConfig,
    apply_policy_file,
    load_policy_file,
    policy_in_force,
    record_policy,
    set_policy_value,
)

from .support import T0, Clock, create_ledger, stamp, text

CLI = Path(__file__).resolve().parents[2] / "cli.py"

GOOD = """
[policy]
review_confidence_below = 0.8
adverse_outputs = ["deny", {code = 3}]
review_deadline_hours = 48

[retention]
decision = 10
"""


def write(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "govledger.toml"
    path.write_text(content, encoding="utf-8")
    return path


def test_defaults_meet_hipaa_and_ai_act() -> None:
    policy = PolicyConfig()
    assert policy.retention.years() == {
        "annotation": 6.0,
        "review": 6.0,
        "decision": 6.0,
    }
    assert policy.review_confidence_below == 0.7
    assert "admin" in policy.generic_actor_names


def test_load_policy_file_reads_both_tables(tmp_path: Path) -> None:
    policy = load_policy_file(write(tmp_path, GOOD))
    assert policy.review_confidence_below == 0.8
    assert policy.adverse_outputs == ["deny", {"code": 3}]
    assert policy.review_deadline_hours == 48.0
    assert policy.retention.decision == 10.0
    assert policy.retention.annotation == 6.0
    assert policy.min_alpha == 0.667


def test_load_policy_unknown_key_named(tmp_path: Path) -> None:
    path = write(tmp_path, "[policy]\nreview_deadline_hour = 24\n")
    with pytest.raises(InputError) as caught:
        load_policy_file(path)
    assert "[policy] review_deadline_hour: unknown key" in caught.value.message
    assert "review_deadline_hours" in caught.value.message


def test_load_policy_unknown_retention_kind_named(tmp_path: Path) -> None:
    path = write(tmp_path, "[retention]\nverdict = 2\n")
    with pytest.raises(InputError) as caught:
        load_policy_file(path)
    assert "[retention] verdict: unknown key" in caught.value.message


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[policy]\nmin_alpha = 1.5\n", "min_alpha"),
        ("[policy]\nreview_confidence_below = '0.5'\n", "review_confidence_below"),
        ("[policy]\nreview_deadline_hours = true\n", "review_deadline_hours"),
        ("[policy]\npsi_warning = 0.3\npsi_alert = 0.2\n", "psi_warning"),
        ("[policy]\ndrift_baseline = 'last-week'\n", "drift_baseline"),
        ("[retention]\ndecision = 0.25\n", "[retention] decision"),
        ("[policy]\nadverse_outputs = [1e400]\n", "adverse_outputs"),
    ],
)
def test_load_policy_invalid_value_named(
    tmp_path: Path, content: str, fragment: str
) -> None:
    with pytest.raises(InputError) as caught:
        load_policy_file(write(tmp_path, content))
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ("min_alpha = 0.8\n", ("'min_alpha'", "[policy]")),
        ("min_alpha = 0.8\n[policy]\nreview_deadline_hours = 24\n", ("[policy]",)),
        ("decision = 10\n[policy]\n", ("'decision'", "[retention]")),
        ("colour = 'red'\n", ("'colour'", "review_deadline_hours")),
        ("[other]\nmin_alpha = 0.8\n", ("unknown table [other]",)),
        ("[policy]\n[service]\nport = 8600\n", ("unknown table [service]",)),
    ],
)
def test_load_policy_misplaced_key_rejected(
    tmp_path: Path, content: str, fragments: tuple[str, ...]
) -> None:
    with pytest.raises(InputError) as caught:
        load_policy_file(write(tmp_path, content))
    assert caught.value.reason == "invalid-policy"
    for fragment in fragments:
        assert fragment in caught.value.message


def test_apply_policy_key_without_table_appends_nothing(
    db_url: str, key_dir: Path, tmp_path: Path
) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        with pytest.raises(InputError) as caught:
            apply_policy_file(
                ledger, write(tmp_path, "min_alpha = 0.8\n"), actor="user:officer"
            )
        size = ledger.size
    assert "top-level key 'min_alpha'" in caught.value.message
    assert size == 0


def test_cli_policies_apply_misplaced_key_exits_2(
    sqlite_url: str, key_dir: Path, tmp_path: Path
) -> None:
    with create_ledger(sqlite_url, key_dir, Clock()):
        pass
    path = write(tmp_path, "min_alpha = 0.8\n")
    command = [sys.executable, str(CLI), "--db", sqlite_url, "--key-dir", str(key_dir)]
    result = subprocess.run(
        [*command, "policies", "apply", str(path), "--actor", "user:officer"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    with Ledger.open(sqlite_url, config=LedgerConfig(key_dir=key_dir)) as ledger:
        size = ledger.size
    assert result.returncode == 2, result.stderr
    assert "top-level key 'min_alpha'" in result.stderr
    assert "[policy]" in result.stderr
    assert "Traceback" not in result.stderr
    assert size == 0


def test_load_policy_not_toml(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not valid TOML"):
        load_policy_file(write(tmp_path, "[policy\n"))


def test_load_policy_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_policy_file(tmp_path / "absent.toml")


def test_set_policy_value_parses_json_and_text() -> None:
    policy = set_policy_value(PolicyConfig(), "review_deadline_hours", "12")
    policy = set_policy_value(policy, "drift_baseline", "previous-period")
    policy = set_policy_value(policy, "policy.adverse_outputs", '["deny"]')
    policy = set_policy_value(policy, "retention.review", "2.5")
    assert policy.review_deadline_hours == 12.0
    assert policy.drift_baseline == "previous-period"
    assert policy.adverse_outputs == ["deny"]
    assert policy.retention.review == 2.5


def test_set_policy_unknown_key_rejected() -> None:
    with pytest.raises(InputError, match="retention.verdict: unknown key"):
        set_policy_value(PolicyConfig(), "retention.verdict", "3")
    with pytest.raises(InputError, match="colour: unknown key"):
        set_policy_value(PolicyConfig(), "colour", "3")


def test_policy_in_force_follows_period_end(db_url: str, key_dir: Path) -> None:
    clock = Clock()
    with create_ledger(db_url, key_dir, clock) as ledger:
        clock.at(T0 + timedelta(days=1))
        first = record_policy(
            ledger,
            PolicyConfig(review_deadline_hours=24),
            actor="user:officer",
            source="test",
            occurred_at=stamp(T0),
        )
        clock.at(T0 + timedelta(days=3))
        second = record_policy(
            ledger,
            PolicyConfig(review_deadline_hours=12),
            actor="user:officer",
            source="test",
        )
        before, before_seq = policy_in_force(ledger, at=text(T0))
        middle, middle_seq = policy_in_force(ledger, at=text(T0 + timedelta(days=2)))
        latest, latest_seq = policy_in_force(ledger)
    assert first is not None and second is not None
    assert before_seq is None
    assert before.review_deadline_hours == 72.0
    assert middle_seq == first["seq"]
    assert middle.review_deadline_hours == 24.0
    assert latest_seq == second["seq"]
    assert latest.review_deadline_hours == 12.0


def test_record_policy_unchanged_appends_nothing(db_url: str, key_dir: Path) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        policy = PolicyConfig(min_alpha=0.8)
        receipt = record_policy(ledger, policy, actor="user:officer", source="test")
        again = record_policy(ledger, policy, actor="user:officer", source="test")
        entry = ledger.get(receipt["seq"]) if receipt else None
        size = ledger.size
    assert receipt is not None
    assert again is None
    assert size == 1
    assert entry is not None
    assert entry.kind == "policy_config"
    assert entry.record["changed"] == ["min_alpha"]
    assert entry.record["policy"]["min_alpha"] == 0.8
    assert entry.record["actor"] == "user:officer"


def test_record_policy_bad_actor_writes_nothing(db_url: str, key_dir: Path) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        with pytest.raises(InputError, match="actor"):
            record_policy(ledger, PolicyConfig(), actor="root", source="test")
        assert ledger.size == 0


def test_apply_policy_file_records_entry(
    db_url: str, key_dir: Path, tmp_path: Path
) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        receipt, policy = apply_policy_file(
            ledger, write(tmp_path, GOOD), actor="user:officer"
        )
        in_force, seq = policy_in_force(ledger)
    assert receipt is not None
    assert seq == receipt["seq"]
    assert in_force == policy
    assert in_force.retention.decision == 10.0


def test_invalid_policy_entry_raises_policy_error(db_url: str, key_dir: Path) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append_ledger_record(
            "policy_config",
            {"actor": "user:x", "occurred_at": stamp(T0), "policy": {"min_alpha": 5}},
        )
        with pytest.raises(PolicyError) as caught:
            policy_in_force(ledger)
    assert caught.value.reason == "invalid-policy-entry"
    assert "seq 0" in caught.value.message
