"""policies.evaluate and the `evaluate` and `policies` commands end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from ledger.errors import InputError
from policies import evaluate
from policies.config import PolicyConfig, record_policy

from .support import T0, Clock, annotation, create_ledger, decision, review, text

CLI = Path(__file__).resolve().parents[2] / "cli.py"
DAY = timedelta(days=1)


def test_empty_ledger_every_control_not_assessed(db_url: str, key_dir: Path) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        evaluation = evaluate(ledger)
    assert evaluation.tree_size == 0
    assert len(evaluation.frameworks) == 6
    for framework in evaluation.frameworks:
        for control in framework.controls:
            where = f"{framework.id} {control.control_id}"
            assert control.status == "not-assessed", where
            assert control.rationale, where
            assert control.findings == (), where


def test_empty_period_never_satisfied(db_url: str, key_dir: Path) -> None:
    """With entries only outside the period, no control is satisfied."""
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append(annotation("i1", "a"))
        evaluation = evaluate(ledger, start=text(T0 + DAY), end=text(T0 + 2 * DAY))
    statuses = {
        control.status
        for framework in evaluation.frameworks
        for control in framework.controls
    }
    assert "satisfied" not in statuses


def test_control_cites_seqs_of_findings(db_url: str, key_dir: Path) -> None:
    clock = Clock()
    with create_ledger(db_url, key_dir, clock) as ledger:
        ledger.append_many(
            [annotation("i1", "a", actor="user:ann-1"), annotation("i2", "b")]
        )
        clock.at(T0 + DAY)
        ledger.append_many(
            [review(0, actor="user:ann-1"), review(1, actor="user:rev-1")]
        )
        evaluation = evaluate(ledger, ["iso27001"])
    control = next(
        c for c in evaluation.frameworks[0].controls if c.control_id == "A.5.3"
    )
    assert control.status == "partially-satisfied"
    assert control.cited_seqs == (2,)
    assert control.checks == ("segregation-of-duties",)
    assert control.figures["segregation-of-duties"]["self_reviews"] == 1


def test_each_check_runs_once(db_url: str, key_dir: Path) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append(decision("c1", 0.5))
        evaluation = evaluate(ledger, ["gdpr", "eu-ai-act", "nist-ai-rmf"])
    ids = [check.id for check in evaluation.checks]
    assert len(ids) == len(set(ids))
    assert "human-oversight" in ids
    assert "chain-integrity" in ids


def test_policy_change_applies_after_it(db_url: str, key_dir: Path) -> None:
    """A policy_config entry on day 2 governs day 3, not day 1."""
    clock = Clock()
    with create_ledger(db_url, key_dir, clock) as ledger:
        ledger.append(decision("c1", 0.6))  # day 0: below the default 0.7
        clock.at(T0 + 2 * DAY)
        receipt = record_policy(
            ledger,
            PolicyConfig(review_confidence_below=0.5),
            actor="user:officer",
            source="test",
        )
        clock.at(T0 + 3 * DAY)
        ledger.append(decision("c2", 0.6))  # day 3: above the new 0.5
        before = evaluate(ledger, ["gdpr"], start=text(T0), end=text(T0 + DAY))
        after = evaluate(
            ledger, ["gdpr"], start=text(T0 + 2 * DAY), end=text(T0 + 4 * DAY)
        )
    assert receipt is not None
    assert before.policy_seq is None
    assert before.policy["review_confidence_below"] == 0.7
    assert after.policy_seq == receipt["seq"]
    assert after.policy["review_confidence_below"] == 0.5
    oversight_before = next(c for c in before.checks if c.id == "human-oversight")
    oversight_after = next(c for c in after.checks if c.id == "human-oversight")
    assert oversight_before.figures["needing_review"] == 1
    assert oversight_after.status == "not-applicable"


def test_evaluation_reuses_verification(db_url: str, key_dir: Path) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append(annotation("i1", "a"))
        verified = ledger.verify()
        evaluation = evaluate(ledger, ["iso27001"], verification=verified)
    chain = next(c for c in evaluation.checks if c.id == "chain-integrity")
    assert chain.figures["root"] == verified.root
    assert evaluation.root == verified.root


def test_evaluation_to_dict_is_json(db_url: str, key_dir: Path) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append(annotation("i1", "a"))
        evaluation = evaluate(ledger)
    data = json.loads(json.dumps(evaluation.to_dict()))
    assert data["tree_size"] == 1
    assert [f["id"] for f in data["frameworks"]][0] == "hipaa"


@pytest.mark.parametrize(
    ("frameworks", "start", "end", "fragment"),
    [
        (["sox"], None, None, "unknown framework 'sox'"),
        ([], None, None, "no framework chosen"),
        (None, "yesterday", None, "start: 'yesterday' is not a time"),
        (None, "2026-02-01", "2026-01-01", "is not before its end"),
    ],
)
def test_evaluate_bad_input_raises(
    sqlite_url: str,
    key_dir: Path,
    frameworks: list[str] | None,
    start: str | None,
    end: str | None,
    fragment: str,
) -> None:
    with create_ledger(sqlite_url, key_dir, Clock()) as ledger:
        with pytest.raises(InputError) as caught:
            evaluate(ledger, frameworks, start=start, end=end)
    assert fragment in caught.value.message


# -- the command line -------------------------------------------------------------


class Runner:
    """Run cli.py as a real process against one SQLite ledger."""

    def __init__(self, tmp_path: Path, key_dir: Path) -> None:
        self.tmp_path = tmp_path
        self.db = f"sqlite:///{tmp_path / 'ledger.db'}"
        self.env = dict(
            os.environ, GOVLEDGER_KEY_DIR=str(key_dir), GOVLEDGER_ACTOR="user:officer"
        )

    def __call__(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, str(CLI), "--db", self.db, *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.tmp_path,
            timeout=120,
        )
        assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode == code, (result.stdout, result.stderr)
        return result


@pytest.fixture
def cli_ledger(tmp_path: Path, key_dir: Path) -> Runner:
    runner = Runner(tmp_path, key_dir)
    with create_ledger(runner.db, key_dir, Clock()) as ledger:
        ledger.append_many(
            [
                annotation("i1", "a", actor="user:admin"),
                annotation("i1", "b", actor="user:ann-2"),
                decision("c1", 0.4),
            ]
        )
    return runner


def test_cli_evaluate_table(cli_ledger: Runner) -> None:
    result = cli_ledger("evaluate", "--framework", "hipaa")
    lines = result.stdout.splitlines()
    row = next(line for line in lines if line.strip().startswith("164.312(a)(2)(i)"))
    assert "partially-satisfied" in row
    assert row.rstrip().endswith("0")
    assert any("cited seqs" in line for line in lines)
    assert "policy: defaults" in result.stdout


def test_cli_evaluate_json_not_satisfied_exit_zero(cli_ledger: Runner) -> None:
    result = cli_ledger("evaluate", "--framework", "eu-ai-act", "--json")
    data = json.loads(result.stdout)
    statuses = {c["status"] for c in data["frameworks"][0]["controls"]}
    assert data["frameworks"][0]["id"] == "eu-ai-act"
    assert "not-satisfied" in statuses


def test_cli_evaluate_unknown_framework_exit_2(cli_ledger: Runner) -> None:
    result = cli_ledger("evaluate", "--framework", "sox", code=2)
    assert "unknown framework 'sox'" in result.stderr
    assert "iso42001" in result.stderr


def test_cli_evaluate_bad_time_exit_2(cli_ledger: Runner) -> None:
    result = cli_ledger("evaluate", "--from", "2026-13-40", code=2)
    assert "--from" in result.stderr


def test_cli_policies_list_and_show(cli_ledger: Runner) -> None:
    listed = json.loads(cli_ledger("--json", "policies", "list").stdout)
    shown = cli_ledger("policies", "show", "gdpr").stdout
    missing = cli_ledger("policies", "show", "sox", code=2)
    assert [item["id"] for item in listed][:2] == ["hipaa", "gdpr"]
    assert "Art. 22(3)" in shown
    assert "human-oversight" in shown
    assert "valid frameworks" in missing.stderr


def test_cli_policies_set_records_entry(cli_ledger: Runner) -> None:
    result = cli_ledger("--json", "policies", "set", "min_alpha", "0.8")
    current = json.loads(cli_ledger("--json", "policies", "current").stdout)
    receipt = json.loads(result.stdout)["receipt"]
    assert receipt["seq"] == 3
    assert current["policy_seq"] == 3
    assert current["policy"]["min_alpha"] == 0.8


def test_cli_policies_apply_bad_key_writes_nothing(
    cli_ledger: Runner, tmp_path: Path
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[policy]\nmin_alfa = 0.8\n", encoding="utf-8")
    result = cli_ledger("policies", "apply", str(path), code=2)
    current = json.loads(cli_ledger("--json", "policies", "current").stdout)
    assert "min_alfa: unknown key" in result.stderr
    assert current["policy_seq"] is None
