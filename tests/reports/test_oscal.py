"""OSCAL assessment results: schema-valid, deterministic, statuses mapped."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from policies.model import Evaluation
from reports.oscal import (
    OSCAL_VERSION,
    assessment_results,
    assessment_results_json,
    control_token,
)

from ..conftest import VECTORS
from .support import create_ledger, evaluation_for, populate

SCHEMAS = {
    version: VECTORS
    / "oscal"
    / "schema"
    / f"oscal_assessment-results_schema_v{version}.json"
    for version in ("1.1.2", "1.2.1")
}
EXAMPLE = VECTORS / "oscal" / "examples" / "ifa_assessment-results-example.json"


def _translate_patterns(node: Any) -> Any:
    """Rewrite \\p{L} and \\p{N}, which Python's re lacks, to equivalents."""
    if isinstance(node, dict):
        return {
            key: (
                value.replace(r"\p{L}", r"[^\W\d_]").replace(r"\p{N}", r"\d")
                if key == "pattern" and isinstance(value, str)
                else _translate_patterns(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_translate_patterns(item) for item in node]
    return node


@pytest.fixture(scope="module", params=sorted(SCHEMAS))
def validator(request: pytest.FixtureRequest) -> jsonschema.Draft7Validator:
    """A validator of each OSCAL release schema the export must pass."""
    path = SCHEMAS[request.param]
    schema = _translate_patterns(json.loads(path.read_text(encoding="utf-8")))
    return jsonschema.Draft7Validator(schema)


@pytest.fixture
def evaluation(tmp_path: Path, key_dir: Path) -> Evaluation:
    with create_ledger(f"sqlite:///{tmp_path / 'l.db'}", key_dir) as ledger:
        populate(ledger, days=1)
        return evaluation_for(
            ledger, cited=(1, 3, 5), start="2026-03-01T00:00:00.000000Z"
        )


def _errors(validator: jsonschema.Draft7Validator, document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_validator_accepts_nist_example(validator: jsonschema.Draft7Validator) -> None:
    example = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert _errors(validator, example) == []


def test_validator_rejects_broken_document(
    validator: jsonschema.Draft7Validator, evaluation: Evaluation
) -> None:
    document = assessment_results(evaluation, origin="test.example/ledger")
    del document["assessment-results"]["metadata"]["oscal-version"]
    document["assessment-results"]["results"][0]["findings"][0]["target"][
        "target-id"
    ] = "Art. 22(3)"
    assert len(_errors(validator, document)) == 2


def test_assessment_results_schema_valid(
    validator: jsonschema.Draft7Validator, evaluation: Evaluation
) -> None:
    document = assessment_results(
        evaluation,
        origin="test.example/ledger",
        organisation="Example Health",
        evidence_href="entries.jsonl",
    )
    assert _errors(validator, document) == []
    assert document["assessment-results"]["metadata"]["oscal-version"] == OSCAL_VERSION


def test_assessment_results_deterministic(evaluation: Evaluation) -> None:
    first = assessment_results_json(evaluation, origin="test.example/ledger")
    second = assessment_results_json(evaluation, origin="test.example/ledger")
    other = assessment_results_json(evaluation, origin="other.example/ledger")
    assert first == second
    assert first != other


def _uuids(node: Any) -> list[str]:
    """Collect the values of every member whose name ends in uuid or uuids."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("uuid") and isinstance(value, str):
                found.append(value)
            elif key.endswith("uuids") and isinstance(value, list):
                found.extend(value)
            else:
                found.extend(_uuids(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_uuids(item))
    return found


def test_uuids_are_version_5(evaluation: Evaluation) -> None:
    found = _uuids(assessment_results(evaluation, origin="test.example/ledger"))
    assert len(found) >= 10
    for value in found:
        assert uuid.UUID(value).version == 5


def test_one_finding_per_control(evaluation: Evaluation) -> None:
    result = assessment_results(evaluation, origin="test.example/ledger")[
        "assessment-results"
    ]["results"][0]
    controls = [c for framework in evaluation.frameworks for c in framework.controls]
    targets = [finding["target"]["target-id"] for finding in result["findings"]]
    assert len(result["findings"]) == len(controls)
    assert len(set(targets)) == len(targets)


@pytest.mark.parametrize(
    ("control_id", "state", "reason"),
    [
        ("Art. 22(3)", "not-satisfied", "partially-satisfied"),
        ("Art. 30", "satisfied", None),
        ("Art. 14", "not-satisfied", "not-assessed"),
        ("Art. 12", "not-satisfied", None),
        ("Art. 5", "satisfied", "not-applicable"),
    ],
)
def test_status_mapping(
    evaluation: Evaluation, control_id: str, state: str, reason: str | None
) -> None:
    result = assessment_results(evaluation, origin="test.example/ledger")[
        "assessment-results"
    ]["results"][0]
    finding = next(
        f
        for f in result["findings"]
        if f["target"]["title"].startswith(control_id + ":")
    )
    status = finding["target"]["status"]
    assert status["state"] == state
    assert status.get("reason") == reason
    assert status["remarks"]


def test_observation_cites_entry_seqs(evaluation: Evaluation) -> None:
    result = assessment_results(evaluation, origin="test.example/ledger")[
        "assessment-results"
    ]["results"][0]
    observation = next(
        o
        for o in result["observations"]
        if any(p["value"] == "human-oversight" for p in o["props"])
    )
    cited = next(p for p in observation["props"] if p["name"] == "cited-seqs")
    assert cited["value"] == "1 3 5"
    assert "cited seqs 1 3 5" in observation["relevant-evidence"][0]["description"]


@pytest.mark.parametrize(
    ("framework", "control_id", "token"),
    [
        ("gdpr", "Art. 22(3)", "gdpr_art.-22-3"),
        ("nist_ai_rmf", "MANAGE 4.1", "nist_ai_rmf_manage-4.1"),
        ("hipaa", "164.312(b)", "hipaa_164.312-b"),
    ],
)
def test_control_token(framework: str, control_id: str, token: str) -> None:
    assert control_token(framework, control_id) == token


def test_pack_embeds_schema_valid_copy(
    base_pack, validator: jsonschema.Draft7Validator
) -> None:
    document = json.loads(base_pack.files["oscal-assessment-results.json"])
    assert _errors(validator, document) == []
