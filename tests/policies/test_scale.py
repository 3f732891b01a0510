"""The evidence layer's statement count does not grow with the ledger.

A ledger of 100,000 entries and one of 1,000, built from the same repeating
pattern, must cost the same number of SQL statements to evaluate: every
check is an aggregate, never a loop over entries. Time is not asserted;
bench/policies_bench.py measures it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from ledger import Ledger, LedgerConfig
from ledger.verify import VerifyResult
from policies.checks import CHECKS
from policies.config import PolicyConfig

from .support import T0, Clock, evidence

POLICY = PolicyConfig(adverse_outputs=["deny"], psi_min_decisions=5)
CHUNK = 10_000


def pattern(index: int) -> dict[str, Any]:
    """Record ``index`` of a repeating mix: decisions, annotations, reviews."""
    slot = index % 10
    if slot < 5:
        record: dict[str, Any] = {
            "kind": "decision",
            "actor": "svc:scorer",
            "occurred_at": "2026-01-05T08:00:00Z",
            "item": {"dataset": "cases", "id": f"c{index}"},
            "model": {"name": "scorer", "version": "1.0"},
            "output": "deny" if index % 7 == 0 else "approve",
            "confidence": (index * 37 % 100) / 100,
        }
        if index % 20 == 0:
            record["subject"] = f"s{index % 500}"
            record["personal"] = {"name": f"n{index}"}
        return record
    if slot < 8:
        return {
            "kind": "annotation",
            "actor": f"user:ann-{index % 5}",
            "occurred_at": "2026-01-05T08:00:00Z",
            "item": {"dataset": "texts", "id": f"t{index // 30}"},
            "label": "spam" if index % 3 == 0 else "ham",
            "guideline": "v1",
        }
    return {
        "kind": "review",
        "actor": f"user:rev-{index % 3}",
        "occurred_at": "2026-01-05T10:00:00Z",
        "target": {"seq": index - 8 + index % 3},
        "verdict": ("accept", "reject", "correct")[index % 3],
    }


def build(url: str, key_dir: Path, size: int) -> Ledger:
    clock = Clock()
    config = LedgerConfig(key_dir=key_dir, checkpoint_every=0, checkpoint_interval_s=0)
    ledger = Ledger.create(
        url, origin="test.example/ledger", config=config, clock=clock
    )
    for start in range(0, size, CHUNK):
        clock.at(T0 + timedelta(hours=start // CHUNK))
        ledger.append_many([pattern(i) for i in range(start, min(size, start + CHUNK))])
    return ledger


def run_checks(ledger: Ledger) -> tuple[int, dict[str, Any]]:
    """Run every check once; return the statements issued and the results."""
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    verified = VerifyResult(
        entries_checked=ledger.size, size=ledger.size, chain_intact=True
    )
    event.listen(ledger.engine, "before_cursor_execute", count)
    try:
        with evidence(ledger, policy=POLICY, verification=verified) as collected:
            results = {
                check_id: check.run(collected, POLICY)
                for check_id, check in CHECKS.items()
            }
    finally:
        event.remove(ledger.engine, "before_cursor_execute", count)
    return len(statements), results


@pytest.mark.slow
def test_statement_count_independent_of_size(tmp_path: Path) -> None:
    with build(f"sqlite:///{tmp_path / 'small.db'}", tmp_path / "k1", 1_000) as small:
        small_count, small_results = run_checks(small)
    with build(f"sqlite:///{tmp_path / 'big.db'}", tmp_path / "k2", 100_000) as big:
        big_count, big_results = run_checks(big)
    assert big_results["human-oversight"].figures["decisions"] == 50_000
    assert small_results["human-oversight"].figures["decisions"] == 500
    assert big_results["inter-annotator-agreement"].figures["units"] > 1_000
    for check_id in CHECKS:
        small_findings = len(small_results[check_id].findings)
        big_findings = len(big_results[check_id].findings)
        assert small_findings == big_findings, check_id
    assert big_count == small_count
    assert big_count <= 60, big_count
