"""Assemble, render, sign and record an audit pack.

``prepare_pack`` gathers the evidence of an evaluation (checkpoint, log key,
entries of the period or the cited entries with proofs, OSCAL results,
manifest) and renders the unsigned PDF. ``issue_pack`` signs it, writes it
and appends a ``report_issued`` entry that contains the pack's SHA-256.

The evidence is bound to a signed checkpoint of a tree at least as large
as the evaluated one. Up to ``max_embedded`` entries, the pack embeds every
entry of the period (``entries.jsonl``) and a range proof
(``merkle-range.json``) from which a verifier recomputes the checkpoint
root; above it, only the cited entries (``cited-entries.jsonl``), each with
an RFC 9162 inclusion proof (``inclusion-proofs.json``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, select

from ledger import Ledger, VerifyResult
from ledger.canonical import parse_json
from ledger.entries import format_timestamp
from ledger.errors import InputError, ReportError
from ledger.records import Actor, parse_occurred_at
from ledger.store import CheckpointRow, EntryRow
from policies.model import STATUSES, Evaluation, Finding

from .charts import charts_for
from .oscal import assessment_results_json
from .range_proof import range_proof_from_inclusion_proofs
from .render import EmbeddedFile, render_pdf, source_date, source_date_epoch_is_set
from .signing import SigningIdentity, sign_pdf
from .statistics import HUMAN_PREFIX, SERVICE_PREFIX, ScopeStatistics

__all__ = [
    "DEFAULT_ACTOR",
    "DEFAULT_MAX_EMBEDDED",
    "MANIFEST_FORMAT",
    "IssuedPack",
    "PreparedPack",
    "evaluate",
    "issue_pack",
    "parse_period_bound",
    "prepare_pack",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_EMBEDDED = 10_000
# The actor of a report_issued entry when the caller names no other.
DEFAULT_ACTOR = "svc:govledger"
MANIFEST_FORMAT = "govledger-audit-pack/1"
# Cited entries printed in full under each finding; the rest are listed by seq.
_MAX_ENTRIES_SHOWN = 10
# Characters of one figure printed in a control table.
_MAX_FIGURE_TEXT = 300

_DESCRIPTIONS = {
    "entries.jsonl": (
        "Every entry of the period in seq order, one per line: the exact "
        "RFC 8785 canonical JSON bytes that the ledger hashed"
    ),
    "merkle-range.json": (
        "Hashes of the Merkle subtrees outside the period, which tie the "
        "embedded entries to the checkpoint root (RFC 9162 tree)"
    ),
    "cited-entries.jsonl": (
        "The entries cited by findings that are not in entries.jsonl, one "
        "per line, as canonical JSON"
    ),
    "inclusion-proofs.json": (
        "An RFC 9162 inclusion proof of each cited entry against the checkpoint"
    ),
    "checkpoint.txt": "The log's signed checkpoint (C2SP signed note)",
    "log-key.txt": "The log's verifier key in signed-note form",
    "signing-cert.pem": "The certificate whose key signed this PDF",
    "oscal-assessment-results.json": "The evaluation as OSCAL 1.1.2 assessment results",
    "manifest.json": "SHA-256 and size of every other embedded file, and the scope",
}


@dataclass(frozen=True)
class PreparedPack:
    """An unsigned audit pack: the PDF bytes, the manifest and the embedded files."""

    pdf: bytes
    manifest: dict[str, Any]
    files: dict[str, bytes]


@dataclass(frozen=True)
class IssuedPack:
    """A signed audit pack written to ``path`` and recorded in the ledger."""

    path: Path
    sha256: str
    size: int
    manifest: dict[str, Any]
    receipt: dict[str, Any]


@dataclass(frozen=True)
class _Scope:
    start_seq: int
    end_seq: int
    mode: Literal["full", "cited"]

    @property
    def count(self) -> int:
        return self.end_seq - self.start_seq


def parse_period_bound(value: str | None, option: str) -> str | None:
    """Normalise a period bound to the ledger's ``recorded_at`` form.

    Accepts RFC 3339 with a time zone, or a date ``YYYY-MM-DD`` meaning its
    start in UTC; returns ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, which compares
    correctly with ``recorded_at`` as text.

    Raises:
        InputError: the value is neither form; the message names ``option``.
    """
    if value is None or value == "":
        return None
    try:
        if len(value) == 10:
            moment = datetime.combine(
                date.fromisoformat(value), datetime.min.time(), UTC
            )
        else:
            moment = parse_occurred_at(value)
    except ValueError as error:
        raise InputError(
            f"{option} {value!r} is not a date or an RFC 3339 time: {error}; "
            "give e.g. 2026-01-01 or 2026-01-01T00:00:00Z",
            reason="bad-period",
        ) from None
    return format_timestamp(moment)


def evaluate(
    ledger: Ledger,
    frameworks: Sequence[str] | None,
    *,
    start: str | None,
    end: str | None,
    verification: VerifyResult | None = None,
) -> Evaluation:
    """Evaluate the ledger against ``frameworks`` (None: all) with the policies.

    ``verification`` is a ``VerifyResult`` of this ledger that the
    chain-integrity check reuses instead of verifying again.

    Raises:
        InputError: the period is empty (``end`` not after ``start``), or a
            framework id or bound is invalid.
        PolicyError: the policy in force is invalid.
        ReportError: the policies package offers no ``evaluate``.
    """
    if start is not None and end is not None and end <= start:
        raise InputError(
            f"the period is empty: --to {end} is not after --from {start}",
            reason="bad-period",
        )
    import policies

    evaluator = getattr(policies, "evaluate", None)
    if evaluator is None:
        raise ReportError(
            "policy evaluation is not available: the policies package has no "
            "evaluate function; install a govledger version with policies",
            reason="no-policies",
        )
    chosen = list(frameworks) if frameworks else None
    if verification is None:
        result = evaluator(ledger, chosen, start=start, end=end)
    else:
        result = evaluator(
            ledger, chosen, start=start, end=end, verification=verification
        )
    if not isinstance(result, Evaluation):
        raise ReportError(
            f"policies.evaluate returned {type(result).__name__}, not an Evaluation",
            reason="bad-evaluation",
        )
    return result


# -- evidence ----------------------------------------------------------------


def _checkpoint_for(ledger: Ledger, evaluation: Evaluation) -> CheckpointRow:
    """Return a signed checkpoint of the evaluated tree, or of a larger one."""
    size = ledger.size
    if evaluation.tree_size > size:
        raise ReportError(
            f"the evaluation covers a tree of size {evaluation.tree_size} but the "
            f"ledger has {size} entries; evaluate this ledger again",
            reason="evaluation-mismatch",
        )
    root = ledger.root(evaluation.tree_size).hex()
    if root != evaluation.root:
        raise ReportError(
            f"the evaluation's root does not match the ledger at tree size "
            f"{evaluation.tree_size}: expected {root}, actual {evaluation.root}; "
            "evaluate this ledger again",
            reason="evaluation-mismatch",
        )
    for row in ledger.checkpoints():
        if row.tree_size == evaluation.tree_size:
            return row
    checkpoint = ledger.make_checkpoint()
    logger.debug(
        "signed checkpoint of size %d for an evaluation of size %d",
        checkpoint.tree_size,
        evaluation.tree_size,
    )
    return checkpoint


def _log_key(ledger: Ledger, checkpoint: CheckpointRow) -> str:
    for row in ledger.key_rows():
        if row.key_id == checkpoint.key_id:
            return row.verifier_key
    raise ReportError(
        f"the checkpoint of size {checkpoint.tree_size} names log key "
        f"{checkpoint.key_id}, which the ledger does not list; run `govledger verify`",
        reason="key-not-found",
    )


def _scope(ledger: Ledger, evaluation: Evaluation, max_embedded: int) -> _Scope:
    """Find the run of seqs recorded in the period, within the evaluated tree."""
    statement = select(
        func.min(EntryRow.seq), func.max(EntryRow.seq), func.count()
    ).where(EntryRow.seq < evaluation.tree_size)
    # recorded_at compares as text only in its one fixed form.
    start = parse_period_bound(evaluation.period_start, "period start")
    end = parse_period_bound(evaluation.period_end, "period end")
    if start:
        statement = statement.where(EntryRow.recorded_at >= start)
    if end:
        statement = statement.where(EntryRow.recorded_at < end)
    with ledger.engine.connect() as connection:
        first, last, count = connection.execute(statement).one()
    if not count:
        return _Scope(0, 0, "full")
    if last - first + 1 != count:
        # recorded_at never decreases along the chain, so a period is one run.
        raise ReportError(
            f"the entries of the period are not one run of seqs ({count} entries "
            f"between seq {first} and {last}); run `govledger verify`",
            reason="scope-not-contiguous",
        )
    mode: Literal["full", "cited"] = "full" if count <= max_embedded else "cited"
    return _Scope(first, last + 1, mode)


def _scope_span(ledger: Ledger, scope: _Scope) -> dict[str, str | None]:
    """Return the first and last ``recorded_at`` and ``occurred_at`` in the scope.

    ``occurred_at`` is the derived column, normalised to UTC, so it compares
    as text; the ledger's own entries carry one too. All values are None
    when the scope is empty.
    """
    columns = (
        func.min(EntryRow.recorded_at),
        func.max(EntryRow.recorded_at),
        func.min(EntryRow.occurred_at),
        func.max(EntryRow.occurred_at),
    )
    statement = select(*columns).where(
        EntryRow.seq >= scope.start_seq, EntryRow.seq < scope.end_seq
    )
    with ledger.engine.connect() as connection:
        row = connection.execute(statement).one()
    names = ("first_recorded", "last_recorded", "first_occurred", "last_occurred")
    return {name: _display_time(value) for name, value in zip(names, row, strict=True)}


def _display_time(value: str | None) -> str | None:
    """Return an RFC 3339 UTC time as ``YYYY-MM-DD HH:MM:SS UTC`` for the pages."""
    if value is None:
        return None
    try:
        moment = parse_occurred_at(value)
    except ValueError:
        return value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cited_seqs(evaluation: Evaluation) -> list[int]:
    findings: list[Finding] = [f for check in evaluation.checks for f in check.findings]
    for framework in evaluation.frameworks:
        for control in framework.controls:
            findings.extend(control.findings)
    seqs = {seq for finding in findings for seq in finding.seqs}
    outside = sorted(seq for seq in seqs if not 0 <= seq < evaluation.tree_size)
    if outside:
        logger.warning(
            "findings cite %d seqs outside the evaluated tree of size %d; they "
            "are left out of the pack: %s",
            len(outside),
            evaluation.tree_size,
            outside[:10],
        )
    return sorted(seq for seq in seqs if 0 <= seq < evaluation.tree_size)


def _jsonl(bodies: Iterable[bytes]) -> bytes:
    return b"".join(body + b"\n" for body in bodies)


def _json_file(data: Any) -> bytes:
    return (
        json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    ).encode()


@dataclass
class _Evidence:
    files: dict[str, bytes]
    bodies: dict[int, bytes]
    stats: ScopeStatistics
    cited: list[int]


def _gather_evidence(
    ledger: Ledger, evaluation: Evaluation, scope: _Scope, checkpoint: CheckpointRow
) -> _Evidence:
    """Stream the period once for the charts; collect the bytes to embed."""
    stats = ScopeStatistics()
    cited = _cited_seqs(evaluation)
    cited_set = set(cited)
    in_range: list[bytes] = []
    bodies: dict[int, bytes] = {}
    for seq, stored_hash, body, _columns in ledger.iter_raw(
        scope.start_seq, scope.end_seq
    ):
        stats.add(seq, stored_hash, parse_json(body))
        if scope.mode == "full":
            in_range.append(body)
        if seq in cited_set:
            bodies[seq] = body
    for seq in cited:
        if seq not in bodies:
            bodies[seq] = ledger.get(seq).body

    files: dict[str, bytes] = {}
    tree_size = checkpoint.tree_size
    if scope.mode == "full":
        files["entries.jsonl"] = _jsonl(in_range)
        if scope.count:
            first = ledger.inclusion_proof(scope.start_seq, tree_size)
            last = ledger.inclusion_proof(scope.end_seq - 1, tree_size)
            proof = range_proof_from_inclusion_proofs(
                tree_size=tree_size,
                start=scope.start_seq,
                end=scope.end_seq,
                first_proof=[bytes.fromhex(value) for value in first["hashes"]],
                last_proof=[bytes.fromhex(value) for value in last["hashes"]],
            )
            files["merkle-range.json"] = _json_file(proof.to_json())
        extra = [seq for seq in cited if not scope.start_seq <= seq < scope.end_seq]
    else:
        extra = cited
    if extra:
        files["cited-entries.jsonl"] = _jsonl(bodies[seq] for seq in extra)
        proofs = []
        for seq in extra:
            proof_json = ledger.inclusion_proof(seq, tree_size)
            proofs.append(
                {
                    "seq": seq,
                    "leaf_hash": proof_json["leaf_hash"],
                    "hashes": proof_json["hashes"],
                }
            )
        files["inclusion-proofs.json"] = _json_file(
            {"type": "inclusion-proofs", "tree_size": tree_size, "proofs": proofs}
        )
    return _Evidence(files=files, bodies=bodies, stats=stats, cited=cited)


# -- document ----------------------------------------------------------------


def _period_text(evaluation: Evaluation) -> str:
    start, end = evaluation.period_start, evaluation.period_end
    if start and end:
        return f"entries recorded from {start} up to (not including) {end}"
    if start:
        return f"entries recorded from {start} on"
    if end:
        return f"entries recorded before {end}"
    return "all entries of the evaluated tree"


def _issuer(certificate: x509.Certificate) -> dict[str, Any]:
    return {
        "subject": certificate.subject.rfc4514_string(),
        "fingerprint": certificate.fingerprint(hashes.SHA256()).hex(),
        "self_signed": certificate.subject == certificate.issuer,
    }


def _verification(
    ledger: Ledger, verify: bool, result: VerifyResult | None
) -> dict[str, Any] | None:
    if result is None:
        if not verify:
            return None
        result = ledger.verify()
    if not result.ok:
        fault = result.fault
        raise ReportError(
            f"ledger verification failed ({fault.kind} at seq {fault.seq}: "
            f"{fault.message}); an audit pack cannot attest a faulty ledger, so "
            "run `govledger verify` and resolve the fault first",
            reason="ledger-verification-failed",
        )
    return {
        "ok": True,
        "entries_checked": result.entries_checked,
        "checkpoints_checked": result.checkpoints_checked,
        "head_hash": result.head_hash,
        "fault": None,
        "warnings": list(result.warnings),
    }


def _findings_context(
    evaluation: Evaluation, bodies: dict[int, bytes]
) -> list[dict[str, Any]]:
    served: dict[str, list[str]] = {}
    for framework in evaluation.frameworks:
        for control in framework.controls:
            for check in control.checks:
                served.setdefault(check, []).append(
                    f"{framework.title} {control.control_id}"
                )
    result = []
    for check in evaluation.checks:
        if not check.findings:
            continue
        items = []
        for finding in check.findings:
            seqs = [seq for seq in finding.seqs if seq in bodies]
            items.append(
                {
                    "severity": finding.severity,
                    "message": finding.message,
                    "count": finding.count,
                    "seqs": list(finding.seqs),
                    "shown": [
                        {
                            "seq": seq,
                            "json": bodies[seq].decode("utf-8", errors="replace"),
                            "entry_hash": hashlib.sha256(
                                b"\x00" + bodies[seq]
                            ).hexdigest(),
                        }
                        for seq in seqs[:_MAX_ENTRIES_SHOWN]
                    ],
                    "not_shown": seqs[_MAX_ENTRIES_SHOWN:],
                }
            )
        result.append(
            {
                "id": check.id,
                "title": check.title,
                "status": check.status,
                "rationale": check.rationale,
                "controls": served.get(check.id, []),
                "findings": items,
            }
        )
    return result


def _cross_context(evaluation: Evaluation) -> list[dict[str, Any]]:
    rows = []
    for check in evaluation.checks:
        cells = [
            [c.control_id for c in framework.controls if check.id in c.checks]
            for framework in evaluation.frameworks
        ]
        rows.append(
            {
                "id": check.id,
                "title": check.title,
                "status": check.status,
                "cells": cells,
            }
        )
    return rows


def _humanise_key(key: str) -> str:
    """Return a figure or check name as words: ``max_skew_s`` -> ``max skew (s)``.

    Underscores and hyphens become spaces, and a trailing ``_s`` (seconds)
    becomes `` (s)``.
    """
    if key.endswith("_s") and len(key) > 2:
        key = key[:-2] + " (s)"
    return key.replace("_", " ").replace("-", " ")


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _is_flat(value: Any) -> bool:
    """Return whether ``value`` is a scalar or a list of scalars."""
    if isinstance(value, list):
        return all(_is_scalar(item) for item in value)
    return _is_scalar(value)


def _figure_text(value: Any) -> str:
    """Return a figure as text: scalars plainly, flat lists and mappings as words.

    A mapping of flat values reads ``key value, key value`` with keys
    humanised, a list inside it is bracketed, and a list of such mappings
    is joined by ``;``. Anything deeper is printed as JSON.
    """
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, list) and all(_is_scalar(item) for item in value):
        return ", ".join(_figure_text(item) for item in value)
    if isinstance(value, dict) and all(_is_flat(item) for item in value.values()):
        parts = []
        for key, item in value.items():
            text = _figure_text(item)
            if isinstance(item, list):
                text = f"[{text}]"
            parts.append(f"{_humanise_key(str(key))} {text}")
        return ", ".join(parts)
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return "; ".join(_figure_text(item) for item in value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _is_empty_container(value: Any) -> bool:
    return isinstance(value, dict | list | tuple) and len(value) == 0


def _figure_lines(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """Return (label, text) pairs of one check's figures, empty ones left out.

    A value longer than ``_MAX_FIGURE_TEXT`` characters is cut; the full
    figures are in the embedded OSCAL results.
    """
    lines = []
    for name, value in figures.items():
        if _is_empty_container(value):
            continue
        text = _figure_text(value)
        if len(text) > _MAX_FIGURE_TEXT:
            text = text[:_MAX_FIGURE_TEXT] + " [cut]"
        lines.append((_humanise_key(name), text))
    return lines


def _figure_groups(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Group a control's figures by check for the control table.

    A control's figures map each check id to that check's figures. A value
    that is not a mapping is shown as a figure of its own, in a group
    without a heading. Groups left with no figure are dropped.
    """
    groups: list[dict[str, Any]] = []
    loose: dict[str, Any] = {}
    for name, value in figures.items():
        if isinstance(value, dict):
            lines = _figure_lines(value)
            if lines:
                groups.append({"check": _humanise_key(name), "lines": lines})
        else:
            loose[name] = value
    lines = _figure_lines(loose)
    if lines:
        groups.insert(0, {"check": None, "lines": lines})
    return groups


def _frameworks_context(evaluation: Evaluation) -> list[dict[str, Any]]:
    return [
        {
            "id": framework.id,
            "title": framework.title,
            "version": framework.version,
            "counts": framework.status_counts(),
            "controls": [
                {
                    "control_id": control.control_id,
                    "title": control.title,
                    "status": control.status,
                    "rationale": control.rationale,
                    "figures": _figure_groups(control.figures),
                    "cited_seqs": list(control.cited_seqs),
                }
                for control in framework.controls
            ],
        }
        for framework in evaluation.frameworks
    ]


def _check_figures(evaluation: Evaluation, check_id: str) -> dict[str, Any] | None:
    for check in evaluation.checks:
        if check.id == check_id:
            return dict(check.figures)
    return None


def _override_summary(evaluation: Evaluation, stats: ScopeStatistics) -> dict[str, Any]:
    """Return the headline override figures, the override-rate check's if it ran.

    The check counts human reviews and, without any, service reviews; it
    also counts reviews recorded after the period. Without the check, the
    same rule is applied to the reviews recorded in the period.
    """
    figures = _check_figures(evaluation, "override-rate")
    if figures is not None:
        reviewers = figures.get("reviewers")
        return {
            "source": "check",
            "reviewers": reviewers if reviewers in ("human", "service") else None,
            "reviewed": int(figures.get("reviewed_decisions") or 0),
            "overridden": int(figures.get("overridden") or 0),
            "rate": figures.get("override_rate"),
        }
    reviewers, reviewed, overridden = stats.decision_overrides()
    return {
        "source": "period",
        "reviewers": reviewers,
        "reviewed": reviewed,
        "overridden": overridden,
        "rate": None if reviewed == 0 else overridden / reviewed,
    }


def _oversight_summary(evaluation: Evaluation) -> dict[str, Any] | None:
    """Return the human-oversight check's counts, or None if it did not count."""
    figures = _check_figures(evaluation, "human-oversight")
    if figures is None or "needing_review" not in figures:
        return None
    return {
        "needing_review": int(figures.get("needing_review") or 0),
        "reviewed": int(figures.get("reviewed") or 0),
        "service_only": int(figures.get("reviewed_by_service_only") or 0),
    }


def _summary_context(evaluation: Evaluation, stats: ScopeStatistics) -> dict[str, Any]:
    totals = {status: 0 for status in STATUSES}
    control_count = 0
    for framework in evaluation.frameworks:
        for status, count in framework.status_counts().items():
            totals[status] += count
        control_count += len(framework.controls)
    severities = {"high": 0, "medium": 0, "low": 0, "info": 0}
    for check in evaluation.checks:
        for finding in check.findings:
            severities[finding.severity] = severities.get(finding.severity, 0) + 1
    return {
        "totals": totals,
        "control_count": control_count,
        "severities": severities,
        "figures": stats.summary(),
        "override": _override_summary(evaluation, stats),
        "oversight": _oversight_summary(evaluation),
        "human_prefix": HUMAN_PREFIX,
        "service_prefix": SERVICE_PREFIX,
    }


def _manifest(
    *,
    ledger: Ledger,
    evaluation: Evaluation,
    organisation: str,
    issued_at: str,
    scope: _Scope,
    checkpoint: CheckpointRow,
    cited: list[int],
    max_embedded: int,
    files: dict[str, bytes],
) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "origin": ledger.origin,
        "organisation": organisation,
        "issued_at": issued_at,
        "evaluated_at": evaluation.evaluated_at,
        "frameworks": [framework.id for framework in evaluation.frameworks],
        "period": {
            "start": parse_period_bound(evaluation.period_start, "period start"),
            "end": parse_period_bound(evaluation.period_end, "period end"),
        },
        "scope": {
            "mode": scope.mode,
            "start_seq": scope.start_seq,
            "end_seq": scope.end_seq,
            "entries": scope.count,
            "max_embedded": max_embedded,
            "cited_seqs": cited,
            "evaluated_tree_size": evaluation.tree_size,
            "evaluated_root": evaluation.root,
        },
        "checkpoint": {"tree_size": checkpoint.tree_size, "root": checkpoint.root_hash},
        "files": {
            name: {
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "description": _DESCRIPTIONS[name],
            }
            for name, data in files.items()
        },
    }


def _document_context(
    *,
    ledger: Ledger,
    evaluation: Evaluation,
    organisation: str,
    issued_at: str,
    certificate: x509.Certificate,
    checkpoint: CheckpointRow,
    log_key: str,
    attestation: dict[str, Any] | None,
    scope: _Scope,
    evidence: _Evidence,
    max_embedded: int,
    files: dict[str, bytes],
    date_basis: str,
) -> dict[str, Any]:
    """Return the values the pack template prints."""
    return {
        "title": f"Audit pack: {organisation}",
        "organisation": organisation,
        "origin": ledger.origin,
        "issued_at": issued_at,
        "issue_date": {
            "text": _display_time(issued_at),
            "basis": date_basis,
        },
        "evaluated_at_text": _display_time(evaluation.evaluated_at),
        "period": {
            "start": evaluation.period_start,
            "end": evaluation.period_end,
            "text": _period_text(evaluation),
            "span": _scope_span(ledger, scope),
        },
        "statuses": STATUSES,
        "frameworks": _frameworks_context(evaluation),
        "issuer": _issuer(certificate),
        "attestation": {
            "tree_size": checkpoint.tree_size,
            "root": checkpoint.root_hash,
            "checkpoint_note": checkpoint.note,
            "log_key": log_key,
            "verification": attestation,
            "evaluated_tree_size": evaluation.tree_size,
            "evaluated_root": evaluation.root,
            "evaluated_at": evaluation.evaluated_at,
            "mode": scope.mode,
            "start_seq": scope.start_seq,
            "end_seq": scope.end_seq,
            "entries_in_scope": scope.count,
            "cited_count": len(evidence.cited),
            "max_embedded": max_embedded,
        },
        "summary": _summary_context(evaluation, evidence.stats),
        "policy": sorted(evaluation.policy.items()),
        "policy_seq": evaluation.policy_seq,
        "charts": charts_for(evidence.stats),
        "findings": _findings_context(evaluation, evidence.bodies),
        "cross": _cross_context(evaluation),
        "files": [
            {
                "name": name,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "description": _DESCRIPTIONS[name],
            }
            for name, data in files.items()
        ],
    }


def prepare_pack(
    ledger: Ledger,
    evaluation: Evaluation,
    *,
    organisation: str,
    certificate: x509.Certificate,
    max_embedded: int = DEFAULT_MAX_EMBEDDED,
    verify: bool = True,
    verification: VerifyResult | None = None,
    issued_at: datetime | None = None,
) -> PreparedPack:
    """Gather the evidence of ``evaluation`` and render the unsigned pack.

    ``certificate`` is the one that will sign the pack (it is embedded and
    named on the cover). ``issued_at`` defaults to SOURCE_DATE_EPOCH or
    now; with the same ledger state, evaluation, certificate and time the
    PDF bytes are the same. The integrity attestation prints
    ``verification`` (a ``VerifyResult`` of this ledger) if given, else,
    with ``verify``, the result of verifying the whole ledger now.

    Raises:
        InputError: ``max_embedded`` is negative.
        ReportError: the evaluation does not match the ledger, the ledger
            fails verification, or rendering fails.
    """
    if max_embedded < 0:
        raise InputError(
            f"max embedded entries {max_embedded} is negative; give 0 or more",
            reason="bad-max-embedded",
        )
    if issued_at is not None:
        moment, date_basis = issued_at, "given"
    else:
        moment = source_date()
        date_basis = "source-date-epoch" if source_date_epoch_is_set() else "clock"
    issued_text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    checkpoint = _checkpoint_for(ledger, evaluation)
    log_key = _log_key(ledger, checkpoint)
    attestation = _verification(ledger, verify, verification)
    scope = _scope(ledger, evaluation, max_embedded)
    evidence = _gather_evidence(ledger, evaluation, scope, checkpoint)

    files = dict(evidence.files)
    files["checkpoint.txt"] = checkpoint.note.encode("utf-8")
    files["log-key.txt"] = (log_key + "\n").encode("utf-8")
    files["signing-cert.pem"] = certificate.public_bytes(serialization.Encoding.PEM)
    evidence_file = "entries.jsonl" if scope.mode == "full" else "cited-entries.jsonl"
    files["oscal-assessment-results.json"] = assessment_results_json(
        evaluation,
        origin=ledger.origin,
        organisation=organisation,
        evidence_href=evidence_file,
    )
    manifest = _manifest(
        ledger=ledger,
        evaluation=evaluation,
        organisation=organisation,
        issued_at=issued_text,
        scope=scope,
        checkpoint=checkpoint,
        cited=evidence.cited,
        max_embedded=max_embedded,
        files=files,
    )
    files["manifest.json"] = _json_file(manifest)

    context = _document_context(
        ledger=ledger,
        evaluation=evaluation,
        organisation=organisation,
        issued_at=issued_text,
        certificate=certificate,
        checkpoint=checkpoint,
        log_key=log_key,
        attestation=attestation,
        scope=scope,
        evidence=evidence,
        max_embedded=max_embedded,
        files=files,
        date_basis=date_basis,
    )
    attachments = [
        EmbeddedFile(name=name, data=data, description=_DESCRIPTIONS[name])
        for name, data in files.items()
    ]
    pdf = render_pdf(context, attachments, moment=moment)
    logger.debug(
        "rendered audit pack: %d bytes, %d embedded files", len(pdf), len(files)
    )
    return PreparedPack(pdf=pdf, manifest=manifest, files=files)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise ReportError(
            f"cannot write the audit pack to {path}: {error.strerror}; choose a "
            "writable --out path",
            reason="pack-unwritable",
        ) from None


_ACTOR = TypeAdapter(Actor)


def _check_actor(actor: str) -> None:
    """Validate ``actor`` by the rule for the actor of input records.

    Raises:
        InputError: ``actor`` is not ``user:ID`` or ``svc:ID``.
    """
    try:
        _ACTOR.validate_python(actor)
    except ValidationError as error:
        problem = str(error.errors()[0]["msg"]).removeprefix("Value error, ")
        raise InputError(
            f"actor {actor!r} {problem}; give another --actor",
            reason="invalid-actor",
        ) from None


def issue_pack(
    ledger: Ledger,
    evaluation: Evaluation,
    *,
    out: Path,
    identity: SigningIdentity,
    organisation: str,
    max_embedded: int = DEFAULT_MAX_EMBEDDED,
    tsa_url: str | None = None,
    verify: bool = True,
    verification: VerifyResult | None = None,
    actor: str = DEFAULT_ACTOR,
) -> IssuedPack:
    """Render, sign and write the audit pack; append its ``report_issued`` entry.

    ``actor`` is who issued the pack (``user:ID`` or ``svc:ID``), named in
    the ``report_issued`` entry; the CLI passes the person who ran it.

    Raises:
        InputError: ``max_embedded`` is negative or ``actor`` is not
            ``user:ID`` or ``svc:ID``; nothing is written.
        ReportError: rendering, signing or writing fails, or the evaluation
            does not match the ledger.
        KeyFileError: the log key cannot be loaded to sign the receipt.
    """
    _check_actor(actor)
    prepared = prepare_pack(
        ledger,
        evaluation,
        organisation=organisation,
        certificate=identity.certificate,
        max_embedded=max_embedded,
        verify=verify,
        verification=verification,
    )
    signed = sign_pdf(prepared.pdf, identity, tsa_url=tsa_url, signer_name=organisation)
    out = Path(out)
    _write_atomically(out, signed)
    digest = hashlib.sha256(signed).hexdigest()
    checkpoint = prepared.manifest["checkpoint"]
    receipt = ledger.append_ledger_record(
        "report_issued",
        {
            "actor": actor,
            "occurred_at": format_timestamp(datetime.now(UTC)),
            "pack_sha256": digest,
            "frameworks": prepared.manifest["frameworks"],
            "period": prepared.manifest["period"],
            "tree_size": checkpoint["tree_size"],
            "root": checkpoint["root"],
        },
    )
    logger.info(
        "issued audit pack %s (sha256 %s), report_issued seq %d",
        out,
        digest,
        receipt["seq"],
    )
    return IssuedPack(
        path=out,
        sha256=digest,
        size=len(signed),
        manifest=prepared.manifest,
        receipt=receipt,
    )
