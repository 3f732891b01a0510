"""OSCAL 1.1.2 assessment results from a policy evaluation.

The document contains one result for the evaluation, one observation per
check (citing the entry seqs behind its findings) and one finding per
control. OSCAL states an objective only as ``satisfied`` or
``not-satisfied``, so the other govledger statuses are mapped as
``STATUS_MAPPING`` says, with the original status kept in ``reason``, in a
property and in the remarks.

Every UUID is a UUID version 5 over stable inputs (ledger origin, tree
size, root, period, evaluation time, framework and control ids), so the same
evaluation always gives the same document.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from policies.model import CheckResult, ControlResult, Evaluation, Finding

__all__ = [
    "OSCAL_VERSION",
    "PROPERTY_NAMESPACE",
    "STATUS_MAPPING",
    "assessment_results",
    "assessment_results_json",
    "control_token",
]

OSCAL_VERSION = "1.1.2"
# Properties that OSCAL does not define carry their own namespace.
PROPERTY_NAMESPACE = "urn:govledger:oscal"
_UUID_NAMESPACE = uuid.uuid5(
    uuid.NAMESPACE_URL, "urn:govledger:oscal:assessment-results"
)

STATUS_MAPPING: dict[str, tuple[str, str]] = {
    "satisfied": ("satisfied", "The checks that serve this control found it met."),
    "partially-satisfied": (
        "not-satisfied",
        "govledger rated this control partially satisfied: some of its evidence "
        "meets the control and some does not. OSCAL has no partial state, so the "
        "objective is reported not satisfied until every finding is resolved.",
    ),
    "not-satisfied": (
        "not-satisfied",
        "The checks that serve this control found it not met.",
    ),
    "not-applicable": (
        "satisfied",
        "govledger rated this control not applicable to the records in scope "
        "(for example, no records of the kind it governs). OSCAL has no "
        "not-applicable state, so the objective is reported satisfied with "
        "reason not-applicable; an assessor may exclude it instead.",
    ),
    "not-assessed": (
        "not-satisfied",
        "govledger could not assess this control because evidence was missing "
        "(the rationale says which). Without evidence the objective cannot be "
        "shown met, so it is reported not satisfied with reason not-assessed.",
    ),
}

_NOT_TOKEN = re.compile(r"[^A-Za-z0-9._-]+")


def control_token(framework: str, control_id: str) -> str:
    """Return an OSCAL token for a control: ``framework_control-id``.

    Control ids such as ``Art. 22(3)`` contain characters that an OSCAL
    token forbids; each run of them becomes one ``-``. The original id is
    kept in the finding's title and in a property.
    """
    cleaned = _NOT_TOKEN.sub("-", control_id).strip("-") or "control"
    prefix = _NOT_TOKEN.sub("-", framework).strip("-") or "framework"
    return f"{prefix}_{cleaned}".lower()


def _prop(name: str, value: object) -> dict[str, str]:
    text = str(value).strip() or "none"
    return {"name": name, "ns": PROPERTY_NAMESPACE, "value": text}


def _seqs_text(seqs: tuple[int, ...]) -> str:
    return " ".join(str(seq) for seq in seqs)


def _document_uuid(evaluation: Evaluation, origin: str) -> uuid.UUID:
    frameworks = ",".join(framework.id for framework in evaluation.frameworks)
    stable = "|".join(
        (
            origin,
            str(evaluation.tree_size),
            evaluation.root,
            evaluation.period_start or "",
            evaluation.period_end or "",
            evaluation.evaluated_at,
            frameworks,
        )
    )
    return uuid.uuid5(_UUID_NAMESPACE, stable)


def _finding_evidence(finding: Finding, evidence_href: str | None) -> dict[str, Any]:
    cited = _seqs_text(finding.seqs)
    description = (
        f"{finding.severity}: {finding.message} ({finding.count} entries"
        + (f"; cited seqs {cited}" if cited else "")
        + ")"
    )
    evidence: dict[str, Any] = {"description": description}
    if evidence_href:
        evidence["href"] = evidence_href
    if cited:
        evidence["props"] = [_prop("cited-seqs", cited)]
    return evidence


def _observation(
    check: CheckResult, document: uuid.UUID, collected: str, evidence_href: str | None
) -> dict[str, Any]:
    seqs = tuple(sorted({seq for finding in check.findings for seq in finding.seqs}))
    observation: dict[str, Any] = {
        "uuid": str(uuid.uuid5(document, f"observation|{check.id}")),
        "title": check.title,
        "description": check.rationale or check.title,
        "props": [
            _prop("check-id", check.id),
            _prop("check-status", check.status),
        ],
        "methods": ["TEST"],
        "collected": collected,
    }
    if seqs:
        observation["props"].append(_prop("cited-seqs", _seqs_text(seqs)))
    if check.findings:
        observation["relevant-evidence"] = [
            _finding_evidence(finding, evidence_href) for finding in check.findings
        ]
    if check.figures:
        observation["remarks"] = "Figures: " + json.dumps(
            check.figures, sort_keys=True, ensure_ascii=False, default=str
        )
    return observation


def _finding(
    control: ControlResult,
    framework_title: str,
    document: uuid.UUID,
    observation_uuids: Mapping[str, str],
) -> dict[str, Any]:
    state, explanation = STATUS_MAPPING[control.status]
    token = control_token(control.framework, control.control_id)
    status: dict[str, str] = {"state": state, "remarks": explanation}
    if control.status != state:
        status["reason"] = control.status
    finding: dict[str, Any] = {
        "uuid": str(
            uuid.uuid5(document, f"finding|{control.framework}|{control.control_id}")
        ),
        "title": f"{framework_title} {control.control_id}: {control.title}",
        "description": control.rationale or control.description or control.title,
        "props": [
            _prop("framework", control.framework),
            _prop("control-id", control.control_id),
            _prop("govledger-status", control.status),
        ],
        "target": {
            "type": "objective-id",
            "target-id": token,
            "title": f"{control.control_id}: {control.title}",
            "status": status,
        },
    }
    if control.cited_seqs:
        finding["props"].append(_prop("cited-seqs", _seqs_text(control.cited_seqs)))
    related = [
        {"observation-uuid": observation_uuids[check]}
        for check in control.checks
        if check in observation_uuids
    ]
    if related:
        finding["related-observations"] = related
    return finding


def assessment_results(
    evaluation: Evaluation,
    *,
    origin: str,
    organisation: str | None = None,
    evidence_href: str | None = None,
) -> dict[str, Any]:
    """Build the OSCAL 1.1.2 assessment-results document of an evaluation.

    ``origin`` names the ledger, and ``organisation`` (default: the origin)
    is the party that issued the results. ``evidence_href``, when given, is
    where the cited entries can be read, such as a file embedded beside the
    document in an audit pack.
    """
    document = _document_uuid(evaluation, origin)
    collected = evaluation.evaluated_at
    observations = [
        _observation(check, document, collected, evidence_href)
        for check in evaluation.checks
    ]
    observation_uuids = {
        check.id: observation["uuid"]
        for check, observation in zip(evaluation.checks, observations, strict=True)
    }
    findings = []
    control_ids = []
    for framework in evaluation.frameworks:
        for control in framework.controls:
            findings.append(
                _finding(control, framework.title, document, observation_uuids)
            )
            control_ids.append(control_token(control.framework, control.control_id))
    selection: dict[str, Any] = (
        {
            "include-controls": [
                {"control-id": token} for token in dict.fromkeys(control_ids)
            ]
        }
        if control_ids
        else {"include-all": {}}
    )
    party = str(uuid.uuid5(document, "party|issuer"))
    ledger_resource = str(uuid.uuid5(document, "resource|ledger"))
    titles = ", ".join(
        f"{framework.title} {framework.version}".strip()
        for framework in evaluation.frameworks
    )
    period = (
        f"entries recorded from {evaluation.period_start or 'the first entry'} "
        f"to {evaluation.period_end or 'the tree head'}"
    )
    result: dict[str, Any] = {
        "uuid": str(uuid.uuid5(document, "result")),
        "title": f"Policy evaluation of ledger {origin}",
        "description": (
            f"Automated evaluation of {period} (end exclusive) in the tree of "
            f"size {evaluation.tree_size} with root {evaluation.root}, against "
            f"{titles or 'no framework'}."
        ),
        "start": collected,
        "end": collected,
        "props": [
            _prop("period-start", evaluation.period_start or "open"),
            _prop("period-end", evaluation.period_end or "open"),
            _prop("tree-size", evaluation.tree_size),
            _prop("root", evaluation.root),
        ],
        "reviewed-controls": {"control-selections": [selection]},
        "observations": observations,
        "findings": findings,
    }
    if evaluation.policy_seq is not None:
        result["props"].append(_prop("policy-seq", evaluation.policy_seq))
    if not observations:
        del result["observations"]
    if not findings:
        del result["findings"]
    return {
        "assessment-results": {
            "uuid": str(document),
            "metadata": {
                "title": f"Assessment results for {organisation or origin}",
                "last-modified": collected,
                "version": f"tree-size-{evaluation.tree_size}",
                "oscal-version": OSCAL_VERSION,
                "roles": [{"id": "assessor", "title": "Assessor"}],
                "parties": [
                    {
                        "uuid": party,
                        "type": "organization",
                        "name": organisation or origin,
                    }
                ],
                "responsible-parties": [
                    {"role-id": "assessor", "party-uuids": [party]}
                ],
            },
            "import-ap": {
                "href": f"#{ledger_resource}",
                "remarks": (
                    "govledger has no separate assessment plan: the plan is the "
                    "policy configuration in force and the ledger named in the "
                    "back-matter resource."
                ),
            },
            "results": [result],
            "back-matter": {
                "resources": [
                    {
                        "uuid": ledger_resource,
                        "title": f"Ledger {origin}",
                        "description": (
                            f"Append-only ledger {origin}: tree size "
                            f"{evaluation.tree_size}, root {evaluation.root}; "
                            "policy in force: "
                            + json.dumps(
                                evaluation.policy,
                                sort_keys=True,
                                ensure_ascii=False,
                                default=str,
                            )
                        ),
                    }
                ]
            },
        }
    }


def assessment_results_json(
    evaluation: Evaluation,
    *,
    origin: str,
    organisation: str | None = None,
    evidence_href: str | None = None,
) -> bytes:
    """Return ``assessment_results`` as UTF-8 JSON text ending in a newline."""
    document = assessment_results(
        evaluation,
        origin=origin,
        organisation=organisation,
        evidence_href=evidence_href,
    )
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
