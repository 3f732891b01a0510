"""verify-pack against tampered packs: each defect fails the check named for it.

A forger who changes embedded evidence must re-sign the file; these tests
re-sign with another key and trust that key, so that the signature checks
pass and the failure lands on the check that guards the changed part.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from ledger.checkpoints import parse_checkpoint, sign_checkpoint
from ledger.keys import generate_log_key
from reports.pack import issue_pack
from reports.render import EmbeddedFile, html_to_pdf
from reports.signing import (
    SigningIdentity,
    load_signing_identity,
    self_signed_certificate,
)
from reports.verify_pack import CHECK_NAMES, read_embedded_files, verify_pack

from .support import (
    ORIGIN,
    PASSPHRASE,
    START,
    byte_range,
    create_ledger,
    evaluation_for,
    other_identity,
    populate,
    rebuild_pack,
    update_manifest,
    write_certificate,
)

SIGNATURE_CHECKS = ("signature", "signature-coverage", "certificate-trust")
CLI = Path(__file__).resolve().parents[2] / "cli.py"


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CLI), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _outcome(result, name: str) -> bool | None:
    return next(check.passed for check in result.checks if check.name == name)


def _resign(tmp_path: Path, files: dict[str, bytes], *changed: str):
    """Re-sign ``files`` with a forger's key; return (pack path, forger cert path)."""
    forger = other_identity()
    files = dict(files)
    files["signing-cert.pem"] = forger.certificate_pem()
    update_manifest(files, "signing-cert.pem", *changed)
    path = tmp_path / "forged.pdf"
    path.write_bytes(rebuild_pack(files, forger))
    return path, write_certificate(tmp_path / "forger.pem", forger.certificate)


def test_untampered_pack_reports_every_check(base_pack) -> None:
    result = verify_pack(
        base_pack.data, trust=[base_pack.cert_path], verifier_key=base_pack.log_key
    )
    assert [check.name for check in result.checks] == list(CHECK_NAMES)
    assert result.failed == []


def test_verify_pack_untrusted_certificate_not_accepted(base_pack) -> None:
    result = verify_pack(base_pack.data, verifier_key=base_pack.log_key)
    message = next(c.message for c in result.checks if c.name == "certificate-trust")
    assert not result.ok
    assert result.failed == ["certificate-trust"]
    assert result.valid
    assert "signature valid but certificate not trusted; pass --trust CERT" in message


def test_verify_pack_wrong_trusted_certificate(base_pack, tmp_path: Path) -> None:
    stranger = write_certificate(
        tmp_path / "stranger.pem", other_identity().certificate
    )
    result = verify_pack(base_pack.data, trust=[stranger])
    assert result.failed == ["certificate-trust"]
    assert not result.trusted


def test_verify_pack_embedded_key_is_labelled(base_pack) -> None:
    result = verify_pack(base_pack.data, trust=[base_pack.cert_path])
    message = next(c.message for c in result.checks if c.name == "checkpoint")
    assert result.ok
    assert result.key_source == "embedded"
    assert "only as trustworthy as the pack" in message


def test_verify_pack_detects_flipped_byte(base_pack) -> None:
    first_range_end = byte_range(base_pack.data)[1]
    data = bytearray(base_pack.data)
    position = first_range_end // 2
    data[position] ^= 0x01
    result = verify_pack(
        bytes(data), trust=[base_pack.cert_path], verifier_key=base_pack.log_key
    )
    assert not result.ok
    assert "signature" in result.failed
    assert not result.intact


def test_verify_pack_detects_incremental_update(base_pack) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(base_pack.data))
    writer.add_object(
        generic.DictionaryObject(
            {generic.NameObject("/Note"): generic.TextStringObject("added")}
        )
    )
    output = io.BytesIO()
    writer.write(output)
    result = verify_pack(
        output.getvalue(), trust=[base_pack.cert_path], verifier_key=base_pack.log_key
    )
    assert len(output.getvalue()) > len(base_pack.data)
    assert result.failed == ["signature-coverage"]
    assert not result.coverage_entire_file


def test_verify_pack_reads_signed_revision_only(base_pack) -> None:
    # An update after signing swaps the embedded entries for other bytes;
    # the content checks still read the signed revision.
    writer = IncrementalPdfFileWriter(io.BytesIO(base_pack.data))
    names = writer.root["/Names"]["/EmbeddedFiles"]["/Names"]
    for index in range(0, len(names), 2):
        if str(names[index]) == "entries.jsonl":
            filespec = names[index + 1].get_object()
            stream = generic.StreamObject(stream_data=b"forged\n")
            filespec["/EF"] = generic.DictionaryObject(
                {generic.NameObject("/F"): writer.add_object(stream)}
            )
            writer.update_container(filespec)
    output = io.BytesIO()
    writer.write(output)
    result = verify_pack(
        output.getvalue(), trust=[base_pack.cert_path], verifier_key=base_pack.log_key
    )
    assert "signature-coverage" in result.failed
    assert _outcome(result, "entries") is True
    assert _outcome(result, "manifest") is True


def test_verify_pack_detects_changed_entry(base_pack, tmp_path: Path) -> None:
    files = dict(base_pack.files)
    lines = files["entries.jsonl"].split(b"\n")
    assert b'"verdict":"correct"' in lines[11]
    lines[11] = lines[11].replace(b'"verdict":"correct"', b'"verdict":"accept"')
    files["entries.jsonl"] = b"\n".join(lines)
    path, forger = _resign(tmp_path, files, "entries.jsonl")
    result = verify_pack(path, trust=[forger], verifier_key=base_pack.log_key)
    assert "entries" in result.failed
    for name in (*SIGNATURE_CHECKS, "manifest", "checkpoint"):
        assert _outcome(result, name) is True, name
    message = next(c.message for c in result.checks if c.name == "entries")
    assert "seq 12 prev link mismatch" in message


def test_verify_pack_detects_non_canonical_entry(base_pack, tmp_path: Path) -> None:
    files = dict(base_pack.files)
    lines = files["entries.jsonl"].split(b"\n")
    lines[4] = lines[4].replace(b'{"kind":', b'{ "kind":', 1)
    files["entries.jsonl"] = b"\n".join(lines)
    path, forger = _resign(tmp_path, files, "entries.jsonl")
    result = verify_pack(path, trust=[forger], verifier_key=base_pack.log_key)
    assert "entries" in result.failed
    assert _outcome(result, "manifest") is True


def test_verify_pack_detects_dropped_entry(base_pack, tmp_path: Path) -> None:
    files = dict(base_pack.files)
    lines = files["entries.jsonl"].split(b"\n")
    del lines[7]
    files["entries.jsonl"] = b"\n".join(lines)
    path, forger = _resign(tmp_path, files, "entries.jsonl")
    result = verify_pack(path, trust=[forger], verifier_key=base_pack.log_key)
    assert "entries" in result.failed


def test_verify_pack_detects_manifest_mismatch(base_pack, tmp_path: Path) -> None:
    files = dict(base_pack.files)
    files["entries.jsonl"] = files["entries.jsonl"].replace(b"urgent", b"routine", 1)
    path, forger = _resign(tmp_path, files)
    result = verify_pack(path, trust=[forger], verifier_key=base_pack.log_key)
    message = next(c.message for c in result.checks if c.name == "manifest")
    assert "manifest" in result.failed
    assert "entries.jsonl: SHA-256 mismatch" in message
    for name in SIGNATURE_CHECKS:
        assert _outcome(result, name) is True, name


def test_verify_pack_detects_unlisted_attachment(base_pack, tmp_path: Path) -> None:
    files = dict(base_pack.files)
    files["hostname"] = b"attacker.example\n"
    path, forger = _resign(tmp_path, files)
    result = verify_pack(path, trust=[forger], verifier_key=base_pack.log_key)
    message = next(c.message for c in result.checks if c.name == "manifest")
    assert result.failed[0] == "manifest"
    assert "not listed ['hostname']" in message


def test_verify_pack_detects_swapped_signing_cert(base_pack, tmp_path: Path) -> None:
    # The pack still names the original certificate, but a forger signed it.
    forger = other_identity()
    path = tmp_path / "forged.pdf"
    path.write_bytes(rebuild_pack(dict(base_pack.files), forger))
    trusted = write_certificate(tmp_path / "forger.pem", forger.certificate)
    result = verify_pack(path, trust=[trusted], verifier_key=base_pack.log_key)
    message = next(c.message for c in result.checks if c.name == "manifest")
    assert "manifest" in result.failed
    assert "not the certificate that signed" in message


def test_verify_pack_rejects_checkpoint_of_another_key(
    base_pack, tmp_path: Path
) -> None:
    # A forger signs the same tree head with a key of their own and embeds
    # that key: the embedded key agrees, the log's real key does not.
    files = dict(base_pack.files)
    body = parse_checkpoint(files["checkpoint.txt"].decode().split("\n\n")[0] + "\n")
    forged_key = generate_log_key(ORIGIN)
    files["checkpoint.txt"] = sign_checkpoint(
        ORIGIN, body.size, body.root, forged_key
    ).encode()
    files["log-key.txt"] = (forged_key.verifier_key() + "\n").encode()
    path, forger = _resign(tmp_path, files, "checkpoint.txt", "log-key.txt")
    with_embedded = verify_pack(path, trust=[forger])
    with_log_key = verify_pack(path, trust=[forger], verifier_key=base_pack.log_key)
    assert with_embedded.ok
    assert with_log_key.failed == ["checkpoint"]
    assert not with_log_key.checkpoint_ok


def test_verify_pack_rejects_other_log_key(base_pack) -> None:
    stranger = generate_log_key(ORIGIN).verifier_key()
    result = verify_pack(
        base_pack.data, trust=[base_pack.cert_path], verifier_key=stranger
    )
    assert result.failed == ["checkpoint"]


def test_verify_pack_detects_root_mismatch(base_pack, tmp_path: Path) -> None:
    # Entries re-chained consistently after a change still miss the signed root.
    files = dict(base_pack.files)
    proof = json.loads(files["merkle-range.json"])
    proof["right"] = [("11" * 32)]
    proof["end"] = proof["end"] - 1
    lines = files["entries.jsonl"].split(b"\n")
    files["entries.jsonl"] = b"\n".join(lines[:-2] + [b""])
    files["merkle-range.json"] = json.dumps(proof).encode()
    manifest = json.loads(files["manifest.json"])
    manifest["scope"]["end_seq"] -= 1
    manifest["scope"]["entries"] -= 1
    files["manifest.json"] = json.dumps(manifest).encode()
    path, forger = _resign(tmp_path, files, "entries.jsonl", "merkle-range.json")
    result = verify_pack(path, trust=[forger], verifier_key=base_pack.log_key)
    message = next(c.message for c in result.checks if c.name == "merkle")
    assert result.failed == ["merkle"]
    assert "root mismatch" in message


def test_verify_pack_detects_bad_inclusion_proof(tmp_path: Path) -> None:
    with create_ledger(f"sqlite:///{tmp_path / 'l.db'}", tmp_path / "keys") as ledger:
        populate(ledger, days=1)
        identity = other_identity()
        issued = issue_pack(
            ledger,
            evaluation_for(ledger, cited=(3, 9)),
            out=tmp_path / "pack.pdf",
            identity=identity,
            organisation="Example Health",
            max_embedded=0,
        )
        log_key = ledger.signer().verifier_key()
    files = read_embedded_files(issued.path.read_bytes())
    proofs = json.loads(files["inclusion-proofs.json"])
    first = bytes.fromhex(proofs["proofs"][1]["hashes"][0])
    proofs["proofs"][1]["hashes"][0] = bytes([first[0] ^ 1, *first[1:]]).hex()
    files["inclusion-proofs.json"] = json.dumps(proofs).encode()

    path, forger = _resign(tmp_path, files, "inclusion-proofs.json")
    result = verify_pack(path, trust=[forger], verifier_key=log_key)
    message = next(c.message for c in result.checks if c.name == "merkle")
    assert result.failed == ["merkle"]
    assert "seq 9" in message


def test_verify_pack_rejects_non_pdf(tmp_path: Path) -> None:
    path = tmp_path / "not.pdf"
    path.write_bytes(b"just text, no PDF\n")
    result = verify_pack(path)
    assert result.failed[0] == "signature"
    assert not result.ok


def test_verify_pack_rejects_unsigned_pdf(base_pack) -> None:
    attachments = [
        EmbeddedFile(name=name, data=data, description=name)
        for name, data in base_pack.files.items()
    ]
    unsigned = html_to_pdf("<p>unsigned</p>", attachments, moment=START)
    result = verify_pack(unsigned, trust=[base_pack.cert_path])
    message = next(c.message for c in result.checks if c.name == "signature")
    assert result.failed[0] == "signature"
    assert "no signature" in message


# -- changes inside /Contents, which the signed byte range leaves out ------------


def _contents_span(pdf: bytes) -> tuple[int, int]:
    """Return the offsets of the hex digits of /Contents (without < and >)."""
    ranges = byte_range(pdf)
    return ranges[1] + 1, ranges[2] - 1


def _change_certificate_serial(
    pdf: bytes, certificate: x509.Certificate, copy: int = 0
) -> bytes:
    """Change one hex digit of the serial number in a copy of ``certificate``."""
    start, end = _contents_span(pdf)
    hex_digits = pdf[start:end].decode("ascii").lower()
    der = certificate.public_bytes(serialization.Encoding.DER)
    position = -1
    for _ in range(copy + 1):
        position = hex_digits.find(der.hex(), position + 1)
        assert position >= 0, "the certificate is not in /Contents"
    serial = certificate.serial_number
    serial_bytes = serial.to_bytes((serial.bit_length() + 8) // 8, "big")
    # The serial follows the version field at the start of the TBS part.
    serial_at = der.find(serial_bytes)
    assert 0 < serial_at < 32
    digit = start + position + 2 * (serial_at + 2)
    original = pdf[digit : digit + 1]
    replacement = b"1" if original != b"1" else b"2"
    changed = pdf[:digit] + replacement + pdf[digit + 1 :]
    assert changed[start:end] != pdf[start:end]
    return changed


def _sign_with_certificate_twice(pdf: bytes, identity: SigningIdentity) -> bytes:
    """Sign as govledger did before it embedded the signer's certificate once."""
    from pyhanko.keys.internal import (
        translate_pyca_cryptography_cert_to_asn1,
        translate_pyca_cryptography_key_to_asn1,
    )
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigSeedSubFilter
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    certificate = translate_pyca_cryptography_cert_to_asn1(identity.certificate)
    signer = signers.SimpleSigner(
        signing_cert=certificate,
        signing_key=translate_pyca_cryptography_key_to_asn1(identity.private_key),
        cert_registry=SimpleCertificateStore.from_certs([certificate]),
    )
    metadata = signers.PdfSignatureMetadata(
        field_name="Signature1", subfilter=SigSeedSubFilter.PADES, md_algorithm="sha256"
    )
    output = io.BytesIO()
    signers.PdfSigner(metadata, signer=signer).sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(pdf)), output=output
    )
    return output.getvalue()


def test_verify_pack_detects_changed_certificate_serial(
    base_pack, tmp_path: Path
) -> None:
    certificate = x509.load_pem_x509_certificate(base_pack.cert_path.read_bytes())
    path = tmp_path / "serial.pdf"
    path.write_bytes(_change_certificate_serial(base_pack.data, certificate))
    result = verify_pack(
        path, trust=[base_pack.cert_path], verifier_key=base_pack.log_key
    )
    command = _run_cli(
        "verify-pack",
        str(path),
        "--trust",
        str(base_pack.cert_path),
        "--key",
        base_pack.log_key,
    )
    assert not result.ok
    assert not result.trusted
    assert "signature" in result.failed
    assert command.returncode == 1, command.stdout
    assert "all 7 checks passed" not in command.stdout


def test_verify_pack_detects_changed_extra_certificate(
    base_pack, tmp_path: Path
) -> None:
    # Packs signed before the fix carry the signer's certificate twice; the
    # signer is matched to one copy, and the other is covered by no signature.
    identity = load_signing_identity(base_pack.key_dir, passphrase=PASSPHRASE)
    attachments = [
        EmbeddedFile(name=name, data=data, description=name)
        for name, data in base_pack.files.items()
    ]
    unsigned = html_to_pdf("<p>pack</p>", attachments, moment=START)
    signed = _sign_with_certificate_twice(unsigned, identity)
    original = verify_pack(
        signed, trust=[base_pack.cert_path], verifier_key=base_pack.log_key
    )
    changed = _change_certificate_serial(signed, identity.certificate, copy=0)
    result = verify_pack(
        changed, trust=[base_pack.cert_path], verifier_key=base_pack.log_key
    )
    message = next(c.message for c in result.checks if c.name == "certificate-trust")
    assert original.ok, original.failed
    assert result.failed == ["certificate-trust"]
    assert not result.trusted
    assert "outside the signer's chain" in message


def test_verify_pack_detects_changed_contents_padding(base_pack) -> None:
    _, end = _contents_span(base_pack.data)
    assert base_pack.data[end - 4 : end] == b"0000"
    data = base_pack.data[: end - 2] + b"7" + base_pack.data[end - 1 :]
    result = verify_pack(
        data, trust=[base_pack.cert_path], verifier_key=base_pack.log_key
    )
    message = next(c.message for c in result.checks if c.name == "signature")
    assert "signature" in result.failed
    assert not result.intact
    assert "non-zero bytes after the CMS signature" in message


def test_pack_embeds_signing_certificate_once(base_pack) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(base_pack.data), strict=False)
    signed_data = reader.embedded_signatures[0].signed_data
    certificates = [choice.chosen.dump() for choice in signed_data["certificates"]]
    assert len(certificates) == 1


def test_verify_pack_rejects_reissued_certificate_as_trust(
    base_pack, tmp_path: Path
) -> None:
    # Same subject and key, another serial: pyHanko's path check accepts it.
    identity = load_signing_identity(base_pack.key_dir, passphrase=PASSPHRASE)
    reissued = self_signed_certificate(identity.private_key, "Example Health")
    original = identity.certificate
    trusted = write_certificate(tmp_path / "reissued.pem", reissued)
    result = verify_pack(
        base_pack.data, trust=[trusted], verifier_key=base_pack.log_key
    )
    message = next(c.message for c in result.checks if c.name == "certificate-trust")
    assert reissued.subject == original.subject
    assert reissued.public_key() == original.public_key()
    assert reissued.serial_number != original.serial_number
    assert result.failed == ["certificate-trust"]
    assert "not byte-identical" in message
