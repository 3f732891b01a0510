"""Result objects of policy evaluation, shared by the CLI, the API and reports.

A *check* gathers evidence from the ledger once (an SQL aggregate through
the evidence layer) and serves controls in several frameworks; a *control*
takes the statuses of its checks. Every result carries figures and findings
that cite entry seqs, so a report can show the evidence behind a status.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "STATUSES",
    "CheckResult",
    "ControlResult",
    "Evaluation",
    "Finding",
    "FrameworkResult",
    "Status",
]

Status = Literal[
    "satisfied",
    "partially-satisfied",
    "not-satisfied",
    "not-applicable",
    "not-assessed",
]
STATUSES: tuple[Status, ...] = (
    "satisfied",
    "partially-satisfied",
    "not-satisfied",
    "not-applicable",
    "not-assessed",
)


@dataclass(frozen=True)
class Finding:
    """One exception found by a check, citing the entries behind it.

    ``seqs`` lists at most a bounded sample of the entries concerned;
    ``count`` is how many there are in all.
    """

    check: str
    severity: Literal["high", "medium", "low", "info"]
    message: str
    seqs: tuple[int, ...] = ()
    count: int = 0


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one shared check over the evaluation period.

    ``rationale`` says in a sentence why the status was given, and always
    says why for ``not-assessed`` (which evidence was missing). ``summary``
    is a short line of the key figures for tables.
    """

    id: str
    title: str
    status: Status
    rationale: str
    figures: dict[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    summary: str = ""


@dataclass(frozen=True)
class ControlResult:
    """One control of a framework, assessed from the checks that serve it.

    ``other_evidence`` names what the ledger cannot show for this control
    (organisational measures, documents), empty when the ledger covers it.
    """

    framework: str
    control_id: str
    title: str
    description: str
    status: Status
    rationale: str
    checks: tuple[str, ...]
    figures: dict[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    other_evidence: str = ""

    @property
    def cited_seqs(self) -> tuple[int, ...]:
        """The entry seqs cited by this control's findings, sorted, once each."""
        return tuple(sorted({seq for finding in self.findings for seq in finding.seqs}))


@dataclass(frozen=True)
class FrameworkResult:
    """The controls of one framework with their statuses."""

    id: str
    title: str
    version: str
    controls: tuple[ControlResult, ...]

    def status_counts(self) -> dict[str, int]:
        """Count the controls per status, every status present."""
        counts = {status: 0 for status in STATUSES}
        for control in self.controls:
            counts[control.status] += 1
        return counts


@dataclass(frozen=True)
class Evaluation:
    """A whole evaluation: period, policy in force, checks and frameworks.

    ``period_start`` and ``period_end`` bound ``recorded_at`` (RFC 3339 UTC,
    end exclusive; None means open). ``tree_size`` and ``root`` identify the
    ledger state that was evaluated; ``policy`` holds the thresholds used
    and ``policy_seq`` the ``policy_config`` entry that set them, if any.
    """

    period_start: str | None
    period_end: str | None
    evaluated_at: str
    tree_size: int
    root: str
    policy: dict[str, Any]
    policy_seq: int | None
    checks: tuple[CheckResult, ...]
    frameworks: tuple[FrameworkResult, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return the evaluation as JSON-ready data."""
        return asdict(self)
