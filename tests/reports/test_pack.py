"""Audit packs issued from real ledgers: contents, signature, ledger record."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import select

from ledger.errors import InputError, ReportError
from ledger.store import EntryRow
from reports.pack import issue_pack, parse_period_bound, prepare_pack
from reports.signing import ensure_signing_identity, load_signing_identity
from reports.verify_pack import read_embedded_files, verify_pack

from .support import (
    START,
    Clock,
    attachment_names,
    create_ledger,
    evaluation_for,
    other_identity,
    page_count,
    pdf_text,
    poppler,
    populate,
    unwrap,
)

EXPECTED_FILES = {
    "entries.jsonl",
    "merkle-range.json",
    "checkpoint.txt",
    "log-key.txt",
    "signing-cert.pem",
    "oscal-assessment-results.json",
    "manifest.json",
}


def test_pack_passes_verify_pack(base_pack) -> None:
    result = verify_pack(
        base_pack.path, trust=[base_pack.cert_path], verifier_key=base_pack.log_key
    )
    assert result.ok, [check.to_dict() for check in result.checks]
    assert result.intact
    assert result.valid
    assert result.trusted
    assert result.coverage_entire_file
    assert result.key_source == "given"
    assert result.entries_checked == base_pack.manifest["scope"]["entries"]


def test_pack_signature_valid_for_pdfsig(base_pack) -> None:
    output = poppler("pdfsig", str(base_pack.path))
    assert "Signature Type: ETSI.CAdES.detached" in output
    assert "Signature Validation: Signature is Valid." in output
    assert "Total document signed" in output


def test_pack_signature_valid_for_pyhanko(base_pack) -> None:
    from cryptography import x509
    from pyhanko.keys.internal import translate_pyca_cryptography_cert_to_asn1

    certificate = x509.load_pem_x509_certificate(base_pack.cert_path.read_bytes())
    reader = PdfFileReader(io.BytesIO(base_pack.data))
    signature = reader.embedded_signatures[0]
    context = ValidationContext(
        trust_roots=[translate_pyca_cryptography_cert_to_asn1(certificate)],
        allow_fetching=False,
    )
    status = validate_pdf_signature(signature, context)
    assert status.intact
    assert status.valid
    assert status.trusted
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert signature.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"


def test_pack_embeds_exactly_its_files(base_pack) -> None:
    assert set(attachment_names(base_pack.path)) == EXPECTED_FILES
    assert set(base_pack.files) == EXPECTED_FILES


def test_pack_entries_are_exact_ledger_bytes(base_pack) -> None:
    from ledger import Ledger, LedgerConfig

    with Ledger.open(
        base_pack.url, config=LedgerConfig(key_dir=base_pack.key_dir)
    ) as ledger:
        size = base_pack.manifest["scope"]["end_seq"]
        expected = b"".join(body + b"\n" for _, _, body, _ in ledger.iter_raw(0, size))
    assert base_pack.files["entries.jsonl"] == expected


def test_pack_manifest_digests_match_files(base_pack) -> None:
    manifest = json.loads(base_pack.files["manifest.json"])
    for name, listed in manifest["files"].items():
        assert listed["sha256"] == hashlib.sha256(base_pack.files[name]).hexdigest(), (
            name
        )


def test_pack_is_pdf_a_3b(base_pack) -> None:
    reader = PdfFileReader(io.BytesIO(base_pack.data))
    metadata = reader.root["/Metadata"].get_object().data
    assert b'pdfaid:part="3"' in metadata
    assert b'pdfaid:conformance="B"' in metadata
    assert "/AF" in reader.root


def test_pack_pages_say_page_x_of_y(base_pack) -> None:
    pages = page_count(base_pack.path)
    text = pdf_text(base_pack.path)
    assert pages >= 8
    assert f"Page 1 of {pages}" in text
    assert f"Page {pages} of {pages}" in text


def test_pack_text_has_every_section(base_pack) -> None:
    text = unwrap(pdf_text(base_pack.path))
    for heading in (
        "Audit pack",
        "Integrity attestation",
        "Executive summary",
        "Charts",
        "Decisions over time",
        "Review coverage",
        "Review verdicts",
        "Confidence histogram",
        "Annotator agreement",
        "GDPR (2016/679)",
        "EU AI Act (2024/1689)",
        "Findings",
        "Cross-framework table",
        "Appendix: how to verify this pack",
    ):
        assert heading in text, heading
    assert base_pack.manifest["checkpoint"]["root"] in text
    assert "Example Health" in text


def test_pack_cites_entry_canonical_json(base_pack) -> None:
    text = unwrap(pdf_text(base_pack.path))
    line = base_pack.files["entries.jsonl"].split(b"\n")[1].decode()
    assert "".join(line.split()) in "".join(text.split())


def test_pack_appends_report_issued_entry(base_pack) -> None:
    from ledger import Ledger, LedgerConfig

    with Ledger.open(
        base_pack.url, config=LedgerConfig(key_dir=base_pack.key_dir)
    ) as ledger:
        entry = ledger.get(base_pack.receipt["seq"])
    assert entry.kind == "report_issued"
    assert entry.record["pack_sha256"] == hashlib.sha256(base_pack.data).hexdigest()
    assert entry.record["pack_sha256"] == base_pack.sha256
    assert entry.record["frameworks"] == ["gdpr", "eu_ai_act"]
    assert entry.record["tree_size"] == base_pack.manifest["checkpoint"]["tree_size"]
    assert entry.record["root"] == base_pack.manifest["checkpoint"]["root"]
    assert entry.record["period"] == {"start": None, "end": None}


def test_issue_pack_on_each_store(db_url: str, key_dir: Path, tmp_path: Path) -> None:
    with create_ledger(db_url, key_dir) as ledger:
        populate(ledger, days=1)
        ensure_signing_identity(key_dir, "Example Health")
        identity = load_signing_identity(key_dir)
        issued = issue_pack(
            ledger,
            evaluation_for(ledger),
            out=tmp_path / "pack.pdf",
            identity=identity,
            organisation="Example Health",
        )
        verifier_key = ledger.signer().verifier_key()
        report = ledger.get(issued.receipt["seq"])
    result = verify_pack(
        issued.path, trust=[key_dir / "signing-cert.pem"], verifier_key=verifier_key
    )
    assert result.ok, result.failed
    assert report.record["pack_sha256"] == issued.sha256


def test_period_pack_ties_sub_range_to_root(tmp_path: Path, key_dir: Path) -> None:
    clock = Clock()
    with create_ledger(f"sqlite:///{tmp_path / 'l.db'}", key_dir, clock) as ledger:
        populate(ledger, clock, days=3)
        day_two = parse_period_bound(
            (START + timedelta(days=1)).date().isoformat(), "--from"
        )
        day_three = parse_period_bound(
            (START + timedelta(days=2)).date().isoformat(), "--to"
        )
        evaluation = evaluation_for(
            ledger, cited=(25, 30), start=day_two, end=day_three
        )
        prepared = prepare_pack(
            ledger,
            evaluation,
            organisation="Example Health",
            certificate=other_identity().certificate,
        )
    scope = prepared.manifest["scope"]
    range_proof = json.loads(prepared.files["merkle-range.json"])
    assert scope["start_seq"] == 21
    assert scope["end_seq"] == 42
    assert range_proof["left"]
    assert range_proof["right"]
    assert "cited-entries.jsonl" not in prepared.files


def test_period_pack_passes_verify_pack(tmp_path: Path, key_dir: Path) -> None:
    clock = Clock()
    with create_ledger(f"sqlite:///{tmp_path / 'l.db'}", key_dir, clock) as ledger:
        populate(ledger, clock, days=3)
        evaluation = evaluation_for(
            ledger,
            cited=(2, 25),
            start=parse_period_bound("2026-03-03", "--from"),
            end=parse_period_bound("2026-03-04", "--to"),
        )
        identity = other_identity()
        issued = issue_pack(
            ledger,
            evaluation,
            out=tmp_path / "pack.pdf",
            identity=identity,
            organisation="Example Health",
        )
        verifier_key = ledger.signer().verifier_key()
    files = read_embedded_files(issued.path.read_bytes())
    cert = tmp_path / "cert.pem"
    cert.write_bytes(files["signing-cert.pem"])
    result = verify_pack(issued.path, trust=[cert], verifier_key=verifier_key)
    assert result.ok, [check.to_dict() for check in result.checks]
    # seq 2 lies before the period, so it travels with an inclusion proof.
    assert files["cited-entries.jsonl"].count(b"\n") == 1
    assert "inclusion-proofs.json" in files


def test_cited_mode_above_max_embedded(tmp_path: Path, key_dir: Path) -> None:
    with create_ledger(f"sqlite:///{tmp_path / 'l.db'}", key_dir) as ledger:
        populate(ledger, days=2)
        identity = other_identity()
        issued = issue_pack(
            ledger,
            evaluation_for(ledger, cited=(0, 5, 6, 33)),
            out=tmp_path / "pack.pdf",
            identity=identity,
            organisation="Example Health",
            max_embedded=10,
        )
        verifier_key = ledger.signer().verifier_key()
    files = read_embedded_files(issued.path.read_bytes())
    cert = tmp_path / "cert.pem"
    cert.write_bytes(files["signing-cert.pem"])
    result = verify_pack(issued.path, trust=[cert], verifier_key=verifier_key)
    assert result.ok, [check.to_dict() for check in result.checks]
    assert issued.manifest["scope"]["mode"] == "cited"
    assert "entries.jsonl" not in files
    assert files["cited-entries.jsonl"].count(b"\n") == 4
    assert len(json.loads(files["inclusion-proofs.json"])["proofs"]) == 4


def test_empty_period_pack_verifies(tmp_path: Path, key_dir: Path) -> None:
    with create_ledger(f"sqlite:///{tmp_path / 'l.db'}", key_dir) as ledger:
        populate(ledger, days=1)
        evaluation = evaluation_for(
            ledger,
            cited=(),
            start=parse_period_bound("2030-01-01", "--from"),
            end=parse_period_bound("2030-02-01", "--to"),
        )
        identity = other_identity()
        issued = issue_pack(
            ledger,
            evaluation,
            out=tmp_path / "pack.pdf",
            identity=identity,
            organisation="Example Health",
        )
        verifier_key = ledger.signer().verifier_key()
    files = read_embedded_files(issued.path.read_bytes())
    cert = tmp_path / "cert.pem"
    cert.write_bytes(files["signing-cert.pem"])
    result = verify_pack(issued.path, trust=[cert], verifier_key=verifier_key)
    assert result.ok, [check.to_dict() for check in result.checks]
    assert files["entries.jsonl"] == b""
    assert "merkle-range.json" not in files


def test_pack_bytes_reproducible_under_source_date_epoch(
    tmp_path: Path, key_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1773000000")
    certificate = other_identity().certificate
    with create_ledger(f"sqlite:///{tmp_path / 'l.db'}", key_dir) as ledger:
        populate(ledger, days=1)
        evaluation = evaluation_for(ledger)
        first = prepare_pack(
            ledger, evaluation, organisation="Example Health", certificate=certificate
        )
        second = prepare_pack(
            ledger, evaluation, organisation="Example Health", certificate=certificate
        )
        monkeypatch.setenv("SOURCE_DATE_EPOCH", "1773000001")
        third = prepare_pack(
            ledger, evaluation, organisation="Example Health", certificate=certificate
        )
    assert first.pdf == second.pdf
    assert first.files == second.files
    assert third.pdf != first.pdf


def test_long_table_repeats_header_on_each_page(tmp_path: Path, key_dir: Path) -> None:
    with create_ledger(f"sqlite:///{tmp_path / 'l.db'}", key_dir) as ledger:
        populate(ledger, days=1)
        prepared = prepare_pack(
            ledger,
            evaluation_for(ledger, controls=90),
            organisation="Example Health",
            certificate=other_identity().certificate,
            verify=False,
        )
    path = tmp_path / "unsigned.pdf"
    path.write_bytes(prepared.pdf)
    count = page_count(path)
    pages = [
        pdf_text(path, "-f", str(number), "-l", str(number))
        for number in range(1, count + 1)
    ]
    table_pages = [page for page in pages if "Control number" in page]
    assert len(table_pages) >= 3
    for page in table_pages:
        assert "Title and rationale" in page


def test_evaluation_of_another_tree_rejected(tmp_path: Path, key_dir: Path) -> None:
    with create_ledger(f"sqlite:///{tmp_path / 'l.db'}", key_dir) as ledger:
        populate(ledger, days=1)
        evaluation = evaluation_for(ledger)
        forged = type(evaluation)(**{**evaluation.__dict__, "root": "00" * 32})
        with pytest.raises(ReportError) as raised:
            prepare_pack(
                ledger,
                forged,
                organisation="Example Health",
                certificate=other_identity().certificate,
            )
    assert raised.value.reason == "evaluation-mismatch"


def test_negative_max_embedded_rejected(tmp_path: Path, key_dir: Path) -> None:
    with create_ledger(f"sqlite:///{tmp_path / 'l.db'}", key_dir) as ledger:
        with pytest.raises(InputError):
            prepare_pack(
                ledger,
                evaluation_for(ledger, cited=()),
                organisation="Example Health",
                certificate=other_identity().certificate,
                max_embedded=-1,
            )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-02", "2026-03-02T00:00:00.000000Z"),
        ("2026-03-02T10:00:00+01:00", "2026-03-02T09:00:00.000000Z"),
        ("2026-03-02T09:00:00.5Z", "2026-03-02T09:00:00.500000Z"),
        (None, None),
    ],
)
def test_parse_period_bound_forms(value: str | None, expected: str | None) -> None:
    assert parse_period_bound(value, "--from") == expected


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "2026-03-02T10:00:00"])
def test_parse_period_bound_invalid(value: str) -> None:
    with pytest.raises(InputError) as raised:
        parse_period_bound(value, "--to")
    assert "--to" in raised.value.message


def test_pack_checkpoint_key_is_the_log_key(base_pack) -> None:
    assert base_pack.files["log-key.txt"].decode().strip() == base_pack.log_key


def test_report_issued_names_given_actor(tmp_path: Path, key_dir: Path) -> None:
    with create_ledger(f"sqlite:///{tmp_path / 'l.db'}", key_dir) as ledger:
        populate(ledger, days=1)
        issued = issue_pack(
            ledger,
            evaluation_for(ledger),
            out=tmp_path / "pack.pdf",
            identity=other_identity(),
            organisation="Example Health",
            actor="user:officer-7",
        )
        entry = ledger.get(issued.receipt["seq"])
        with ledger.engine.connect() as connection:
            column = connection.execute(
                select(EntryRow.actor).where(EntryRow.seq == issued.receipt["seq"])
            ).scalar_one()
    assert entry.kind == "report_issued"
    assert entry.record["actor"] == "user:officer-7"
    assert column == "user:officer-7"


def test_report_issued_default_actor_is_service(base_pack) -> None:
    from ledger import Ledger, LedgerConfig

    with Ledger.open(
        base_pack.url, config=LedgerConfig(key_dir=base_pack.key_dir)
    ) as ledger:
        entry = ledger.get(base_pack.receipt["seq"])
    assert entry.record["actor"] == "svc:govledger"


@pytest.mark.parametrize("actor", ["officer", "user:", "user: alice", "admin:x"])
def test_issue_pack_invalid_actor_writes_nothing(
    tmp_path: Path, key_dir: Path, actor: str
) -> None:
    out = tmp_path / "pack.pdf"
    with create_ledger(f"sqlite:///{tmp_path / 'l.db'}", key_dir) as ledger:
        populate(ledger, days=1)
        size = ledger.size
        with pytest.raises(InputError) as raised:
            issue_pack(
                ledger,
                evaluation_for(ledger),
                out=out,
                identity=other_identity(),
                organisation="Example Health",
                actor=actor,
            )
        size_after = ledger.size
    assert raised.value.reason == "invalid-actor"
    assert repr(actor) in raised.value.message
    assert size_after == size
    assert not out.exists()
