"""Drift of decision confidence: PSI by hand, bins and windows in SQL."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import pytest

from policies.checks import CHECKS, PSI_EPSILON, population_stability_index
from policies.config import PolicyConfig

from .support import T0, Clock, create_ledger, decision, evidence, text

DAY = timedelta(days=1)

# Baseline: 4 decisions in bin 1, 4 in bin 5, 2 in bin 9; current: 2, 3, 5.
BASELINE = [0.15] * 4 + [0.55] * 4 + [0.95] * 2
CURRENT = [0.15] * 2 + [0.55] * 3 + [0.95] * 5
# Shares 0.4/0.4/0.2 against 0.2/0.3/0.5; empty bins add nothing.
HAND_PSI = (
    (0.2 - 0.4) * math.log(0.2 / 0.4)
    + (0.3 - 0.4) * math.log(0.3 / 0.4)
    + (0.5 - 0.2) * math.log(0.5 / 0.2)
)


def test_psi_by_hand() -> None:
    baseline = [0, 4, 0, 0, 0, 4, 0, 0, 0, 2]
    current = [0, 2, 0, 0, 0, 3, 0, 0, 0, 5]
    assert population_stability_index(baseline, current) == pytest.approx(HAND_PSI)
    assert HAND_PSI == pytest.approx(0.442285, abs=1e-6)


def test_psi_empty_bin_uses_epsilon() -> None:
    psi = population_stability_index([10, 0], [5, 5])
    expected = (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - PSI_EPSILON) * math.log(
        0.5 / PSI_EPSILON
    )
    assert psi == pytest.approx(expected)


def test_psi_identical_histograms_zero() -> None:
    assert population_stability_index([3, 1, 0], [6, 2, 0]) == 0.0


def test_psi_rejects_unequal_bins() -> None:
    with pytest.raises(ValueError, match="same bins"):
        population_stability_index([1, 2], [1, 2, 3])


def drift_ledger(url: str, key_dir: Path, clock: Clock):  # type: ignore[no-untyped-def]
    """Baseline decisions on day 0, current ones on day 1 (model scorer)."""
    ledger = create_ledger(url, key_dir, clock.at(T0))
    ledger.append_many(
        [decision(f"b{i}", c, occurred=T0) for i, c in enumerate(BASELINE)]
    )
    clock.at(T0 + DAY)
    ledger.append_many(
        [decision(f"c{i}", c, occurred=T0 + DAY) for i, c in enumerate(CURRENT)]
    )
    return ledger


def test_drift_splits_bulk_import_by_occurred_at(db_url: str, key_dir: Path) -> None:
    # A bulk import records every decision at once; the windows must still
    # follow when the decisions were made.
    policy = PolicyConfig(psi_min_decisions=10)
    with create_ledger(db_url, key_dir, Clock().at(T0 + 30 * DAY)) as ledger:
        ledger.append_many(
            [decision(f"b{i}", c, occurred=T0) for i, c in enumerate(BASELINE)]
            + [decision(f"c{i}", c, occurred=T0 + DAY) for i, c in enumerate(CURRENT)]
        )
        with evidence(ledger, policy=policy) as collected:
            counts = collected.drift_counts()
    assert counts[0].baseline == (0, 4, 0, 0, 0, 4, 0, 0, 0, 2)
    assert counts[0].current == (0, 2, 0, 0, 0, 3, 0, 0, 0, 5)


def test_drift_first_half_matches_hand_psi(db_url: str, key_dir: Path) -> None:
    policy = PolicyConfig(psi_min_decisions=10)
    with drift_ledger(db_url, key_dir, Clock()) as ledger:
        with evidence(
            ledger,
            policy=policy,
            start=text(T0 - timedelta(hours=12)),
            end=text(T0 + DAY + timedelta(hours=12)),
        ) as collected:
            counts = collected.drift_counts()
            result = CHECKS["confidence-drift"].run(collected, policy)
    assert [row.model_name for row in counts] == ["scorer"]
    assert counts[0].baseline == (0, 4, 0, 0, 0, 4, 0, 0, 0, 2)
    assert counts[0].current == (0, 2, 0, 0, 0, 3, 0, 0, 0, 5)
    assert result.figures["per_model"][0]["psi"] == pytest.approx(HAND_PSI, abs=1e-6)
    assert result.figures["method"] == "first-half"
    assert result.status == "not-satisfied"
    assert result.findings[0].severity == "high"


def test_drift_previous_period_baseline(db_url: str, key_dir: Path) -> None:
    policy = PolicyConfig(psi_min_decisions=10, drift_baseline="previous-period")
    with drift_ledger(db_url, key_dir, Clock()) as ledger:
        with evidence(
            ledger, policy=policy, start=text(T0 + DAY), end=text(T0 + 2 * DAY)
        ) as collected:
            counts = collected.drift_counts()
            windows = collected.drift_windows()
    assert windows is not None
    assert windows.method == "previous-period"
    assert windows.baseline_start == text(T0)
    assert counts[0].baseline == (0, 4, 0, 0, 0, 4, 0, 0, 0, 2)
    assert counts[0].current == (0, 2, 0, 0, 0, 3, 0, 0, 0, 5)


def test_drift_too_few_decisions_not_assessed(db_url: str, key_dir: Path) -> None:
    with drift_ledger(db_url, key_dir, Clock()) as ledger:
        with evidence(ledger) as collected:
            result = CHECKS["confidence-drift"].run(collected, PolicyConfig())
    assert result.status == "not-assessed"
    assert "at least 30" in result.rationale


def test_confidence_bins_at_edges(db_url: str, key_dir: Path) -> None:
    """Bin i holds [i/10, (i+1)/10); 1.0 falls in the last bin."""
    confidences = [0.0, 0.1, 0.7, 0.0999, 0.99, 1.0]
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append_many(
            [decision(f"c{i}", value) for i, value in enumerate(confidences)]
        )
        policy = PolicyConfig(psi_min_decisions=1)
        with evidence(ledger, policy=policy) as collected:
            counts = collected.drift_counts()
    # One recorded_at: every decision falls in the current window.
    assert counts[0].current == (2, 1, 0, 0, 0, 0, 0, 1, 0, 2)
    assert sum(counts[0].baseline) == 0
