"""The HTTP service over real HTTP: uvicorn on 127.0.0.1 in a test thread.

Tests about storage run on both databases (``db_url``); tests about the
HTTP layer alone run on SQLite.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger import Ledger, LedgerConfig
from ledger.checkpoints import open_checkpoint
from ledger.merkle import verify_consistency, verify_inclusion
from ledger.note import parse_verifier_key
from ledger.receipts import verify_receipt
from ledger.service import create_app
from ledger.tokens import create_token, revoke_token
from tests.ledger._service_harness import (
    ServeProcess,
    annotation,
    bearer,
    create_ledger,
    threaded_server,
)


@dataclass
class Service:
    """A running service, its ledger and one token per role."""

    base_url: str
    ledger: Ledger
    verifier_key: str
    tokens: dict[str, str]

    def client(self, role: str | None = "admin") -> httpx.Client:
        headers = bearer(self.tokens[role]) if role else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    def state(self) -> tuple[int, str]:
        head = self.ledger.head()
        return head.size, head.head_hash


def _start(
    url: str, key_dir: Path, *, passphrase: bytes | None = None, **settings: Any
) -> Iterator[Service]:
    ledger, verifier_key = create_ledger(url, key_dir, passphrase=passphrase)
    tokens = {
        role: create_token(ledger, name=f"{role}-token", role=role)[1]
        for role in ("appender", "auditor", "officer", "admin")
    }
    settings.setdefault("token_cache_s", 0)
    config = LedgerConfig(key_dir=key_dir, passphrase=passphrase)
    app = create_app(url, config, **settings)
    try:
        with threaded_server(app) as base_url:
            yield Service(base_url, ledger, verifier_key, tokens)
    finally:
        ledger.close()


@pytest.fixture
def service(db_url: str, key_dir: Path) -> Iterator[Service]:
    """The service on SQLite and on PostgreSQL."""
    yield from _start(db_url, key_dir)


@pytest.fixture(scope="module")
def sqlite_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service on SQLite for the tests of the HTTP layer, with a 4 KiB limit.

    The tests share it, so each compares the ledger before and after itself.
    """
    directory = tmp_path_factory.mktemp("service")
    yield from _start(
        f"sqlite:///{directory / 'ledger.db'}",
        directory / "keys",
        passphrase=b"module-passphrase",
        max_body_bytes=4096,
    )


def _verifiers(service: Service) -> list[Any]:
    return [parse_verifier_key(service.verifier_key)]


def _post(client: httpx.Client, body: Any, **headers: str) -> httpx.Response:
    return client.post(
        "/v1/entries",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
    )


def _assert_rejected(
    service: Service, response: httpx.Response, status: int, before: tuple[int, str]
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str)
    assert isinstance(body["message"], str)
    assert isinstance(body["errors"], list)
    assert service.state() == before
    return body


# -- appending ---------------------------------------------------------------


def test_append_one_record_returns_signed_receipt(service: Service) -> None:
    with service.client("appender") as client:
        response = _post(client, annotation(1))
    assert response.status_code == 201, response.text
    receipt = response.json()
    verify_receipt(receipt, _verifiers(service))
    assert receipt["seq"] == 0
    assert service.ledger.get(0).entry_hash == receipt["entry_hash"]


def test_append_batch_returns_receipts_in_order(service: Service) -> None:
    records = [annotation(number) for number in range(5)]
    with service.client("appender") as client:
        response = _post(client, {"records": records})
    assert response.status_code == 201, response.text
    receipts = response.json()["receipts"]
    assert [receipt["seq"] for receipt in receipts] == [0, 1, 2, 3, 4]
    for receipt in receipts:
        verify_receipt(receipt, _verifiers(service))
        stored = service.ledger.get(receipt["seq"])
        assert stored.entry_hash == receipt["entry_hash"]
    assert service.ledger.get(3).record["item"]["id"] == "item-3"


def test_append_personal_value_stores_commitment(service: Service) -> None:
    record = annotation(1, subject="subject-77", personal={"email": "ann@example.org"})
    with service.client("appender") as client:
        assert _post(client, record).status_code == 201
        entry = client.get(
            "/v1/entries/0", headers=bearer(service.tokens["auditor"])
        ).json()
    assert "ann@example.org" not in json.dumps(entry)
    assert len(entry["record"]["personal"]["email"]) == 64


def test_concurrent_appends_share_transactions(sqlite_url: str, key_dir: Path) -> None:
    # Entries of one transaction share recorded_at, so fewer distinct times
    # than requests shows that requests were committed together.
    generator = _start(sqlite_url, key_dir, commit_delay_s=0.05)
    service = next(generator)
    try:
        results: list[httpx.Response] = []
        lock = threading.Lock()

        def send(number: int) -> None:
            with service.client("appender") as client:
                response = _post(client, annotation(number))
            with lock:
                results.append(response)

        threads = [threading.Thread(target=send, args=(n,)) for n in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [response.status_code for response in results] == [201] * 24
        seqs = sorted(response.json()["seq"] for response in results)
        assert seqs == list(range(24))
        times = {response.json()["recorded_at"] for response in results}
        assert len(times) < 24
        assert service.ledger.verify().ok
    finally:
        generator.close()


def test_bad_request_fails_alone_among_concurrent_appends(service: Service) -> None:
    outcomes: dict[int, int] = {}
    lock = threading.Lock()

    def send(number: int) -> None:
        record = annotation(number)
        if number % 4 == 0:
            record["actor"] = "nobody"
        with service.client("appender") as client:
            status = _post(client, record).status_code
        with lock:
            outcomes[number] = status

    threads = [threading.Thread(target=send, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {n: s for n, s in outcomes.items() if n % 4 == 0} == {
        0: 422,
        4: 422,
        8: 422,
        12: 422,
    }
    assert all(status == 201 for n, status in outcomes.items() if n % 4)
    assert service.ledger.size == 12


# -- idempotency -------------------------------------------------------------


def test_idempotency_key_replays_first_receipts(service: Service) -> None:
    body = {"records": [annotation(1), annotation(2)]}
    with service.client("appender") as client:
        first = _post(client, body, **{"Idempotency-Key": "batch-1"})
        before = service.state()
        again = _post(client, body, **{"Idempotency-Key": "batch-1"})
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert service.state() == before


def test_idempotency_key_with_other_body_conflicts(service: Service) -> None:
    with service.client("appender") as client:
        assert (
            _post(client, annotation(1), **{"Idempotency-Key": "k1"}).status_code == 201
        )
        before = service.state()
        response = _post(client, annotation(2), **{"Idempotency-Key": "k1"})
    body = _assert_rejected(service, response, 409, before)
    assert body["error"] == "idempotency-key-reused"
    assert "k1" in body["message"]


def test_idempotency_key_compares_canonical_body(service: Service) -> None:
    record = annotation(1)
    spaced = json.dumps(record, indent=4, sort_keys=False).encode()
    reordered = json.dumps(dict(reversed(list(record.items())))).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": "same"}
    with service.client("appender") as client:
        first = client.post("/v1/entries", content=spaced, headers=headers)
        second = client.post("/v1/entries", content=reordered, headers=headers)
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json() == first.json()
    assert service.ledger.size == 1


def test_idempotency_keys_are_scoped_per_token(service: Service) -> None:
    with service.client("appender") as client:
        first = _post(client, annotation(1), **{"Idempotency-Key": "shared"})
    with service.client("admin") as client:
        second = _post(client, annotation(1), **{"Idempotency-Key": "shared"})
    assert first.status_code == 201
    assert second.status_code == 201
    assert second.json()["seq"] == first.json()["seq"] + 1


def test_concurrent_retries_with_one_key_append_once(service: Service) -> None:
    statuses: list[int] = []
    bodies: list[dict[str, Any]] = []
    lock = threading.Lock()

    def send() -> None:
        with service.client("appender") as client:
            response = _post(client, annotation(9), **{"Idempotency-Key": "race"})
        with lock:
            statuses.append(response.status_code)
            bodies.append(response.json())

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 7 + [201]
    assert all(body == bodies[0] for body in bodies)
    assert service.ledger.size == 1


def test_invalid_idempotency_key_is_rejected(sqlite_service: Service) -> None:
    before = sqlite_service.state()
    with sqlite_service.client("appender") as client:
        response = _post(client, annotation(1), **{"Idempotency-Key": "x" * 201})
    body = _assert_rejected(sqlite_service, response, 422, before)
    assert body["errors"][0]["field"] == "header.Idempotency-Key"


# -- rejected input: 4xx naming the field, nothing written -------------------


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (annotation(1, actor="nobody"), "actor", "invalid-record"),
        (annotation(1, colour="red"), "colour", "invalid-record"),
        ({**annotation(1), "kind": "vote"}, "kind", "invalid-record"),
        (annotation(1, occurred_at="2026-01-05T10:00:00"), "occurred_at", None),
        (annotation(1, actor="user:a\x00b"), "actor", "invalid-record"),
        (
            {
                "kind": "review",
                "actor": "user:r",
                "occurred_at": "2026-01-05T10:00:00Z",
                "target": {"seq": 2**40},
                "verdict": "accept",
            },
            "target.seq",
            "invalid-record",
        ),
        ({"records": []}, "records", "invalid-record"),
        ({"records": "all"}, "records", "invalid-record"),
        ({"records": [annotation(1)], "note": 1}, "note", "invalid-record"),
        ([annotation(1)], "(body)", "invalid-record"),
    ],
    ids=[
        "bad-actor",
        "unknown-field",
        "unknown-kind",
        "no-time-zone",
        "nul-in-actor",
        "target-seq-too-large",
        "empty-batch",
        "records-not-array",
        "batch-extra-field",
        "bare-array",
    ],
)
def test_invalid_record_is_422_naming_field(
    service: Service, body: Any, field: str, reason: str | None
) -> None:
    before = service.state()
    with service.client("appender") as client:
        response = _post(client, body)
    error = _assert_rejected(service, response, 422, before)
    assert field in [problem["field"] for problem in error["errors"]]
    if reason is not None:
        assert error["error"] == reason


def test_bad_record_in_batch_names_index(service: Service) -> None:
    records = [annotation(number) for number in range(4)]
    records[2]["confidence"] = 0.5
    with service.client("appender") as client:
        _post(client, annotation(100))
        before = service.state()
        response = _post(client, {"records": records})
    error = _assert_rejected(service, response, 422, before)
    assert error["index"] == 2
    assert error["errors"][0]["field"] == "confidence"


@pytest.mark.parametrize(
    ("text", "field", "reason", "index"),
    [
        (b'{"kind": "annotation", "kind": "review"}', "kind", "duplicate-key", None),
        (
            b'{"records": [{"kind": "annotation"}, {"label": 1, "label": 2}]}',
            "label",
            "duplicate-key",
            1,
        ),
        (b'{"label": NaN}', "label", "non-finite-number", None),
        (b'{"label": Infinity}', "label", "non-finite-number", None),
        (b'{"label": 9007199254740993}', "label", "unsafe-integer", None),
        (b'{"label": 1e400}', "label", "non-finite-number", None),
        (b'{"label": ' + b"9" * 5000 + b"}", "(body)", "unsafe-integer", None),
        (b'{"label": "\\ud800"}', "label", "lone-surrogate", None),
        (b"[" * 100 + b"]" * 100, "(body)", "too-deep", None),
        (b"[" * 100_000 + b"]" * 100_000, "(body)", "too-deep", None),
    ],
    ids=[
        "duplicate-key",
        "duplicate-key-in-batch",
        "nan",
        "infinity",
        "unsafe-integer",
        "huge-float",
        "5000-digit-integer",
        "lone-surrogate",
        "nested-100",
        "nested-100000",
    ],
)
def test_json_the_cli_rejects_is_422(
    sqlite_service: Service, text: bytes, field: str, reason: str, index: int | None
) -> None:
    before = sqlite_service.state()
    with httpx.Client(base_url=sqlite_service.base_url, timeout=30) as client:
        response = client.post(
            "/v1/entries",
            content=text,
            headers={
                "Content-Type": "application/json",
                **bearer(sqlite_service.tokens["appender"]),
            },
        )
    if len(text) > 4096:
        _assert_rejected(sqlite_service, response, 413, before)
        return
    error = _assert_rejected(sqlite_service, response, 422, before)
    assert error["error"] == reason
    assert error["errors"][0]["field"] == field
    assert error.get("index") == index


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"{",
        b'{"kind": }',
        b"\xff\xfe{}",
        b'{"label": "\xc3\x28"}',
        b"\xef\xbb\xbf{}",
    ],
    ids=["empty", "truncated", "syntax", "utf16-bom", "invalid-utf8", "utf8-bom"],
)
def test_malformed_json_is_400(sqlite_service: Service, text: bytes) -> None:
    before = sqlite_service.state()
    with sqlite_service.client("appender") as client:
        response = client.post(
            "/v1/entries", content=text, headers={"Content-Type": "application/json"}
        )
    error = _assert_rejected(sqlite_service, response, 400, before)
    assert error["error"] == "invalid-json"


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
        "application/json; charset=latin-1",
    ],
)
def test_wrong_content_type_is_415(sqlite_service: Service, content_type: str) -> None:
    before = sqlite_service.state()
    with sqlite_service.client("appender") as client:
        response = client.post(
            "/v1/entries",
            content=json.dumps(annotation(1)).encode(),
            headers={"Content-Type": content_type},
        )
    error = _assert_rejected(sqlite_service, response, 415, before)
    assert error["error"] == "unsupported-media-type"


def test_body_over_limit_is_413(sqlite_service: Service) -> None:
    before = sqlite_service.state()
    body = {"records": [annotation(number) for number in range(40)]}
    with sqlite_service.client("appender") as client:
        response = _post(client, body)
    error = _assert_rejected(sqlite_service, response, 413, before)
    assert error["error"] == "body-too-large"
    assert "4096" in error["message"]


def test_streamed_body_over_limit_is_413(sqlite_service: Service) -> None:
    # No Content-Length: the limit must hold while the body is read.
    before = sqlite_service.state()
    text = json.dumps({"records": [annotation(n) for n in range(40)]}).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(text), 1000):
            yield text[start : start + 1000]

    with sqlite_service.client("appender") as client:
        response = client.post(
            "/v1/entries",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    _assert_rejected(sqlite_service, response, 413, before)


def test_lying_content_length_is_413(sqlite_service: Service) -> None:
    # A raw request whose Content-Length understates the body it sends.
    before = sqlite_service.state()
    host, port = sqlite_service.base_url.removeprefix("http://").split(":")
    text = b"x" * 10_000
    request = (
        b"POST /v1/entries HTTP/1.1\r\nHost: test\r\n"
        b"Authorization: Bearer " + sqlite_service.tokens["appender"].encode() + b"\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(text):x}\r\n".encode()
        + text
        + b"\r\n0\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413")
    assert sqlite_service.state() == before


# -- authentication and roles ------------------------------------------------


ENDPOINTS = [
    ("POST", "/v1/entries", "append"),
    ("GET", "/v1/entries/0", "read"),
    ("GET", "/v1/checkpoint", "read"),
    ("GET", "/v1/proofs/inclusion?seq=0", "read"),
    ("GET", "/v1/proofs/consistency?old=1", "read"),
    ("GET", "/v1/verify", "verify"),
    ("GET", "/v1/tokens", "manage-tokens"),
    ("POST", "/v1/tokens", "manage-tokens"),
    ("DELETE", "/v1/tokens/0123456789ab", "manage-tokens"),
]
ALLOWED = {
    "append": {"appender", "admin"},
    "read": {"auditor", "officer", "admin"},
    "verify": {"auditor", "officer", "admin"},
    "manage-tokens": {"admin"},
}


def _call(client: httpx.Client, method: str, path: str) -> httpx.Response:
    if method == "POST":
        body = (
            annotation(1) if path == "/v1/entries" else {"name": "n", "role": "auditor"}
        )
        return _post_to(client, path, body)
    return client.request(method, path)


def _post_to(client: httpx.Client, path: str, body: Any) -> httpx.Response:
    return client.post(
        path,
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )


@pytest.mark.parametrize(("method", "path", "permission"), ENDPOINTS)
def test_missing_token_is_401(
    sqlite_service: Service, method, path, permission
) -> None:
    with sqlite_service.client(None) as client:
        response = _call(client, method, path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"] == "missing-token"


@pytest.mark.parametrize(
    "authorization",
    ["Bearer nonsense", "Bearer glt_0123456789ab_" + "A" * 43, "Basic dXNlcjpwdw=="],
    ids=["malformed", "unknown", "basic-scheme"],
)
def test_bad_token_is_401(sqlite_service: Service, authorization: str) -> None:
    with httpx.Client(base_url=sqlite_service.base_url) as client:
        response = client.get(
            "/v1/checkpoint", headers={"Authorization": authorization}
        )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_is_401(sqlite_service: Service) -> None:
    info, token = create_token(
        sqlite_service.ledger, name="short-lived", role="auditor"
    )
    with httpx.Client(
        base_url=sqlite_service.base_url, headers=bearer(token)
    ) as client:
        assert client.get("/v1/checkpoint").status_code == 200
        revoke_token(sqlite_service.ledger, info.id)
        response = client.get("/v1/checkpoint")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["error"] == "revoked-token"


@pytest.mark.parametrize(("method", "path", "permission"), ENDPOINTS)
@pytest.mark.parametrize("role", ["appender", "auditor", "officer", "admin"])
def test_role_gets_403_where_not_allowed(
    sqlite_service: Service, method, path, permission, role
) -> None:
    with sqlite_service.client("admin") as client:
        _post(client, annotation(1))
    before = sqlite_service.state()
    with sqlite_service.client(role) as client:
        response = _call(client, method, path)
    if role in ALLOWED[permission]:
        assert response.status_code not in (401, 403), response.text
        return
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "forbidden"
    assert sqlite_service.state() == before


def test_healthz_needs_no_token(sqlite_service: Service) -> None:
    with sqlite_service.client(None) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


# -- reading, proofs, verify -------------------------------------------------


def test_get_entry_and_404(service: Service) -> None:
    with service.client("appender") as client:
        receipt = _post(client, annotation(5)).json()
    with service.client("auditor") as client:
        entry = client.get("/v1/entries/0")
        missing = client.get("/v1/entries/7")
        negative = client.get("/v1/entries/-1")
        huge = client.get(f"/v1/entries/{2**63}")
    assert entry.status_code == 200
    assert entry.json()["entry_hash"] == receipt["entry_hash"]
    assert entry.json()["record"]["item"]["id"] == "item-5"
    assert missing.status_code == 404
    assert missing.json()["error"] == "entry-not-found"
    assert negative.status_code == 422
    assert huge.status_code == 422


def test_checkpoint_is_signed_note_made_when_none(service: Service) -> None:
    assert service.ledger.latest_checkpoint() is None
    with service.client("auditor") as client:
        empty = client.get("/v1/checkpoint")
    assert empty.status_code == 200
    assert empty.headers["content-type"].startswith("text/plain")
    signed = open_checkpoint(
        empty.text, _verifiers(service), origin="test.example/ledger"
    )
    assert signed.checkpoint.size == 0

    with service.client("appender") as client:
        _post(client, {"records": [annotation(n) for n in range(3)]})
    with service.client("auditor") as client:
        stale = client.get("/v1/checkpoint")
        fresh = client.get("/v1/checkpoint", params={"min_tree_size": 3})
        beyond = client.get("/v1/checkpoint", params={"min_tree_size": 4})
    assert open_checkpoint(fresh.text, _verifiers(service)).checkpoint.size == 3
    assert open_checkpoint(stale.text, _verifiers(service)).checkpoint.size in (0, 3)
    assert beyond.status_code == 422
    assert beyond.json()["error"] == "bad-tree-size"


def test_inclusion_and_consistency_proofs_verify(service: Service) -> None:
    with service.client("appender") as client:
        receipts = _post(client, {"records": [annotation(n) for n in range(6)]}).json()
    with service.client("auditor") as client:
        note = client.get("/v1/checkpoint", params={"min_tree_size": 6}).text
        checkpoint = open_checkpoint(note, _verifiers(service)).checkpoint
        for receipt in receipts["receipts"]:
            proof = client.get(
                "/v1/proofs/inclusion",
                params={"seq": receipt["seq"], "tree_size": checkpoint.size},
            ).json()
            assert proof["leaf_hash"] == receipt["entry_hash"]
            verify_inclusion(
                receipt["seq"],
                checkpoint.size,
                bytes.fromhex(receipt["entry_hash"]),
                [bytes.fromhex(value) for value in proof["hashes"]],
                checkpoint.root,
            )
        consistency = client.get(
            "/v1/proofs/consistency", params={"old": 2, "new": 6}
        ).json()
    verify_consistency(
        2,
        6,
        bytes.fromhex(consistency["old_root"]),
        checkpoint.root,
        [bytes.fromhex(value) for value in consistency["hashes"]],
    )


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        ("/v1/proofs/inclusion?seq=5", 422, "index-out-of-range"),
        ("/v1/proofs/inclusion?seq=0&tree_size=9", 404, "no-checkpoint"),
        ("/v1/proofs/inclusion?seq=0&tree_size=1", 404, "no-checkpoint"),
        ("/v1/proofs/inclusion?seq=x", 422, "invalid-request"),
        ("/v1/proofs/inclusion", 422, "invalid-request"),
        ("/v1/proofs/consistency?old=0", 422, "bad-tree-size"),
        ("/v1/proofs/consistency?old=3&new=2", 404, "no-checkpoint"),
        ("/v1/proofs/consistency?old=4", 422, "bad-tree-size"),
        (f"/v1/proofs/consistency?old={2**60}", 422, "invalid-request"),
    ],
)
def test_bad_proof_request_is_4xx(service: Service, path, status, reason) -> None:
    with service.client("appender") as client:
        _post(client, {"records": [annotation(n) for n in range(3)]})
    before = service.state()
    with service.client("auditor") as client:
        response = client.get(path)
    error = _assert_rejected(service, response, status, before)
    assert error["error"] == reason


def test_verify_endpoint_reports_ok(service: Service) -> None:
    with service.client("appender") as client:
        _post(client, {"records": [annotation(n) for n in range(4)]})
    with service.client("auditor") as client:
        result = client.get("/v1/verify").json()
    assert result["ok"] is True
    assert result["size"] == 4
    assert result["chain_intact"] is True
    assert result["fault"] is None


# -- tokens over HTTP --------------------------------------------------------


def test_admin_manages_tokens_over_http(sqlite_service: Service) -> None:
    with sqlite_service.client("admin") as client:
        created = _post_to(
            client, "/v1/tokens", {"name": "pipeline", "role": "appender"}
        )
        assert created.status_code == 201, created.text
        token = created.json()["token"]
        listed = client.get("/v1/tokens").json()["tokens"]
        revoked = client.delete(f"/v1/tokens/{created.json()['id']}")
        unknown = client.delete("/v1/tokens/ffffffffffff")
        invalid = _post_to(client, "/v1/tokens", {"name": "x", "role": "root"})
    assert created.json()["id"] in [item["id"] for item in listed]
    assert all("token" not in item for item in listed)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert unknown.status_code == 404
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "role"
    with httpx.Client(
        base_url=sqlite_service.base_url, headers=bearer(token)
    ) as client:
        assert _post(client, annotation(1)).status_code == 401


# -- HTTP edges and the schema -----------------------------------------------


def test_unknown_path_and_method_are_json(sqlite_service: Service) -> None:
    with sqlite_service.client("admin") as client:
        missing = client.get("/v2/nothing")
        wrong = client.put("/v1/entries")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not-found"
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method-not-allowed"


def test_openapi_documents_bodies_and_security(sqlite_service: Service) -> None:
    with sqlite_service.client(None) as client:
        schema = client.get("/openapi.json").json()
    append = schema["paths"]["/v1/entries"]["post"]
    body = append["requestBody"]["content"]["application/json"]["schema"]
    components = schema["components"]["schemas"]
    assert "anyOf" in body
    assert {"AnnotationRecord", "ReviewRecord", "DecisionRecord"} <= set(components)
    assert components["AnnotationRecord"]["properties"]["occurred_at"]["format"] == (
        "date-time"
    )
    assert append["security"] == [{"HTTPBearer": []}]
    assert components["ErrorBody"]["required"] == ["error", "message"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for status in ("201", "401", "403", "409", "413", "415", "422"):
        assert status in append["responses"]
    assert "security" not in schema["paths"]["/healthz"]["get"]
    assert "/v1/tokens" in schema["paths"]


def test_serve_with_two_workers_appends_in_order(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger, key = create_ledger(url, tmp_path / "keys")
    token = create_token(ledger, name="workers", role="appender")[1]
    server = ServeProcess(
        url, tmp_path / "keys", tmp_path / "serve.log", extra=("--workers", "2")
    )
    server.start()
    statuses: list[int] = []
    lock = threading.Lock()

    def send(number: int) -> None:
        with httpx.Client(base_url=server.base_url, headers=bearer(token)) as client:
            response = _post(client, annotation(number))
        with lock:
            statuses.append(response.status_code)

    try:
        threads = [threading.Thread(target=send, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        server.stop()
    log = (tmp_path / "serve.log").read_text()
    assert statuses == [201] * 20
    assert log.count("govledger service started") == 2
    assert ledger.size == 20
    assert ledger.verify().ok
    ledger.close()
