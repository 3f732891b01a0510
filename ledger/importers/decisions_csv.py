"""Importer of model-decision logs in CSV: decisions and their ground truth.

Each row is one decision of one model version on one item. With a
ground-truth column, each row with a truth value also gives a review by
``svc:ground-truth`` that accepts the decision (truth equals the output) or
corrects it (``correction`` is the truth). The review names the decision by
its source (``target.source``), which ``Ledger.append_many(...,
resolve_source_targets=True)`` turns into the decision's seq inside the
append transaction.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..canonical import MAX_SAFE_INTEGER, canonical_bytes
from ..errors import InputError
from ._common import format_time, input_error

__all__ = ["GROUND_TRUTH_ACTOR", "SOURCE_SYSTEM", "parse_model", "read_decisions_csv"]

logger = logging.getLogger(__name__)

SOURCE_SYSTEM = "decisions-csv"
GROUND_TRUTH_ACTOR = "svc:ground-truth"

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def parse_model(model: str) -> tuple[str, str]:
    """Split ``NAME@VERSION`` at its last ``@``.

    Raises:
        InputError: the name or the version is empty.
    """
    name, separator, version = model.rpartition("@")
    if not separator or not name.strip() or not version.strip():
        raise InputError(
            f"model {model!r} must be NAME@VERSION, e.g. churn-model@2.3.1",
            reason="invalid-option",
        )
    return name.strip(), version.strip()


def read_decisions_csv(
    path: Path,
    *,
    id_col: str,
    score_col: str,
    prediction_col: str,
    time_col: str,
    truth_col: str | None = None,
    model: str,
    dataset: str | None = None,
    threshold: float | None = None,
    timezone: str = "UTC",
    truth_time_col: str | None = None,
    now: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Map each row of a decision log to a decision record, and its truth to a review.

    Columns: ``id_col`` gives the item id, ``score_col`` the confidence (a
    number in [0, 1]), ``prediction_col`` the output, ``time_col`` the time
    of the decision. Every other column, except the truth columns, is a
    feature: ``input_sha256`` is the SHA-256 of the RFC 8785 bytes of
    ``{column: cell text}`` over the features, so anyone holding the log
    can recompute it.

    Rules:

    - Output and truth cells that are integers become JSON integers, other
      numbers floats, anything else stays text. A truth equal to the output
      (so ``1`` equals ``1.0``) accepts the decision.
    - A time without an offset is read in ``timezone`` (an IANA name,
      default UTC) and stored with that zone's offset, e.g.
      ``2020-10-01T00:00:00Z`` or ``2020-10-01T00:00:00+02:00``, so the
      entry states the instant it assumed. At a daylight-saving fall-back
      the earlier of the two instants is taken; a time that the zone skips
      is an error.
    - The review's time comes from ``truth_time_col`` when given, else it
      is the import time (``now``): the log does not say when the truth
      became known, and the ledger learned it at the import.
    - A row whose truth cell is empty gets no review.
    - ``model`` is ``NAME@VERSION``. ``dataset`` names the items' dataset
      (default: the file name's stem). ``threshold``, the decision threshold
      in [0, 1], is recorded on every decision.

    The source ref of a decision is ``NAME@VERSION/DATASET/ID`` and that of
    its review the same with ``/ground-truth``: ids repeat across model
    versions, so the version is part of the ref.

    Raises:
        InputError: an option is invalid (model, time zone, threshold).
        RecordError: the file is not UTF-8 CSV, a column is missing, an id
            repeats, or a cell is invalid; the error names the line and the
            column.
    """
    name, version = parse_model(model)
    zone = _time_zone(timezone)
    if threshold is not None and not (
        math.isfinite(threshold) and 0.0 <= threshold <= 1.0
    ):
        raise InputError(
            f"threshold {threshold} must be a number in [0, 1]",
            reason="invalid-option",
        )
    dataset = dataset or path.stem
    imported_at = format_time((now or datetime.now(UTC)).astimezone(UTC))
    try:
        handle = path.open("r", encoding="utf-8-sig", newline="")
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    with handle:
        rows = csv.reader(handle, strict=True)
        header = _read_header(rows, path.name)
        columns = _Columns(
            header,
            path.name,
            id_col=id_col,
            score_col=score_col,
            prediction_col=prediction_col,
            time_col=time_col,
            truth_col=truth_col,
            truth_time_col=truth_time_col,
        )
        seen: dict[str, int] = {}
        for line, cells in _data_rows(rows, path.name, len(header)):
            row = dict(zip(header, cells, strict=True))
            where = f"{path.name} line {line}"
            item_id = row[id_col]
            if not item_id:
                raise input_error(where, id_col, "the item id is empty")
            if item_id in seen:
                raise input_error(
                    where,
                    id_col,
                    f"item id {item_id!r} repeats line "
                    f"{seen[item_id]}; each row must be a different decision",
                )
            seen[item_id] = line
            ref = f"{name}@{version}/{dataset}/{item_id}"
            output = _cell_value(row[prediction_col], where, prediction_col)
            decision: dict[str, Any] = {
                "kind": "decision",
                "actor": f"svc:{name}",
                "occurred_at": _cell_time(row[time_col], zone, where, time_col),
                "source": {"system": SOURCE_SYSTEM, "ref": ref},
                "item": {"dataset": dataset, "id": item_id},
                "model": {"name": name, "version": version},
                "output": output,
                "confidence": _score(row[score_col], where, score_col),
                "input_sha256": hashlib.sha256(
                    canonical_bytes(
                        {column: row[column] for column in columns.features}
                    )
                ).hexdigest(),
            }
            if threshold is not None:
                decision["threshold"] = threshold
            yield decision
            if truth_col is None or row[truth_col] == "":
                continue
            truth = _cell_value(row[truth_col], where, truth_col)
            review: dict[str, Any] = {
                "kind": "review",
                "actor": GROUND_TRUTH_ACTOR,
                "occurred_at": (
                    _cell_time(row[truth_time_col], zone, where, truth_time_col)
                    if truth_time_col
                    else imported_at
                ),
                "source": {"system": SOURCE_SYSTEM, "ref": f"{ref}/ground-truth"},
                "target": {"source": {"system": SOURCE_SYSTEM, "ref": ref}},
                "reason": f"ground truth from column {truth_col!r}",
            }
            if truth == output:
                review["verdict"] = "accept"
            else:
                review["verdict"] = "correct"
                review["correction"] = truth
            yield review


class _Columns:
    """The columns a log must have, checked against its header."""

    def __init__(self, header: list[str], file_name: str, **roles: str | None) -> None:
        where = f"{file_name} line 1"
        for option, column in roles.items():
            if column is not None and column not in header:
                flag = "--" + option.replace("_col", "-col").replace("_", "-")
                raise input_error(
                    where,
                    column,
                    f"column named by {flag} is missing from the "
                    f"header; the columns are: {', '.join(header)}",
                )
        used = {column for column in roles.values() if column is not None}
        self.features = [column for column in header if column not in used]


def _time_zone(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"unknown time zone {name!r}; give an IANA name such as UTC or "
            "Europe/Amsterdam",
            reason="invalid-option",
        ) from None


def _read_header(rows: Any, file_name: str) -> list[str]:
    try:
        header = next(rows, None)
    except (csv.Error, UnicodeDecodeError) as error:
        raise input_error(
            f"{file_name} line 1", "(header)", _csv_problem(error)
        ) from None
    if not header:
        raise input_error(
            f"{file_name} line 1",
            "(header)",
            "the file is empty; a decision log "
            "starts with a header line naming its columns",
        )
    duplicates = sorted({column for column in header if header.count(column) > 1})
    if duplicates:
        raise input_error(
            f"{file_name} line 1",
            duplicates[0],
            "the header names this column twice; rename one of them",
        )
    return header


def _data_rows(
    rows: Any, file_name: str, width: int
) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, cells) of each non-blank data row.

    The line number is that of the row's first line in the file, which a
    quoted cell with a newline can make differ from the row count.
    """
    line = rows.line_num + 1
    while True:
        try:
            cells = next(rows)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as error:
            raise input_error(
                f"{file_name} line {line}", "(row)", _csv_problem(error)
            ) from None
        if cells:
            if len(cells) != width:
                raise input_error(
                    f"{file_name} line {line}",
                    "(row)",
                    f"has {len(cells)} cells, the header has {width} columns",
                )
            yield line, cells
        line = rows.line_num + 1


def _csv_problem(error: Exception) -> str:
    if isinstance(error, UnicodeDecodeError):
        return f"the file is not UTF-8 text ({error.reason}); convert it to UTF-8"
    return f"not valid CSV ({error})"


def _score(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise input_error(
            where,
            column,
            f"score {text!r} is not a number; give a probability in [0, 1]",
        ) from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise input_error(
            where,
            column,
            f"score {text!r} is outside [0, 1], because the ledger records "
            "confidence as a probability",
        )
    return value


def _cell_value(text: str, where: str, column: str) -> Any:
    """Read an output or truth cell: integer, float, or the text itself."""
    if text == "":
        raise input_error(where, column, "the cell is empty")
    stripped = text.strip()
    if _INTEGER.fullmatch(stripped):
        value = int(stripped)
        # Larger integers have no exact JSON number (RFC 8785): keep the text.
        return value if abs(value) <= MAX_SAFE_INTEGER else text
    if _DECIMAL.fullmatch(stripped):
        number = float(stripped)
        if math.isfinite(number):
            return number
    return text


def _cell_time(text: str, zone: tzinfo, where: str, column: str) -> str:
    """Read a time cell as ISO 8601; a time without an offset is in ``zone``."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise input_error(
            where,
            column,
            f"time {text!r} is not ISO 8601, e.g. "
            "2020-10-01 00:00:00 or 2020-10-01T00:00:00+02:00",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
        # A skipped local time (spring forward) does not survive the round
        # trip through UTC.
        back = moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        if back != moment.replace(tzinfo=None):
            raise input_error(
                where,
                column,
                f"time {text!r} does not exist in time zone "
                f"{zone} (skipped by a daylight-saving change)",
            )
    return format_time(moment)
