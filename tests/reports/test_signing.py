"""Signing identities and PAdES signatures, checked by pyHanko and poppler."""

from __future__ import annotations

import io
import os
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.keys.internal import (
    translate_pyca_cryptography_cert_to_asn1,
    translate_pyca_cryptography_key_to_asn1,
)
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from ledger.errors import InputError, KeyFileError, ReportError
from reports.render import EmbeddedFile, html_to_pdf
from reports.signing import (
    SigningIdentity,
    ensure_signing_identity,
    load_pem_identity,
    load_pkcs12_identity,
    load_signing_identity,
    select_identity,
    self_signed_certificate,
    sign_pdf,
)

from .support import START, poppler

PASSPHRASE = b"test-passphrase"


@pytest.fixture(scope="module")
def unsigned_pdf() -> bytes:
    return html_to_pdf(
        "<html><body><h1>Pack</h1><p>text</p></body></html>",
        [EmbeddedFile(name="a.txt", data=b"a\n", description="a")],
        moment=START,
    )


def _status(signed: bytes, *trusted: x509.Certificate):
    reader = PdfFileReader(io.BytesIO(signed))
    context = ValidationContext(
        trust_roots=[translate_pyca_cryptography_cert_to_asn1(c) for c in trusted],
        allow_fetching=False,
    )
    return validate_pdf_signature(reader.embedded_signatures[0], context)


def test_ensure_signing_identity_creates_files(key_dir: Path) -> None:
    files = ensure_signing_identity(key_dir, "Example Health")
    key_mode = stat.S_IMODE(os.stat(files.private_key).st_mode)
    key_text = files.private_key.read_bytes()
    assert files.created
    assert files.certificate == key_dir / "signing-cert.pem"
    assert key_mode == 0o600
    assert key_text.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")


def test_self_signed_certificate_profile(key_dir: Path) -> None:
    files = ensure_signing_identity(key_dir, "Example Health")
    certificate = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    organisation = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert isinstance(certificate.public_key(), ec.EllipticCurvePublicKey)
    assert certificate.public_key().curve.name == "secp256r1"
    assert certificate.subject == certificate.issuer
    assert usage.critical
    assert usage.value.digital_signature
    assert usage.value.content_commitment
    assert not usage.value.key_cert_sign
    assert constraints.value.ca is False
    assert organisation[0].value == "Example Health"


def test_ensure_signing_identity_keeps_existing(key_dir: Path) -> None:
    first = ensure_signing_identity(key_dir, "Example Health")
    before = first.certificate.read_bytes()
    second = ensure_signing_identity(key_dir, "Another Name")
    assert not second.created
    assert second.certificate.read_bytes() == before


def test_ensure_signing_identity_incomplete_rejected(key_dir: Path) -> None:
    files = ensure_signing_identity(key_dir, "Example Health")
    files.private_key.unlink()
    with pytest.raises(KeyFileError) as raised:
        ensure_signing_identity(key_dir, "Example Health")
    assert "incomplete" in raised.value.message


def test_ensure_signing_identity_needs_passphrase(
    key_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOVLEDGER_KEY_PASSPHRASE")
    with pytest.raises(KeyFileError) as raised:
        ensure_signing_identity(key_dir, "Example Health")
    assert raised.value.reason == "no-passphrase"
    assert not (key_dir / "signing-cert.pem").exists()


@pytest.mark.parametrize("name", ["", " padded ", "x" * 65, "bell\x07"])
def test_bad_organisation_name_rejected(key_dir: Path, name: str) -> None:
    with pytest.raises(InputError) as raised:
        ensure_signing_identity(key_dir, name)
    assert raised.value.reason == "bad-organisation"


def test_load_signing_identity_wrong_passphrase(key_dir: Path) -> None:
    ensure_signing_identity(key_dir, "Example Health")
    with pytest.raises(KeyFileError) as raised:
        load_signing_identity(key_dir, passphrase=b"wrong")
    assert raised.value.reason == "wrong-passphrase"


def test_load_signing_identity_key_too_open(key_dir: Path) -> None:
    files = ensure_signing_identity(key_dir, "Example Health")
    os.chmod(files.private_key, 0o644)
    with pytest.raises(KeyFileError) as raised:
        load_signing_identity(key_dir)
    assert raised.value.reason == "key-file-too-open"


def _write_key(path: Path, key, passphrase: bytes | None) -> Path:
    encryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
    )
    os.chmod(path, 0o600)
    return path


def _write_cert(path: Path, certificate: x509.Certificate) -> Path:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def test_load_pem_identity_mismatched_key(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    cert = _write_cert(tmp_path / "c.pem", self_signed_certificate(key, "Org"))
    key_path = _write_key(tmp_path / "k.pem", other, PASSPHRASE)
    with pytest.raises(KeyFileError) as raised:
        load_pem_identity(cert, key_path)
    assert raised.value.reason == "key-mismatch"


def test_load_pem_identity_unencrypted_needs_unsafe(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _write_cert(tmp_path / "c.pem", self_signed_certificate(key, "Org"))
    key_path = _write_key(tmp_path / "k.pem", key, None)
    with pytest.raises(KeyFileError) as raised:
        load_pem_identity(cert, key_path)
    identity = load_pem_identity(cert, key_path, unsafe_unencrypted=True)
    assert raised.value.reason == "unencrypted-key"
    assert identity.certificate.subject == identity.certificate.issuer


def test_load_pem_identity_rejects_ed25519(tmp_path: Path) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    cert = _write_cert(tmp_path / "c.pem", self_signed_certificate(ec_key, "Org"))
    key_path = _write_key(
        tmp_path / "k.pem", ed25519.Ed25519PrivateKey.generate(), PASSPHRASE
    )
    with pytest.raises(KeyFileError) as raised:
        load_pem_identity(cert, key_path)
    assert raised.value.reason == "malformed-key-file"


def _rsa_identity() -> SigningIdentity:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "RSA Org")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return SigningIdentity(certificate, key)


def test_pkcs12_identity_signs(tmp_path: Path, unsigned_pdf: bytes) -> None:
    rsa_identity = _rsa_identity()
    path = tmp_path / "org.p12"
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"org",
            rsa_identity.private_key,
            rsa_identity.certificate,
            None,
            serialization.BestAvailableEncryption(PASSPHRASE),
        )
    )
    os.chmod(path, 0o600)
    identity = select_identity(tmp_path / "keys", "Org", pkcs12_file=path)
    status = _status(sign_pdf(unsigned_pdf, identity), identity.certificate)
    assert status.intact
    assert status.valid
    assert status.trusted
    assert not (tmp_path / "keys").exists()


def test_select_identity_rejects_cert_without_key(tmp_path: Path) -> None:
    with pytest.raises(InputError) as raised:
        select_identity(tmp_path, "Org", cert=tmp_path / "c.pem")
    assert "--key is missing" in raised.value.message


def test_select_identity_rejects_both_kinds(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        select_identity(
            tmp_path,
            "Org",
            cert=tmp_path / "c",
            key=tmp_path / "k",
            pkcs12_file=tmp_path / "p",
        )


def test_load_pkcs12_wrong_passphrase(tmp_path: Path) -> None:
    rsa_identity = _rsa_identity()
    path = tmp_path / "org.p12"
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"org",
            rsa_identity.private_key,
            rsa_identity.certificate,
            None,
            serialization.BestAvailableEncryption(PASSPHRASE),
        )
    )
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError) as raised:
        load_pkcs12_identity(path, passphrase=b"wrong")
    assert raised.value.reason == "wrong-passphrase"


def test_sign_pdf_pades_covers_whole_file(
    key_dir: Path, unsigned_pdf: bytes, tmp_path: Path
) -> None:
    ensure_signing_identity(key_dir, "Example Health")
    identity = load_signing_identity(key_dir)
    signed = sign_pdf(unsigned_pdf, identity)
    status = _status(signed, identity.certificate)
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    output = poppler("pdfsig", str(path))
    assert signed.startswith(unsigned_pdf)
    assert status.intact
    assert status.valid
    assert status.trusted
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert "Signature Validation: Signature is Valid." in output
    assert "Total document signed" in output
    assert "ETSI.CAdES.detached" in output


def test_sign_pdf_rsa_identity(unsigned_pdf: bytes) -> None:
    identity = _rsa_identity()
    status = _status(sign_pdf(unsigned_pdf, identity), identity.certificate)
    assert status.intact
    assert status.valid


def test_sign_pdf_self_signed_untrusted_without_root(
    key_dir: Path, unsigned_pdf: bytes
) -> None:
    ensure_signing_identity(key_dir, "Example Health")
    status = _status(sign_pdf(unsigned_pdf, load_signing_identity(key_dir)))
    assert status.intact
    assert status.valid
    assert not status.trusted


# -- RFC 3161 timestamps from a TSA on loopback --------------------------------


class _TimestampAuthority:
    """A throwaway RFC 3161 TSA on 127.0.0.1 that counts its requests."""

    def __init__(self) -> None:
        from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TSA")])
        now = datetime.now(UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        self.requests = 0
        stamper = DummyTimeStamper(
            tsa_cert=translate_pyca_cryptography_cert_to_asn1(self.certificate),
            tsa_key=translate_pyca_cryptography_key_to_asn1(key),
        )
        authority = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
                from asn1crypto import tsp

                length = int(self.headers["Content-Length"])
                request = tsp.TimeStampReq.load(self.rfile.read(length))
                body = stamper.request_tsa_response(request).dump()
                authority.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/tsa"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def tsa(monkeypatch: pytest.MonkeyPatch) -> Iterator[_TimestampAuthority]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    authority = _TimestampAuthority()
    try:
        yield authority
    finally:
        authority.close()


def test_sign_pdf_with_loopback_timestamp(
    tsa: _TimestampAuthority, key_dir: Path, unsigned_pdf: bytes
) -> None:
    ensure_signing_identity(key_dir, "Example Health")
    identity = load_signing_identity(key_dir)
    signed = sign_pdf(unsigned_pdf, identity, tsa_url=tsa.url)
    status = _status(signed, identity.certificate, tsa.certificate)
    assert tsa.requests >= 1
    assert status.intact
    assert status.valid
    assert status.timestamp_validity is not None
    assert status.timestamp_validity.intact
    assert status.timestamp_validity.valid
    assert status.timestamp_validity.trusted


def test_sign_pdf_timestamp_server_down(key_dir: Path, unsigned_pdf: bytes) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ensure_signing_identity(key_dir, "Example Health")
    with pytest.raises(ReportError) as raised:
        sign_pdf(
            unsigned_pdf,
            load_signing_identity(key_dir),
            tsa_url=f"http://127.0.0.1:{port}/tsa",
            timeout=2,
        )
    assert raised.value.reason == "timestamp-failed"
