"""Figures for the audit pack's charts, gathered in one pass over the entries.

The figures describe the entries of the pack's period. They count
decisions per day, the decisions that a person (``user:``) or only a
service (``svc:``) reviewed, how often reviewers overrode the model, the
confidence of decisions, and how often annotators of the same item agreed.
They illustrate the evidence; the control statuses come from policy
evaluation, not from here.

Only reviews recorded in the period count here, while the policy checks
also count reviews recorded after it; the pack prefers the override-rate
check's figures where the evaluation has them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ledger.canonical import canonical_bytes

__all__ = [
    "CONFIDENCE_BINS",
    "HUMAN_PREFIX",
    "OVERRIDE_VERDICTS",
    "SERVICE_PREFIX",
    "VERDICTS",
    "ScopeStatistics",
    "reviewer_kind",
]

CONFIDENCE_BINS = 10
VERDICTS = ("accept", "reject", "correct", "escalate")
# A review overrides the model when it rejects or corrects the output.
OVERRIDE_VERDICTS = frozenset({"reject", "correct"})
# Actor prefixes: a person, or a system such as a ground-truth feed. Only a
# person's review is human oversight (GDPR Art. 22(3), EU AI Act Art. 14).
HUMAN_PREFIX = "user:"
SERVICE_PREFIX = "svc:"


def reviewer_kind(actor: object) -> str | None:
    """Return "human" for a ``user:`` actor, "service" for ``svc:``, else None."""
    if isinstance(actor, str):
        if actor.startswith(HUMAN_PREFIX):
            return "human"
        if actor.startswith(SERVICE_PREFIX):
            return "service"
    return None


@dataclass
class ScopeStatistics:
    """Running figures over the entries of a period, fed in seq order.

    Memory grows with the number of decisions (to match reviews to them)
    and of annotated items (to compare annotators), not with entry size.
    """

    entries: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    decisions_per_day: Counter[str] = field(default_factory=Counter)
    confidence_bins: list[int] = field(default_factory=lambda: [0] * CONFIDENCE_BINS)
    verdicts: Counter[str] = field(default_factory=Counter)
    # Reviews per reviewer kind: "human", "service", or None without an actor.
    reviewers: Counter[str | None] = field(default_factory=Counter)
    _decision_seqs: dict[str, int] = field(default_factory=dict)
    # Seqs that reviews target, all of them and per reviewer kind; and those
    # that a review of that kind rejected or corrected.
    _reviewed: set[int] = field(default_factory=set)
    _reviewed_by: dict[str, set[int]] = field(
        default_factory=lambda: {"human": set(), "service": set()}
    )
    _overridden_by: dict[str, set[int]] = field(
        default_factory=lambda: {"human": set(), "service": set()}
    )
    _labels: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)

    def add(self, seq: int, entry_hash: str, entry: dict[str, Any]) -> None:
        """Count one entry: ``entry`` is the parsed entry object."""
        self.entries += 1
        kind = entry["kind"]
        record = entry["record"]
        self.kinds[kind] += 1
        if kind == "decision":
            self._add_decision(seq, entry_hash, entry["recorded_at"], record)
        elif kind == "review":
            self._add_review(record)
        elif kind == "annotation":
            self._add_annotation(record)

    def _add_decision(
        self, seq: int, entry_hash: str, recorded_at: str, record: dict[str, Any]
    ) -> None:
        self._decision_seqs[entry_hash] = seq
        self.decisions_per_day[recorded_at[:10]] += 1
        confidence = record.get("confidence")
        if isinstance(confidence, (int, float)) and not isinstance(confidence, bool):
            if 0 <= confidence <= 1:
                index = min(int(confidence * CONFIDENCE_BINS), CONFIDENCE_BINS - 1)
                self.confidence_bins[index] += 1

    def _add_review(self, record: dict[str, Any]) -> None:
        verdict = record.get("verdict")
        if isinstance(verdict, str):
            self.verdicts[verdict] += 1
        kind = reviewer_kind(record.get("actor"))
        self.reviewers[kind] += 1
        target = record.get("target")
        if not isinstance(target, dict):
            return
        seq = target.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            reviewed: int | None = seq
        elif isinstance(target.get("entry_hash"), str):
            reviewed = self._decision_seqs.get(target["entry_hash"])
        else:
            reviewed = None
        if reviewed is None:
            return
        self._reviewed.add(reviewed)
        if kind is not None:
            self._reviewed_by[kind].add(reviewed)
            if verdict in OVERRIDE_VERDICTS:
                self._overridden_by[kind].add(reviewed)

    def _add_annotation(self, record: dict[str, Any]) -> None:
        item = record.get("item")
        actor = record.get("actor")
        if not isinstance(item, dict) or not isinstance(actor, str):
            return
        key = (str(item.get("dataset", "")), str(item.get("id", "")))
        # A later annotation by the same annotator replaces the earlier one.
        self._labels.setdefault(key, {})[actor] = canonical_bytes(record.get("label"))

    @property
    def decisions(self) -> int:
        """The number of decisions in the period."""
        return self.kinds["decision"]

    def _decisions_in(self, seqs: set[int]) -> set[int]:
        return seqs.intersection(self._decision_seqs.values())

    @property
    def reviewed_decisions(self) -> int:
        """Decisions of the period that a review in the period targets, by anyone."""
        return len(self._decisions_in(self._reviewed))

    @property
    def human_reviewed_decisions(self) -> int:
        """Decisions of the period with a review by a ``user:`` in the period."""
        return len(self._decisions_in(self._reviewed_by["human"]))

    @property
    def service_only_reviewed_decisions(self) -> int:
        """Decisions of the period reviewed by a ``svc:`` and by no ``user:``."""
        service = self._decisions_in(self._reviewed_by["service"])
        return len(service - self._reviewed_by["human"])

    @property
    def reviews(self) -> int:
        """The number of reviews in the period."""
        return self.kinds["review"]

    @property
    def overrides(self) -> int:
        """Reviews that rejected or corrected the reviewed output."""
        return sum(self.verdicts[verdict] for verdict in OVERRIDE_VERDICTS)

    def decision_overrides(self) -> tuple[str | None, int, int]:
        """Return (reviewers, reviewed decisions, overridden decisions).

        The rule is the override-rate check's. Human reviews count when a
        decision of the period has any, otherwise service reviews count.
        ``reviewers`` names the kind that counted (``"human"`` or
        ``"service"``), and is None when no decision was reviewed. A decision
        is overridden when at least one review of that kind rejected or
        corrected it.
        """
        for kind in ("human", "service"):
            reviewed = self._decisions_in(self._reviewed_by[kind])
            if reviewed:
                overridden = reviewed & self._overridden_by[kind]
                return kind, len(reviewed), len(overridden)
        return None, 0, 0

    def agreement(self) -> tuple[int, int, int, int]:
        """Return (items agreed, items disagreed, agreeing pairs, pairs).

        Only items labelled by two or more annotators count. Two annotators
        agree when their latest labels have the same canonical JSON.
        """
        agreed = disagreed = agreeing_pairs = pairs = 0
        for labels in self._labels.values():
            if len(labels) < 2:
                continue
            counts = Counter(labels.values())
            total = len(labels)
            pairs += total * (total - 1) // 2
            agreeing_pairs += sum(n * (n - 1) // 2 for n in counts.values())
            if len(counts) == 1:
                agreed += 1
            else:
                disagreed += 1
        return agreed, disagreed, agreeing_pairs, pairs

    def summary(self) -> dict[str, Any]:
        """Return the headline figures as JSON-ready data."""
        agreed, disagreed, agreeing_pairs, pairs = self.agreement()
        human = self.human_reviewed_decisions
        service_only = self.service_only_reviewed_decisions
        reviewers, reviewed, overridden = self.decision_overrides()
        return {
            "entries": self.entries,
            "kinds": dict(sorted(self.kinds.items())),
            "decisions": self.decisions,
            "reviewed_decisions": self.reviewed_decisions,
            "review_coverage": _ratio(self.reviewed_decisions, self.decisions),
            "human_reviewed_decisions": human,
            "human_review_coverage": _ratio(human, self.decisions),
            "service_only_reviewed_decisions": service_only,
            "service_only_review_coverage": _ratio(service_only, self.decisions),
            "reviews": self.reviews,
            "human_reviews": self.reviewers["human"],
            "service_reviews": self.reviewers["service"],
            "overrides": self.overrides,
            "override_rate": _ratio(self.overrides, self.reviews),
            "override_reviewers": reviewers,
            "override_reviewed_decisions": reviewed,
            "overridden_decisions": overridden,
            "decision_override_rate": _ratio(overridden, reviewed),
            "items_multiply_annotated": agreed + disagreed,
            "items_agreed": agreed,
            "pairwise_agreement": _ratio(agreeing_pairs, pairs),
        }


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole
