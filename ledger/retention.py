"""Retention periods of personal values, per record kind, from ``govledger.toml``.

The ``[retention]`` table maps an input record kind to the number of years
its personal values are kept, counted from the entry's ``recorded_at``::

    [retention]
    annotation = 6
    review = 6
    decision = 0.5

Kinds that are not listed keep the defaults below. ``erase --expired``
and the policy checks read the same table through ``load_retention``.
"""

from __future__ import annotations

import logging
import math
import tomllib
from calendar import monthrange
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .errors import InputError
from .records import INPUT_KINDS

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_RETENTION_YEARS",
    "MIN_RETENTION_YEARS",
    "load_retention",
    "parse_retention",
    "retention_cutoff",
]

logger = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("govledger.toml")

# HIPAA 45 CFR 164.316(b)(2)(i) keeps required documentation for six years,
# which also covers the EU AI Act Art. 19(1) minimum of six months for logs.
DEFAULT_RETENTION_YEARS: dict[str, float] = {kind: 6.0 for kind in INPUT_KINDS}

# EU AI Act Art. 19(1): logs of a high-risk AI system are kept for at least
# six months, so no shorter retention is accepted.
MIN_RETENTION_YEARS = 0.5
MAX_RETENTION_YEARS = 1000.0

# Days in the longest month, so that a fraction of a month never shortens
# retention.
_DAYS_PER_MONTH_CEILING = 31


def parse_retention(section: Any, *, source: str = "[retention]") -> dict[str, float]:
    """Validate a ``[retention]`` table; return years per input kind.

    Listed kinds override ``DEFAULT_RETENTION_YEARS``; unlisted kinds keep
    the default.

    Raises:
        InputError: the table is not a table, names a kind that is not an
            input kind, or gives a value that is not a number of years from
            ``MIN_RETENTION_YEARS`` (EU AI Act Art. 19(1)) to 1000.
    """
    if not isinstance(section, dict):
        raise InputError(
            f"{source} must be a table of kind = years, e.g. annotation = 6",
            reason="invalid-retention",
        )
    years = dict(DEFAULT_RETENTION_YEARS)
    for kind, value in section.items():
        if kind not in INPUT_KINDS:
            raise InputError(
                f"{source}: unknown key {kind!r}; use one of {', '.join(INPUT_KINDS)}",
                reason="invalid-retention",
            )
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InputError(
                f"{source}: {kind} = {value!r} is not a number of years",
                reason="invalid-retention",
            )
        if not MIN_RETENTION_YEARS <= value <= MAX_RETENTION_YEARS:
            raise InputError(
                f"{source}: {kind} = {value} years is outside the allowed range "
                f"{MIN_RETENTION_YEARS} to {MAX_RETENTION_YEARS:g}; the EU AI "
                "Act Art. 19(1) requires at least six months (0.5)",
                reason="invalid-retention",
            )
        years[kind] = float(value)
    return years


def load_retention(path: Path | None = None) -> dict[str, float]:
    """Read retention years per kind from the ``[retention]`` table of a file.

    Without ``path``, ``./govledger.toml`` is read when it exists; a file
    without a ``[retention]`` table, or no file at all, gives the defaults.

    Raises:
        InputError: ``path`` was given but cannot be read, the file is not
            valid TOML, or its ``[retention]`` table is invalid.
    """
    explicit = path is not None
    path = path if path is not None else DEFAULT_CONFIG_PATH
    if not explicit and not path.exists():
        logger.debug("no %s: using the default retention periods", path)
        return dict(DEFAULT_RETENTION_YEARS)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise InputError(
            f"cannot read configuration file {path}: {error.strerror}; "
            "check the --config path",
            reason="invalid-retention",
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise InputError(
            f"configuration file {path} is not valid TOML: {error}",
            reason="invalid-retention",
        ) from None
    if "retention" not in data:
        return dict(DEFAULT_RETENTION_YEARS)
    return parse_retention(data["retention"], source=f"{path} [retention]")


def retention_cutoff(now: datetime, years: float) -> datetime:
    """Return the moment before which a record is older than ``years``.

    Whole months are subtracted on the calendar, and the day is clamped to
    the end of a shorter month. A remaining fraction of a month counts as
    31 days per month, rounded up to whole days. So the cutoff never falls
    later than the exact calendar date, and retention is never shortened.
    """
    months = years * 12
    whole_months = math.floor(months)
    extra_days = math.ceil((months - whole_months) * _DAYS_PER_MONTH_CEILING)
    month_index = now.year * 12 + (now.month - 1) - whole_months
    year, month = divmod(month_index, 12)
    month += 1
    day = min(now.day, monthrange(year, month)[1])
    return now.replace(year=year, month=month, day=day) - timedelta(days=extra_days)
