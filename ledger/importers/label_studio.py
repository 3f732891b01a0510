"""Importer of Label Studio JSON exports: predictions, annotations, reviews.

A Label Studio JSON export is an array of tasks. Each task becomes, in this
order:

- one ``decision`` entry per model prediction;
- one ``annotation`` entry per annotation, cancelled ones included;
- one ``review`` entry per review of an annotation, right after it.

Every record's ``source`` is ``{"system": "label-studio", "ref":
"<kind>/<id>"}`` with Label Studio's own id, so a second import of the same
export appends nothing. A review names the annotation it reviews by that
source (``target.source``), which ``Ledger.append_many(...,
resolve_source_targets=True)`` turns into the annotation's seq inside the
append transaction.

People are pseudonymised: the actor is ``user:ls-<user id>``, or, for a
person known only by email, an HMAC of the email (see
``ledger.importers.pseudonyms``). Emails and names are never copied into a
record.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..canonical import canonical_bytes, parse_json
from ..errors import CanonicalJSONError, RecordError
from ._common import check_time, input_error, is_number
from .pseudonyms import email_actor

__all__ = ["DEFAULT_MODEL_NAME", "SOURCE_SYSTEM", "read_label_studio"]

logger = logging.getLogger(__name__)

SOURCE_SYSTEM = "label-studio"
DEFAULT_MODEL_NAME = "label-studio-model"
# Label Studio leaves model_version empty when the ML backend sets none.
_UNKNOWN_MODEL_VERSION = "unknown"


def read_label_studio(
    path: Path,
    *,
    dataset: str | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    pseudonym_key: bytes | None = None,
) -> Iterator[dict[str, Any]]:
    """Map a Label Studio JSON export to decision, annotation and review records.

    ``dataset`` names the items' dataset (default: ``label-studio-project-N``
    from the task's project, else the file name's stem). ``model_name`` names
    the model of every prediction; its ``model_version`` gives the version.
    ``pseudonym_key`` keys the HMAC of a person known only by email; it is
    needed only when the export has such a person.

    Mapping rules, beyond the field-by-field ones:

    - The item is ``{dataset, id: task id, sha256}``, where sha256 is taken
      over the RFC 8785 bytes of the task's ``data``; the data itself is
      not stored.
    - A prediction without a score (null or missing) is recorded with
      confidence 0 and ``explanation: {"score_missing": true}``: the lowest
      confidence is the conservative reading, because review policies then
      treat the decision as needing human review.
    - The annotation's label is an object: ``result`` (Label Studio's result
      list), ``was_cancelled``, and, when the export has them,
      ``ground_truth``, ``origin`` and ``prediction``, the source of the
      prediction the annotation started from (``parent_prediction``). The
      per-region ``origin`` (``prediction``, ``prediction-changed``,
      ``manual``) stays inside ``result``.
    - A review with ``accepted: false`` rejects the annotation. An accepted
      review with a non-empty ``result`` corrects it, with the reviewer's
      result as the correction, and any other accepted review accepts it.

    Raises:
        RecordError: the file is not JSON, not a Label Studio JSON export,
            or a value is invalid; the error names the JSON path, e.g.
            ``[0].annotations[1].lead_time``.
    """
    try:
        tasks = parse_json(path.read_bytes())
    except CanonicalJSONError as error:
        raise RecordError(
            f"{path.name}: {error}; is this a Label Studio JSON export?",
            errors=[{"field": error.path or "(file)", "problem": error.detail}],
        ) from None
    except OSError as error:
        raise RecordError(f"cannot read {path}: {error.strerror}") from None
    if not isinstance(tasks, list):
        raise input_error(
            path.name,
            "(file)",
            "a Label Studio JSON export is an array of tasks; export the "
            "project with the JSON format, not JSON_MIN or CSV",
        )
    reader = _ExportReader(path, dataset, model_name, pseudonym_key)
    for task_index, task in enumerate(tasks):
        yield from reader.task_records(task, f"[{task_index}]")


class _ExportReader:
    """A reader of the tasks of one export, with the import options."""

    def __init__(
        self,
        path: Path,
        dataset: str | None,
        model_name: str,
        pseudonym_key: bytes | None,
    ) -> None:
        self.path = path
        self.dataset = dataset
        self.model_name = model_name
        self.pseudonym_key = pseudonym_key

    def where(self, json_path: str) -> str:
        return f"{self.path.name}: {json_path}"

    def task_records(self, task: Any, at: str) -> Iterator[dict[str, Any]]:
        if not isinstance(task, dict):
            raise input_error(self.where(at), "(task)", "a task must be an object")
        item = self._item(task, at)
        predictions = self._predictions(task, at)
        for prediction_at, prediction in predictions:
            yield self._decision(prediction, prediction_at, item)
        prediction_ids = {prediction["id"] for _, prediction in predictions}
        for annotation_index, annotation in enumerate(
            _list(task, "annotations", self.where(at))
        ):
            annotation_at = f"{at}.annotations[{annotation_index}]"
            yield self._annotation(annotation, annotation_at, item, prediction_ids)
            reviews = _list(annotation, "reviews", self.where(annotation_at))
            for review_index, review in enumerate(reviews):
                yield self._review(
                    review, f"{annotation_at}.reviews[{review_index}]", annotation
                )

    def _item(self, task: dict[str, Any], at: str) -> dict[str, Any]:
        task_id = _id(task, "id", self.where(at))
        data = task.get("data")
        if not isinstance(data, dict):
            raise input_error(
                self.where(at),
                "data",
                f"a task needs its data object, got {type(data).__name__}",
            )
        project = task.get("project")
        if self.dataset:
            dataset = self.dataset
        elif isinstance(project, int) and not isinstance(project, bool):
            dataset = f"label-studio-project-{project}"
        else:
            dataset = self.path.stem
        return {
            "dataset": dataset,
            "id": str(task_id),
            "sha256": hashlib.sha256(canonical_bytes(data)).hexdigest(),
        }

    def _predictions(
        self, task: dict[str, Any], at: str
    ) -> list[tuple[str, dict[str, Any]]]:
        """List the task's predictions, with those only embedded in annotations.

        An annotation carries a copy of the prediction it started from. A
        copy whose prediction is missing from the task's list is recorded
        too, so that the annotation's ``prediction`` link names an entry.
        """
        found: list[tuple[str, dict[str, Any]]] = []
        seen: set[int] = set()
        for index, prediction in enumerate(_list(task, "predictions", self.where(at))):
            prediction_at = f"{at}.predictions[{index}]"
            if not isinstance(prediction, dict):
                raise input_error(
                    self.where(prediction_at), "(prediction)", "must be an object"
                )
            prediction_id = _id(prediction, "id", self.where(prediction_at))
            if prediction_id not in seen:
                seen.add(prediction_id)
                found.append((prediction_at, prediction))
        for index, annotation in enumerate(_list(task, "annotations", self.where(at))):
            embedded = (
                annotation.get("prediction") if isinstance(annotation, dict) else None
            )
            if isinstance(embedded, dict) and isinstance(embedded.get("id"), int):
                if embedded["id"] not in seen:
                    seen.add(embedded["id"])
                    found.append((f"{at}.annotations[{index}].prediction", embedded))
        return found

    def _decision(
        self, prediction: dict[str, Any], at: str, item: dict[str, Any]
    ) -> dict[str, Any]:
        where = self.where(at)
        prediction_id = _id(prediction, "id", where)
        version = prediction.get("model_version")
        if version is None or version == "":
            version = _UNKNOWN_MODEL_VERSION
        elif isinstance(version, int) and not isinstance(version, bool):
            version = str(version)
        elif not isinstance(version, str):
            raise input_error(where, "model_version", f"must be text, got {version!r}")
        score = prediction.get("score")
        record: dict[str, Any] = {
            "kind": "decision",
            "actor": f"svc:{self.model_name}",
            "occurred_at": check_time(
                prediction.get("created_at"), where, "created_at"
            ),
            "source": {"system": SOURCE_SYSTEM, "ref": f"prediction/{prediction_id}"},
            "item": item,
            "model": {"name": self.model_name, "version": version},
            "output": prediction.get("result"),
        }
        if score is None:
            record["confidence"] = 0.0
            record["explanation"] = {"score_missing": True}
        elif not is_number(score):
            raise input_error(
                where, "score", f"must be a number in [0, 1], got {score!r}"
            )
        elif not 0.0 <= score <= 1.0:
            raise input_error(
                where,
                "score",
                f"must be within [0, 1], got {score!r}, because the ledger "
                "records confidence as a probability",
            )
        else:
            record["confidence"] = score
        return record

    def _annotation(
        self,
        annotation: Any,
        at: str,
        item: dict[str, Any],
        prediction_ids: set[int],
    ) -> dict[str, Any]:
        where = self.where(at)
        if not isinstance(annotation, dict):
            raise input_error(where, "(annotation)", "must be an object")
        annotation_id = _id(annotation, "id", where)
        record: dict[str, Any] = {
            "kind": "annotation",
            "actor": self._actor(annotation.get("completed_by"), where, "completed_by"),
            "occurred_at": check_time(
                annotation.get("created_at"), where, "created_at"
            ),
            "source": {"system": SOURCE_SYSTEM, "ref": f"annotation/{annotation_id}"},
            "item": item,
            "label": self._label(annotation, where, prediction_ids),
        }

        lead_time = annotation.get("lead_time")
        if lead_time is not None:
            if not is_number(lead_time) or lead_time < 0:
                raise input_error(
                    where,
                    "lead_time",
                    f"must be a number of seconds >= 0, got {lead_time!r}",
                )
            record["lead_time_s"] = lead_time
        return record

    def _label(
        self, annotation: dict[str, Any], where: str, prediction_ids: set[int]
    ) -> dict[str, Any]:
        cancelled = annotation.get("was_cancelled", False)
        if not isinstance(cancelled, bool):
            raise input_error(
                where, "was_cancelled", f"must be true or false, got {cancelled!r}"
            )
        label: dict[str, Any] = {
            "result": annotation.get("result"),
            "was_cancelled": cancelled,
        }
        if isinstance(annotation.get("ground_truth"), bool):
            label["ground_truth"] = annotation["ground_truth"]
        if isinstance(annotation.get("origin"), str):
            label["origin"] = annotation["origin"]

        parent = _parent_prediction(annotation)
        if parent is not None:
            label["prediction"] = {
                "system": SOURCE_SYSTEM,
                "ref": f"prediction/{parent}",
            }
            if parent not in prediction_ids:
                logger.warning(
                    "%s cites prediction %d, which is not in the export; the "
                    "link names an entry of an earlier import, if any",
                    where,
                    parent,
                )
        return label

    def _review(
        self, review: Any, at: str, annotation: dict[str, Any]
    ) -> dict[str, Any]:
        where = self.where(at)
        if not isinstance(review, dict):
            raise input_error(where, "(review)", "must be an object")
        review_id = _id(review, "id", where)
        accepted = review.get("accepted")
        if not isinstance(accepted, bool):
            raise input_error(
                where, "accepted", f"must be true or false, got {accepted!r}"
            )
        reviewed = review.get("annotation", annotation["id"])
        if not isinstance(reviewed, int) or isinstance(reviewed, bool):
            raise input_error(
                where, "annotation", f"must be an annotation id, got {reviewed!r}"
            )
        record: dict[str, Any] = {
            "kind": "review",
            "actor": self._actor(review.get("created_by"), where, "created_by"),
            "occurred_at": check_time(review.get("created_at"), where, "created_at"),
            "source": {"system": SOURCE_SYSTEM, "ref": f"review/{review_id}"},
            "target": {
                "source": {"system": SOURCE_SYSTEM, "ref": f"annotation/{reviewed}"}
            },
        }
        fixed = review.get("result")
        if not accepted:
            record["verdict"] = "reject"
        elif isinstance(fixed, list) and fixed:
            record["verdict"] = "correct"
            record["correction"] = fixed
        else:
            record["verdict"] = "accept"
        return record

    def _actor(self, person: Any, where: str, field: str) -> str:
        """Return the pseudonymous actor id of a Label Studio user.

        Never puts the email or name into the id or into an error message.
        """
        user_id = person.get("id") if isinstance(person, dict) else person
        if isinstance(user_id, int) and not isinstance(user_id, bool) and user_id >= 0:
            return f"user:ls-{user_id}"
        email = person.get("email") if isinstance(person, dict) else person
        if isinstance(email, str) and email.strip():
            if self.pseudonym_key is None:
                raise input_error(
                    where,
                    field,
                    "this user has no numeric id, only an email, and "
                    "no pseudonym key was given to hash it; pass pseudonym_key "
                    "(the CLI does so from the key directory)",
                )
            return email_actor(email, self.pseudonym_key)
        raise input_error(
            where,
            field,
            "must be a Label Studio user id or a user object with "
            f"an id or an email, got a value of type {type(person).__name__}",
        )


def _list(container: dict[str, Any], name: str, where: str) -> list[Any]:
    value = container.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise input_error(where, name, f"must be an array, got {type(value).__name__}")
    return value


def _id(container: dict[str, Any], name: str, where: str) -> int:
    value = container.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise input_error(
            where, name, f"must be Label Studio's numeric id, got {value!r}"
        )
    return value


def _parent_prediction(annotation: dict[str, Any]) -> int | None:
    """Return the id of the prediction an annotation started from, if any."""
    parent = annotation.get("parent_prediction")
    if isinstance(parent, int) and not isinstance(parent, bool):
        return parent
    embedded = annotation.get("prediction")
    if isinstance(embedded, dict):
        embedded_id = embedded.get("id")
        if isinstance(embedded_id, int) and not isinstance(embedded_id, bool):
            return embedded_id
    return None
