"""Helpers shared by the importers: errors that name where the input is bad."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from ..errors import RecordError
from ..records import parse_occurred_at

__all__ = ["check_time", "format_time", "input_error", "is_number"]


def input_error(
    where: str, field: str, problem: str, *, index: int | None = None
) -> RecordError:
    """Build the RecordError of one bad input value.

    ``where`` names the file and the place in it (a line, a JSON path);
    ``field`` is the column or key at fault.
    """
    return RecordError(
        f"{where}: {field}: {problem}",
        errors=[{"field": field, "problem": problem}],
        index=index,
    )


def is_number(value: Any) -> bool:
    """Tell whether ``value`` is a finite JSON number (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value)


def format_time(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339, with ``Z`` for a zero offset."""
    text = moment.isoformat()
    if text.endswith("+00:00"):
        text = text[: -len("+00:00")] + "Z"
    return text


def check_time(value: Any, where: str, field: str) -> str:
    """Return ``value`` if it is an RFC 3339 time with a time zone.

    Raises:
        RecordError: it is missing, not text, or not such a time.
    """
    if not isinstance(value, str):
        raise input_error(
            where,
            field,
            f"must be an RFC 3339 time such as 2022-10-31T21:19:19Z, got {value!r}",
        )
    try:
        parse_occurred_at(value)
    except ValueError as error:
        raise input_error(where, field, f"{error} (got {value!r})") from None
    return value
