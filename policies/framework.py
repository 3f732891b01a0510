"""Framework and control definitions, and the registry that finds frameworks.

The six built-in frameworks live in this package. Other frameworks plug in
through the entry point group ``govledger.frameworks``: a distribution
declares, in its ``pyproject.toml``::

    [project.entry-points."govledger.frameworks"]
    soc2 = "acme_soc2:FRAMEWORK"

where ``acme_soc2.FRAMEWORK`` is a ``policies.framework.Framework`` (or a
function without arguments that returns one) whose id is the entry point's
name. Its controls may use the built-in checks by id, and checks of its
own listed in ``Framework.checks``, such as ``policies.checks.FunctionCheck(
id, title, function)`` where ``function(evidence, policy)`` returns a
``policies.checks.Outcome``. A plug-in cannot replace a built-in framework
or check; one that fails to load is logged and skipped.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from ledger.errors import InputError, PolicyError

from .checks import CHECKS, Check
from .model import CheckResult, ControlResult, Finding, Status

__all__ = [
    "BUILTIN_FRAMEWORKS",
    "ENTRY_POINT_GROUP",
    "Control",
    "Framework",
    "assess_control",
    "get_framework",
    "list_frameworks",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "govledger.frameworks"
BUILTIN_FRAMEWORKS = {
    "hipaa": "policies.hipaa",
    "gdpr": "policies.gdpr",
    "nist-ai-rmf": "policies.nist_ai_rmf",
    "iso27001": "policies.iso27001",
    "eu-ai-act": "policies.eu_ai_act",
    "iso42001": "policies.iso42001",
}

_RANK = {"satisfied": 0, "partially-satisfied": 1, "not-satisfied": 2}


@dataclass(frozen=True)
class Control:
    """One control of a framework and the checks that give evidence for it.

    ``other_evidence`` names what the ledger cannot show (procedures,
    documents, systems outside it). When ``ledger_evidences_part`` is set,
    the ledger can show only part of the control, so its status is at most
    ``partially-satisfied`` from ledger evidence alone.
    """

    id: str
    title: str
    description: str
    checks: tuple[str, ...]
    other_evidence: str = ""
    ledger_evidences_part: bool = False


@dataclass(frozen=True)
class Framework:
    """A framework: its id, title, the version it follows and its controls."""

    id: str
    title: str
    version: str
    controls: tuple[Control, ...]
    checks: tuple[Check, ...] = field(default=())

    def check_ids(self) -> list[str]:
        """Return the ids of the checks its controls use, in first-use order."""
        seen: dict[str, None] = {}
        for control in self.controls:
            for check_id in control.checks:
                seen.setdefault(check_id, None)
        return list(seen)

    def control(self, control_id: str) -> Control:
        """Return the control with this id.

        Raises:
            InputError: the framework has no such control.
        """
        for control in self.controls:
            if control.id == control_id:
                return control
        raise InputError(
            f"{self.id} has no control {control_id!r}; see `govledger policies "
            f"show {self.id}`",
            reason="unknown-control",
        )


def _validate(framework: Framework, origin: str) -> Framework:
    """Check a framework's shape; raise PolicyError naming ``origin`` if bad."""
    if not isinstance(framework, Framework):
        raise PolicyError(
            f"{origin} is a {type(framework).__name__}, not a Framework",
            reason="invalid-framework",
        )
    ids = [control.id for control in framework.controls]
    duplicates = sorted({control_id for control_id in ids if ids.count(control_id) > 1})
    if duplicates:
        raise PolicyError(
            f"framework {framework.id} ({origin}) lists controls twice: {duplicates}",
            reason="invalid-framework",
        )
    own = {check.id for check in framework.checks}
    clashing = sorted(own & set(CHECKS))
    if clashing:
        raise PolicyError(
            f"framework {framework.id} ({origin}) redefines built-in checks "
            f"{clashing}; give its checks other ids",
            reason="invalid-framework",
        )
    unknown = sorted(set(framework.check_ids()) - own - set(CHECKS))
    if unknown:
        raise PolicyError(
            f"framework {framework.id} ({origin}) uses unknown checks {unknown}; "
            f"the built-in checks are {sorted(CHECKS)}",
            reason="invalid-framework",
        )
    return framework


def _builtin() -> dict[str, Framework]:
    frameworks = {}
    for framework_id, module_name in BUILTIN_FRAMEWORKS.items():
        module = importlib.import_module(module_name)
        framework = _validate(module.FRAMEWORK, module_name)
        if framework.id != framework_id:
            raise PolicyError(
                f"{module_name} declares id {framework.id!r}, expected "
                f"{framework_id!r}",
                reason="invalid-framework",
            )
        frameworks[framework_id] = framework
    return frameworks


def _plugins(taken: set[str]) -> tuple[dict[str, Framework], dict[str, str]]:
    """Load frameworks from the entry point group; return them and load errors."""
    found: dict[str, Framework] = {}
    failed: dict[str, str] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {point.name} = {point.value}"
        if point.name in taken:
            # The built-ins may be registered as entry points too; others clash.
            if not point.value.startswith("policies."):
                logger.warning("%s: a built-in framework has this id; skipped", origin)
            continue
        try:
            loaded: Any = point.load()
            framework = loaded() if callable(loaded) else loaded
            framework = _validate(framework, origin)
        except Exception as error:  # noqa: BLE001 - a broken plug-in must not stop others
            logger.warning("%s failed to load: %s", origin, error)
            failed[point.name] = f"{type(error).__name__}: {error}"
            continue
        if framework.id != point.name:
            message = f"declares id {framework.id!r}, not {point.name!r}"
            logger.warning("%s %s; skipped", origin, message)
            failed[point.name] = message
            continue
        found[framework.id] = framework
    return found, failed


def _registry() -> tuple[dict[str, Framework], dict[str, str]]:
    frameworks = _builtin()
    plugins, failed = _plugins(set(frameworks))
    frameworks.update(plugins)
    return frameworks, failed


def list_frameworks() -> list[Framework]:
    """Return the built-in frameworks, then those of installed plug-ins.

    Raises:
        PolicyError: a built-in framework is malformed (a programming error).
    """
    return list(_registry()[0].values())


def get_framework(framework_id: str) -> Framework:
    """Return the framework with this id.

    Raises:
        InputError: no framework has this id; the message lists the valid
            ids and any plug-in that failed to load.
    """
    frameworks, failed = _registry()
    if framework_id in frameworks:
        return frameworks[framework_id]
    message = (
        f"unknown framework {framework_id!r}; valid frameworks are "
        f"{', '.join(frameworks)}"
    )
    if framework_id in failed:
        message += (
            f" (the plug-in {framework_id!r} failed to load: {failed[framework_id]})"
        )
    raise InputError(message, reason="unknown-framework")


def _join_rationales(results: Sequence[CheckResult]) -> str:
    return " ".join(f"{result.title}: {result.rationale}." for result in results)


def assess_control(
    framework: Framework, control: Control, results: Sequence[CheckResult]
) -> ControlResult:
    """Combine the results of a control's checks into the control's status.

    The status is the worst of the checks that were assessed. Checks that
    were not assessed cap it at ``partially-satisfied``, because part of
    the evidence is missing. If no check was assessed, the control is
    ``not-assessed``, or ``not-applicable`` when every check found that it
    does not apply. A control the ledger evidences only in part is capped
    at ``partially-satisfied`` too.
    """
    assessed = [result for result in results if result.status in _RANK]
    unassessed = [result for result in results if result.status == "not-assessed"]
    status: Status
    if not assessed:
        status = "not-assessed" if unassessed else "not-applicable"
        rationale = _join_rationales(results)
    else:
        status = max((result.status for result in assessed), key=_RANK.__getitem__)
        rationale = _join_rationales(results)
        if status == "satisfied" and unassessed:
            status = "partially-satisfied"
            names = ", ".join(result.id for result in unassessed)
            rationale += f" Not assessed for want of evidence: {names}."
        if status == "satisfied" and control.ledger_evidences_part:
            status = "partially-satisfied"
            rationale += (
                " The ledger evidences only part of this control, so it is at most "
                "partially satisfied without other evidence."
            )
    if control.other_evidence:
        rationale += f" Beyond the ledger: {control.other_evidence}"
    findings: tuple[Finding, ...] = tuple(
        finding for result in results for finding in result.findings
    )
    return ControlResult(
        framework=framework.id,
        control_id=control.id,
        title=control.title,
        description=control.description,
        status=status,
        rationale=rationale.strip(),
        checks=control.checks,
        figures={result.id: result.figures for result in results},
        findings=findings,
        other_evidence=control.other_evidence,
    )
