"""Each shared check on small hand-built ledgers, on SQLite and PostgreSQL.

Every figure is computed by hand from the records each test appends, so a
wrong SQL aggregate on either database fails an exact comparison.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from ledger import Ledger, LedgerConfig
from policies.checks import CHECKS, is_generic_actor
from policies.config import PolicyConfig, normalise_actor

from .support import (
    T0,
    Clock,
    annotation,
    create_ledger,
    decision,
    evidence,
    review,
    stamp,
    text,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def run(ledger: Ledger, check_id: str, **options: object):  # type: ignore[no-untyped-def]
    """Run one check over the whole ledger and return its CheckResult."""
    policy = options.pop("policy", None) or PolicyConfig()
    with evidence(ledger, policy=policy, **options) as collected:  # type: ignore[arg-type]
        return CHECKS[check_id].run(collected, policy)  # type: ignore[arg-type]


def finding_seqs(result) -> list[tuple[int, ...]]:  # type: ignore[no-untyped-def]
    return [finding.seqs for finding in result.findings]


# -- human oversight and review timeliness ------------------------------------


OVERSIGHT_POLICY = PolicyConfig(
    review_confidence_below=0.7, adverse_outputs=["deny"], review_deadline_hours=24
)


def oversight_ledger(url: str, key_dir: Path) -> Ledger:
    """Five decisions at T0; reviews after 2 h, 30 h (by hash) and 31 h (by a service).

    Needing review: seq 1 (0.5), seq 2 (adverse "deny"), seq 3 (0.3) and
    seq 4 (0.6); seq 0 (0.9, approve) does not.
    """
    clock = Clock()
    ledger = create_ledger(url, key_dir, clock)
    ledger.append_many(
        [
            decision("c0", 0.9),
            decision("c1", 0.5),
            decision("c2", 0.95, output="deny"),
            decision("c3", 0.3),
            decision("c4", 0.6),
        ]
    )
    hash_of_2 = ledger.get(2).entry_hash
    clock.at(T0 + 2 * HOUR)
    ledger.append(review(1, occurred=T0 + 2 * HOUR))  # seq 5
    clock.at(T0 + 30 * HOUR)
    ledger.append(review(hash_of_2, "reject", occurred=T0 + 30 * HOUR))  # seq 6
    clock.at(T0 + 31 * HOUR)
    ledger.append(review(4, actor="svc:auto-check", occurred=T0 + 31 * HOUR))  # 7
    return ledger


def test_oversight_figures_exact(db_url: str, key_dir: Path) -> None:
    with oversight_ledger(db_url, key_dir) as ledger:
        with evidence(ledger, policy=OVERSIGHT_POLICY) as collected:
            figures = collected.oversight()
    assert figures.decisions == 5
    assert figures.needing_review == 4
    assert figures.low_confidence == 3
    assert figures.adverse == 1
    assert figures.reviewed == 2
    assert figures.reviewed_by_service_only == 1
    assert figures.within_deadline == 1
    assert figures.late == 1
    assert figures.overdue == 2
    assert figures.pending == 0
    assert figures.max_delay_s == pytest.approx(30 * 3600)
    assert figures.mean_delay_s == pytest.approx(16 * 3600)


def test_human_oversight_cites_overdue_decisions(db_url: str, key_dir: Path) -> None:
    with oversight_ledger(db_url, key_dir) as ledger:
        result = run(ledger, "human-oversight", policy=OVERSIGHT_POLICY)
    assert result.status == "partially-satisfied"
    assert result.figures["reviewed"] == 2
    assert result.figures["needing_review"] == 4
    assert finding_seqs(result)[0] == (3, 4)
    assert result.findings[0].count == 2
    assert result.findings[0].severity == "high"
    assert any("service" in finding.message for finding in result.findings)


def test_human_oversight_pending_before_deadline(db_url: str, key_dir: Path) -> None:
    with oversight_ledger(db_url, key_dir) as ledger:
        with evidence(ledger, policy=OVERSIGHT_POLICY, now=T0 + 10 * HOUR) as collected:
            figures = collected.oversight()
    assert figures.overdue == 0
    assert figures.pending == 2


def test_review_timeliness_cites_late_and_overdue(db_url: str, key_dir: Path) -> None:
    with oversight_ledger(db_url, key_dir) as ledger:
        result = run(ledger, "review-timeliness", policy=OVERSIGHT_POLICY)
    assert result.status == "partially-satisfied"
    assert result.figures["within_deadline"] == 1
    assert result.figures["late"] == 1
    assert result.figures["overdue"] == 2
    assert result.figures["max_delay_hours"] == 30.0
    assert finding_seqs(result) == [(2,), (3, 4)]


def test_human_oversight_not_applicable_without_criteria(
    db_url: str, key_dir: Path
) -> None:
    clock = Clock()
    with create_ledger(db_url, key_dir, clock) as ledger:
        ledger.append_many([decision("c0", 0.9), decision("c1", 0.8)])
        result = run(ledger, "human-oversight")
    assert result.status == "not-applicable"
    assert "none of the 2 decisions" in result.rationale


# -- segregation of duties ----------------------------------------------------


def test_normalise_actor_equates_nfc_and_nfd() -> None:
    composed = "user:Zo\u00eb"
    decomposed = "user:zoe\u0308"
    assert composed != decomposed
    assert normalise_actor(composed) == normalise_actor(decomposed)
    assert normalise_actor("user:ZOË") == normalise_actor(decomposed)


def test_segregation_flags_self_review_nfd(db_url: str, key_dir: Path) -> None:
    clock = Clock()
    with create_ledger(db_url, key_dir, clock) as ledger:
        ledger.append_many(
            [
                annotation("i1", "cat", actor="user:Zo\u00eb"),  # 0, NFC
                annotation("i2", "dog", actor="user:ann-2"),  # 1
                decision("c1", 0.4),  # 2, by svc:scorer
            ]
        )
        clock.at(T0 + HOUR)
        ledger.append_many(
            [
                review(0, actor="user:zoe\u0308"),  # 3: NFD, lower case
                review(1, actor="user:rev-1"),  # 4
                review(2, actor="svc:scorer"),  # 5: the deciding system
            ]
        )
        result = run(ledger, "segregation-of-duties")
    # The ledger rejects a review whose target is not an earlier entry, so
    # every review here resolves.
    assert result.status == "partially-satisfied"
    assert result.figures["reviews"] == 3
    assert result.figures["reviews_with_target"] == 3
    assert result.figures["self_reviews"] == 2
    assert result.figures["unresolved_targets"] == 0
    cited = sorted(seq for seqs in finding_seqs(result) for seq in seqs)
    assert cited == [3, 5]
    nfd = next(f for f in result.findings if 3 in f.seqs)
    assert "annotator" in nfd.message
    assert "case or Unicode normalisation" in nfd.message
    own = next(f for f in result.findings if 5 in f.seqs)
    assert "deciding system" in own.message


def test_segregation_not_assessed_without_reviews(db_url: str, key_dir: Path) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append(annotation("i1", "cat"))
        result = run(ledger, "segregation-of-duties")
    assert result.status == "not-assessed"
    assert "no reviews" in result.rationale


# -- actor identification -----------------------------------------------------


@pytest.mark.parametrize(
    "actor",
    [
        "user:admin",
        "user:unknown",
        "svc:system",
        "user:root",
        "user:ROOT",
        "user:shared-desk",
        "svc:Service",
    ],
)
def test_is_generic_actor_flags(actor: str) -> None:
    assert is_generic_actor(actor, PolicyConfig().generic_actor_names)


@pytest.mark.parametrize("actor", ["user:alice", "svc:model-server-3", "user:Zoë"])
def test_is_generic_actor_passes_individuals(actor: str) -> None:
    assert not is_generic_actor(actor, PolicyConfig().generic_actor_names)


def test_actor_identification_generic_and_colliding(db_url: str, key_dir: Path) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append_many(
            [
                annotation("i1", "a", actor="user:admin"),  # 0
                annotation("i2", "a", actor="user:alice"),  # 1
                annotation("i3", "a", actor="svc:system"),  # 2
                annotation("i4", "a", actor="user:Alice"),  # 3
                annotation("i5", "a", actor="user:admin"),  # 4
                annotation("i6", "a", actor="user:alice"),  # 5
            ]
        )
        result = run(ledger, "actor-identification")
    assert result.status == "partially-satisfied"
    assert result.figures["entries"] == 6
    assert result.figures["actors"] == 4
    assert result.figures["generic_actors"] == {"user:admin": 2, "svc:system": 1}
    assert result.figures["ambiguous_actor_ids"] == [["user:Alice", "user:alice"]]
    assert finding_seqs(result) == [(0, 4), (2,), (1, 3, 5)]
    assert "'user:admin'" in result.findings[0].message
    assert result.findings[2].severity == "medium"


# -- annotations --------------------------------------------------------------


def test_annotation_provenance_counts(db_url: str, key_dir: Path) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append_many(
            [
                annotation("i1", "a", guideline="v1"),
                annotation("i2", "a", guideline=None),
                annotation("i3", "a", guideline="v2"),
                annotation("i4", "a", guideline="v2"),
            ]
        )
        result = run(ledger, "annotation-provenance")
    assert result.status == "partially-satisfied"
    assert result.figures["annotations"] == 4
    assert result.figures["incomplete"] == 1
    assert result.figures["missing_guideline"] == 1
    assert result.figures["guideline_versions"] == {"v2": 2, "v1": 1}
    assert finding_seqs(result) == [(1,)]


def test_labels_compared_as_canonical_json(db_url: str, key_dir: Path) -> None:
    """Equal JSON values agree whatever their key order; 1 and "1" differ."""
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append_many(
            [
                annotation("i1", {"b": 1, "a": "é"}, actor="user:a"),
                annotation("i1", {"a": "é", "b": 1}, actor="user:b"),
                annotation("i2", 1, actor="user:a"),
                annotation("i2", "1", actor="user:b"),
            ]
        )
        with evidence(ledger) as collected:
            matrix = collected.coincidences()
    assert matrix.units == 2
    assert matrix.values == 4
    assert matrix.disagreeing_units == 1
    diagonal = {
        label: value for (label, other), value in matrix.cells.items() if label == other
    }
    assert sorted(diagonal.values()) == [0, 0, 2]
    assert len({label for label, _ in matrix.cells}) == 3


# -- override rate ------------------------------------------------------------


def test_override_rate_per_model(db_url: str, key_dir: Path) -> None:
    clock = Clock()
    with create_ledger(db_url, key_dir, clock) as ledger:
        ledger.append_many(
            [
                decision("a1", 0.5, model="alpha"),  # 0
                decision("a2", 0.5, model="alpha"),  # 1
                decision("a3", 0.5, model="alpha"),  # 2
                decision("b1", 0.5, model="beta"),  # 3
                decision("b2", 0.5, model="beta"),  # 4
            ]
        )
        clock.at(T0 + HOUR)
        ledger.append_many(
            [
                review(0, "reject"),  # 5
                review(0, "accept", actor="user:rev-2"),  # 6: still overridden
                review(1, "accept"),  # 7
                review(2, "escalate"),  # 8
                review(3, "accept"),  # 9
                review(4, "correct", actor="svc:bot"),  # 10: not a person
            ]
        )
        result = run(
            ledger, "override-rate", policy=PolicyConfig(override_rate_alert=0.3)
        )
    assert result.figures["reviewed_decisions"] == 4
    assert result.figures["overridden"] == 1
    assert result.figures["override_rate"] == 0.25
    per_model = {row["model"]: row for row in result.figures["per_model"]}
    assert per_model["alpha"]["reviewed"] == 3
    assert per_model["alpha"]["overridden"] == 1
    assert per_model["beta"]["reviewed"] == 1
    assert per_model["beta"]["overridden"] == 0
    assert result.status == "not-satisfied"
    assert finding_seqs(result) == [(5,)]


def test_override_rate_from_ground_truth_service(db_url: str, key_dir: Path) -> None:
    clock = Clock()
    with create_ledger(db_url, key_dir, clock) as ledger:
        ledger.append_many(
            [decision(f"d{i}", 0.9, model="housing") for i in range(4)]  # 0-3
        )
        clock.at(T0 + HOUR)
        ledger.append_many(
            [
                review(0, "accept", actor="svc:ground-truth"),
                review(1, "correct", actor="svc:ground-truth"),
                review(2, "accept", actor="svc:ground-truth"),
                review(3, "accept", actor="svc:ground-truth"),
            ]
        )
        result = run(
            ledger, "override-rate", policy=PolicyConfig(override_rate_alert=0.2)
        )
    assert result.figures["reviewers"] == "service"
    assert result.figures["reviewed_decisions"] == 4
    assert result.figures["override_rate"] == 0.25
    assert result.status == "not-satisfied"
    assert "service reviews count" in result.rationale
    assert result.findings[0].seqs == (5,)


def test_override_rate_not_assessed_without_reviews(db_url: str, key_dir: Path) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append(decision("a1", 0.5))
        result = run(ledger, "override-rate")
    assert result.status == "not-assessed"


# -- clock skew ---------------------------------------------------------------


def test_clock_skew_future_and_late(db_url: str, key_dir: Path) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append_many(
            [
                annotation("i1", "a", occurred=T0),  # 0: no skew
                annotation("i2", "a", occurred=T0 + HOUR),  # 1: an hour ahead
                annotation("i3", "a", occurred=T0 - 2 * DAY),  # 2: two days late
                annotation("i4", "a", occurred=T0 - timedelta(seconds=200)),  # 3
            ]
        )
        result = run(
            ledger, "clock-skew", policy=PolicyConfig(clock_skew_tolerance_s=300)
        )
    assert result.status == "partially-satisfied"
    assert result.figures["entries"] == 4
    assert result.figures["future"] == 1
    assert result.figures["late"] == 1
    assert result.figures["min_skew_s"] == pytest.approx(-3600)
    assert result.figures["max_skew_s"] == pytest.approx(2 * 86400)
    assert finding_seqs(result) == [(1,), (2,)]
    assert result.findings[0].severity == "high"


def test_clock_skew_within_tolerance_satisfied(db_url: str, key_dir: Path) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append(annotation("i1", "a", occurred=T0 - timedelta(seconds=5)))
        result = run(ledger, "clock-skew")
    assert result.status == "satisfied"
    assert result.findings == ()


# -- personal data ------------------------------------------------------------


def test_retention_flags_values_past_retention(db_url: str, key_dir: Path) -> None:
    old = T0.replace(year=2018)
    clock = Clock(old)
    with create_ledger(db_url, key_dir, clock) as ledger:
        ledger.append(
            decision("c0", 0.9, occurred=old, subject="s-1", personal={"name": "Ann"})
        )
        clock.at(T0)
        ledger.append(
            decision("c1", 0.9, subject="s-2", personal={"name": "Bo", "dob": "x"})
        )
        ledger.append(annotation("i1", "a"))
        result = run(ledger, "retention-coverage", now=T0 + DAY)
    assert result.status == "partially-satisfied"
    assert result.figures["entries_with_personal_values"] == 2
    assert result.figures["expired_entries"] == 1
    assert result.figures["expired_per_kind"] == {"decision": 1}
    assert result.figures["personal_values"] == 3
    assert result.figures["personal_fields"] == ["dob", "name"]
    assert result.figures["entries_with_subject"] == 2
    assert finding_seqs(result) == [(0,)]


def test_retention_uses_policy_years(db_url: str, key_dir: Path) -> None:
    clock = Clock(T0 - 400 * DAY)
    with create_ledger(db_url, key_dir, clock) as ledger:
        ledger.append(decision("c0", 0.9, personal={"name": "Ann"}))
        one_year = PolicyConfig.model_validate({"retention": {"decision": 1}})
        short = run(ledger, "retention-coverage", policy=one_year, now=T0)
        default = run(ledger, "retention-coverage", now=T0)
    assert short.figures["expired_entries"] == 1
    assert default.figures["expired_entries"] == 0
    assert default.status == "satisfied"


def erasure_body(
    occurred: str, received: str | None, trigger: str = "request"
) -> dict[str, object]:
    body: dict[str, object] = {
        "actor": "user:dpo",
        "occurred_at": occurred,
        "trigger": trigger,
        "reason": "data subject request",
        "erased": [],
    }
    if received is not None:
        body["request_received_at"] = received
    return body


def test_erasure_fulfilment_measures_delays(db_url: str, key_dir: Path) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append(decision("c0", 0.9, subject="s-1", personal={"name": "Ann"}))
        now = stamp(T0)
        records = [
            erasure_body(now, stamp(T0 - 10 * DAY)),  # 1: 10 days
            erasure_body(now, "2025-11-21T10:00:00+01:00"),  # 2: 45 days
            erasure_body(now, None),  # 3: not measurable
            erasure_body(now, None, trigger="retention"),  # 4: not a request
        ]
        for body in records:
            ledger.append_ledger_record("erasure", body)
        result = run(ledger, "erasure-fulfilment")
    assert result.status == "partially-satisfied"
    assert result.figures["erasures"] == 3
    assert result.figures["retention_runs"] == 1
    assert result.figures["measured"] == 2
    assert result.figures["within_deadline"] == 1
    assert result.figures["late"] == 1
    assert result.figures["max_days"] == pytest.approx(45.0, abs=0.001)
    assert result.figures["mean_days"] == pytest.approx(27.5, abs=0.001)
    assert finding_seqs(result) == [(2,), (3,)]


def test_erasure_not_applicable_without_personal_data(
    db_url: str, key_dir: Path
) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append(annotation("i1", "a"))
        result = run(ledger, "erasure-fulfilment")
    assert result.status == "not-applicable"
    assert "no personal" in result.rationale


def test_erasure_subject_measured_end_to_end(sqlite_url: str, key_dir: Path) -> None:
    """An erasure made by ledger.erasure is found and measured."""
    from ledger.erasure import erase_subject

    with create_ledger(sqlite_url, key_dir, Clock()) as ledger:
        ledger.append(decision("c0", 0.9, subject="s-1", personal={"name": "Ann"}))
        erase_subject(
            ledger,
            "s-1",
            reason="request by e-mail",
            request_ref="ticket-7",
            actor="user:dpo",
        )
        result = run(ledger, "erasure-fulfilment")
    assert result.figures["erasures"] == 1
    assert result.figures["measured"] == 1
    assert result.status == "satisfied"


# -- decisions' content -------------------------------------------------------


def test_explanation_coverage_adverse_first(db_url: str, key_dir: Path) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append_many(
            [
                decision("c0", 0.9, output="deny", explanation={"top": ["income"]}),
                decision("c1", 0.9, output="deny"),
                decision("c2", 0.9),
                decision("c3", 0.9, explanation=""),
                decision("c4", 0.9, explanation="score above cut-off"),
            ]
        )
        result = run(
            ledger,
            "explanation-coverage",
            policy=PolicyConfig(adverse_outputs=["deny"]),
        )
    assert result.status == "partially-satisfied"
    assert result.figures["explained"] == 2
    assert result.figures["adverse"] == 2
    assert result.figures["adverse_explained"] == 1
    assert result.figures["coverage"] == 0.4
    assert finding_seqs(result) == [(1,), (2, 3)]
    assert result.findings[0].severity == "high"


def test_decision_traceability_missing_input_hash(db_url: str, key_dir: Path) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append_many(
            [decision("c0", 0.9), decision("c1", 0.9, input_sha256=None)]
        )
        result = run(ledger, "decision-traceability")
    assert result.status == "partially-satisfied"
    assert result.figures["missing_input_hash"] == 1
    assert finding_seqs(result) == [(1,)]


# -- ledger integrity and log review ------------------------------------------


def report_body(start: str | None, end: str | None) -> dict[str, object]:
    return {
        "actor": "svc:govledger",
        "occurred_at": stamp(T0),
        "pack_sha256": "0" * 64,
        "period": {"start": start, "end": end},
    }


def test_log_review_cites_report_entries(db_url: str, key_dir: Path) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append(annotation("i1", "a"))
        before = run(ledger, "log-review")
        ledger.append_ledger_record("report_issued", report_body(None, None))
        after = run(ledger, "log-review")
    assert before.status == "not-assessed"
    assert "report_issued" in before.rationale
    assert before.figures["verified_at_evaluation"] is True
    assert after.status == "satisfied"
    assert after.figures["reports_in_period"] == 1
    assert finding_seqs(after) == [(1,)]


def test_log_review_counts_pack_issued_later(db_url: str, key_dir: Path) -> None:
    """A pack issued after the period counts when its period overlaps."""
    clock = Clock()
    with create_ledger(db_url, key_dir, clock) as ledger:
        ledger.append(annotation("i1", "a"))  # 0, on day 0
        clock.at(T0 + 10 * DAY)
        covering = report_body(text(T0 - DAY), text(T0 + DAY))
        elsewhere = report_body(text(T0 + 5 * DAY), text(T0 + 9 * DAY))
        ledger.append_ledger_record("report_issued", covering)  # 1
        ledger.append_ledger_record("report_issued", elsewhere)  # 2
        result = run(ledger, "log-review", start=text(T0), end=text(T0 + DAY))
    assert result.status == "satisfied"
    assert result.figures["reports_in_period"] == 0
    assert result.figures["reports_covering_period"] == 1
    assert finding_seqs(result) == [(1,)]


def test_chain_integrity_without_checkpoint_partial(
    sqlite_url: str, key_dir: Path
) -> None:
    config = LedgerConfig(key_dir=key_dir, checkpoint_every=0, checkpoint_interval_s=0)
    with Ledger.create(
        sqlite_url, origin="test.example/ledger", config=config
    ) as ledger:
        ledger.append(annotation("i1", "a"))
        bare = run(ledger, "chain-integrity")
        ledger.make_checkpoint()
        signed = run(ledger, "chain-integrity")
    assert bare.status == "partially-satisfied"
    assert bare.figures["checkpoints"] == 0
    assert signed.status == "satisfied"
    assert signed.figures["checkpoints_verified"] == 1


def test_chain_integrity_detects_changed_body(sqlite_url: str, key_dir: Path) -> None:
    import sqlite3

    with create_ledger(sqlite_url, key_dir, Clock()) as ledger:
        ledger.append_many([annotation("i1", "a"), annotation("i2", "b")])
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        connection.execute("DROP TRIGGER entries_no_update")
        connection.execute(
            "UPDATE entries SET body = CAST(REPLACE(CAST(body AS TEXT), "
            "'\"b\"', '\"c\"') AS BLOB) WHERE seq = 1"
        )
    with Ledger.open(sqlite_url, config=LedgerConfig(key_dir=key_dir)) as ledger:
        result = run(ledger, "chain-integrity")
    assert result.status == "not-satisfied"
    assert result.figures["chain_intact"] is False
    assert finding_seqs(result) == [(1,)]


def test_empty_ledger_checks_not_assessed(db_url: str, key_dir: Path) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        results = [run(ledger, check_id) for check_id in CHECKS]
    for result in results:
        assert result.status == "not-assessed", result.id
        assert result.rationale, result.id


# -- a clean ledger -------------------------------------------------------------


def test_clean_ledger_satisfies_planted_checks(db_url: str, key_dir: Path) -> None:
    # The counterpart of the violation tests above: every decision below the
    # review threshold is reviewed on time by a person who neither made nor
    # annotated it, annotations carry a guideline, and clocks agree.
    clock = Clock()
    with create_ledger(db_url, key_dir, clock.at(T0)) as ledger:
        ledger.append_many(
            [
                annotation("i1", "cat", actor="user:ann-1", occurred=T0),  # 0
                annotation("i1", "cat", actor="user:ann-2", occurred=T0),  # 1
                decision("c1", 0.4, occurred=T0),  # 2: needs review
                decision("c2", 0.95, occurred=T0),  # 3: confident
            ]
        )
        clock.at(T0 + HOUR)
        ledger.append_many(
            [
                review(0, actor="user:rev-1", occurred=T0 + HOUR),  # 4
                review(2, actor="user:rev-1", occurred=T0 + HOUR),  # 5
            ]
        )
        results = {
            check: run(ledger, check)
            for check in (
                "human-oversight",
                "review-timeliness",
                "segregation-of-duties",
                "annotation-provenance",
                "clock-skew",
            )
        }
    for check, result in results.items():
        assert result.status == "satisfied", (check, result.rationale)
        assert result.findings == (), check
