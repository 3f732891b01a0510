"""PAdES signatures on audit packs, and the signing identity that makes them.

A pack is signed with a CMS detached signature of subfilter
ETSI.CAdES.detached (PAdES, ETSI EN 319 142-1), made by pyHanko with an
ECDSA P-256 or RSA key. By default the identity is a self-signed ECDSA P-256
certificate kept in the ledger's key directory beside the log key, as
``signing-cert.pem`` and the encrypted PKCS#8 ``signing-key.pem`` (mode
0600). An organisation can sign with its own certificate instead. A
self-signed certificate proves only that the pack is unchanged since
signing; who signed it is established by the auditor trusting the
certificate (``verify-pack --trust``).
"""

from __future__ import annotations

import io
import logging
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from ledger.errors import InputError, KeyFileError, ReportError
from ledger.keys import PASSPHRASE_ENV, passphrase_from_env, write_private_key

__all__ = [
    "CERT_FILE",
    "KEY_FILE",
    "SIGNATURE_FIELD",
    "SIGNING_PASSPHRASE_ENV",
    "SigningIdentity",
    "SigningIdentityFiles",
    "ensure_signing_identity",
    "load_pem_identity",
    "load_pkcs12_identity",
    "load_signing_identity",
    "select_identity",
    "self_signed_certificate",
    "sign_pdf",
    "signing_passphrase_from_env",
]

logger = logging.getLogger(__name__)

CERT_FILE = "signing-cert.pem"
KEY_FILE = "signing-key.pem"
SIGNATURE_FIELD = "GovLedgerAuditPack"
SIGNING_PASSPHRASE_ENV = "GOVLEDGER_SIGNING_PASSPHRASE"
# X.520 upper bound for an organization name (ub-organization-name).
_MAX_ORGANISATION_LENGTH = 64
_CERTIFICATE_DAYS = 3650
# A PEM key or certificate chain is a few kilobytes; reading stops well above.
_MAX_FILE_SIZE = 1024 * 1024

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class SigningIdentity:
    """A certificate, its private key and the certificates of its chain."""

    certificate: x509.Certificate
    private_key: PrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    def certificate_pem(self) -> bytes:
        """Return the signing certificate in PEM form."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)


class SigningIdentityFiles(NamedTuple):
    """The paths of the default signing identity, and whether it was just made."""

    certificate: Path
    private_key: Path
    created: bool


def signing_passphrase_from_env() -> bytes | None:
    """Return the passphrase of an organisation's own signing key.

    GOVLEDGER_SIGNING_PASSPHRASE wins; GOVLEDGER_KEY_PASSPHRASE is the
    fallback, as for the default identity.
    """
    value = os.environ.get(SIGNING_PASSPHRASE_ENV)
    if value:
        return os.fsencode(value)
    return passphrase_from_env()


def _check_organisation(organisation: str) -> None:
    if not organisation or organisation != organisation.strip():
        raise InputError(
            f"organisation {organisation!r} is empty or has leading or trailing "
            "spaces; give a name such as 'Example Health Ltd'",
            reason="bad-organisation",
        )
    if len(organisation) > _MAX_ORGANISATION_LENGTH:
        raise InputError(
            f"organisation {organisation[:20]!r}... is {len(organisation)} "
            f"characters long; a certificate holds at most "
            f"{_MAX_ORGANISATION_LENGTH} (X.520); give a shorter name",
            reason="bad-organisation",
        )
    if any(not char.isprintable() for char in organisation):
        raise InputError(
            f"organisation {organisation!r} contains control characters",
            reason="bad-organisation",
        )


def self_signed_certificate(
    private_key: ec.EllipticCurvePrivateKey,
    organisation: str,
    *,
    now: datetime | None = None,
) -> x509.Certificate:
    """Make a self-signed end-entity certificate for signing audit packs.

    KeyUsage is digitalSignature and contentCommitment (non-repudiation,
    RFC 5280 4.2.1.3), which PAdES validators such as pyHanko require of a
    document-signing certificate. BasicConstraints marks it as no CA.

    Raises:
        InputError: ``organisation`` is empty, too long or not printable.
    """
    _check_organisation(organisation)
    moment = now or datetime.now(UTC)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} audit packs"[:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        ]
    )
    public_key = private_key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - timedelta(hours=1))
        .not_valid_after(moment + timedelta(days=_CERTIFICATE_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
        )
        .sign(private_key, hashes.SHA256())
    )


def ensure_signing_identity(
    key_dir: Path,
    organisation: str,
    *,
    passphrase: bytes | None = None,
    unsafe_unencrypted: bool = False,
) -> SigningIdentityFiles:
    """Create the default signing identity in ``key_dir`` unless it exists.

    The identity is an ECDSA P-256 key, written encrypted as PKCS#8 with
    ``passphrase`` (default: GOVLEDGER_KEY_PASSPHRASE) to ``signing-key.pem``
    with mode 0600, and a self-signed certificate for ``organisation`` in
    ``signing-cert.pem``. An existing identity is left unchanged.

    Raises:
        InputError: ``organisation`` is not a valid name.
        KeyFileError: only one of the two files exists, no passphrase is
            set (unless ``unsafe_unencrypted``), or a file cannot be written.
    """
    key_dir = Path(key_dir)
    cert_path = key_dir / CERT_FILE
    key_path = key_dir / KEY_FILE
    if cert_path.exists() and key_path.exists():
        return SigningIdentityFiles(cert_path, key_path, created=False)
    if cert_path.exists() or key_path.exists():
        present, missing = (
            (cert_path, key_path) if cert_path.exists() else (key_path, cert_path)
        )
        raise KeyFileError(
            f"signing identity is incomplete: {present} exists but {missing} "
            "does not; restore the missing file, or move both away to create a "
            "new identity",
            reason="key-not-found",
        )
    _check_organisation(organisation)
    private_key = ec.generate_private_key(ec.SECP256R1())
    certificate = self_signed_certificate(private_key, organisation)
    # write_private_key serialises any key type to PKCS#8 PEM with mode 0600.
    write_private_key(
        key_path,
        private_key,  # type: ignore[arg-type]
        passphrase if passphrase is not None else passphrase_from_env(),
        unsafe_unencrypted=unsafe_unencrypted,
    )
    _write_public_file(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
    logger.info(
        "created signing identity for %s in %s (self-signed ECDSA P-256)",
        organisation,
        key_dir,
    )
    return SigningIdentityFiles(cert_path, key_path, created=True)


def _write_public_file(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_bytes(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise KeyFileError(
            f"cannot write {path}: {error.strerror}; check that the key "
            "directory is writable",
            reason="key-file-unwritable",
        ) from None


def _read_file(path: Path, what: str, *, private: bool) -> bytes:
    """Read a small file; a private key file must be closed to group and others."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyFileError(
            f"{what} {path} not found; check the path", reason="key-not-found"
        ) from None
    except OSError as error:
        raise KeyFileError(
            f"cannot open {what} {path}: {error.strerror}",
            reason="key-file-unreadable",
        ) from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise KeyFileError(
                f"{what} {path} is not a regular file", reason="key-file-unreadable"
            )
        mode = stat.S_IMODE(status.st_mode)
        if private and mode & 0o077:
            raise KeyFileError(
                f"{what} {path} is too open: mode {mode:04o} lets group or others "
                f"access it; expected 0600. Run `chmod 600 {path}` and consider "
                "the key exposed if others could read it",
                reason="key-file-too-open",
            )
        with os.fdopen(descriptor, "rb", closefd=False) as file:
            data = file.read(_MAX_FILE_SIZE + 1)
    finally:
        os.close(descriptor)
    if len(data) > _MAX_FILE_SIZE:
        raise KeyFileError(
            f"{what} {path} is larger than {_MAX_FILE_SIZE} bytes",
            reason="malformed-key-file",
        )
    return data


def _check_key(key: object, path: Path) -> PrivateKey:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1 | ec.SECP521R1):
            raise KeyFileError(
                f"signing key {path} is on curve {key.curve.name}; use P-256, "
                "P-384 or P-521, which PDF validators accept",
                reason="malformed-key-file",
            )
        return key
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise KeyFileError(
                f"signing key {path} is RSA-{key.key_size}; use at least 2048 bits",
                reason="malformed-key-file",
            )
        return key
    raise KeyFileError(
        f"signing key {path} is a {type(key).__name__}; use an ECDSA or RSA key",
        reason="malformed-key-file",
    )


def _load_pem_key(
    path: Path, data: bytes, passphrase: bytes | None, *, unsafe_unencrypted: bool
) -> PrivateKey:
    # PKCS#8 ("ENCRYPTED PRIVATE KEY") or traditional OpenSSL encryption.
    encrypted = b"ENCRYPTED PRIVATE KEY" in data or b"Proc-Type: 4,ENCRYPTED" in data
    if encrypted and not passphrase:
        raise KeyFileError(
            f"signing key {path} is encrypted and no passphrase was given; set "
            f"{SIGNING_PASSPHRASE_ENV} or {PASSPHRASE_ENV}",
            reason="no-passphrase",
        )
    try:
        key = serialization.load_pem_private_key(
            data, passphrase if encrypted else None
        )
    except (ValueError, TypeError):
        raise KeyFileError(
            f"cannot load signing key {path}: the passphrase is wrong or the file "
            "is not a PEM private key",
            reason="wrong-passphrase" if encrypted else "malformed-key-file",
        ) from None
    if not encrypted:
        if not unsafe_unencrypted:
            raise KeyFileError(
                f"signing key {path} is not encrypted; encrypt it with a "
                "passphrase (openssl pkcs8 -topk8 -v2 aes256), or allow it "
                "explicitly with unsafe_unencrypted",
                reason="unencrypted-key",
            )
        logger.warning(
            "loaded unencrypted signing key %s (unsafe_unencrypted is set); "
            "anyone who can read the file can sign audit packs",
            path,
        )
    return _check_key(key, path)


def _load_certificates(path: Path) -> list[x509.Certificate]:
    data = _read_file(path, "certificate file", private=False)
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise KeyFileError(
            f"certificate file {path} contains no PEM or DER X.509 certificate",
            reason="malformed-certificate",
        ) from None


def _identity(
    certificate: x509.Certificate,
    private_key: PrivateKey,
    chain: list[x509.Certificate],
    source: str,
) -> SigningIdentity:
    if (
        certificate.public_key().public_numbers()
        != private_key.public_key().public_numbers()
    ):
        raise KeyFileError(
            f"the certificate in {source} does not belong to the private key; "
            "give the certificate issued for this key",
            reason="key-mismatch",
        )
    return SigningIdentity(certificate, private_key, tuple(chain))


def load_signing_identity(
    key_dir: Path,
    *,
    passphrase: bytes | None = None,
    unsafe_unencrypted: bool = False,
) -> SigningIdentity:
    """Load the default signing identity from ``key_dir``.

    Raises:
        KeyFileError: a file is missing, too open, malformed, or the
            passphrase (default: GOVLEDGER_KEY_PASSPHRASE) is wrong.
    """
    key_dir = Path(key_dir)
    key_path = key_dir / KEY_FILE
    cert_path = key_dir / CERT_FILE
    data = _read_file(key_path, "signing key", private=True)
    key = _load_pem_key(
        key_path,
        data,
        passphrase if passphrase is not None else passphrase_from_env(),
        unsafe_unencrypted=unsafe_unencrypted,
    )
    certificates = _load_certificates(cert_path)
    return _identity(certificates[0], key, certificates[1:], str(cert_path))


def load_pem_identity(
    cert_path: Path,
    key_path: Path,
    *,
    passphrase: bytes | None = None,
    unsafe_unencrypted: bool = False,
) -> SigningIdentity:
    """Load an organisation's certificate (PEM chain, leaf first) and PEM key.

    The passphrase defaults to GOVLEDGER_SIGNING_PASSPHRASE, then
    GOVLEDGER_KEY_PASSPHRASE.

    Raises:
        KeyFileError: a file is missing, malformed, the key is too open,
            unencrypted (unless ``unsafe_unencrypted``), of an unsupported
            type, or does not match the certificate.
    """
    data = _read_file(Path(key_path), "signing key", private=True)
    key = _load_pem_key(
        Path(key_path),
        data,
        passphrase if passphrase is not None else signing_passphrase_from_env(),
        unsafe_unencrypted=unsafe_unencrypted,
    )
    certificates = _load_certificates(Path(cert_path))
    return _identity(certificates[0], key, certificates[1:], str(cert_path))


def load_pkcs12_identity(
    path: Path, *, passphrase: bytes | None = None
) -> SigningIdentity:
    """Load an organisation's identity from a PKCS#12 file (.p12, .pfx).

    The passphrase defaults to GOVLEDGER_SIGNING_PASSPHRASE, then
    GOVLEDGER_KEY_PASSPHRASE.

    Raises:
        KeyFileError: the file is missing, too open, malformed, the
            passphrase is wrong, or it contains no key and certificate.
    """
    path = Path(path)
    data = _read_file(path, "PKCS#12 file", private=True)
    secret = passphrase if passphrase is not None else signing_passphrase_from_env()
    try:
        bundle = pkcs12.load_pkcs12(data, secret)
    except ValueError:
        raise KeyFileError(
            f"cannot load PKCS#12 file {path}: the passphrase is wrong or the file "
            f"is damaged; set {SIGNING_PASSPHRASE_ENV} to its passphrase",
            reason="wrong-passphrase",
        ) from None
    if bundle.key is None or bundle.cert is None:
        raise KeyFileError(
            f"PKCS#12 file {path} contains no private key and certificate pair",
            reason="malformed-key-file",
        )
    key = _check_key(bundle.key, path)
    chain = [item.certificate for item in bundle.additional_certs]
    return _identity(bundle.cert.certificate, key, chain, str(path))


def sign_pdf(
    pdf: bytes,
    identity: SigningIdentity,
    *,
    tsa_url: str | None = None,
    reason: str = "govledger audit pack",
    signer_name: str | None = None,
    timeout: float = 10.0,
) -> bytes:
    """Sign a PDF with a PAdES signature (ETSI.CAdES.detached); return the bytes.

    The signature is an incremental update over ``pdf`` whose byte range
    covers the whole resulting file. With ``tsa_url`` the signature also
    gets an RFC 3161 timestamp from that server (PAdES B-T).

    Raises:
        ReportError: pyHanko cannot sign the file (``signing-failed``) or
            the timestamp server fails (``timestamp-failed``).
    """
    from pyhanko.keys.internal import (
        translate_pyca_cryptography_cert_to_asn1,
        translate_pyca_cryptography_key_to_asn1,
    )
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigSeedSubFilter
    from pyhanko.sign.general import SigningError
    from pyhanko.sign.timestamps.common_utils import TimestampRequestError
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    certificate = translate_pyca_cryptography_cert_to_asn1(identity.certificate)
    chain = [translate_pyca_cryptography_cert_to_asn1(item) for item in identity.chain]
    signer = signers.SimpleSigner(
        signing_cert=certificate,
        signing_key=translate_pyca_cryptography_key_to_asn1(identity.private_key),
        # pyHanko adds signing_cert to the CMS certificate set itself; also
        # listing it here would embed it twice.
        cert_registry=SimpleCertificateStore.from_certs(chain),
    )
    metadata = signers.PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD,
        subfilter=SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        reason=reason,
        name=signer_name,
    )
    timestamper = None
    if tsa_url:
        from pyhanko.sign.timestamps.requests_client import RequestsHTTPTimeStamper

        timestamper = RequestsHTTPTimeStamper(tsa_url, timeout=timeout)
    output = io.BytesIO()
    try:
        signers.PdfSigner(metadata, signer=signer, timestamper=timestamper).sign_pdf(
            IncrementalPdfFileWriter(io.BytesIO(pdf)), output=output
        )
    except TimestampRequestError as error:
        raise ReportError(
            f"timestamp server {tsa_url} failed: {error}; check --tsa-url or "
            "sign without a timestamp",
            reason="timestamp-failed",
        ) from None
    except (SigningError, ValueError) as error:
        raise ReportError(
            f"signing the audit pack failed: {error}", reason="signing-failed"
        ) from None
    return output.getvalue()


def select_identity(
    key_dir: Path,
    organisation: str,
    *,
    cert: Path | None = None,
    key: Path | None = None,
    pkcs12_file: Path | None = None,
    unsafe_unencrypted: bool = False,
) -> SigningIdentity:
    """Return the identity that signs a pack: the organisation's own, or the default.

    ``cert`` with ``key``, or ``pkcs12_file``, name the organisation's own
    identity. Without them the default identity in ``key_dir`` is used and
    created first, for ``organisation``, if ``govledger init`` did not.

    Raises:
        InputError: the options are combined wrongly.
        KeyFileError: an identity cannot be loaded or created.
    """
    if pkcs12_file is not None and (cert is not None or key is not None):
        raise InputError(
            "give either --pkcs12 or --cert with --key, not both", reason="bad-identity"
        )
    if pkcs12_file is not None:
        return load_pkcs12_identity(pkcs12_file)
    if cert is not None or key is not None:
        if cert is None or key is None:
            missing = "--key" if key is None else "--cert"
            raise InputError(
                f"{missing} is missing: --cert and --key are given together",
                reason="bad-identity",
            )
        return load_pem_identity(cert, key, unsafe_unencrypted=unsafe_unencrypted)
    ensure_signing_identity(
        key_dir, organisation, unsafe_unencrypted=unsafe_unencrypted
    )
    return load_signing_identity(key_dir, unsafe_unencrypted=unsafe_unencrypted)
