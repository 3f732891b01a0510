"""Chart figures and SVG: counted right, escaped, and drawn for empty periods."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import pytest

from reports.charts import bar_chart, charts_for
from reports.statistics import ScopeStatistics


def _entry(
    kind: str, record: dict, recorded_at: str = "2026-03-02T09:00:00.000000Z"
) -> dict:
    return {"kind": kind, "record": record, "recorded_at": recorded_at}


def _statistics() -> ScopeStatistics:
    stats = ScopeStatistics()
    stats.add(0, "a" * 64, _entry("decision", {"confidence": 0.95}))
    stats.add(1, "b" * 64, _entry("decision", {"confidence": 0.05}))
    stats.add(
        2,
        "c" * 64,
        _entry("decision", {"confidence": 1.0}, "2026-03-03T09:00:00.000000Z"),
    )
    stats.add(
        3, "d" * 64, _entry("review", {"target": {"seq": 0}, "verdict": "accept"})
    )
    stats.add(
        4,
        "e" * 64,
        _entry("review", {"target": {"entry_hash": "b" * 64}, "verdict": "correct"}),
    )
    stats.add(
        5, "f" * 64, _entry("review", {"target": {"seq": 99}, "verdict": "reject"})
    )
    for seq, (item, actor, label) in enumerate(
        [
            ("x", "user:a", "cat"),
            ("x", "user:b", "cat"),
            ("y", "user:a", "cat"),
            ("y", "user:b", "dog"),
            ("y", "user:c", "dog"),
            ("z", "user:a", "cat"),
        ],
        start=6,
    ):
        stats.add(
            seq,
            f"{seq:064x}",
            _entry(
                "annotation",
                {"actor": actor, "item": {"dataset": "d", "id": item}, "label": label},
            ),
        )
    return stats


def test_statistics_count_decisions_and_reviews() -> None:
    summary = _statistics().summary()
    assert summary["decisions"] == 3
    assert summary["reviewed_decisions"] == 2
    assert summary["review_coverage"] == pytest.approx(2 / 3)
    assert summary["reviews"] == 3
    assert summary["overrides"] == 2
    assert summary["override_rate"] == pytest.approx(2 / 3)


def test_statistics_agreement() -> None:
    stats = _statistics()
    agreed, disagreed, agreeing_pairs, pairs = stats.agreement()
    assert (agreed, disagreed) == (1, 1)
    # Item x: one agreeing pair; item y: three pairs, one agreeing (b, c).
    assert (agreeing_pairs, pairs) == (2, 4)


def test_statistics_confidence_bins_include_one() -> None:
    stats = _statistics()
    assert stats.confidence_bins[0] == 1
    assert stats.confidence_bins[9] == 2


def test_statistics_decisions_per_day() -> None:
    assert dict(_statistics().decisions_per_day) == {"2026-03-02": 2, "2026-03-03": 1}


def test_charts_are_well_formed_svg() -> None:
    charts = charts_for(_statistics())
    assert [chart.title for chart in charts] == [
        "Decisions over time",
        "Review coverage",
        "Review verdicts",
        "Confidence histogram",
        "Annotator agreement",
    ]
    for chart in charts:
        root = ElementTree.fromstring(str(chart.svg))
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.findall(".//{http://www.w3.org/2000/svg}rect")


def test_charts_for_empty_period_say_so() -> None:
    for chart in charts_for(ScopeStatistics()):
        assert "no data in the period" in str(chart.svg)


def test_bar_chart_escapes_labels() -> None:
    svg = str(bar_chart(['<script>alert("x")</script>'], [3], y_label="<b>items</b>"))
    root = ElementTree.fromstring(svg)
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert not root.findall(".//script")


def test_bar_chart_rejects_negative_values() -> None:
    with pytest.raises(ValueError):
        bar_chart(["a"], [-1], y_label="n")


def test_many_days_grouped_by_month() -> None:
    stats = ScopeStatistics()
    for day in range(90):
        month, dom = divmod(day, 30)
        stats.add(
            day,
            f"{day:064x}",
            _entry("decision", {}, f"2026-0{month + 1}-{dom + 1:02d}T00:00:00.000000Z"),
        )
    chart = charts_for(stats)[0]
    assert "per month" in chart.caption
    assert "2026-02" in str(chart.svg)


def _review(target: int, actor: str, verdict: str) -> dict:
    return _entry(
        "review", {"actor": actor, "target": {"seq": target}, "verdict": verdict}
    )


def test_statistics_service_reviews_not_human() -> None:
    stats = ScopeStatistics()
    for seq in range(4):
        stats.add(seq, f"{seq:064x}", _entry("decision", {"confidence": 0.5}))
    stats.add(4, "4" * 64, _review(0, "svc:ground-truth", "reject"))
    stats.add(5, "5" * 64, _review(1, "svc:ground-truth", "accept"))
    stats.add(6, "6" * 64, _review(2, "svc:ground-truth", "correct"))
    summary = stats.summary()
    assert summary["reviewed_decisions"] == 3
    assert summary["human_reviewed_decisions"] == 0
    assert summary["human_review_coverage"] == 0.0
    assert summary["service_only_reviewed_decisions"] == 3
    assert summary["service_reviews"] == 3
    assert summary["human_reviews"] == 0
    assert stats.decision_overrides() == ("service", 3, 2)


def test_statistics_human_reviews_take_precedence() -> None:
    stats = ScopeStatistics()
    for seq in range(3):
        stats.add(seq, f"{seq:064x}", _entry("decision", {"confidence": 0.5}))
    stats.add(3, "3" * 64, _review(0, "svc:ground-truth", "reject"))
    stats.add(4, "4" * 64, _review(1, "svc:ground-truth", "reject"))
    stats.add(5, "5" * 64, _review(0, "user:reviewer-1", "accept"))
    summary = stats.summary()
    assert summary["human_reviewed_decisions"] == 1
    assert summary["service_only_reviewed_decisions"] == 1
    # As in the override-rate check: only human reviews count once there is one.
    assert stats.decision_overrides() == ("human", 1, 0)
