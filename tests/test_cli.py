"""The govledger command line, run as a real process on real ledger files."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DATA

CLI = Path(__file__).resolve().parents[1] / "cli.py"
PRODIGY = DATA / "prodigy_pydata-ams-2023.jsonl"

DECISION = {
    "kind": "decision",
    "actor": "svc:triage-model",
    "occurred_at": "2026-05-01T08:30:00Z",
    "item": {"dataset": "triage", "id": "case-1"},
    "model": {"name": "triage", "version": "2.0"},
    "output": "urgent",
    "confidence": 0.73,
}


class Runner:
    """Run govledger against one ledger file and key directory."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.db = f"sqlite:///{tmp_path / 'ledger.db'}"
        self.key_dir = tmp_path / "keys"

    def __call__(
        self, *args: str, input_text: str | None = None, check: int | None = 0
    ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, GOVLEDGER_KEY_DIR=str(self.key_dir))
        result = subprocess.run(
            [sys.executable, str(CLI), "--db", self.db, *args],
            input=input_text,
            capture_output=True,
            text=True,
            env=env,
            cwd=self.tmp_path,
            timeout=120,
        )
        assert "Traceback" not in result.stderr, result.stderr
        if check is not None:
            assert result.returncode == check, (result.stdout, result.stderr)
        return result

    def write(self, name: str, text: str) -> Path:
        path = self.tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    runner = Runner(tmp_path)
    runner("init", "--origin", "cli.example/ledger")
    return runner


def size_of(run: Runner) -> int:
    return json.loads(run("--json", "stats").stdout)["entries"]


def test_init_prints_verifier_key_and_protects_key(run: Runner) -> None:
    shown = run("keys", "show").stdout.strip()
    assert shown.startswith("cli.example/ledger+")
    key_files = list(run.key_dir.glob("log-*.pem"))
    assert len(key_files) == 1
    assert stat.S_IMODE(key_files[0].stat().st_mode) == 0o600
    assert key_files[0].read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY")


def test_init_twice_fails_cleanly(run: Runner) -> None:
    result = run("init", check=3)
    assert "already contains a ledger" in result.stderr


def test_append_prints_signed_receipt(run: Runner) -> None:
    path = run.write("record.json", json.dumps(DECISION))
    receipt = json.loads(run("--json", "append", str(path)).stdout)
    assert set(receipt) == {
        "origin",
        "seq",
        "entry_hash",
        "recorded_at",
        "key_id",
        "signature",
    }
    shown = json.loads(run("--json", "show", "0").stdout)
    assert shown["entry_hash"] == receipt["entry_hash"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (json.dumps(DECISION).replace("0.73", "NaN"), "confidence"),
        (
            json.dumps({**DECISION, "output": {"count": 9007199254740993}}),
            "output.count",
        ),
        (json.dumps(DECISION).replace('"urgent"', '"\\ud800"'), "output"),
        ('{"actor": "user:a", "actor": "user:b"}', "duplicate key"),
        (json.dumps({**DECISION, "occurred_at": "2026-01-01T10:00:00"}), "time zone"),
        (json.dumps({**DECISION, "confidnce": 0.9}), "confidnce"),
        (json.dumps({**DECISION, "confidence": 1.0000001}), "confidence"),
        (json.dumps({**DECISION, "confidence": -0.1}), "confidence"),
        ("{not json", "invalid JSON"),
    ],
)
def test_append_invalid_record_exits_2(run: Runner, text: str, words: str) -> None:
    result = run("append", "-", input_text=text, check=2)
    assert words in result.stderr
    assert size_of(run) == 0


def test_batch_with_bad_record_names_index(run: Runner) -> None:
    batch = [
        {**DECISION, "item": {"dataset": "triage", "id": f"case-{i}"}}
        for i in range(1000)
    ]
    batch[417]["confidence"] = 7
    path = run.write("batch.json", json.dumps(batch))
    result = run("append", str(path), check=2)
    assert "record 417" in result.stderr
    assert "confidence" in result.stderr
    assert size_of(run) == 0


def test_import_records_bad_line_writes_nothing(run: Runner) -> None:
    lines = [json.dumps(DECISION)] * 3 + ['{"kind": "decision", "confidence": NaN}']
    path = run.write("records.jsonl", "\n".join(lines) + "\n")
    result = run("import", str(path), "--format", "records", check=2)
    assert "line 4" in result.stderr
    assert "confidence" in result.stderr
    assert size_of(run) == 0


def test_import_prodigy_is_idempotent(run: Runner) -> None:
    first = json.loads(
        run("--json", "import", str(PRODIGY), "--format", "prodigy").stdout
    )
    assert first["appended"] == 3372
    second = json.loads(
        run("--json", "import", str(PRODIGY), "--format", "prodigy").stdout
    )
    assert second["appended"] == 0
    assert second["skipped"] == 3372
    stats = json.loads(run("--json", "stats").stdout)
    assert stats["entries"] == 3372
    assert stats["actors"] == 42
    assert stats["items"] == 117
    assert run("verify").returncode == 0


def test_export_is_exactly_the_hashed_bytes(run: Runner) -> None:
    path = run.write("record.json", json.dumps([DECISION, DECISION]))
    receipts = json.loads(run("--json", "append", str(path)).stdout)
    out = run.tmp_path / "export.jsonl"
    run("export", "--out", str(out))
    lines = out.read_bytes().splitlines()
    assert len(lines) == 2
    for line, receipt in zip(lines, receipts, strict=True):
        assert hashlib.sha256(b"\x00" + line).hexdigest() == receipt["entry_hash"]


def test_log_filters_by_kind(run: Runner) -> None:
    run("import", str(PRODIGY), "--format", "prodigy")
    path = run.write("record.json", json.dumps(DECISION))
    run("append", str(path))
    lines = run("--json", "log", "--kind", "decision", "--limit", "0").stdout
    entries = [json.loads(line) for line in lines.splitlines()]
    assert [entry["seq"] for entry in entries] == [3372]


def test_show_unknown_seq_exits_2(run: Runner) -> None:
    result = run("show", "5", check=2)
    assert "no entry with seq 5" in result.stderr


def test_verify_detects_tampering_and_exits_1(run: Runner) -> None:
    import sqlite3

    path = run.write("record.json", json.dumps([DECISION] * 5))
    run("append", str(path))
    with sqlite3.connect(run.tmp_path / "ledger.db") as connection:
        connection.execute("DROP TRIGGER entries_no_update")
        connection.execute(
            "UPDATE entries SET body = replace(body, 'urgent', 'normal') WHERE seq = 2"
        )
    result = run("verify", check=1)
    assert "body-changed at seq 2" in result.stdout
    data = json.loads(run("--json", "verify", check=1).stdout)
    assert data["fault"]["kind"] == "body-changed"
    assert data["fault"]["seq"] == 2


def test_verify_workers_option(run: Runner) -> None:
    path = run.write("record.json", json.dumps([DECISION] * 5))
    run("append", str(path))
    data = json.loads(run("--json", "verify", "--workers", "2").stdout)
    assert data["ok"] is True
    assert data["entries_checked"] == 5
    result = run("verify", "--workers", "-1", check=2)
    assert "--workers" in result.stderr


def test_truncation_caught_by_trusted_checkpoint(run: Runner) -> None:
    import sqlite3

    path = run.write("record.json", json.dumps([DECISION] * 30))
    run("append", str(path))
    run("checkpoint", "--publish", str(run.tmp_path / "witness"))
    with sqlite3.connect(run.tmp_path / "ledger.db") as connection:
        for trigger in (
            "entries_no_delete",
            "checkpoints_no_delete",
            "merkle_nodes_no_delete",
        ):
            connection.execute(f"DROP TRIGGER {trigger}")
        connection.execute("DELETE FROM entries WHERE seq >= 10")
        connection.execute("DELETE FROM merkle_nodes WHERE idx >= (10 >> level)")
        connection.execute("DELETE FROM checkpoints")
        head = connection.execute(
            "SELECT entry_hash FROM entries WHERE seq = 9"
        ).fetchone()[0]
        connection.execute(
            "UPDATE chain_head SET size = 10, head_hash = ?, peaks = x''", (head,)
        )
    assert run("verify").returncode == 0
    result = run(
        "verify",
        "--trusted-checkpoint",
        str(run.tmp_path / "witness" / "checkpoint"),
        check=1,
    )
    assert "rollback" in result.stdout
    assert "smaller than the trusted checkpoint" in result.stdout


def test_prove_and_verify_proof_offline(run: Runner) -> None:
    path = run.write("record.json", json.dumps([DECISION] * 20))
    run("append", str(path))
    key = run("keys", "show").stdout.strip()
    proof = run.write("proof.json", run("prove", "inclusion", "7").stdout)
    assert run("verify-proof", str(proof), "--key", key).returncode == 0
    data = json.loads(proof.read_text())
    data["leaf_hash"] = "00" * 32
    bad = run.write("bad.json", json.dumps(data))
    result = run("verify-proof", str(bad), "--key", key, check=1)
    assert "root" in result.stderr
    consistency = run.write("c.json", run("prove", "consistency", "5").stdout)
    assert run("verify-proof", str(consistency), "--key", key).returncode == 0


def test_world_readable_key_rejected(run: Runner) -> None:
    key_file = next(run.key_dir.glob("log-*.pem"))
    key_file.chmod(0o644)
    path = run.write("record.json", json.dumps(DECISION))
    result = run("append", str(path), check=3)
    assert "chmod 600" in result.stderr
    assert size_of(run) == 0


def test_wrong_passphrase_rejected(
    run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVLEDGER_KEY_PASSPHRASE", "not the passphrase")
    path = run.write("record.json", json.dumps(DECISION))
    result = run("append", str(path), check=3)
    assert "GOVLEDGER_KEY_PASSPHRASE" in result.stderr


def test_missing_ledger_says_run_init(tmp_path: Path) -> None:
    runner = Runner(tmp_path)
    result = runner("verify", check=3)
    assert "govledger init" in result.stderr


@pytest.mark.parametrize("key", ["", ".", "/nonexistent/key.txt", "binary"])
def test_bad_key_argument_is_input_error(run: Runner, key: str) -> None:
    path = run.write("record.json", json.dumps(DECISION))
    run("append", str(path))
    proof = run.write("proof.json", run("prove", "inclusion", "0").stdout)
    if key == "binary":
        (run.tmp_path / "binary").write_bytes(b"\xff\xfe\x00garbage")
    result = run("verify-proof", str(proof), "--key", key, check=2)
    assert "error:" in result.stderr


def test_binary_trusted_checkpoint_is_input_error(run: Runner) -> None:
    (run.tmp_path / "cp.bin").write_bytes(b"%PDF-1.7\n\xff\xfe")
    result = run(
        "verify", "--trusted-checkpoint", str(run.tmp_path / "cp.bin"), check=2
    )
    assert "not UTF-8 text" in result.stderr


def test_bad_database_url_is_a_clear_error(tmp_path: Path) -> None:
    runner = Runner(tmp_path)
    runner.db = "mysql://nowhere/db"
    result = runner("verify", check=3)
    assert "unsupported database" in result.stderr


def test_key_rotation_from_cli(run: Runner) -> None:
    old = run("keys", "show").stdout.strip()
    rotated = json.loads(run("--json", "keys", "rotate").stdout)
    shown = run("keys", "show").stdout.strip().splitlines()
    assert shown == [old, rotated["verifier_key"]]
    assert run("verify").returncode == 0
    # An inclusion proof checks with the file of all keys `keys show` printed.
    keys_file = run.write("keys.txt", "\n".join(shown) + "\n")
    proof = run.write("proof.json", run("prove", "inclusion", "0").stdout)
    assert run("verify-proof", str(proof), "--key", str(keys_file)).returncode == 0


def test_unencrypted_key_needs_explicit_consent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOVLEDGER_KEY_PASSPHRASE")
    runner = Runner(tmp_path)
    result = runner("init", "--unsafe-unencrypted-key")
    assert "unencrypted" in result.stderr
    path = runner.write("record.json", json.dumps(DECISION))
    refused = runner("append", str(path), check=3)
    assert "GOVLEDGER_UNSAFE_UNENCRYPTED_KEY=1" in refused.stderr
    os.environ["GOVLEDGER_UNSAFE_UNENCRYPTED_KEY"] = "1"
    try:
        accepted = runner("append", str(path))
    finally:
        del os.environ["GOVLEDGER_UNSAFE_UNENCRYPTED_KEY"]
    assert "appended seq 0" in accepted.stdout
    assert "unencrypted" in accepted.stderr


def test_reimport_of_changed_records_warns(run: Runner) -> None:
    lines = PRODIGY.read_text(encoding="utf-8").splitlines()[:50]
    original = run.write("first.jsonl", "\n".join(lines) + "\n")
    run("import", str(original), "--format", "prodigy", "--dataset", "d")
    changed = [line.replace('"answer":"accept"', '"answer":"reject"') for line in lines]
    edited = run.write("first.jsonl", "\n".join(changed) + "\n")
    result = run(
        "--json", "import", str(edited), "--format", "prodigy", "--dataset", "d"
    )
    assert json.loads(result.stdout)["appended"] == 0
    differing = sum(a != b for a, b in zip(lines, changed, strict=True))
    assert f"{differing} skipped records differ" in result.stderr
