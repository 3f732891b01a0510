"""Builders shared by the report tests: ledgers with records, evaluations, packs.

Policy evaluation is built by its own package; these tests construct
``Evaluation`` objects by hand, with the tree size and root of the real
ledger, so that packs are checked against real entries.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ledger import Ledger, LedgerConfig
from policies.model import (
    CheckResult,
    ControlResult,
    Evaluation,
    Finding,
    FrameworkResult,
)
from reports.render import EmbeddedFile, html_to_pdf
from reports.signing import SigningIdentity, self_signed_certificate, sign_pdf

ORIGIN = "test.example/ledger"
PASSPHRASE = b"test-passphrase"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand, so recorded_at values are known."""

    def __init__(self, moment: datetime = START) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def create_ledger(url: str, key_dir: Path, clock: Clock | None = None) -> Ledger:
    return Ledger.create(
        url,
        origin=ORIGIN,
        config=LedgerConfig(key_dir=key_dir, passphrase=PASSPHRASE),
        clock=clock,
    )


def decision(index: int) -> dict:
    return {
        "kind": "decision",
        "actor": "svc:triage-model",
        "occurred_at": "2026-03-02T08:00:00Z",
        "item": {"dataset": "triage", "id": f"case-{index}"},
        "model": {"name": "triage", "version": "2.1"},
        "output": {"label": "urgent" if index % 3 else "routine"},
        "confidence": (index % 10) / 10 + 0.05,
    }


def review(target: int, verdict: str) -> dict:
    return {
        "kind": "review",
        "actor": "user:reviewer-1",
        "occurred_at": "2026-03-02T09:00:00Z",
        "target": {"seq": target},
        "verdict": verdict,
    }


def annotation(item: int, annotator: int, label: str) -> dict:
    return {
        "kind": "annotation",
        "actor": f"user:annotator-{annotator}",
        "occurred_at": "2026-03-02T07:00:00Z",
        "item": {"dataset": "triage", "id": f"case-{item}"},
        "label": label,
    }


def populate(ledger: Ledger, clock: Clock | None = None, days: int = 3) -> None:
    """Append a day of decisions, reviews and annotations per day of ``days``."""
    for day in range(days):
        if clock is not None:
            clock.moment = START + timedelta(days=day)
        base = ledger.size
        ledger.append_many([decision(base + i) for i in range(10)])
        verdicts = ["accept", "reject", "correct", "accept", "escalate"]
        ledger.append_many([review(base + i, verdicts[i % 5]) for i in range(0, 10, 2)])
        ledger.append_many(
            [
                annotation(
                    item, annotator, "urgent" if (item + annotator) % 3 else "routine"
                )
                for item in range(3)
                for annotator in range(2)
            ]
        )


def evaluation_for(
    ledger: Ledger,
    *,
    cited: tuple[int, ...] = (1, 3),
    start: str | None = None,
    end: str | None = None,
    message: str = "decisions below the confidence threshold were not reviewed",
    controls: int = 0,
) -> Evaluation:
    """Build an evaluation of the ledger's current tree with fixed results.

    ``controls`` adds that many extra controls to a third framework, to make
    a table run over several pages.
    """
    finding = Finding(
        check="human-oversight",
        severity="high",
        message=message,
        seqs=cited,
        count=len(cited),
    )
    oversight = CheckResult(
        id="human-oversight",
        title="Human oversight of model decisions",
        status="partially-satisfied",
        rationale="Some decisions below the threshold had no review.",
        figures={"review_coverage": 0.5, "unreviewed": len(cited)},
        findings=(finding,) if cited else (),
    )
    logging_check = CheckResult(
        id="record-keeping",
        title="Record keeping",
        status="satisfied",
        rationale="Every decision names its model and version.",
        figures={"decisions": 30},
    )
    gdpr = FrameworkResult(
        id="gdpr",
        title="GDPR",
        version="2016/679",
        controls=(
            ControlResult(
                framework="gdpr",
                control_id="Art. 22(3)",
                title="Human intervention in automated decisions",
                description="Data subjects can obtain human intervention.",
                status="partially-satisfied",
                rationale="Some decisions had no human review.",
                checks=("human-oversight",),
                figures={"review_coverage": 0.5},
                findings=(finding,) if cited else (),
            ),
            ControlResult(
                framework="gdpr",
                control_id="Art. 30",
                title="Records of processing",
                description="Processing is recorded.",
                status="satisfied",
                rationale="All processing is recorded.",
                checks=("record-keeping",),
            ),
        ),
    )
    ai_act = FrameworkResult(
        id="eu_ai_act",
        title="EU AI Act",
        version="2024/1689",
        controls=(
            ControlResult(
                framework="eu_ai_act",
                control_id="Art. 14",
                title="Human oversight",
                description="High-risk systems allow human oversight.",
                status="not-assessed",
                rationale="No oversight assignments were recorded.",
                checks=("human-oversight",),
            ),
            ControlResult(
                framework="eu_ai_act",
                control_id="Art. 12",
                title="Record-keeping",
                description="Events are logged automatically.",
                status="not-satisfied",
                rationale="Logs lack retention settings.",
                checks=("record-keeping",),
            ),
            ControlResult(
                framework="eu_ai_act",
                control_id="Art. 5",
                title="Prohibited practices",
                description="No prohibited practice is used.",
                status="not-applicable",
                rationale="No records of the kinds this article governs.",
                checks=(),
            ),
        ),
    )
    frameworks = [gdpr, ai_act]
    if controls:
        frameworks.append(
            FrameworkResult(
                id="iso42001",
                title="ISO/IEC 42001",
                version="2023",
                controls=tuple(
                    ControlResult(
                        framework="iso42001",
                        control_id=f"A.{index // 10 + 2}.{index % 10 + 1}",
                        title=f"Control number {index} of the management system",
                        description="A control.",
                        status="satisfied",
                        rationale="The records show the control operating.",
                        checks=("record-keeping",),
                    )
                    for index in range(controls)
                ),
            )
        )
    size = ledger.size
    return Evaluation(
        period_start=start,
        period_end=end,
        evaluated_at="2026-03-10T12:00:00.000000Z",
        tree_size=size,
        root=ledger.root(size).hex(),
        policy={"review_below_confidence": 0.8, "review_deadline_hours": 48},
        policy_seq=None,
        checks=(oversight, logging_check),
        frameworks=tuple(frameworks),
    )


def other_identity(organisation: str = "Forger Ltd") -> SigningIdentity:
    """An in-memory identity that is not the pack's, for re-signing tampered packs."""
    key = ec.generate_private_key(ec.SECP256R1())
    return SigningIdentity(self_signed_certificate(key, organisation), key)


def write_certificate(path: Path, certificate: x509.Certificate) -> Path:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def rebuild_pack(files: dict[str, bytes], identity: SigningIdentity) -> bytes:
    """Embed ``files`` in a new PDF and sign it, as a forger would."""
    pdf = html_to_pdf(
        "<html><body><p>rebuilt pack</p></body></html>",
        [
            EmbeddedFile(name=name, data=data, description=name)
            for name, data in files.items()
        ],
        moment=START,
    )
    return sign_pdf(pdf, identity)


def update_manifest(files: dict[str, bytes], *names: str) -> None:
    """Recompute the manifest entries of ``names`` from the current files."""
    import json

    manifest = json.loads(files["manifest.json"])
    for name in names:
        manifest["files"][name]["sha256"] = hashlib.sha256(files[name]).hexdigest()
        manifest["files"][name]["size"] = len(files[name])
    files["manifest.json"] = (
        json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    ).encode()


def byte_range(pdf: bytes) -> list[int]:
    match = re.search(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", pdf)
    assert match is not None, "no /ByteRange in the PDF"
    return [int(value) for value in match.groups()]


def poppler(tool: str, *args: str) -> str:
    """Run a poppler-utils tool and return its standard output."""
    path = shutil.which(tool)
    assert path, f"{tool} is missing: install poppler-utils (scripts/system-deps.sh)"
    result = subprocess.run(
        [path, *args], capture_output=True, text=True, timeout=60, check=False
    )
    return result.stdout + result.stderr


def attachment_names(pdf_path: Path) -> list[str]:
    output = poppler("pdfdetach", "-list", str(pdf_path))
    return [
        line.split(": ", 1)[1].strip()
        for line in output.splitlines()
        if re.match(r"^\d+: ", line)
    ]


def pdf_text(pdf_path: Path, *args: str) -> str:
    return poppler("pdftotext", "-layout", *args, str(pdf_path), "-")


def page_count(pdf_path: Path) -> int:
    info = poppler("pdfinfo", str(pdf_path))
    line = next(line for line in info.splitlines() if line.startswith("Pages:"))
    return int(line.split()[-1])


def unwrap(text: str) -> str:
    """Join the lines of extracted text, as a long line wraps in the PDF."""
    return "".join(line.strip() for line in text.splitlines())


@dataclass
class ConnectionCounter:
    """A listening socket on 127.0.0.1 that counts connections until closed."""

    connections: int = 0
    _socket: socket.socket = field(init=False)
    _thread: threading.Thread = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self._socket.settimeout(0.1)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()
