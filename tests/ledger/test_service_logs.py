"""The service log never contains a token, a personal value or a record body.

A `govledger serve` process logs at debug level while it takes appends with
personal values, invalid records, bad and revoked tokens; afterwards its
whole log is searched for every secret and marker the requests carried.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.client import LedgerClient, ServiceError
from ledger.tokens import create_token, revoke_token
from tests.ledger._service_harness import (
    ServeProcess,
    annotation,
    bearer,
    create_ledger,
)


def _marker(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex}"


def _post(base_url: str, token: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/entries",
        content=body,
        headers={"Content-Type": "application/json", **bearer(token), **headers},
        timeout=30,
    )


def test_log_contains_no_secret_or_personal_value(db_url: str, tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    ledger, key = create_ledger(db_url, key_dir)
    tokens = {
        role: create_token(ledger, name=f"{role}-log", role=role)[1]
        for role in ("appender", "auditor", "admin")
    }
    revoked_info, revoked = create_token(ledger, name="revoked-log", role="appender")
    revoke_token(ledger, revoked_info.id)
    unknown = "glt_0123456789ab_" + uuid.uuid4().hex + "Zq9" + "x" * 8
    secrets: list[str] = [*tokens.values(), revoked, unknown]
    markers: list[str] = []

    def personal() -> dict[str, Any]:
        values = {"email": _marker("EMAIL"), "name": _marker("NAME")}
        markers.extend(values.values())
        return values

    def body_value() -> str:
        markers.append(value := _marker("LABEL"))
        return value

    server = ServeProcess(
        db_url, key_dir, tmp_path / "serve.log", extra=("--log-level", "debug")
    )
    server.start()
    base = server.base_url
    try:
        # Valid appends through the client, with personal values.
        with LedgerClient(base, tokens["appender"], key) as client:
            receipts = [
                client.append(annotation(1, personal=personal(), label=body_value()))
            ]
            receipts += client.append_many(
                [
                    annotation(n, personal=personal(), label=body_value())
                    for n in range(5)
                ]
            )

        # Invalid records that carry personal values and body text.
        bad_actor = annotation(2, actor=body_value(), personal=personal())
        assert (
            _post(base, tokens["appender"], json.dumps(bad_actor).encode()).status_code
            == 422
        )
        field_name = _marker("FIELD")
        markers.append(field_name)
        unknown_field = {**annotation(3), field_name: body_value()}
        assert (
            _post(
                base, tokens["appender"], json.dumps(unknown_field).encode()
            ).status_code
            == 422
        )
        big_number = "9007199254740993" + str(uuid.uuid4().int)[:10]
        markers.append(big_number)
        text = json.dumps(annotation(4)).replace(
            '"label": {', f'"personal": {{"ssn": {big_number}}}, "label": {{', 1
        )
        assert _post(base, tokens["appender"], text.encode()).status_code == 422
        duplicate = _marker("DUP")
        markers.append(duplicate)
        text = f'{{"kind": "annotation", "personal": {{"a": "{duplicate}", "a": 1}}}}'
        assert _post(base, tokens["appender"], text.encode()).status_code == 422
        oversized = json.dumps({"records": [annotation(1, label=body_value())] * 9000})
        assert _post(base, tokens["appender"], oversized.encode()).status_code == 413

        # Idempotent replay and conflict.
        once = json.dumps(annotation(6, personal=personal())).encode()
        assert (
            _post(
                base, tokens["appender"], once, **{"Idempotency-Key": "k"}
            ).status_code
            == 201
        )
        assert (
            _post(
                base, tokens["appender"], once, **{"Idempotency-Key": "k"}
            ).status_code
            == 200
        )
        other = json.dumps(annotation(7, personal=personal())).encode()
        assert (
            _post(
                base, tokens["appender"], other, **{"Idempotency-Key": "k"}
            ).status_code
            == 409
        )

        # Bad, revoked and wrong-role tokens.
        for token in (unknown, revoked, "not-a-token-" + _marker("RAW")):
            secrets.append(token)
            assert _post(base, token, once).status_code == 401
        assert _post(base, tokens["auditor"], once).status_code == 403

        # Reads, and a token created over HTTP.
        with LedgerClient(base, tokens["auditor"], key) as auditor:
            assert all(check.included for check in auditor.check_receipts(receipts))
            assert auditor.get_entry(0)["seq"] == 0
            assert auditor.verify()["ok"]
            with pytest.raises(ServiceError):
                auditor.get_entry(10_000)
        created = httpx.post(
            f"{base}/v1/tokens",
            content=b'{"name": "made-over-http", "role": "auditor"}',
            headers={"Content-Type": "application/json", **bearer(tokens["admin"])},
        )
        assert created.status_code == 201
        secrets.append(created.json()["token"])
    finally:
        server.stop()
        ledger.close()

    log = (tmp_path / "serve.log").read_text()
    # The log is there and records what happened, so the test can fail.
    assert "started for ledger" in log
    assert "rejected: 422 invalid-record" in log
    assert "rejected: 401 revoked-token" in log
    assert "rejected: 413 body-too-large" in log
    assert "POST /v1/entries" in log
    for secret in secrets:
        assert secret not in log
        assert secret[-20:] not in log
    for marker in markers:
        assert marker not in log
