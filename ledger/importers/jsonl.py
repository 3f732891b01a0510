"""Importers of JSON Lines files: input records and Prodigy exports."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..canonical import parse_json
from ..errors import CanonicalJSONError, RecordError

__all__ = ["read_prodigy", "read_records"]


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("r", encoding="utf-8", errors="surrogateescape") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def _parse_line(number: int, line: str, index: int) -> Any:
    try:
        return parse_json(line)
    except CanonicalJSONError as error:
        field = error.path or "(record)"
        raise RecordError(
            f"line {number}: record {index}: {field}: {error.detail}",
            errors=[{"field": field, "problem": error.detail}],
            index=index,
        ) from None


def read_records(path: Path) -> Iterator[Any]:
    """Read JSON Lines of input records, one record per non-blank line.

    Raises:
        RecordError: a line is not strict JSON; the error names the line.
    """
    for index, (number, line) in enumerate(_lines(path)):
        yield _parse_line(number, line, index)


def _prodigy_time(value: Any, number: int, index: int) -> str:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RecordError(
            f"line {number}: record {index}: _timestamp: must be a Unix time "
            f"in seconds, got {value!r}",
            errors=[{"field": "_timestamp", "problem": "must be a Unix time"}],
            index=index,
        )
    moment = datetime.fromtimestamp(value, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _prodigy_require(task: dict[str, Any], name: str, number: int, index: int) -> Any:
    if name not in task:
        raise RecordError(
            f"line {number}: record {index}: {name}: required Prodigy field "
            "is missing; is this a Prodigy JSONL export (prodigy db-out)?",
            errors=[{"field": name, "problem": "required field is missing"}],
            index=index,
        )
    return task[name]


def read_prodigy(path: Path, *, dataset: str | None = None) -> Iterator[Any]:
    """Map each task of a Prodigy JSONL export to an annotation record.

    ``_annotator_id`` becomes the actor, ``_session_id`` and ``_task_hash``
    the source ref (unique per session and task), ``_timestamp`` the time,
    ``_input_hash`` the item id, the SHA-256 of ``text`` the item hash, and
    ``label`` with ``answer`` (accept, reject or ignore) the label.
    ``dataset`` names the item's dataset (default: the file name's stem).

    Raises:
        RecordError: a line is not JSON or lacks a Prodigy field.
    """
    dataset = dataset or path.stem
    for index, (number, line) in enumerate(_lines(path)):
        task = _parse_line(number, line, index)
        if not isinstance(task, dict):
            raise RecordError(
                f"line {number}: record {index}: a Prodigy task must be an object",
                errors=[{"field": "(record)", "problem": "must be a JSON object"}],
                index=index,
            )
        annotator = _prodigy_require(task, "_annotator_id", number, index)
        session = _prodigy_require(task, "_session_id", number, index)
        task_hash = _prodigy_require(task, "_task_hash", number, index)
        input_hash = _prodigy_require(task, "_input_hash", number, index)
        answer = _prodigy_require(task, "answer", number, index)
        occurred_at = _prodigy_time(
            _prodigy_require(task, "_timestamp", number, index), number, index
        )
        item: dict[str, Any] = {"dataset": dataset, "id": str(input_hash)}
        text = task.get("text")
        if isinstance(text, str):
            item["sha256"] = hashlib.sha256(
                text.encode("utf-8", errors="surrogatepass")
            ).hexdigest()
        label: dict[str, Any] = {"answer": answer}
        if "label" in task:
            label["label"] = task["label"]
        if "accept" in task:
            label["accept"] = task["accept"]
        if "spans" in task:
            label["spans"] = task["spans"]
        record = {
            "kind": "annotation",
            "actor": f"user:{annotator}",
            "occurred_at": occurred_at,
            "source": {"system": "prodigy", "ref": f"{session}/{task_hash}"},
            "item": item,
            "label": label,
        }
        yield record
