"""Inline SVG charts for the audit pack, drawn by our own code.

Each chart is a plain SVG fragment (bars, axes, text in DejaVu Sans) that
WeasyPrint draws as vector graphics; nothing is fetched or scripted. Every
label passes through ``markupsafe.escape``, so a label taken from a record
cannot inject markup.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from .statistics import CONFIDENCE_BINS, VERDICTS, ScopeStatistics

__all__ = ["Chart", "bar_chart", "charts_for"]

_WIDTH = 520
_HEIGHT = 190
_LEFT = 48
_RIGHT = 12
_TOP = 14
_BOTTOM = 22
_FONT = "DejaVu Sans"
_BAR = "#2f5d8a"
_ALERT = "#b5473a"
_SERVICE = "#8aa4bf"
_GRID = "#d0d4da"
_TEXT = "#222222"
# More days than this are grouped by month so that bars stay readable.
_MAX_DAILY_BARS = 62
_MAX_TICK_LABELS = 12


@dataclass(frozen=True)
class Chart:
    """One chart: a title, a one-sentence caption and the SVG markup."""

    title: str
    caption: str
    svg: Markup


def _nice_ceiling(value: float) -> float:
    """Round ``value`` up to 1, 2 or 5 times a power of ten; at least 1.

    Charts count things, so a gridline step below 1 would label fractions.
    """
    if value <= 1:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        candidate = step * 10.0**exponent
        if candidate >= value:
            return candidate
    return 10.0 ** (exponent + 1)  # pragma: no cover - the loop always returns


def _format_count(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def _text(
    x: float, y: float, content: str, *, anchor: str = "middle", size: int = 9
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-family="{_FONT}" font-size="{size}" '
        f'fill="{_TEXT}" text-anchor="{anchor}">{escape(content)}</text>'
    )


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    y_label: str,
    colors: Sequence[str] | None = None,
    value_format: Callable[[float], str] = _format_count,
    empty_text: str = "no data in the period",
) -> Markup:
    """Draw a vertical bar chart as an SVG fragment.

    ``labels`` and ``values`` have the same length; values are not
    negative. With no values, or all zero, the chart shows ``empty_text``.

    Raises:
        ValueError: the lengths differ or a value is negative.
    """
    if len(labels) != len(values):
        raise ValueError(f"{len(labels)} labels for {len(values)} values")
    if any(value < 0 for value in values):
        raise ValueError("bar chart values must not be negative")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" '
        f'height="{_HEIGHT}" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img">'
    ]
    plot_width = _WIDTH - _LEFT - _RIGHT
    plot_height = _HEIGHT - _TOP - _BOTTOM
    base = _TOP + plot_height
    parts.append(
        f'<line x1="{_LEFT}" y1="{base}" x2="{_WIDTH - _RIGHT}" y2="{base}" '
        f'stroke="{_TEXT}" stroke-width="0.8"/>'
    )
    if not values or max(values) == 0:
        parts.append(_text(_LEFT + plot_width / 2, _TOP + plot_height / 2, empty_text))
        parts.append("</svg>")
        return Markup("".join(parts))

    step = _nice_ceiling(max(values) / 4)
    ticks = max(1, math.ceil(max(values) / step))
    top = step * ticks
    for tick in range(1, ticks + 1):
        y = base - plot_height * tick / ticks
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_WIDTH - _RIGHT}" y2="{y:.1f}" '
            f'stroke="{_GRID}" stroke-width="0.5"/>'
        )
        parts.append(_text(_LEFT - 4, y + 3, value_format(step * tick), anchor="end"))
    parts.append(_text(_LEFT - 4, base + 3, value_format(0), anchor="end"))
    parts.append(
        f'<text x="10" y="{_TOP + plot_height / 2:.1f}" font-family="{_FONT}" '
        f'font-size="9" fill="{_TEXT}" text-anchor="middle" '
        f'transform="rotate(-90 10 {_TOP + plot_height / 2:.1f})">'
        f"{escape(y_label)}</text>"
    )

    slot = plot_width / len(values)
    bar_width = max(slot * 0.7, 0.5)
    label_every = max(1, math.ceil(len(labels) / _MAX_TICK_LABELS))
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        height = plot_height * value / top
        x = _LEFT + slot * index + (slot - bar_width) / 2
        color = colors[index] if colors else _BAR
        parts.append(
            f'<rect x="{x:.2f}" y="{base - height:.2f}" width="{bar_width:.2f}" '
            f'height="{height:.2f}" fill="{color}"/>'
        )
        if index % label_every == 0:
            parts.append(_text(x + bar_width / 2, base + 12, label, size=8))
        if len(values) <= 12:
            parts.append(
                _text(x + bar_width / 2, base - height - 3, value_format(value), size=8)
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def _decisions_over_time(stats: ScopeStatistics) -> Chart:
    days = sorted(stats.decisions_per_day.items())
    unit = "day"
    if len(days) > _MAX_DAILY_BARS:
        months: dict[str, int] = {}
        for day, count in days:
            months[day[:7]] = months.get(day[:7], 0) + count
        days = sorted(months.items())
        unit = "month"
    return Chart(
        title="Decisions over time",
        caption=(
            f"Model decisions recorded per {unit} (UTC), {stats.decisions:,} in all."
        ),
        svg=bar_chart(
            [label for label, _ in days],
            [count for _, count in days],
            y_label="decisions",
        ),
    )


def _review_coverage(stats: ScopeStatistics) -> Chart:
    human = stats.human_reviewed_decisions
    service_only = stats.service_only_reviewed_decisions
    unreviewed = stats.decisions - stats.reviewed_decisions
    return Chart(
        title="Review coverage",
        caption=(
            f"Of {stats.decisions:,} decisions of the period, {human:,} have a "
            f"review by a person (user:) recorded in the period "
            f"({_percent(_share(human, stats.decisions))}), {service_only:,} only "
            f"a review by a service (svc:), and {unreviewed:,} no review."
        ),
        svg=bar_chart(
            ["person", "service only", "none"],
            [human, service_only, unreviewed],
            y_label="decisions",
            colors=[_BAR, _SERVICE, _ALERT],
        ),
    )


def _review_verdicts(stats: ScopeStatistics) -> Chart:
    summary = stats.summary()
    other = sum(
        count for verdict, count in stats.verdicts.items() if verdict not in VERDICTS
    )
    labels = [*VERDICTS, *(["other"] if other else [])]
    values = [stats.verdicts[verdict] for verdict in VERDICTS] + (
        [other] if other else []
    )
    colors = [_ALERT if label in ("reject", "correct") else _BAR for label in labels]
    return Chart(
        title="Review verdicts",
        caption=(
            f"Verdicts of the {stats.reviews:,} reviews recorded in the period "
            f"({summary['human_reviews']:,} by people, {summary['service_reviews']:,} "
            f"by services); reject and correct override the model: "
            f"{stats.overrides:,} reviews ({_percent(summary['override_rate'])})."
        ),
        svg=bar_chart(labels, values, y_label="reviews", colors=colors),
    )


def _confidence_histogram(stats: ScopeStatistics) -> Chart:
    width = 1 / CONFIDENCE_BINS
    labels = [f"{index * width:.1f}" for index in range(CONFIDENCE_BINS)]
    return Chart(
        title="Confidence histogram",
        caption=(
            "Decisions per confidence band; each bar counts confidences from its "
            "label up to the next label (the last band includes 1.0)."
        ),
        svg=bar_chart(labels, stats.confidence_bins, y_label="decisions"),
    )


def _agreement(stats: ScopeStatistics) -> Chart:
    agreed, disagreed, agreeing_pairs, pairs = stats.agreement()
    rate = None if pairs == 0 else agreeing_pairs / pairs
    return Chart(
        title="Annotator agreement",
        caption=(
            f"Items labelled by two or more annotators: {agreed:,} with the same "
            f"label from all, {disagreed:,} with differing labels; pairwise "
            f"agreement {_percent(rate)}."
        ),
        svg=bar_chart(
            ["all agree", "disagree"],
            [agreed, disagreed],
            y_label="items",
            colors=[_BAR, _ALERT],
        ),
    )


def charts_for(stats: ScopeStatistics) -> list[Chart]:
    """Return the pack's charts for the figures of a period, in report order."""
    return [
        _decisions_over_time(stats),
        _review_coverage(stats),
        _review_verdicts(stats),
        _confidence_histogram(stats),
        _agreement(stats),
    ]
