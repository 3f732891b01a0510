"""Policy evaluation: map ledger evidence to the controls of compliance frameworks.

``evaluate(ledger, ["gdpr", "hipaa"], start=..., end=...)`` returns an
``Evaluation``: each check the chosen frameworks need runs once over the
period (SQL aggregates through ``policies.evidence``), and every control
takes its status from its checks. The thresholds are those of the policy in
force at the period end (the latest ``policy_config`` entry, else the
defaults of ``policies.config``).

Built-in frameworks: hipaa, gdpr, nist-ai-rmf, iso27001, eu-ai-act,
iso42001. Others plug in through the ``govledger.frameworks`` entry point
group; ``policies.framework`` describes how a plug-in declares itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ledger.entries import format_timestamp
from ledger.errors import InputError

from .checks import CHECKS, Check
from .config import PolicyConfig, policy_in_force
from .evidence import Evidence, Period
from .framework import (
    Control,
    Framework,
    assess_control,
    get_framework,
    list_frameworks,
)
from .model import (
    STATUSES,
    CheckResult,
    ControlResult,
    Evaluation,
    Finding,
    FrameworkResult,
    Status,
)

if TYPE_CHECKING:
    from ledger import Ledger

__all__ = [
    "STATUSES",
    "CheckResult",
    "Control",
    "ControlResult",
    "Evaluation",
    "Finding",
    "Framework",
    "FrameworkResult",
    "PolicyConfig",
    "Status",
    "evaluate",
    "get_framework",
    "list_frameworks",
]

logger = logging.getLogger(__name__)


def _select(frameworks: Iterable[str] | None) -> list[Framework]:
    if frameworks is None:
        return list_frameworks()
    if isinstance(frameworks, str):
        frameworks = [frameworks]
    chosen: dict[str, Framework] = {}
    for framework_id in frameworks:
        if framework_id not in chosen:
            chosen[framework_id] = get_framework(framework_id)
    if not chosen:
        raise InputError(
            "no framework chosen; give at least one, or none for all",
            reason="unknown-framework",
        )
    return list(chosen.values())


def _checks_for(frameworks: list[Framework]) -> dict[str, Check]:
    """Return the checks the frameworks use, each once, in first-use order."""
    available: dict[str, Check] = dict(CHECKS)
    for framework in frameworks:
        for check in framework.checks:
            available.setdefault(check.id, check)
    needed: dict[str, Check] = {}
    for framework in frameworks:
        for check_id in framework.check_ids():
            needed.setdefault(check_id, available[check_id])
    return needed


def evaluate(
    ledger: Ledger,
    frameworks: Iterable[str] | None = None,
    *,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    policy: PolicyConfig | None = None,
    verification: Any = None,
    progress: Callable[[int], None] | None = None,
) -> Evaluation:
    """Evaluate frameworks' controls over a period of the ledger.

    ``start`` and ``end`` bound ``recorded_at`` (start inclusive, end
    exclusive; RFC 3339 with a time zone, a date, or an aware datetime);
    None leaves the side open. ``frameworks`` are ids (None: all).
    ``policy`` overrides the policy in force; ``verification`` reuses a
    ``VerifyResult`` of this ledger instead of verifying again, and
    ``progress`` receives the count of entries verified.

    Raises:
        InputError: a framework id or a period bound is invalid.
        PolicyError: the policy_config entry in force is invalid, or a
            plug-in framework is malformed.
        StoreError: the database failed.
    """
    selected = _select(frameworks)
    period = Period.from_bounds(start, end)
    now = datetime.now(UTC)
    tree_size = ledger.size
    root = ledger.root(tree_size).hex()
    policy_seq = None
    if policy is None:
        policy, policy_seq = policy_in_force(ledger, at=period.end, tree_size=tree_size)
    checks = _checks_for(selected)
    logger.debug(
        "evaluating %s over %s..%s at tree size %d",
        [framework.id for framework in selected],
        period.start,
        period.end,
        tree_size,
    )
    results: dict[str, CheckResult] = {}
    with Evidence(
        ledger,
        period=period,
        policy=policy,
        tree_size=tree_size,
        now=now,
        verification=verification,
        progress=progress,
    ) as evidence:
        for check_id, check in checks.items():
            results[check_id] = check.run(evidence, policy)
    framework_results = tuple(
        FrameworkResult(
            id=framework.id,
            title=framework.title,
            version=framework.version,
            controls=tuple(
                assess_control(
                    framework,
                    control,
                    [results[check_id] for check_id in control.checks],
                )
                for control in framework.controls
            ),
        )
        for framework in selected
    )
    return Evaluation(
        period_start=period.start,
        period_end=period.end,
        evaluated_at=format_timestamp(now),
        tree_size=tree_size,
        root=root,
        policy=policy.to_record(),
        policy_seq=policy_seq,
        checks=tuple(results.values()),
        frameworks=framework_results,
    )
