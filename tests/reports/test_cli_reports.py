"""The report, verify-pack and export --format oscal-ar commands.

verify-pack, the error paths and one report with the real policies run as
real processes. The other report and export tests run in-process through
click's runner, because they replace policy evaluation with a fixed
evaluation of the real ledger.
"""

from __future__ import annotations

import getpass
import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import policies
from cli import cli
from ledger import Ledger, LedgerConfig
from reports.verify_pack import verify_pack

from .support import byte_range, evaluation_for, populate

CLI = Path(__file__).resolve().parents[2] / "cli.py"


def _run(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(CLI), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture
def fake_evaluate(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def evaluate(
        ledger: Ledger,
        frameworks: list[str] | None,
        *,
        start: str | None,
        end: str | None,
        verification: Any = None,
    ):
        calls.append(
            {
                "frameworks": frameworks,
                "start": start,
                "end": end,
                "verified": verification is not None and verification.ok,
            }
        )
        return evaluation_for(ledger, start=start, end=end)

    monkeypatch.setattr(policies, "evaluate", evaluate, raising=False)
    return calls


@pytest.fixture
def initialised(tmp_path: Path) -> tuple[str, Path]:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    key_dir = tmp_path / "keys"
    result = CliRunner().invoke(
        cli,
        [
            "--db",
            db,
            "--key-dir",
            str(key_dir),
            "init",
            "--origin",
            "test.example/ledger",
        ],
    )
    assert result.exit_code == 0, result.output
    with Ledger.open(db, config=LedgerConfig(key_dir=key_dir)) as ledger:
        populate(ledger, days=2)
    return db, key_dir


def test_init_creates_signing_identity(initialised: tuple[str, Path]) -> None:
    _, key_dir = initialised
    key = key_dir / "signing-key.pem"
    cert = key_dir / "signing-cert.pem"
    assert cert.exists()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")


def test_report_command_writes_verified_pack(
    initialised: tuple[str, Path], fake_evaluate: list[dict[str, Any]], tmp_path: Path
) -> None:
    db, key_dir = initialised
    out = tmp_path / "pack.pdf"
    # The real clock recorded the entries, so a period around today contains them.
    today = datetime.now(UTC).date()
    start = (today - timedelta(days=1)).isoformat()
    end = (today + timedelta(days=2)).isoformat()
    result = CliRunner().invoke(
        cli,
        [
            "--db",
            db,
            "--key-dir",
            str(key_dir),
            "--json",
            "report",
            "--framework",
            "gdpr",
            "--framework",
            "eu_ai_act",
            "--from",
            start,
            "--to",
            end,
            "--out",
            str(out),
            "--organisation",
            "Example Health",
        ],
    )

    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    with Ledger.open(db, config=LedgerConfig(key_dir=key_dir)) as ledger:
        entry = ledger.get(data["report_issued_seq"])
        log_key = ledger.signer().verifier_key()

    verification = verify_pack(
        out, trust=[key_dir / "signing-cert.pem"], verifier_key=log_key
    )
    assert fake_evaluate == [
        {
            "frameworks": ["gdpr", "eu_ai_act"],
            "start": f"{start}T00:00:00.000000Z",
            "end": f"{end}T00:00:00.000000Z",
            "verified": True,
        }
    ]
    assert verification.ok, verification.failed
    assert entry.kind == "report_issued"
    assert entry.record["pack_sha256"] == data["sha256"]
    assert data["manifest"]["scope"]["start_seq"] == 0
    assert data["manifest"]["scope"]["end_seq"] == 42


def _report_actor(
    db: str, key_dir: Path, out: Path, monkeypatch: pytest.MonkeyPatch, *extra: str
) -> str:
    """Run `report` in-process; return the actor of its report_issued entry."""
    monkeypatch.delenv("GOVLEDGER_ACTOR", raising=False)
    result = CliRunner().invoke(
        cli,
        [
            "--db",
            db,
            "--key-dir",
            str(key_dir),
            "--json",
            "report",
            "--framework",
            "gdpr",
            "--out",
            str(out),
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    seq = json.loads(result.output)["report_issued_seq"]
    with Ledger.open(db, config=LedgerConfig(key_dir=key_dir)) as ledger:
        return str(ledger.get(seq).record["actor"])


def test_report_actor_option_names_issuer(
    initialised: tuple[str, Path],
    fake_evaluate: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db, key_dir = initialised
    actor = _report_actor(
        db, key_dir, tmp_path / "p.pdf", monkeypatch, "--actor", "user:officer-7"
    )
    assert actor == "user:officer-7"


def test_report_actor_defaults_to_login_name(
    initialised: tuple[str, Path],
    fake_evaluate: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db, key_dir = initialised
    actor = _report_actor(db, key_dir, tmp_path / "p.pdf", monkeypatch)
    assert actor == f"user:{getpass.getuser()}"
    assert actor != "svc:govledger"


def test_report_invalid_actor_is_usage_error(
    initialised: tuple[str, Path], tmp_path: Path
) -> None:
    db, key_dir = initialised
    with Ledger.open(db, config=LedgerConfig(key_dir=key_dir)) as ledger:
        size = ledger.size
    result = _run(
        "--db",
        db,
        "--key-dir",
        str(key_dir),
        "report",
        "--framework",
        "gdpr",
        "--out",
        str(tmp_path / "p.pdf"),
        "--actor",
        "officer",
    )
    with Ledger.open(db, config=LedgerConfig(key_dir=key_dir)) as ledger:
        size_after = ledger.size
    assert result.returncode == 2, result.stderr
    assert "actor 'officer'" in result.stderr
    assert size_after == size
    assert not (tmp_path / "p.pdf").exists()


def test_export_oscal_ar(
    initialised: tuple[str, Path], fake_evaluate: list[dict[str, Any]], tmp_path: Path
) -> None:
    db, key_dir = initialised
    out = tmp_path / "ar.json"
    result = CliRunner().invoke(
        cli,
        [
            "--db",
            db,
            "--key-dir",
            str(key_dir),
            "export",
            "--format",
            "oscal-ar",
            "--framework",
            "gdpr",
            "--out",
            str(out),
        ],
    )
    document = json.loads(out.read_text(encoding="utf-8"))
    assert result.exit_code == 0, result.output
    assert document["assessment-results"]["metadata"]["oscal-version"] == "1.1.2"
    assert fake_evaluate[0]["frameworks"] == ["gdpr"]


def test_export_default_is_jsonl(initialised: tuple[str, Path]) -> None:
    db, key_dir = initialised
    result = _run("--db", db, "--key-dir", str(key_dir), "export")
    lines = result.stdout.splitlines()
    assert result.returncode == 0
    assert len(lines) == 42
    assert json.loads(lines[0])["seq"] == 0


def test_export_oscal_ar_with_real_policies(initialised: tuple[str, Path]) -> None:
    db, key_dir = initialised
    result = _run(
        "--db", db, "--key-dir", str(key_dir), "export", "--format", "oscal-ar"
    )
    document = json.loads(result.stdout)
    findings = document["assessment-results"]["results"][0]["findings"]
    assert result.returncode == 0, result.stderr
    assert document["assessment-results"]["metadata"]["oscal-version"] == "1.1.2"
    assert len(findings) > 10


def test_report_and_verify_pack_with_real_policies(
    initialised: tuple[str, Path], tmp_path: Path
) -> None:
    db, key_dir = initialised
    out = tmp_path / "pack.pdf"
    report = _run(
        "--db",
        db,
        "--key-dir",
        str(key_dir),
        "report",
        "--framework",
        "gdpr",
        "--framework",
        "eu-ai-act",
        "--out",
        str(out),
        "--organisation",
        "Example Health",
    )
    with Ledger.open(db, config=LedgerConfig(key_dir=key_dir)) as ledger:
        log_key = ledger.signer().verifier_key()
        last = ledger.get(ledger.size - 1)
    verified = _run(
        "verify-pack",
        str(out),
        "--trust",
        str(key_dir / "signing-cert.pem"),
        "--key",
        log_key,
    )
    assert report.returncode == 0, report.stderr
    assert verified.returncode == 0, verified.stdout
    assert last.kind == "report_issued"
    assert last.record["frameworks"] == ["gdpr", "eu-ai-act"]


def test_report_unknown_framework_is_usage_error(
    initialised: tuple[str, Path], tmp_path: Path
) -> None:
    db, key_dir = initialised
    result = _run(
        "--db",
        db,
        "--key-dir",
        str(key_dir),
        "report",
        "--framework",
        "sox",
        "--out",
        str(tmp_path / "p.pdf"),
    )
    assert result.returncode == 2
    assert "unknown framework 'sox'" in result.stderr
    assert not (tmp_path / "p.pdf").exists()


def test_report_cert_without_key_is_usage_error(
    initialised: tuple[str, Path], tmp_path: Path
) -> None:
    db, key_dir = initialised
    result = _run(
        "--db",
        db,
        "--key-dir",
        str(key_dir),
        "report",
        "--framework",
        "gdpr",
        "--out",
        str(tmp_path / "p.pdf"),
        "--cert",
        str(key_dir / "signing-cert.pem"),
    )
    assert result.returncode == 2
    assert "--key is missing" in result.stderr
    assert not (tmp_path / "p.pdf").exists()


def test_report_bad_period_is_usage_error(
    initialised: tuple[str, Path], fake_evaluate: list[dict[str, Any]], tmp_path: Path
) -> None:
    db, key_dir = initialised
    result = CliRunner().invoke(
        cli,
        [
            "--db",
            db,
            "--key-dir",
            str(key_dir),
            "report",
            "--framework",
            "gdpr",
            "--from",
            "last tuesday",
            "--out",
            str(tmp_path / "p.pdf"),
        ],
    )
    assert result.exit_code != 0
    assert "--from 'last tuesday'" in str(result.exception)
    assert fake_evaluate == []


def test_verify_pack_command_passes(base_pack) -> None:
    result = _run(
        "verify-pack",
        str(base_pack.path),
        "--trust",
        str(base_pack.cert_path),
        "--key",
        base_pack.log_key,
    )
    assert result.returncode == 0, result.stdout
    assert "ok: all 7 checks passed" in result.stdout


def test_verify_pack_command_untrusted_exits_1(base_pack) -> None:
    result = _run("--json", "verify-pack", str(base_pack.path))
    data = json.loads(result.stdout)
    assert result.returncode == 1
    assert data["failed"] == ["certificate-trust"]
    assert data["valid"] is True
    assert data["trusted"] is False


def test_verify_pack_command_names_signature(base_pack, tmp_path: Path) -> None:
    data = bytearray(base_pack.data)
    data[byte_range(base_pack.data)[1] // 3] ^= 0x20
    path = tmp_path / "flipped.pdf"
    path.write_bytes(bytes(data))
    result = _run(
        "verify-pack",
        str(path),
        "--trust",
        str(base_pack.cert_path),
        "--key",
        base_pack.log_key,
    )
    assert result.returncode == 1
    assert "FAIL signature:" in result.stdout
    assert "FAILED: signature" in result.stdout


def test_verify_pack_command_missing_file(tmp_path: Path) -> None:
    result = _run("verify-pack", str(tmp_path / "absent.pdf"))
    assert result.returncode == 2
