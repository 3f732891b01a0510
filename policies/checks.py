"""The shared checks: each turns evidence into a status, figures and findings.

A check has an ``id``, a ``title`` and ``run(evidence, policy)``, which
returns a ``CheckResult``. One check serves controls in several frameworks
(human oversight serves GDPR Art. 22(3), EU AI Act Art. 14(4)(d) and NIST AI
RMF MANAGE 4.1), and an evaluation runs each check it needs once.

Statuses follow one rule where a check counts cases: none failing is
``satisfied``, all failing ``not-satisfied``, some ``partially-satisfied``.
A check without evidence in the period returns ``not-assessed`` with the
reason, and one that the ledger shows does not apply returns
``not-applicable`` with the reason.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

from ledger.records import INPUT_KINDS

from .config import PolicyConfig, normalise_actor
from .evidence import CONFIDENCE_BINS, Evidence
from .model import CheckResult, Finding, Status

__all__ = [
    "CHECKS",
    "MAX_FINDINGS",
    "PSI_EPSILON",
    "Check",
    "FunctionCheck",
    "Outcome",
    "get_check",
    "is_generic_actor",
    "krippendorff_alpha",
    "population_stability_index",
]

logger = logging.getLogger(__name__)

# Findings listed per check; the figures always hold the full counts.
MAX_FINDINGS = 20
# Share put in place of an empty bin so that PSI stays finite.
PSI_EPSILON = 1e-4


class Check(Protocol):
    """The protocol of a check: an id, a title and a ``run`` method."""

    @property
    def id(self) -> str: ...

    @property
    def title(self) -> str: ...

    def run(self, evidence: Evidence, policy: PolicyConfig) -> CheckResult: ...


@dataclass(frozen=True)
class Outcome:
    """The result of a check function; ``FunctionCheck`` adds the id and title."""

    status: Status
    rationale: str
    figures: dict[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    summary: str = ""


@dataclass(frozen=True)
class FunctionCheck:
    """A check made of a function from (evidence, policy) to its outcome."""

    id: str
    title: str
    function: Callable[[Evidence, PolicyConfig], Outcome]

    def run(self, evidence: Evidence, policy: PolicyConfig) -> CheckResult:
        """Run the check and return its result."""
        outcome = self.function(evidence, policy)
        logger.debug("check %s: %s", self.id, outcome.status)
        return CheckResult(
            id=self.id,
            title=self.title,
            status=outcome.status,
            rationale=outcome.rationale,
            figures=outcome.figures,
            findings=outcome.findings,
            summary=outcome.summary or outcome.rationale,
        )


CHECKS: dict[str, Check] = {}


def _check(check_id: str, title: str) -> Callable[..., Any]:
    def register(
        function: Callable[[Evidence, PolicyConfig], Outcome],
    ) -> Callable[[Evidence, PolicyConfig], Outcome]:
        CHECKS[check_id] = FunctionCheck(check_id, title, function)
        return function

    return register


def get_check(check_id: str) -> Check:
    """Return the built-in check with this id.

    Raises:
        KeyError: no built-in check has that id.
    """
    return CHECKS[check_id]


# -- helpers ------------------------------------------------------------------


def _grade(total: int, failing: int) -> Status:
    if failing <= 0:
        return "satisfied"
    if failing >= total:
        return "not-satisfied"
    return "partially-satisfied"


def _worst(*statuses: Status) -> Status:
    order = ["satisfied", "partially-satisfied", "not-satisfied"]
    return max(statuses, key=order.index)


def _not_assessed(reason: str, figures: dict[str, Any] | None = None) -> Outcome:
    return Outcome("not-assessed", reason, figures or {}, summary=reason)


def _no_entries(evidence: Evidence) -> Outcome | None:
    if evidence.entries_in_period() == 0:
        return _not_assessed("no entries were recorded in the period")
    return None


def _finding(
    check_id: str,
    severity: Any,
    message: str,
    count: int,
    seqs: Sequence[int] = (),
) -> Finding:
    return Finding(
        check=check_id,
        severity=severity,
        message=message,
        seqs=tuple(seqs),
        count=count,
    )


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600.0, 3)


def _duration(seconds: float | None) -> str:
    """Return a signed duration in the largest fitting unit: ``-10 s``, ``3.2 d``."""
    if seconds is None:
        return "-"
    value, unit = seconds, "s"
    for name, length in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if abs(seconds) >= length:
            value, unit = seconds / length, name
            break
    return f"{value:.0f} {unit}" if abs(value) >= 100 else f"{value:.3g} {unit}"


def _plural(count: int, noun: str) -> str:
    """Return ``1 entry``, ``2 entries``: the count with the noun in number."""
    if count == 1:
        return f"1 {noun}"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "o", "u"):
        return f"{count} {noun[:-1]}ies"
    return f"{count} {noun}s"


def _verb(count: int, singular: str, plural: str) -> str:
    return singular if count == 1 else plural


# -- ledger integrity ---------------------------------------------------------


@_check("chain-integrity", "Hash chain, Merkle tree and signed checkpoints verify")
def chain_integrity(evidence: Evidence, policy: PolicyConfig) -> Outcome:
    """Verify the whole ledger (RFC 9162 tree, C2SP checkpoints) once.

    Verification covers every entry, not only the period's, because a
    fault anywhere breaks the chain. A period without entries is still
    ``not-assessed``, because nothing in it needs protecting.
    """
    if evidence.tree_size == 0:
        return _not_assessed(
            "the ledger holds no entries, so there is no chain to verify"
        )
    empty = _no_entries(evidence)
    if empty is not None:
        return empty
    result = evidence.verification()
    checkpoints = evidence.checkpoints()
    latest = checkpoints.latest_tree_size
    figures = {
        "entries_checked": result.entries_checked,
        "tree_size": evidence.tree_size,
        "root": result.root,
        "chain_intact": result.chain_intact,
        "merkle_intact": result.merkle_intact,
        "checkpoints": checkpoints.count,
        "checkpoints_verified": result.checkpoints_checked,
        "checkpoints_valid": result.checkpoints_valid,
        "latest_checkpoint_size": latest,
        "entries_after_latest_checkpoint": evidence.tree_size - (latest or 0),
    }
    if not result.ok:
        fault = result.fault
        where = f" at seq {fault.seq}" if fault.seq is not None else ""
        message = f"verification failed: {fault.kind}{where}: {fault.message}"
        seqs = () if fault.seq is None else (fault.seq,)
        return Outcome(
            "not-satisfied",
            f"{message}; the ledger cannot be trusted until this is explained",
            figures,
            (_finding("chain-integrity", "high", message, 1, seqs),),
            summary=f"FAILED: {fault.kind}{where}",
        )
    summary = (
        f"{result.entries_checked} entries and "
        f"{_plural(result.checkpoints_checked, 'checkpoint')} verify"
    )
    if checkpoints.count == 0:
        message = (
            "no signed checkpoint commits to the tree, so an outsider could not "
            "detect a rewritten ledger; run `govledger checkpoint --publish`"
        )
        return Outcome(
            "partially-satisfied",
            f"every entry hash, link and Merkle node verifies, but {message}",
            figures,
            (_finding("chain-integrity", "medium", message, 1),),
            summary=summary + ", no checkpoint",
        )
    return Outcome(
        "satisfied",
        f"every entry hash, prev link and Merkle node of {result.entries_checked} "
        f"entries verifies, and {result.checkpoints_checked} signed checkpoints "
        "match the tree",
        figures,
        summary=summary,
    )


@_check("log-review", "The log is reviewed: audit packs cover the period")
def log_review(evidence: Evidence, policy: PolicyConfig) -> Outcome:
    """Count audit packs that reviewed the period's log, and verify the ledger.

    A ``report_issued`` entry records an audit pack made from the log. It
    counts when it was recorded in the period or when the period it covers
    overlaps this one, because a quarter's pack is often issued after the
    quarter ends. The verification of this evaluation is reported too.
    """
    empty = _no_entries(evidence)
    if empty is not None:
        return empty
    reports = evidence.reports()
    verified = evidence.verification()
    kinds = evidence.kinds()
    figures = {
        "reports_in_period": reports.recorded_in_period,
        "reports_covering_period": reports.covering_period,
        "last_report_at": reports.last_recorded_at,
        "verified_at_evaluation": verified.ok,
        "entries_verified": verified.entries_checked,
        "policy_changes": kinds["policy_config"].entries
        if "policy_config" in kinds
        else 0,
        "key_rotations": kinds["key_rotated"].entries if "key_rotated" in kinds else 0,
    }
    if reports.reviews == 0:
        return _not_assessed(
            "no report_issued entry was recorded in or covers the period, so the "
            "ledger holds no evidence that the log was reviewed (this evaluation "
            "verified it, but that review is not recorded); issue an audit pack "
            "with `govledger report`",
            figures,
        )
    finding = _finding(
        "log-review",
        "info",
        f"{_plural(reports.reviews, 'report_issued entry')} "
        f"{_verb(reports.reviews, 'reviews', 'review')} the period",
        reports.reviews,
        evidence.report_samples(),
    )
    return Outcome(
        "satisfied",
        f"{_plural(reports.reviews, 'audit pack')} reviewed the period's log, the "
        f"last recorded at {reports.last_recorded_at}",
        figures,
        (finding,),
        summary=f"{_plural(reports.reviews, 'audit pack')} "
        f"{_verb(reports.reviews, 'covers', 'cover')} the period",
    )


@_check("clock-skew", "Occurrence and recording times agree within the tolerance")
def clock_skew(evidence: Evidence, policy: PolicyConfig) -> Outcome:
    """Compare ``occurred_at`` with ``recorded_at`` (ISO/IEC 27001 A.8.17).

    Skew is ``recorded_at - occurred_at``; below minus the tolerance the
    record claims to have happened after the ledger received it, which only
    a clock running ahead explains.
    """
    skew = evidence.clock_skew()
    if skew.entries == 0:
        return _not_assessed("no entry in the period carries an occurred_at time")
    tolerance = policy.clock_skew_tolerance_s
    figures = {
        "entries": skew.entries,
        "future": skew.future,
        "late": skew.late,
        "tolerance_s": tolerance,
        "min_skew_s": skew.min_skew_s,
        "max_skew_s": skew.max_skew_s,
    }
    findings = []
    status: Status = "satisfied"
    if skew.future:
        findings.append(
            _finding(
                "clock-skew",
                "high",
                f"{_plural(skew.future, 'entry')} occurred more than {tolerance:g} s "
                "after being recorded: the source clock runs ahead",
                skew.future,
                evidence.clock_skew_samples("future"),
            )
        )
        status = _grade(skew.entries, skew.future)
    if skew.late:
        findings.append(
            _finding(
                "clock-skew",
                "low",
                f"{_plural(skew.late, 'entry')} "
                f"{_verb(skew.late, 'was', 'were')} recorded more than "
                f"{tolerance:g} s after occurring: delayed or back-filled logging, "
                "or a source clock running behind",
                skew.late,
                evidence.clock_skew_samples("late"),
            )
        )
        status = _worst(status, "partially-satisfied")
    summary = (
        f"skew {_duration(skew.min_skew_s)} to {_duration(skew.max_skew_s)} over "
        f"{_plural(skew.entries, 'entry')}; {skew.future} ahead, {skew.late} late"
    )
    if status == "satisfied":
        rationale = (
            f"no entry was recorded more than {tolerance:g} s away from its "
            f"occurred_at ({_plural(skew.entries, 'entry')} checked)"
        )
    else:
        rationale = (
            f"beyond the {tolerance:g} s tolerance, {skew.future} of "
            f"{_plural(skew.entries, 'entry')} occurred after being recorded and "
            f"{skew.late} {_verb(skew.late, 'was', 'were')} recorded late"
        )
    return Outcome(status, rationale, figures, tuple(findings), summary)


# -- actors -------------------------------------------------------------------


def is_generic_actor(actor: str, generic_names: Iterable[str]) -> bool:
    """Tell whether an actor id names a role or shared account, not one party.

    The id is compared after NFC and case folding. Its local part (after
    ``user:`` or ``svc:``) is generic when it is one of ``generic_names``
    or starts with ``shared``. An id without such a prefix is generic too.
    HIPAA 164.312(a)(2)(i) requires a unique identifier per user.
    """
    normal = normalise_actor(actor)
    prefix, separator, local = normal.partition(":")
    if not separator or prefix not in ("user", "svc") or not local.strip():
        return True
    names = {normalise_actor(name) for name in generic_names}
    return local in names or local.startswith("shared")


@_check("actor-identification", "Every entry names one identifiable actor")
def actor_identification(evidence: Evidence, policy: PolicyConfig) -> Outcome:
    """Flag entries without an actor, by generic ids, or by ids that collide.

    Distinct raw ids that are equal after NFC and case folding (``user:Zoë``
    and ``user:ZOË``) are ambiguous: one person may act under both.
    """
    actors = evidence.actors()
    if not actors:
        return _not_assessed("no entries were recorded in the period")
    total = sum(actor.entries for actor in actors)
    missing = [actor for actor in actors if actor.actor is None]
    generic = [
        actor
        for actor in actors
        if actor.actor is not None
        and is_generic_actor(actor.actor, policy.generic_actor_names)
    ]
    groups: dict[str, list[str]] = {}
    for actor in actors:
        if actor.actor is not None:
            groups.setdefault(normalise_actor(actor.actor), []).append(actor.actor)
    ambiguous = [sorted(ids) for ids in groups.values() if len(ids) > 1]
    counts = {actor.actor: actor.entries for actor in actors}
    findings = []
    if missing:
        count = missing[0].entries
        findings.append(
            _finding(
                "actor-identification",
                "high",
                f"{_plural(count, 'entry')} {_verb(count, 'names', 'name')} no actor",
                count,
                evidence.actor_samples([None]),
            )
        )
    for actor in sorted(generic, key=lambda item: -item.entries)[:MAX_FINDINGS]:
        findings.append(
            _finding(
                "actor-identification",
                "high",
                f"{_plural(actor.entries, 'entry')} by {actor.actor!r}, a generic or "
                "shared id that does not identify one person or system",
                actor.entries,
                evidence.actor_samples([actor.actor]),
            )
        )
    for ids in ambiguous[:MAX_FINDINGS]:
        count = sum(counts[raw] for raw in ids)
        findings.append(
            _finding(
                "actor-identification",
                "medium",
                f"actor ids {', '.join(repr(raw) for raw in ids)} differ only in case "
                "or Unicode normalisation, so one identity may act under several "
                "ids",
                count,
                evidence.actor_samples(ids),
            )
        )
    failing = sum(actor.entries for actor in missing + generic)
    status = _grade(total, failing)
    if ambiguous:
        status = _worst(status, "partially-satisfied")
    figures = {
        "entries": total,
        "actors": len([actor for actor in actors if actor.actor is not None]),
        "entries_without_actor": missing[0].entries if missing else 0,
        "generic_actors": {actor.actor: actor.entries for actor in generic},
        "ambiguous_actor_ids": ambiguous,
    }
    if status == "satisfied":
        rationale = (
            f"every entry ({_plural(total, 'entry')} in all) names one of "
            f"{figures['actors']} distinct, individual actor ids"
        )
    else:
        rationale = (
            f"{failing} of {_plural(total, 'entry')} lack an individual actor, and "
            f"{len(ambiguous)} groups of actor ids collide after normalisation"
        )
    summary = (
        f"{figures['actors']} actors; {failing} entries unattributed or generic; "
        f"{len(ambiguous)} colliding ids"
    )
    return Outcome(status, rationale, figures, tuple(findings), summary)


# -- human oversight ----------------------------------------------------------


@_check("human-oversight", "Decisions that need it get a human review")
def human_oversight(evidence: Evidence, policy: PolicyConfig) -> Outcome:
    """Check that low-confidence and adverse decisions have a human review.

    GDPR Art. 22(3) and EU AI Act Art. 14(4)(d): a person must be able to
    intervene in an automated decision. A review counts when its actor is a
    ``user:``.
    """
    o = evidence.oversight()
    if o.decisions == 0:
        return _not_assessed("no decisions were recorded in the period")
    figures = {
        "decisions": o.decisions,
        "needing_review": o.needing_review,
        "low_confidence": o.low_confidence,
        "adverse": o.adverse,
        "reviewed": o.reviewed,
        "overdue": o.overdue,
        "pending": o.pending,
        "reviewed_by_service_only": o.reviewed_by_service_only,
        "review_confidence_below": policy.review_confidence_below,
        "adverse_outputs": list(policy.adverse_outputs),
    }
    criteria = f"confidence below {policy.review_confidence_below:g}"
    if policy.adverse_outputs:
        criteria += " or an adverse output"
    if o.needing_review == 0:
        reason = f"none of the {_plural(o.decisions, 'decision')} had {criteria}"
        return Outcome(
            "not-applicable", reason, figures, summary="no decision needed review"
        )
    findings = []
    if o.overdue:
        findings.append(
            _finding(
                "human-oversight",
                "high",
                f"{_plural(o.overdue, 'decision')} needing review "
                f"{_verb(o.overdue, 'has', 'have')} no human review "
                f"{policy.review_deadline_hours:g} h after recording",
                o.overdue,
                evidence.oversight_samples("overdue"),
            )
        )
    if o.pending:
        findings.append(
            _finding(
                "human-oversight",
                "info",
                f"{_plural(o.pending, 'decision')} "
                f"{_verb(o.pending, 'awaits', 'await')} human review, still within "
                f"the {policy.review_deadline_hours:g} h deadline",
                o.pending,
            )
        )
    if o.reviewed_by_service_only:
        findings.append(
            _finding(
                "human-oversight",
                "medium",
                f"{_plural(o.reviewed_by_service_only, 'decision')} "
                f"{_verb(o.reviewed_by_service_only, 'was', 'were')} reviewed only "
                "by a service (svc:), not by a person",
                o.reviewed_by_service_only,
            )
        )
    status = _grade(o.needing_review, o.needing_review - o.reviewed)
    rationale = (
        f"{o.reviewed} of {o.needing_review} decisions with {criteria} have a human "
        f"review ({o.overdue} overdue, {o.pending} pending)"
    )
    summary = f"{o.reviewed}/{o.needing_review} decisions needing review reviewed"
    return Outcome(status, rationale, figures, tuple(findings), summary)


@_check("review-timeliness", "Human reviews happen within the deadline")
def review_timeliness(evidence: Evidence, policy: PolicyConfig) -> Outcome:
    """Measure review delays against ``review_deadline_hours``.

    The delay is the first human review's ``occurred_at`` minus the
    decision's ``recorded_at``.
    """
    o = evidence.oversight()
    if o.decisions == 0:
        return _not_assessed("no decisions were recorded in the period")
    deadline = policy.review_deadline_hours
    figures = {
        "deadline_hours": deadline,
        "needing_review": o.needing_review,
        "reviewed": o.reviewed,
        "within_deadline": o.within_deadline,
        "late": o.late,
        "overdue": o.overdue,
        "max_delay_hours": _hours(o.max_delay_s),
        "mean_delay_hours": _hours(o.mean_delay_s),
    }
    if o.needing_review == 0:
        return Outcome(
            "not-applicable",
            f"none of the {_plural(o.decisions, 'decision')} needed review",
            figures,
            summary="no decision needed review",
        )
    if o.reviewed == 0 and o.overdue == 0:
        return _not_assessed(
            f"no decision needing review has a human review yet and none is past "
            f"the {deadline:g} h deadline, so no delay can be measured",
            figures,
        )
    findings = []
    if o.late:
        findings.append(
            _finding(
                "review-timeliness",
                "medium",
                f"{_plural(o.late, 'decision')} {_verb(o.late, 'was', 'were')} "
                f"reviewed after more than {deadline:g} h",
                o.late,
                evidence.oversight_samples("late"),
            )
        )
    if o.overdue:
        findings.append(
            _finding(
                "review-timeliness",
                "high",
                f"{_plural(o.overdue, 'decision')} {_verb(o.overdue, 'is', 'are')} "
                f"past the {deadline:g} h deadline without a human review",
                o.overdue,
                evidence.oversight_samples("overdue"),
            )
        )
    total = o.reviewed + o.overdue
    status = _grade(total, o.late + o.overdue)
    rationale = (
        f"{o.within_deadline} of {total} decisions due for review were reviewed "
        f"within {deadline:g} h ({o.late} late, {o.overdue} overdue)"
    )
    summary = f"{o.within_deadline}/{total} within {deadline:g} h"
    if o.max_delay_s is not None:
        summary += f", max {_hours(o.max_delay_s):g} h"
    return Outcome(status, rationale, figures, tuple(findings), summary)


@_check("segregation-of-duties", "Reviewers are not the annotator or deciding system")
def segregation_of_duties(evidence: Evidence, policy: PolicyConfig) -> Outcome:
    """Flag reviews whose reviewer is the actor of the reviewed entry.

    Actor ids are compared after NFC and case folding (``normalise_actor``),
    in Python over the distinct (reviewer, actor) pairs that SQL groups,
    because SQL has no Unicode normalisation. ISO/IEC 27001 A.5.3.
    """
    reviews = evidence.reviews_in_period()
    if reviews == 0:
        return _not_assessed("no reviews were recorded in the period")
    pairs = evidence.review_pairs()
    resolved = sum(pair.reviews for pair in pairs)
    flagged = [
        pair
        for pair in pairs
        if pair.reviewer is not None
        and pair.target_actor is not None
        and normalise_actor(pair.reviewer) == normalise_actor(pair.target_actor)
    ]
    self_reviews = sum(pair.reviews for pair in flagged)
    figures = {
        "reviews": reviews,
        "reviews_with_target": resolved,
        "unresolved_targets": reviews - resolved,
        "self_reviews": self_reviews,
    }
    if resolved == 0:
        return _not_assessed(
            f"no review in the period ({_plural(reviews, 'review')}) targets an "
            "entry of the ledger",
            figures,
        )
    findings = []
    roles = {"annotation": "annotator", "decision": "deciding system"}
    for pair in sorted(flagged, key=lambda item: -item.reviews)[:MAX_FINDINGS]:
        assert pair.reviewer is not None and pair.target_actor is not None
        role = roles.get(pair.target_kind, "author")
        note = ""
        if pair.reviewer != pair.target_actor:
            note = " (the ids differ only in case or Unicode normalisation)"
        findings.append(
            _finding(
                "segregation-of-duties",
                "high",
                f"{_plural(pair.reviews, 'review')} by {pair.reviewer!r} of "
                f"{pair.target_kind} entries whose {role} is {pair.target_actor!r}: "
                f"the same identity{note}",
                pair.reviews,
                evidence.review_pair_samples(pair.reviewer, pair.target_actor),
            )
        )
    if reviews > resolved:
        findings.append(
            _finding(
                "segregation-of-duties",
                "medium",
                f"{_plural(reviews - resolved, 'review')} "
                f"{_verb(reviews - resolved, 'targets', 'target')} no entry in the "
                "ledger",
                reviews - resolved,
            )
        )
    status = _grade(resolved, self_reviews)
    rationale = (
        f"{self_reviews} of {_plural(resolved, 'review')} came from the actor of "
        "the reviewed entry"
    )
    summary = f"{_plural(self_reviews, 'self-review')} in {resolved}"
    return Outcome(status, rationale, figures, tuple(findings), summary)


@_check("override-rate", "Human override rate of model decisions")
def override_rate(evidence: Evidence, policy: PolicyConfig) -> Outcome:
    """Measure the share of human-reviewed decisions rejected or corrected.

    The share is computed per model version. A rate above
    ``override_rate_alert`` means reviewers often disagree with the model,
    a production signal that NIST AI RMF MEASURE 2.4 and MANAGE 4.1 expect
    to be monitored and acted on.
    """
    rows = evidence.overrides("user:")
    reviewers = "human"
    if sum(row.reviewed for row in rows) == 0:
        # Without human reviews, reviews by services (such as a ground-truth
        # feed) still show how often the model's decisions are wrong.
        rows = evidence.overrides("svc:")
        reviewers = "service"
    reviewed = sum(row.reviewed for row in rows)
    if reviewed == 0:
        return _not_assessed(
            "no decision recorded in the period has a human or service review"
        )
    overridden = sum(row.overridden for row in rows)
    alert = policy.override_rate_alert
    per_model = [
        {
            "model": row.model_name,
            "version": row.model_version,
            "reviewed": row.reviewed,
            "overridden": row.overridden,
            "rate": _ratio(row.overridden, row.reviewed),
        }
        for row in rows
    ]
    figures = {
        "reviewers": reviewers,
        "reviewed_decisions": reviewed,
        "overridden": overridden,
        "override_rate": _ratio(overridden, reviewed),
        "alert_level": alert,
        "per_model": per_model,
    }
    over = [row for row in rows if row.overridden / row.reviewed > alert]
    findings = []
    if over:
        names = ", ".join(f"{row.model_name} {row.model_version}" for row in over)
        findings.append(
            _finding(
                "override-rate",
                "high",
                f"reviewers rejected or corrected more than {alert:.0%} of the "
                f"reviewed decisions of {names}",
                sum(row.overridden for row in over),
                evidence.override_samples("user:" if reviewers == "human" else "svc:"),
            )
        )
    status: Status = "not-satisfied" if over else "satisfied"
    rationale = (
        f"{reviewers} reviewers rejected or corrected {overridden} of "
        f"{_plural(reviewed, 'reviewed decision')} ({overridden / reviewed:.1%}; "
        f"alert above {alert:.0%})"
    )
    if reviewers == "service":
        rationale += "; no human review in the period, so service reviews count"
    summary = f"override rate {overridden / reviewed:.1%} ({overridden}/{reviewed})"
    return Outcome(status, rationale, figures, tuple(findings), summary)


# -- drift --------------------------------------------------------------------


def population_stability_index(
    baseline: Sequence[int], current: Sequence[int], *, epsilon: float = PSI_EPSILON
) -> float:
    """Return the PSI of two histograms over the same bins.

    PSI = sum over bins of (c_i - b_i) * ln(c_i / b_i), where b_i and c_i
    are the bins' shares of each histogram; a share of zero is replaced by
    ``epsilon`` so that the sum stays finite.

    Raises:
        ValueError: the histograms differ in length or one is empty.
    """
    if len(baseline) != len(current):
        raise ValueError("the histograms must have the same bins")
    total_b, total_c = sum(baseline), sum(current)
    if total_b == 0 or total_c == 0:
        raise ValueError("a histogram with no counts has no distribution")
    psi = 0.0
    for count_b, count_c in zip(baseline, current, strict=True):
        share_b = max(count_b / total_b, epsilon)
        share_c = max(count_c / total_c, epsilon)
        psi += (share_c - share_b) * math.log(share_c / share_b)
    return psi


@_check("confidence-drift", "Drift of decision confidence (population stability index)")
def confidence_drift(evidence: Evidence, policy: PolicyConfig) -> Outcome:
    """Compare confidence histograms (10 bins over [0, 1]) between two windows.

    Per model, PSI at or above ``psi_warning`` is a warning and at or above
    ``psi_alert`` an alert; each window needs ``psi_min_decisions``.
    """
    windows = evidence.drift_windows()
    if windows is None:
        return _not_assessed("no decisions were recorded in the period")
    counts = evidence.drift_counts()
    minimum = policy.psi_min_decisions
    per_model = []
    assessed = []
    for row in counts:
        size_b, size_c = sum(row.baseline), sum(row.current)
        entry: dict[str, Any] = {
            "model": row.model_name,
            "baseline_decisions": size_b,
            "current_decisions": size_c,
            "baseline_bins": list(row.baseline),
            "current_bins": list(row.current),
            "psi": None,
        }
        if size_b >= minimum and size_c >= minimum:
            entry["psi"] = round(
                population_stability_index(row.baseline, row.current), 6
            )
            assessed.append(entry)
        per_model.append(entry)
    figures = {
        "method": windows.method,
        "baseline": [windows.baseline_start, windows.baseline_end],
        "current": [windows.current_start, windows.current_end],
        "bins": CONFIDENCE_BINS,
        "psi_warning": policy.psi_warning,
        "psi_alert": policy.psi_alert,
        "min_decisions": minimum,
        "per_model": per_model,
    }
    if not assessed:
        sizes = "; ".join(
            f"{entry['model']}: {entry['baseline_decisions']} then "
            f"{entry['current_decisions']}"
            for entry in per_model
        )
        return _not_assessed(
            f"too few decisions to compare: each window needs at least {minimum} "
            f"decisions of a model ({sizes or 'none with a confidence'})",
            figures,
        )
    findings = []
    status: Status = "satisfied"
    for entry in assessed:
        psi = entry["psi"]
        if psi >= policy.psi_alert:
            level, severity, entry_status = "alert", "high", "not-satisfied"
        elif psi >= policy.psi_warning:
            level, severity, entry_status = "warning", "medium", "partially-satisfied"
        else:
            continue
        status = _worst(status, entry_status)
        findings.append(
            _finding(
                "confidence-drift",
                severity,
                f"confidence of model {entry['model']} drifted: PSI {psi:.3f} "
                f"reaches the {level} level",
                entry["current_decisions"],
            )
        )
    worst = max(entry["psi"] for entry in assessed)
    rationale = (
        f"the largest PSI of decision confidence ({windows.method}) is {worst:.3f} "
        f"over {_plural(len(assessed), 'model')} (warning {policy.psi_warning:g}, "
        f"alert {policy.psi_alert:g})"
    )
    return Outcome(
        status, rationale, figures, tuple(findings), summary=f"max PSI {worst:.3f}"
    )


# -- annotations --------------------------------------------------------------


@_check("annotation-provenance", "Annotations name their dataset, item and guideline")
def annotation_provenance(evidence: Evidence, policy: PolicyConfig) -> Outcome:
    """Check that each annotation names dataset, item id and guideline version.

    EU AI Act Art. 10(2)(c) and ISO/IEC 42001 A.7.5 ask that data
    preparation, including labelling, be traceable.
    """
    p = evidence.provenance()
    if p.annotations == 0:
        return _not_assessed("no annotations were recorded in the period")
    figures = {
        "annotations": p.annotations,
        "incomplete": p.incomplete,
        "missing_guideline": p.missing_guideline,
        "missing_dataset": p.missing_dataset,
        "missing_item": p.missing_item,
        "with_source": p.with_source,
        "guideline_versions": p.guideline_versions,
    }
    findings = []
    if p.incomplete:
        findings.append(
            _finding(
                "annotation-provenance",
                "medium",
                f"{_plural(p.incomplete, 'annotation')} "
                f"{_verb(p.incomplete, 'lacks', 'lack')} a guideline version, "
                f"dataset or item id ({p.missing_guideline} without guideline)",
                p.incomplete,
                evidence.provenance_samples(),
            )
        )
    status = _grade(p.annotations, p.incomplete)
    complete = p.annotations - p.incomplete
    rationale = (
        f"{complete} of {_plural(p.annotations, 'annotation')} name dataset, item "
        f"and guideline version ({len(p.guideline_versions)} guideline versions)"
    )
    summary = f"{complete}/{p.annotations} annotations with full provenance"
    return Outcome(status, rationale, figures, tuple(findings), summary)


def krippendorff_alpha(cells: dict[tuple[str, str], Fraction]) -> Fraction | None:
    """Return Krippendorff's alpha for nominal data from a coincidence matrix.

    alpha = 1 - (n - 1) * D_o / D_e with D_o the sum of the off-diagonal
    coincidences, n_c the row sums, n their total and D_e the sum of
    n_c * n_k over c != k (Krippendorff, "Computing Krippendorff's
    Alpha-Reliability", 2011). Returns None when D_e is zero (one label
    only), where alpha is undefined.
    """
    totals: dict[str, Fraction] = {}
    for (label_c, _label_k), value in cells.items():
        totals[label_c] = totals.get(label_c, Fraction(0)) + value
    n = sum(totals.values(), Fraction(0))
    observed = sum((value for (c, k), value in cells.items() if c != k), Fraction(0))
    expected = n * n - sum((total * total for total in totals.values()), Fraction(0))
    if expected == 0:
        return None
    return 1 - (n - 1) * observed / expected


@_check("inter-annotator-agreement", "Inter-annotator agreement (Krippendorff's alpha)")
def inter_annotator_agreement(evidence: Evidence, policy: PolicyConfig) -> Outcome:
    """Compute nominal alpha over items with two or more annotations.

    Labels are compared as canonical JSON text, so ``"cat"`` and ``["cat"]``
    differ; each annotation is one value, also a repeated one by the same
    annotator.
    """
    provenance = evidence.provenance()
    if provenance.annotations == 0:
        return _not_assessed("no annotations were recorded in the period")
    c = evidence.coincidences()
    labels = sorted({label for label, _ in c.cells})
    figures: dict[str, Any] = {
        "units": c.units,
        "values": c.values,
        "labels": len(labels),
        "disagreeing_units": c.disagreeing_units,
        "min_alpha": policy.min_alpha,
        "alpha": None,
    }
    if c.units == 0:
        return _not_assessed(
            "no item has two or more annotations in the period, so agreement "
            "cannot be measured",
            figures,
        )
    alpha = krippendorff_alpha(c.cells)
    if alpha is None:
        return _not_assessed(
            f"all {c.values} annotations on the {_plural(c.units, 'shared item')} "
            "carry one label, so expected disagreement is zero and alpha is "
            "undefined",
            figures,
        )
    figures["alpha"] = round(float(alpha), 6)
    figures["alpha_exact"] = f"{alpha.numerator}/{alpha.denominator}"
    findings = []
    if c.disagreeing_units:
        findings.append(
            _finding(
                "inter-annotator-agreement",
                "low" if alpha >= policy.min_alpha else "medium",
                f"{_plural(c.disagreeing_units, 'item')} received different labels",
                c.disagreeing_units,
                evidence.disagreement_samples(),
            )
        )
    status: Status = "satisfied" if alpha >= policy.min_alpha else "not-satisfied"
    relation = "at least" if status == "satisfied" else "below"
    rationale = (
        f"Krippendorff's alpha (nominal) is {float(alpha):.3f} over "
        f"{_plural(c.units, 'item')} and {c.values} annotations, {relation} the "
        f"minimum {policy.min_alpha:g}"
    )
    summary = f"alpha {float(alpha):.3f} over {_plural(c.units, 'item')}"
    return Outcome(status, rationale, figures, tuple(findings), summary)


# -- decisions' content -------------------------------------------------------


@_check("explanation-coverage", "Decisions carry an explanation")
def explanation_coverage(evidence: Evidence, policy: PolicyConfig) -> Outcome:
    """Count decisions with a non-empty ``explanation``.

    GDPR Art. 15(1)(h) and EU AI Act Art. 86 give affected persons a right
    to meaningful information about a decision; adverse decisions without
    one are high-severity findings.
    """
    x = evidence.explanations()
    if x.decisions == 0:
        return _not_assessed("no decisions were recorded in the period")
    figures = {
        "decisions": x.decisions,
        "explained": x.explained,
        "coverage": _ratio(x.explained, x.decisions),
        "adverse": x.adverse,
        "adverse_explained": x.adverse_explained,
    }
    findings = []
    adverse_missing = x.adverse - x.adverse_explained
    other_missing = x.decisions - x.explained - adverse_missing
    if adverse_missing:
        findings.append(
            _finding(
                "explanation-coverage",
                "high",
                f"{_plural(adverse_missing, 'adverse decision')} "
                f"{_verb(adverse_missing, 'carries', 'carry')} no explanation",
                adverse_missing,
                evidence.explanation_samples(adverse_only=True),
            )
        )
    if other_missing:
        findings.append(
            _finding(
                "explanation-coverage",
                "medium",
                f"{_plural(other_missing, 'other decision')} "
                f"{_verb(other_missing, 'carries', 'carry')} no explanation",
                other_missing,
                evidence.explanation_samples(adverse_only=False),
            )
        )
    status = _grade(x.decisions, x.decisions - x.explained)
    rationale = (
        f"{x.explained} of {_plural(x.decisions, 'decision')} carry an explanation "
        f"({x.adverse_explained} of {x.adverse} adverse ones)"
    )
    summary = f"{x.explained}/{x.decisions} decisions explained"
    return Outcome(status, rationale, figures, tuple(findings), summary)


@_check("decision-traceability", "Decisions name model version, input hash and item")
def decision_traceability(evidence: Evidence, policy: PolicyConfig) -> Outcome:
    """Check that each decision can be traced to its model version and input.

    EU AI Act Art. 12(2) requires logs that let one trace how the system
    operated. Without ``input_sha256`` a decision cannot be tied to the
    exact input it was made on.
    """
    t = evidence.traceability()
    if t.decisions == 0:
        return _not_assessed("no decisions were recorded in the period")
    figures = {
        "decisions": t.decisions,
        "incomplete": t.incomplete,
        "missing_model_version": t.missing_model_version,
        "missing_input_hash": t.missing_input_hash,
        "missing_item": t.missing_item,
    }
    findings = []
    if t.incomplete:
        findings.append(
            _finding(
                "decision-traceability",
                "medium",
                f"{_plural(t.incomplete, 'decision')} "
                f"{_verb(t.incomplete, 'lacks', 'lack')} a model version, input hash "
                f"or item ({t.missing_input_hash} without input_sha256)",
                t.incomplete,
                evidence.traceability_samples(),
            )
        )
    status = _grade(t.decisions, t.incomplete)
    complete = t.decisions - t.incomplete
    rationale = (
        f"{complete} of {_plural(t.decisions, 'decision')} name model version, "
        "input_sha256 and item"
    )
    summary = f"{complete}/{t.decisions} decisions traceable"
    return Outcome(status, rationale, figures, tuple(findings), summary)


# -- personal data ------------------------------------------------------------


@_check("retention-coverage", "Personal values are erased when retention ends")
def retention_coverage(evidence: Evidence, policy: PolicyConfig) -> Outcome:
    """Check that no personal value is kept past its kind's retention.

    GDPR Art. 5(1)(e) limits how long identifying data is kept. Every input
    kind has a retention in years (HIPAA 164.316(b)(2)(i) six years by
    default, never below the six months of EU AI Act Art. 19(1)), counted
    from ``recorded_at`` by the calendar rule of `govledger erase --expired`.
    """
    empty = _no_entries(evidence)
    if empty is not None:
        return empty
    r = evidence.retention()
    with_values = sum(count for count, _ in r.per_kind.values())
    expired = sum(count for _, count in r.per_kind.values())
    figures = {
        "retention_years": policy.retention.years(),
        "kinds_in_period": sorted(
            kind for kind in evidence.kinds() if kind in INPUT_KINDS
        ),
        "personal_values": r.personal_values,
        "personal_fields": list(r.personal_fields),
        "entries_with_personal_values": with_values,
        "expired_entries": expired,
        "expired_per_kind": {
            kind: count for kind, (_, count) in r.per_kind.items() if count
        },
        "entries_with_subject": r.entries_with_subject,
    }
    summary = f"{expired} expired of {with_values} with personal values"
    if not expired:
        held = (
            f"{_plural(with_values, 'entry')} "
            f"{_verb(with_values, 'holds', 'hold')} personal values, none past "
            "retention"
            if with_values
            else "no personal values are stored"
        )
        rationale = f"every input kind has a retention rule and {held}"
        return Outcome("satisfied", rationale, figures, summary=summary)
    finding = _finding(
        "retention-coverage",
        "high",
        f"{_plural(expired, 'entry')} {_verb(expired, 'keeps', 'keep')} "
        "personal values past their retention; erase them with "
        "`govledger erase --expired`",
        expired,
        evidence.retention_samples(),
    )
    rationale = (
        f"{expired} of {_plural(with_values, 'entry')} with personal values "
        f"{_verb(expired, 'is', 'are')} past retention"
    )
    return Outcome(
        _grade(with_values, expired), rationale, figures, (finding,), summary
    )


@_check("erasure-fulfilment", "Erasure requests are fulfilled within the deadline")
def erasure_fulfilment(evidence: Evidence, policy: PolicyConfig) -> Outcome:
    """Measure erasure entries' time from ``request_received_at`` to fulfilment.

    GDPR Art. 17 with Art. 12(3): act on a request without undue delay and
    within one month (``erasure_deadline_days``, 30 by default).
    """
    empty = _no_entries(evidence)
    if empty is not None:
        return empty
    e = evidence.erasures()
    deadline = policy.erasure_deadline_days
    figures = {
        "erasures": e.erasures,
        "retention_runs": e.retention_runs,
        "measured": e.measured,
        "within_deadline": e.within_deadline,
        "late": e.late,
        "deadline_days": deadline,
        "max_days": None if e.max_delay_s is None else round(e.max_delay_s / 86400, 3),
        "mean_days": None
        if e.mean_delay_s is None
        else round(e.mean_delay_s / 86400, 3),
        "personal_data_present": e.personal_data_present,
    }
    if not e.personal_data_present:
        return Outcome(
            "not-applicable",
            "the ledger holds no personal values, data-subject ids or erasures, so "
            "there is no personal data to erase",
            figures,
            summary="no personal data",
        )
    if e.erasures == 0:
        return _not_assessed(
            "no erasure request was fulfilled in the period "
            f"({_plural(e.retention_runs, 'expired-retention run')})",
            figures,
        )
    findings = []
    unmeasured = e.erasures - e.measured
    if e.late:
        findings.append(
            _finding(
                "erasure-fulfilment",
                "high",
                f"{_plural(e.late, 'erasure')} took longer than {deadline:g} days "
                "from the request",
                e.late,
                evidence.erasure_samples("late"),
            )
        )
    if unmeasured:
        findings.append(
            _finding(
                "erasure-fulfilment",
                "low",
                f"{_plural(unmeasured, 'erasure entry')} "
                f"{_verb(unmeasured, 'records', 'record')} no "
                "request_received_at, so the time to fulfil is unknown",
                unmeasured,
                evidence.erasure_samples("unmeasured"),
            )
        )
    status = _grade(e.measured, e.late) if e.measured else "partially-satisfied"
    if unmeasured:
        status = _worst(status, "partially-satisfied")
    rationale = (
        f"{e.within_deadline} of {_plural(e.erasures, 'erasure')} were fulfilled "
        f"within {deadline:g} days of the request ({e.late} late, {unmeasured} not "
        "measurable)"
    )
    summary = f"{e.within_deadline}/{e.erasures} erasures within {deadline:g} days"
    return Outcome(status, rationale, figures, tuple(findings), summary)
