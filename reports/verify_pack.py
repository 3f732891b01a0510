"""Verify an audit pack offline, from the PDF file alone.

The checks run in this order, and each is reported by name:

1. ``signature``: the PAdES signature is cryptographically valid and the
   signed bytes are intact (pyHanko validation), and the ``/Contents``
   value contains nothing but the CMS structure and zero padding.
2. ``signature-coverage``: the signature covers the entire file; nothing
   was appended after signing (no incremental update).
3. ``certificate-trust``: the signing certificate chains to a certificate
   the auditor trusts (``trust``), byte for byte, and the signature's
   certificate set contains no certificate outside that chain. A
   self-signed or unknown certificate fails this check: a valid signature
   by an untrusted key proves nothing about who issued the pack.
4. ``manifest``: every embedded file matches its SHA-256 and size in
   ``manifest.json``, no file is missing or extra, and ``signing-cert.pem``
   is the certificate that signed.
5. ``checkpoint``: the checkpoint carries a valid signature of the log key
   (``verifier_key`` if given, else the embedded ``log-key.txt``, which is
   only as trustworthy as the pack) and matches the manifest.
6. ``entries``: every embedded entry is canonical JSON, in seq order, links
   to the entry before it by ``prev``, and lies in the period.
7. ``merkle``: the checkpoint root is recomputed from the entries and the
   range proof, or each cited entry's inclusion proof verifies against it.

All content checks read the revision that the signature covers, so bytes
appended after signing cannot change what is checked.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ledger import merkle
from ledger.canonical import canonical_bytes, parse_json
from ledger.checkpoints import open_checkpoint, parse_checkpoint
from ledger.entries import GENESIS_PREV, entry_hash, parse_entry
from ledger.errors import (
    CanonicalJSONError,
    CheckpointError,
    NoteError,
    ProofError,
    ReportError,
)
from ledger.note import Verifier, parse_verifier_key

from .pack import MANIFEST_FORMAT
from .range_proof import RangeProof, root_from_range

__all__ = [
    "CHECK_NAMES",
    "CheckOutcome",
    "PackVerification",
    "read_embedded_files",
    "verify_pack",
]

logger = logging.getLogger(__name__)

CHECK_NAMES = (
    "signature",
    "signature-coverage",
    "certificate-trust",
    "manifest",
    "checkpoint",
    "entries",
    "merkle",
)
_MAX_PACK_SIZE = 2 * 1024**3


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one named check: passed, failed, or not run (None)."""

    name: str
    passed: bool | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Return the outcome as JSON-ready data."""
        if self.passed is None:
            status = "skipped"
        else:
            status = "pass" if self.passed else "fail"
        return {"name": self.name, "status": status, "message": self.message}


@dataclass
class PackVerification:
    """The outcome of ``verify_pack``: a named boolean per check, and details.

    ``ok`` is true only when every check passed. ``key_source`` tells
    whether the checkpoint was checked with a key the caller gave
    (``given``) or with the key embedded in the pack (``embedded``).
    """

    intact: bool = False
    valid: bool = False
    coverage_entire_file: bool = False
    trusted: bool = False
    manifest_ok: bool = False
    checkpoint_ok: bool = False
    entries_ok: bool = False
    merkle_ok: bool = False
    key_source: str | None = None
    signer: str | None = None
    origin: str | None = None
    tree_size: int | None = None
    root: str | None = None
    entries_checked: int = 0
    checks: list[CheckOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return len(self.checks) == len(CHECK_NAMES) and all(
            check.passed for check in self.checks
        )

    @property
    def failed(self) -> list[str]:
        """The names of the checks that failed or could not run."""
        return [check.name for check in self.checks if not check.passed]

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        return {
            "ok": self.ok,
            "intact": self.intact,
            "valid": self.valid,
            "coverage_entire_file": self.coverage_entire_file,
            "trusted": self.trusted,
            "manifest_ok": self.manifest_ok,
            "checkpoint_ok": self.checkpoint_ok,
            "entries_ok": self.entries_ok,
            "merkle_ok": self.merkle_ok,
            "key_source": self.key_source,
            "signer": self.signer,
            "origin": self.origin,
            "tree_size": self.tree_size,
            "root": self.root,
            "entries_checked": self.entries_checked,
            "checks": [check.to_dict() for check in self.checks],
            "failed": self.failed,
        }


class _CheckFailed(Exception):
    """Raised inside a check to end it with a failure message."""


@contextmanager
def _quiet_pyhanko() -> Iterator[None]:
    # pyHanko logs a warning with a traceback for every untrusted
    # certificate; this module reports trust as a check of its own.
    loggers = [logging.getLogger(name) for name in ("pyhanko", "pyhanko_certvalidator")]
    levels = [item.level for item in loggers]
    for item in loggers:
        item.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for item, level in zip(loggers, levels, strict=True):
            item.setLevel(level)


def _load_trust(paths: Sequence[Path]) -> list[x509.Certificate]:
    certificates: list[x509.Certificate] = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise ReportError(
                f"cannot read trusted certificate {path}: {error.strerror}",
                reason="bad-trust-certificate",
            ) from None
        try:
            if b"-----BEGIN CERTIFICATE-----" in data:
                certificates.extend(x509.load_pem_x509_certificates(data))
            else:
                certificates.append(x509.load_der_x509_certificate(data))
        except ValueError:
            raise ReportError(
                f"trusted certificate file {path} contains no PEM or DER certificate",
                reason="bad-trust-certificate",
            ) from None
    return certificates


# -- signature -----------------------------------------------------------------


@dataclass
class _Signed:
    revision: bytes
    signer_der: bytes | None


def _padding_problem(contents: bytes) -> str | None:
    """Return why ``/Contents`` is more than a DER structure and zeros, or None.

    The signature value reserves room that the signer fills with zero bytes
    after the CMS structure. The byte range leaves ``/Contents`` out, so a
    change there is invisible to the digest and must be caught here.
    """
    from asn1crypto import parser

    try:
        parsed = parser.parse(contents, strict=False)
    except ValueError as error:
        return f"/Contents is not a DER structure ({error})"
    used = len(parsed[3]) + len(parsed[4]) + len(parsed[5])
    trailing = contents[used:]
    nonzero = sum(1 for byte in trailing if byte != 0)
    if nonzero:
        return (
            f"/Contents holds {nonzero} non-zero bytes after the CMS signature, "
            "where only zero padding belongs: it was changed after signing"
        )
    return None


def _certificate_set_problem(
    signature: Any, status: Any, trust: Sequence[x509.Certificate]
) -> str | None:
    """Return why the signature's certificates are not the trusted ones, or None.

    ``status.trusted`` from pyHanko means that the signer's key and name
    chain to a trust anchor. Here the certificates are compared as DER
    bytes: the chain must include a ``trust`` certificate byte for byte,
    and every certificate in the CMS ``certificates`` set (RFC 5652 5.1),
    which no signature covers, must be the signer's or one of its chain.
    A certificate changed inside ``/Contents`` (say, a different serial
    number) therefore fails trust even when the signature still verifies.
    """
    trusted = {
        certificate.public_bytes(serialization.Encoding.DER) for certificate in trust
    }
    signer = signature.signer_cert
    if signer.self_signed != "no" and signer.dump() not in trusted:
        # A self-signed certificate re-issued with the same name and key
        # chains to the original by RFC 5280 rules, but it is another
        # certificate than the one the auditor obtained.
        return (
            f"the self-signed signing certificate (SHA-256 {signer.sha256.hex()}) "
            "is not byte-identical to any certificate given with --trust, though "
            "one has the same name and key"
        )
    path = status.validation_path
    chain = {certificate.dump() for certificate in path} if path is not None else set()
    chain.add(signer.dump())
    if not chain & trusted:
        return (
            "no certificate of the signer's chain is byte-identical to a "
            "certificate given with --trust"
        )
    choices = signature.signed_data["certificates"]
    others = []
    for choice in choices if choices else ():
        if choice.name != "certificate":
            continue
        der = choice.chosen.dump()
        if der not in chain and der not in trusted:
            others.append(choice.chosen)
    if others:
        first = others[0]
        return (
            f"the signature's certificate set contains {len(others)} certificate(s) "
            f"outside the signer's chain (first: serial {first.serial_number:x}, "
            f"SHA-256 {first.sha256.hex()}); /Contents was changed after signing "
            "or the signer added certificates that do not belong to the pack"
        )
    return None


def _check_signature(
    data: bytes, trust: Sequence[x509.Certificate], result: PackVerification
) -> _Signed | None:
    """Run the three signature checks; return the signed revision's bytes."""
    from pyhanko.keys.internal import translate_pyca_cryptography_cert_to_asn1
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    def fail_all(message: str) -> None:
        result.checks.append(CheckOutcome("signature", False, message))
        for name in ("signature-coverage", "certificate-trust"):
            result.checks.append(
                CheckOutcome(name, None, "not run: no valid signature")
            )

    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        signatures = list(reader.embedded_signatures)
    except Exception as error:  # noqa: BLE001 - pyHanko raises many types on bad input
        fail_all(f"the file is not a readable PDF ({type(error).__name__}: {error})")
        return None
    if not signatures:
        fail_all("the PDF carries no signature")
        return None
    signature = signatures[0]
    context = ValidationContext(
        trust_roots=[translate_pyca_cryptography_cert_to_asn1(c) for c in trust],
        allow_fetching=False,
    )
    try:
        with _quiet_pyhanko():
            status = validate_pdf_signature(signature, context)
    except Exception as error:  # noqa: BLE001 - any failure means an invalid signature
        fail_all(f"the signature cannot be validated ({type(error).__name__}: {error})")
        return None

    padding = _padding_problem(signature.pkcs7_content)
    result.intact = bool(status.intact) and padding is None
    result.valid = bool(status.valid)
    result.signer = status.signing_cert.subject.human_friendly
    if padding is not None:
        result.checks.append(CheckOutcome("signature", False, padding))
    elif result.intact and result.valid:
        result.checks.append(
            CheckOutcome("signature", True, f"valid PAdES signature by {result.signer}")
        )
    else:
        result.checks.append(
            CheckOutcome(
                "signature",
                False,
                "the signature does not match the signed bytes (intact: "
                f"{result.intact}, valid: {result.valid}); the file was changed "
                "after signing or the signature is forged",
            )
        )

    whole = (
        status.coverage == SignatureCoverageLevel.ENTIRE_FILE and len(signatures) == 1
    )
    result.coverage_entire_file = whole
    if whole:
        result.checks.append(
            CheckOutcome(
                "signature-coverage", True, "the signature covers the entire file"
            )
        )
    else:
        result.checks.append(
            CheckOutcome(
                "signature-coverage",
                False,
                f"the signature does not cover the entire file (coverage "
                f"{status.coverage.name if status.coverage else 'unknown'}, "
                f"{len(signatures)} signatures): data was appended after signing "
                "(an incremental update)",
            )
        )

    certificates = None
    if status.trusted and result.intact and result.valid:
        certificates = _certificate_set_problem(signature, status, trust)
    result.trusted = (
        bool(status.trusted) and result.intact and result.valid and not certificates
    )
    if result.trusted:
        message = f"the certificate of {result.signer} chains to a trusted certificate"
    elif certificates is not None:
        message = f"the certificate of {result.signer} is not trusted: {certificates}"
    elif not trust:
        message = (
            "signature valid but certificate not trusted; pass --trust CERT with "
            "the signing certificate or its CA, obtained from the organisation"
            if result.intact and result.valid
            else "no valid signature to trust"
        )
    else:
        problem = status.trust_problem_indic
        message = (
            f"the certificate of {result.signer} does not chain to a trusted "
            f"certificate ({problem.name if problem else 'invalid signature'})"
        )
    result.checks.append(CheckOutcome("certificate-trust", result.trusted, message))

    start, length = signature.byte_range[2], signature.byte_range[3]
    signer_der = signature.signer_cert.dump() if signature.signer_cert else None
    return _Signed(revision=data[: start + length], signer_der=signer_der)


# -- embedded files ------------------------------------------------------------


def _name_tree_pairs(node: Any, depth: int = 0) -> Iterator[tuple[str, Any]]:
    if depth > 32:
        raise _CheckFailed("the embedded-file name tree is nested too deeply")
    node = node.get_object()
    if "/Names" in node:
        names = node["/Names"]
        for index in range(0, len(names) - 1, 2):
            yield str(names[index]), names[index + 1].get_object()
    for kid in node.get("/Kids", []):
        yield from _name_tree_pairs(kid, depth + 1)


def read_embedded_files(revision: bytes) -> dict[str, bytes]:
    """Return the files embedded in a PDF (name tree EmbeddedFiles), by name.

    Raises:
        ReportError: the PDF cannot be read, or two files share a name.
    """
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        reader = PdfFileReader(io.BytesIO(revision), strict=False)
        names = reader.root.get("/Names")
        if names is None or "/EmbeddedFiles" not in names:
            return {}
        files: dict[str, bytes] = {}
        for name, filespec in _name_tree_pairs(names["/EmbeddedFiles"]):
            if name in files:
                raise ReportError(
                    f"two embedded files are named {name!r}", reason="bad-pack"
                )
            files[name] = filespec["/EF"]["/F"].get_object().data
        return files
    except ReportError:
        raise
    except Exception as error:  # noqa: BLE001 - pyHanko raises many types on bad input
        raise ReportError(
            f"cannot read the embedded files ({type(error).__name__}: {error})",
            reason="bad-pack",
        ) from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_manifest_shape(manifest: dict[str, Any]) -> None:
    """Check the manifest fields that later checks rely on."""
    scope = manifest.get("scope")
    checkpoint = manifest.get("checkpoint")
    period = manifest.get("period")
    problems = []
    if not isinstance(manifest.get("origin"), str):
        problems.append("origin is not a string")
    if not isinstance(scope, dict) or scope.get("mode") not in ("full", "cited"):
        problems.append("scope.mode is not full or cited")
    elif not (
        _is_int(scope.get("start_seq"))
        and _is_int(scope.get("end_seq"))
        and scope["start_seq"] <= scope["end_seq"]
    ):
        problems.append("scope.start_seq and scope.end_seq are not a seq range")
    elif not isinstance(scope.get("cited_seqs"), list) or not all(
        _is_int(seq) for seq in scope["cited_seqs"]
    ):
        problems.append("scope.cited_seqs is not a list of seqs")
    if not isinstance(checkpoint, dict) or not _is_int(checkpoint.get("tree_size")):
        problems.append("checkpoint.tree_size is not a tree size")
    if not isinstance(period, dict) or not all(
        period.get(bound) is None or isinstance(period.get(bound), str)
        for bound in ("start", "end")
    ):
        problems.append("period.start and period.end are not times or null")
    if problems:
        raise _CheckFailed("manifest.json is malformed: " + "; ".join(problems))


def _check_digests(files: dict[str, bytes], listed: Any) -> None:
    """Compare the embedded files with the manifest's list: names, SHA-256, size."""
    if not isinstance(listed, dict) or not all(
        isinstance(item, dict) for item in listed.values()
    ):
        raise _CheckFailed("manifest.json lists no files")
    present = set(files) - {"manifest.json"}
    missing = sorted(set(listed) - present)
    extra = sorted(present - set(listed))
    if missing or extra:
        raise _CheckFailed(
            f"embedded files differ from the manifest: missing {missing}, "
            f"not listed {extra}"
        )

    for name in sorted(listed):
        expected = listed[name].get("sha256")
        actual = hashlib.sha256(files[name]).hexdigest()
        if actual != expected:
            raise _CheckFailed(
                f"{name}: SHA-256 mismatch: expected {expected}, actual {actual}"
            )
        if listed[name].get("size") != len(files[name]):
            raise _CheckFailed(
                f"{name}: size mismatch: expected {listed[name].get('size')}, "
                f"actual {len(files[name])}"
            )


def _check_manifest(
    files: dict[str, bytes], signer_der: bytes | None
) -> dict[str, Any]:
    # 1. The manifest parses and is of our format.
    if "manifest.json" not in files:
        raise _CheckFailed("manifest.json is not embedded")
    try:
        manifest = json.loads(files["manifest.json"])
    except ValueError as error:
        raise _CheckFailed(f"manifest.json is not JSON: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise _CheckFailed(f"manifest.json is not in the format {MANIFEST_FORMAT}")

    # 2. Every other embedded file is listed with its digest, and no more.
    _check_digests(files, manifest.get("files"))
    _check_manifest_shape(manifest)

    # 3. The embedded certificate is the one that signed.
    if "signing-cert.pem" not in files:
        raise _CheckFailed("signing-cert.pem is not embedded")
    try:
        embedded = x509.load_pem_x509_certificate(files["signing-cert.pem"])
    except ValueError:
        raise _CheckFailed("signing-cert.pem contains no PEM certificate") from None
    embedded_der = embedded.public_bytes(serialization.Encoding.DER)
    if signer_der is not None and embedded_der != signer_der:
        raise _CheckFailed(
            "signing-cert.pem is not the certificate that signed the PDF"
        )
    return manifest


# -- checkpoint, entries, Merkle tree ----------------------------------------


def _check_checkpoint(
    files: dict[str, bytes],
    manifest: dict[str, Any],
    verifier_key: str | None,
    result: PackVerification,
) -> str:
    note = files.get("checkpoint.txt")
    if note is None:
        raise _CheckFailed("checkpoint.txt is not embedded")
    note_text = note.decode("utf-8", errors="replace")
    if verifier_key is not None:
        key_text, source = verifier_key, "given"
    else:
        if "log-key.txt" not in files:
            raise _CheckFailed("log-key.txt is not embedded and no --key was given")
        key_text = files["log-key.txt"].decode("utf-8", errors="replace").strip()
        source = "embedded"
    result.key_source = source
    try:
        verifier: Verifier = parse_verifier_key(key_text.strip())
        signed = open_checkpoint(note_text, [verifier], origin=manifest.get("origin"))
    except (CheckpointError, NoteError) as error:
        raise _CheckFailed(f"{error.message}") from None
    checkpoint = signed.checkpoint
    expected = manifest["checkpoint"]
    same_size = checkpoint.size == expected.get("tree_size")
    if not same_size or checkpoint.root.hex() != expected.get("root"):
        raise _CheckFailed(
            f"the checkpoint (size {checkpoint.size}, root {checkpoint.root.hex()}) "
            f"differs from the manifest (size {expected.get('tree_size')}, root "
            f"{expected.get('root')})"
        )
    message = (
        f"checkpoint of tree size {checkpoint.size} signed by log key "
        f"{verifier.name}+{verifier.key_id:08x}"
    )
    if source == "embedded":
        message += (
            "; checked with the key embedded in the pack, which is only as "
            "trustworthy as the pack: pass --key with the log's verifier key"
        )
    return message


@dataclass
class _Entry:
    seq: int
    leaf: bytes
    prev: str
    recorded_at: str


def _parse_lines(data: bytes, name: str) -> list[_Entry]:
    if data and not data.endswith(b"\n"):
        raise _CheckFailed(f"{name} does not end with a newline")
    entries = []
    for number, line in enumerate(data.split(b"\n")[:-1] if data else [], start=1):
        try:
            entry = parse_entry(line)
            canonical = canonical_bytes(parse_json(line))
        except (CanonicalJSONError, ValueError) as error:
            raise _CheckFailed(
                f"{name} line {number} is not an entry: {error}"
            ) from None
        if canonical != line:
            raise _CheckFailed(
                f"{name} line {number} (seq {entry.seq}) is not RFC 8785 canonical JSON"
            )
        entries.append(
            _Entry(
                seq=entry.seq,
                leaf=entry_hash(line),
                prev=entry.prev,
                recorded_at=entry.recorded_at,
            )
        )
    return entries


def _check_links(entries: list[_Entry], name: str) -> None:
    previous: _Entry | None = None
    for entry in entries:
        if previous is not None and entry.seq <= previous.seq:
            raise _CheckFailed(
                f"{name}: seq {entry.seq} follows seq {previous.seq}; entries must be "
                "in increasing seq order"
            )
        if entry.seq == 0 and entry.prev != GENESIS_PREV:
            raise _CheckFailed(f"{name}: seq 0 has prev {entry.prev}, expected zeros")
        if previous is not None and entry.seq == previous.seq + 1:
            if entry.prev != previous.leaf.hex():
                raise _CheckFailed(
                    f"{name}: seq {entry.seq} prev link mismatch: expected "
                    f"{previous.leaf.hex()}, actual {entry.prev}"
                )
            if entry.recorded_at < previous.recorded_at:
                raise _CheckFailed(
                    f"{name}: seq {entry.seq} was recorded before seq {previous.seq}"
                )
        previous = entry


def _check_ranged(
    files: dict[str, bytes], scope: dict[str, Any], period: dict[str, Any]
) -> list[_Entry]:
    """Check entries.jsonl: exactly the seqs of the scope, linked, in the period."""
    if "entries.jsonl" not in files:
        raise _CheckFailed("entries.jsonl is not embedded")
    start_seq, end_seq = scope["start_seq"], scope["end_seq"]
    ranged = _parse_lines(files["entries.jsonl"], "entries.jsonl")
    seqs = [entry.seq for entry in ranged]
    if seqs != list(range(start_seq, end_seq)):
        raise _CheckFailed(
            f"entries.jsonl contains seqs {seqs[:3]}...{seqs[-3:]} ({len(seqs)} "
            f"entries), expected seq {start_seq} to {end_seq - 1}"
        )
    _check_links(ranged, "entries.jsonl")

    start, end = period.get("start"), period.get("end")
    for entry in ranged:
        before = start is not None and entry.recorded_at < start
        after = end is not None and entry.recorded_at >= end
        if before or after:
            raise _CheckFailed(
                f"entries.jsonl: seq {entry.seq} was recorded at "
                f"{entry.recorded_at}, outside the period"
            )
    return ranged


def _check_entries(
    files: dict[str, bytes], manifest: dict[str, Any]
) -> tuple[list[_Entry], list[_Entry], str]:
    scope = manifest["scope"]
    ranged: list[_Entry] = []
    in_range: set[int] = set()
    if scope["mode"] == "full":
        ranged = _check_ranged(files, scope, manifest["period"])
        in_range = set(range(scope["start_seq"], scope["end_seq"]))

    cited: list[_Entry] = []
    if "cited-entries.jsonl" in files:
        cited = _parse_lines(files["cited-entries.jsonl"], "cited-entries.jsonl")
        _check_links(cited, "cited-entries.jsonl")
    expected = [seq for seq in scope["cited_seqs"] if seq not in in_range]
    found = [entry.seq for entry in cited]
    if found != expected:
        raise _CheckFailed(
            f"cited-entries.jsonl contains seqs {found[:10]}, expected the cited "
            f"seqs {expected[:10]}"
        )
    count = len(ranged) + len(cited)
    return ranged, cited, f"{count} entries hash, link and lie in the period as stated"


def _check_range_root(
    files: dict[str, bytes], ranged: list[_Entry], root: bytes, tree_size: int
) -> str:
    if "merkle-range.json" not in files:
        raise _CheckFailed("merkle-range.json is not embedded")
    try:
        document = json.loads(files["merkle-range.json"])
        proof = RangeProof(
            tree_size=int(document["tree_size"]),
            start=int(document["start"]),
            end=int(document["end"]),
            left=tuple(bytes.fromhex(value) for value in document["left"]),
            right=tuple(bytes.fromhex(value) for value in document["right"]),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise _CheckFailed(f"merkle-range.json is malformed: {error}") from None
    first, end = ranged[0].seq, ranged[-1].seq + 1
    if (proof.start, proof.end, proof.tree_size) != (first, end, tree_size):
        raise _CheckFailed(
            f"merkle-range.json covers [{proof.start}, {proof.end}) of tree size "
            f"{proof.tree_size}, not the embedded entries [{first}, {end}) of the "
            f"checkpoint's tree size {tree_size}"
        )

    leaves = {entry.seq: entry.leaf for entry in ranged}
    try:
        computed = root_from_range(proof, leaves.__getitem__)
    except ProofError as error:
        raise _CheckFailed(error.message) from None
    if computed != root:
        raise _CheckFailed(
            f"root mismatch: the checkpoint root is {root.hex()}, the root "
            f"recomputed from the {len(ranged)} entries is {computed.hex()}"
        )
    which = "all" if first == 0 and end == tree_size else "the period's"
    return (
        f"the root recomputed from {which} {len(ranged)} entries matches the checkpoint"
    )


def _check_inclusion_proofs(
    files: dict[str, bytes], cited: list[_Entry], root: bytes, tree_size: int
) -> str:
    try:
        document = json.loads(files["inclusion-proofs.json"])
        proofs = {int(item["seq"]): item for item in document["proofs"]}
        size = int(document["tree_size"])
    except (ValueError, KeyError, TypeError) as error:
        raise _CheckFailed(
            f"inclusion-proofs.json is missing or malformed: {error}"
        ) from None
    if size != tree_size:
        raise _CheckFailed(
            f"inclusion-proofs.json is for tree size {size}, the checkpoint's is "
            f"{tree_size}"
        )

    for entry in cited:
        item = proofs.get(entry.seq)
        if item is None:
            raise _CheckFailed(f"no inclusion proof for cited seq {entry.seq}")
        try:
            hashes = [bytes.fromhex(value) for value in item["hashes"]]
            merkle.verify_inclusion(entry.seq, tree_size, entry.leaf, hashes, root)
        except (ValueError, KeyError, TypeError) as error:
            raise _CheckFailed(
                f"the inclusion proof of seq {entry.seq} is malformed: {error}"
            ) from None
        except ProofError as error:
            raise _CheckFailed(f"seq {entry.seq}: {error.message}") from None
    return f"{len(cited)} inclusion proofs verify against the checkpoint"


def _check_merkle(
    files: dict[str, bytes],
    ranged: list[_Entry],
    cited: list[_Entry],
    root: bytes,
    tree_size: int,
) -> str:
    checked = []
    if ranged:
        checked.append(_check_range_root(files, ranged, root, tree_size))
    if cited:
        checked.append(_check_inclusion_proofs(files, cited, root, tree_size))
    if not checked:
        return "no entries in the period and none cited: nothing to tie to the root"
    return "; ".join(checked)


def _run(result: PackVerification, name: str, function: Any, *args: Any) -> Any:
    try:
        value = function(*args)
    except _CheckFailed as error:
        result.checks.append(CheckOutcome(name, False, str(error)))
        return None
    return value


def _read_source(source: bytes | Path) -> bytes:
    if not isinstance(source, Path):
        return source
    try:
        if source.stat().st_size > _MAX_PACK_SIZE:
            raise ReportError(
                f"{source} is larger than {_MAX_PACK_SIZE} bytes, so it is not an "
                "audit pack",
                reason="bad-pack",
            )
        return source.read_bytes()
    except OSError as error:
        raise ReportError(
            f"cannot read {source}: {error.strerror}", reason="bad-pack"
        ) from None


def _unverified_checkpoint(files: dict[str, bytes]) -> tuple[bytes, int] | str:
    """Return (root, tree size) of the embedded checkpoint's body, or the problem.

    The Merkle check compares with this root even when the signature on the
    checkpoint failed, to locate the fault; the checkpoint check still fails.
    """
    text = files.get("checkpoint.txt", b"").decode("utf-8", errors="replace")
    try:
        parsed = parse_checkpoint(text.split("\n\n", 1)[0] + "\n")
    except CheckpointError as error:
        return error.message
    return parsed.root, parsed.size


def _check_contents(
    result: PackVerification,
    files: dict[str, bytes],
    manifest: dict[str, Any],
    verifier_key: str | None,
) -> None:
    """Run the checkpoint, entries and Merkle checks after a valid manifest."""
    message = _run(
        result, "checkpoint", _check_checkpoint, files, manifest, verifier_key, result
    )
    if message is not None:
        result.checkpoint_ok = True
        result.checks.append(CheckOutcome("checkpoint", True, message))
    checkpoint = _unverified_checkpoint(files)
    if not isinstance(checkpoint, str):
        result.root, result.tree_size = checkpoint[0].hex(), checkpoint[1]

    outcome = _run(result, "entries", _check_entries, files, manifest)
    if outcome is None:
        result.checks.append(
            CheckOutcome("merkle", None, "not run: the entries are invalid")
        )
        return
    ranged, cited, message = outcome
    result.entries_ok = True
    result.entries_checked = len(ranged) + len(cited)
    result.checks.append(CheckOutcome("entries", True, message))

    if isinstance(checkpoint, str):
        result.checks.append(
            CheckOutcome("merkle", False, f"no checkpoint root: {checkpoint}")
        )
        return
    root, tree_size = checkpoint
    message = _run(
        result, "merkle", _check_merkle, files, ranged, cited, root, tree_size
    )
    if message is not None:
        result.merkle_ok = True
        result.checks.append(CheckOutcome("merkle", True, message))


def verify_pack(
    source: bytes | Path,
    *,
    trust: Sequence[Path] = (),
    verifier_key: str | None = None,
) -> PackVerification:
    """Run every check on an audit pack; return the outcome of each.

    ``source`` is the PDF's bytes or path, and ``trust`` lists certificate
    files (PEM or DER) to trust. ``verifier_key`` is the log's verifier key
    in signed-note form (default: the key embedded in the pack).

    Raises:
        ReportError: ``source`` or a trust certificate cannot be read.
    """
    data = _read_source(source)
    trusted = _load_trust(trust)
    result = PackVerification()

    signed = _check_signature(data, trusted, result)
    revision = signed.revision if signed is not None else data
    try:
        files = read_embedded_files(revision)
    except ReportError as error:
        result.checks.append(CheckOutcome("manifest", False, error.message))
        for name in CHECK_NAMES[4:]:
            result.checks.append(CheckOutcome(name, None, "not run: no embedded files"))
        return result

    signer_der = signed.signer_der if signed is not None else None
    manifest = _run(result, "manifest", _check_manifest, files, signer_der)
    if manifest is None:
        for name in CHECK_NAMES[4:]:
            result.checks.append(CheckOutcome(name, None, "not run: no valid manifest"))
        return result
    result.manifest_ok = True
    result.origin = manifest["origin"]
    result.checks.append(
        CheckOutcome("manifest", True, f"{len(files) - 1} files match manifest.json")
    )
    _check_contents(result, files, manifest, verifier_key)
    return result
