"""The text of the pack's pages: cover dates, review figures, readable figures.

One ledger where only a ground-truth service reviews the model's decisions
is evaluated with the real policies and rendered once; the tests read the
PDF text back with poppler's pdftotext.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

import policies
from ledger import Ledger, LedgerConfig
from policies.config import PolicyConfig, record_policy
from policies.model import Evaluation
from reports.pack import prepare_pack
from reports.render import break_opportunities

from .support import (
    PASSPHRASE,
    START,
    Clock,
    create_ledger,
    other_identity,
    pdf_text,
)

DAYS = 2
DECISIONS_PER_DAY = 12


@dataclass(frozen=True)
class RenderedPack:
    """A rendered pack, its text as lines and as one line, and its evaluation."""

    path: Path
    lines: list[str]
    text: str
    evaluation: Evaluation


def _service_reviewed_ledger(url: str, key_dir: Path) -> Evaluation:
    """Record decisions that only svc:ground-truth reviews; evaluate them."""
    clock = Clock()
    with create_ledger(url, key_dir, clock) as ledger:
        record_policy(
            ledger,
            PolicyConfig(clock_skew_tolerance_s=120),
            actor="user:officer",
            source="test",
            occurred_at="2026-03-02T08:30:00Z",
        )
        for day in range(DAYS):
            clock.moment = START + timedelta(days=day)
            base = ledger.size
            ledger.append_many(
                [
                    {
                        "kind": "decision",
                        "actor": "svc:triage-model",
                        "occurred_at": (
                            clock.moment - timedelta(minutes=1)
                        ).isoformat(),
                        "item": {"dataset": "triage", "id": f"case-{base + index}"},
                        "model": {"name": "triage", "version": "2.1"},
                        "output": {"label": "urgent"},
                        "confidence": (index % 10) / 10 + 0.05,
                    }
                    for index in range(DECISIONS_PER_DAY)
                ]
            )
            ledger.append_many(
                [
                    {
                        "kind": "review",
                        "actor": "svc:ground-truth",
                        "occurred_at": clock.moment.isoformat(),
                        "target": {"seq": base + index},
                        "verdict": "reject" if index % 3 == 0 else "accept",
                    }
                    for index in range(DECISIONS_PER_DAY)
                ]
            )
        return policies.evaluate(ledger)


def _render(url: str, key_dir: Path, out: Path, evaluation: Evaluation) -> RenderedPack:
    with Ledger.open(
        url, config=LedgerConfig(key_dir=key_dir, passphrase=PASSPHRASE)
    ) as ledger:
        prepared = prepare_pack(
            ledger,
            evaluation,
            organisation="Example Health",
            certificate=other_identity().certificate,
        )
    out.write_bytes(prepared.pdf)
    layout = pdf_text(out)
    return RenderedPack(
        path=out,
        lines=layout.splitlines(),
        text=" ".join(layout.split()),
        evaluation=evaluation,
    )


@pytest.fixture(scope="module")
def service_pack(tmp_path_factory: pytest.TempPathFactory) -> RenderedPack:
    root = tmp_path_factory.mktemp("service-pack")
    url = f"sqlite:///{root / 'ledger.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("SOURCE_DATE_EPOCH", raising=False)
        evaluation = _service_reviewed_ledger(url, root / "keys")
        return _render(url, root / "keys", root / "pack.pdf", evaluation)


def _figures(evaluation: Evaluation, check_id: str) -> dict:
    return next(check.figures for check in evaluation.checks if check.id == check_id)


# -- executive summary: human and service reviews ------------------------------


def test_summary_service_reviews_not_counted_as_human(service_pack) -> None:
    decisions = DAYS * DECISIONS_PER_DAY
    assert (
        "Decisions with a human review (actor user:), recorded in the period 0 (0.0%)"
        in service_pack.text
    )
    assert (
        "Decisions reviewed only by a service (actor svc:), not by a person "
        f"{decisions} (100.0%)" in service_pack.text
    )
    assert "Decisions with a human review 24" not in service_pack.text


def test_summary_agrees_with_oversight_check(service_pack) -> None:
    oversight = _figures(service_pack.evaluation, "human-oversight")
    assert oversight["reviewed"] == 0
    assert (
        "Decisions needing review that have a human review (human-oversight check) "
        f"0 of {oversight['needing_review']}" in service_pack.text
    )


def test_summary_override_rate_labelled_service(service_pack) -> None:
    figures = _figures(service_pack.evaluation, "override-rate")
    overridden, reviewed = figures["overridden"], figures["reviewed_decisions"]
    assert figures["reviewers"] == "service"
    assert "Service-reviewed decisions that a service overrode" in service_pack.text
    assert f"{overridden} of {reviewed} ({overridden / reviewed:.1%})" in (
        service_pack.text
    )
    assert "Reviews that overrode the model" not in service_pack.text
    assert "Human-reviewed decisions that reviewers overrode" not in service_pack.text


def test_review_coverage_chart_splits_reviewers(service_pack) -> None:
    decisions = DAYS * DECISIONS_PER_DAY
    assert (
        f"Of {decisions} decisions of the period, 0 have a review by a person"
        in service_pack.text
    )
    assert f"{decisions} only a review by a service (svc:)" in service_pack.text


# -- cover: dates of the entries and of issue -----------------------------------


def test_cover_shows_recorded_span(service_pack) -> None:
    last = START + timedelta(days=DAYS - 1)
    assert (
        f"recorded from {START:%Y-%m-%d %H:%M:%S} UTC to {last:%Y-%m-%d %H:%M:%S} UTC"
        in service_pack.text
    )
    assert "all entries of the evaluated tree" in service_pack.text


def test_cover_shows_occurred_span(service_pack) -> None:
    last = START + timedelta(days=DAYS - 1)
    # The policy_config entry occurred at 08:30, before the first decision.
    assert (
        f"events occurred from {START:%Y-%m-%d} 08:30:00 UTC to "
        f"{last:%Y-%m-%d %H:%M:%S} UTC" in service_pack.text
    )


def test_cover_issue_date_from_clock(service_pack) -> None:
    assert re.search(
        r"Date of issue \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", service_pack.text
    )
    assert "Policies evaluated at" in service_pack.text
    assert "SOURCE_DATE_EPOCH" not in service_pack.text


def test_cover_labels_source_date_epoch(
    service_pack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1773000000")
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    evaluation = _service_reviewed_ledger(url, tmp_path / "keys")
    rendered = _render(url, tmp_path / "keys", tmp_path / "pack.pdf", evaluation)
    assert "Document date (SOURCE_DATE_EPOCH) 2026-03-08 20:00:00 UTC" in rendered.text
    assert "it is not the time of issue" in rendered.text
    assert "Date of issue" not in rendered.text


# -- figures and keys that read as words ----------------------------------------


def test_figures_use_words_not_raw_keys(service_pack) -> None:
    assert "chain-integrity.entries_after_latest_checkpoint" not in service_pack.text
    assert "entries_after_latest_checkpoint" not in service_pack.text
    assert "entries after latest checkpoint: " in service_pack.text
    assert "chain integrity" in service_pack.text


def test_figures_skip_empty_containers(service_pack) -> None:
    assert (
        _figures(service_pack.evaluation, "actor-identification")["generic_actors"]
        == {}
    )
    assert "generic_actors" not in service_pack.text
    assert "generic actors" not in service_pack.text
    assert "{}" not in service_pack.text


def test_policy_keys_break_only_between_words(service_pack) -> None:
    # Only the "Policy in force" table: findings print entries, whose JSON
    # also contains the keys.
    headings = [line.strip() for line in service_pack.lines]
    start = headings.index("Policy in force")
    end = headings.index("Charts", start)
    table = service_pack.lines[start:end]
    keys = [
        "clock_skew_tolerance_s",
        "erasure_deadline_days",
        "generic_actor_names",
        "override_rate_alert",
    ]
    for key in keys:
        assert any(line.split()[:1] == [key] for line in table if line.strip()), key


def test_break_opportunities_escape_first() -> None:
    markup = break_opportunities('<img src="file:///x_y.png">')
    assert str(markup) == "&lt;img src=&#34;file:///x_<wbr>y.<wbr>png&#34;&gt;"


def test_break_opportunities_keep_numbers_whole() -> None:
    assert str(break_opportunities("0.667")) == "0.667"
    assert str(break_opportunities("clock_skew")) == "clock_<wbr>skew"
