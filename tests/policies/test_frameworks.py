"""Frameworks: exact control ids, the registry, plug-ins and control statuses."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ledger.errors import InputError
from policies import get_framework, list_frameworks
from policies.checks import CHECKS
from policies.framework import Control, Framework, assess_control
from policies.model import CheckResult

CONTROL_IDS = {
    "hipaa": [
        "164.308(a)(1)(ii)(D)",
        "164.308(a)(5)(ii)(C)",
        "164.312(a)(2)(i)",
        "164.312(b)",
        "164.312(c)(1)",
        "164.312(c)(2)",
        "164.312(d)",
        "164.316(b)(2)(i)",
        "164.502(b)",
        "164.528",
    ],
    "gdpr": [
        "Art. 5(1)(d)",
        "Art. 5(1)(e)",
        "Art. 5(1)(f)",
        "Art. 5(2)",
        "Art. 15(1)(h)",
        "Art. 17",
        "Art. 22(3)",
        "Art. 25",
        "Art. 30(1)",
        "Art. 32(1)(b)",
        "Art. 35",
    ],
    "nist-ai-rmf": [
        "GOVERN 1.5",
        "GOVERN 3.2",
        "MAP 2.3",
        "MEASURE 1.3",
        "MEASURE 2.4",
        "MEASURE 2.8",
        "MEASURE 2.9",
        "MEASURE 2.11",
        "MEASURE 3.3",
        "MANAGE 4.1",
        "MANAGE 4.3",
    ],
    "iso27001": [
        "A.5.3",
        "A.5.28",
        "A.5.33",
        "A.5.34",
        "A.8.5",
        "A.8.10",
        "A.8.15",
        "A.8.16",
        "A.8.17",
        "A.8.24",
    ],
    "eu-ai-act": [
        "Art. 10(2)(c)",
        "Art. 12(1)",
        "Art. 12(2)",
        "Art. 14(4)(d)",
        "Art. 19(1)",
        "Art. 26(6)",
        "Art. 72",
        "Art. 86",
    ],
    "iso42001": ["A.6.2.4", "A.6.2.6", "A.6.2.8", "A.7.4", "A.7.5"],
}


@pytest.mark.parametrize("framework_id", sorted(CONTROL_IDS))
def test_framework_lists_exact_control_ids(framework_id: str) -> None:
    framework = get_framework(framework_id)
    assert [control.id for control in framework.controls] == CONTROL_IDS[framework_id]


@pytest.mark.parametrize("framework_id", sorted(CONTROL_IDS))
def test_framework_controls_use_known_checks(framework_id: str) -> None:
    for control in get_framework(framework_id).controls:
        assert control.checks, control.id
        assert set(control.checks) <= set(CHECKS), control.id
        assert control.title, control.id
        assert control.description, control.id


def test_partial_controls_name_other_evidence() -> None:
    for framework in list_frameworks():
        for control in framework.controls:
            if control.ledger_evidences_part:
                assert control.other_evidence, f"{framework.id} {control.id}"


def test_list_frameworks_builtin_order() -> None:
    ids = [framework.id for framework in list_frameworks()]
    assert ids[:6] == [
        "hipaa",
        "gdpr",
        "nist-ai-rmf",
        "iso27001",
        "eu-ai-act",
        "iso42001",
    ]


def test_every_check_serves_a_control() -> None:
    used = {
        check
        for framework in list_frameworks()
        for control in framework.controls
        for check in control.checks
    }
    assert used == set(CHECKS)


def test_get_framework_unknown_names_valid_ids() -> None:
    with pytest.raises(InputError) as caught:
        get_framework("sox")
    assert caught.value.reason == "unknown-framework"
    assert "'sox'" in caught.value.message
    assert "hipaa, gdpr, nist-ai-rmf" in caught.value.message


# -- plug-ins -----------------------------------------------------------------------


PLUGIN = """
from policies.framework import Control, Framework
from policies.checks import FunctionCheck, Outcome


def _always(evidence, policy):
    return Outcome("satisfied", f"{evidence.entries_in_period()} entries seen")


FRAMEWORK = Framework(
    id="acme",
    title="ACME internal controls",
    version="2026",
    controls=(
        Control(
            id="ACME-1",
            title="Logs kept",
            description="Logs exist.",
            checks=("chain-integrity", "acme-count"),
        ),
    ),
    checks=(FunctionCheck("acme-count", "Entries are counted", _always),),
)
"""


def install_plugin(root: Path, name: str, source: str, entry: str) -> None:
    """Write a module and a dist-info declaring a govledger.frameworks entry point."""
    (root / f"{name}.py").write_text(source, encoding="utf-8")
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        f"[govledger.frameworks]\n{entry}\n", encoding="utf-8"
    )


def test_plugin_framework_found_by_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(tmp_path, "acme_controls", PLUGIN, "acme = acme_controls:FRAMEWORK")
    monkeypatch.syspath_prepend(str(tmp_path))
    ids = [framework.id for framework in list_frameworks()]
    assert ids[-1] == "acme"
    assert get_framework("acme").controls[0].id == "ACME-1"


def test_plugin_broken_is_skipped_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    source = "raise RuntimeError('half-installed')\n"
    install_plugin(tmp_path, "broken_controls", source, "broken = broken_controls:X")
    monkeypatch.syspath_prepend(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="policies.framework"):
        ids = [framework.id for framework in list_frameworks()]
    assert "broken" not in ids
    assert "hipaa" in ids
    assert any("failed to load" in record.message for record in caplog.records)
    with pytest.raises(InputError) as caught:
        get_framework("broken")
    assert "half-installed" in caught.value.message


def test_plugin_cannot_replace_builtin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = PLUGIN.replace('id="acme"', 'id="gdpr"')
    install_plugin(tmp_path, "fake_gdpr", source, "gdpr = fake_gdpr:FRAMEWORK")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert get_framework("gdpr").title == "General Data Protection Regulation"


def test_plugin_unknown_check_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = PLUGIN.replace('"acme-count"),', '"acme-missing"),')
    install_plugin(tmp_path, "bad_checks", source, "acme = bad_checks:FRAMEWORK")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InputError) as caught:
        get_framework("acme")
    assert "acme-missing" in caught.value.message


# -- control status from check statuses -----------------------------------------------


CONTROL = Control(id="X.1", title="t", description="d", checks=("a", "b"))
FRAMEWORK = Framework(id="x", title="X", version="1", controls=(CONTROL,))


def result(check_id: str, status: str) -> CheckResult:
    return CheckResult(id=check_id, title=check_id, status=status, rationale="why")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("satisfied", "satisfied", "satisfied"),
        ("satisfied", "not-satisfied", "not-satisfied"),
        ("partially-satisfied", "satisfied", "partially-satisfied"),
        ("satisfied", "not-assessed", "partially-satisfied"),
        ("not-satisfied", "not-assessed", "not-satisfied"),
        ("not-assessed", "not-assessed", "not-assessed"),
        ("not-applicable", "not-assessed", "not-assessed"),
        ("not-applicable", "not-applicable", "not-applicable"),
        ("not-applicable", "satisfied", "satisfied"),
    ],
)
def test_control_status_from_checks(first: str, second: str, expected: str) -> None:
    assessed = assess_control(
        FRAMEWORK, CONTROL, [result("a", first), result("b", second)]
    )
    assert assessed.status == expected


def test_control_partly_evidenced_capped() -> None:
    control = Control(
        id="X.2",
        title="t",
        description="d",
        checks=("a",),
        other_evidence="the procedure is a document.",
        ledger_evidences_part=True,
    )
    assessed = assess_control(FRAMEWORK, control, [result("a", "satisfied")])
    assert assessed.status == "partially-satisfied"
    assert "Beyond the ledger: the procedure is a document." in assessed.rationale
    assert assessed.other_evidence == "the procedure is a document."
