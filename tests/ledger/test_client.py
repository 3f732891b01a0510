"""LedgerClient against a real service over HTTP on 127.0.0.1."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger import CheckpointError, Ledger, LedgerConfig, ProofError
from ledger.client import LedgerClient, ServiceError
from ledger.errors import ReceiptError
from ledger.service import create_app
from ledger.tokens import create_token
from tests.ledger._service_harness import (
    annotation,
    create_ledger,
    free_port,
    threaded_server,
)


class Running:
    """A service in a test thread, its ledger, key and tokens."""

    def __init__(self, url: str, key_dir: Path) -> None:
        self.url = url
        self.key_dir = key_dir
        self.ledger, self.verifier_key = create_ledger(url, key_dir)
        self.appender = create_token(self.ledger, name="app", role="appender")[1]
        self.auditor = create_token(self.ledger, name="aud", role="auditor")[1]
        self.admin = create_token(self.ledger, name="adm", role="admin")[1]

    def app(self) -> Any:
        return create_app(self.url, LedgerConfig(key_dir=self.key_dir), token_cache_s=0)


@pytest.fixture
def running(sqlite_url: str, key_dir: Path) -> Iterator[tuple[Running, str]]:
    setup = Running(sqlite_url, key_dir)
    with threaded_server(setup.app()) as base_url:
        yield setup, base_url
    setup.ledger.close()


def _client(base_url: str, token: str, key: str, **options: Any) -> LedgerClient:
    options.setdefault("backoff_s", 0.01)
    return LedgerClient(base_url, token, key, **options)


def test_append_returns_checked_receipt(running) -> None:
    setup, base_url = running
    with _client(base_url, setup.appender, setup.verifier_key) as client:
        receipt = client.append(annotation(1))
    assert receipt["seq"] == 0
    assert setup.ledger.get(0).entry_hash == receipt["entry_hash"]
    assert client.stats.statuses[201] == 1


def test_append_many_splits_above_batch_size(running) -> None:
    setup, base_url = running
    records = [annotation(number) for number in range(7)]
    with _client(base_url, setup.admin, setup.verifier_key, batch_size=3) as client:
        receipts = client.append_many(records)
    assert [receipt["seq"] for receipt in receipts] == list(range(7))
    assert client.stats.statuses[201] == 3
    assert setup.ledger.get(6).record["item"]["id"] == "item-6"


def test_append_many_error_index_counts_from_start(running) -> None:
    setup, base_url = running
    records = [annotation(number) for number in range(6)]
    records[4]["actor"] = "nobody"
    with _client(base_url, setup.admin, setup.verifier_key, batch_size=3) as client:
        with pytest.raises(ServiceError) as caught:
            client.append_many(records)
    assert caught.value.status == 422
    assert caught.value.index == 4
    assert caught.value.errors[0]["field"] == "actor"
    # The first request of three records was committed before the second failed.
    assert setup.ledger.size == 3


def test_receipt_from_unpinned_key_is_rejected(running, tmp_path: Path) -> None:
    setup, base_url = running
    other, other_key = create_ledger(
        f"sqlite:///{tmp_path / 'other.db'}", tmp_path / "other-keys"
    )
    other.close()
    with _client(base_url, setup.appender, other_key) as client:
        with pytest.raises(ReceiptError) as caught:
            client.append(annotation(1))
    assert caught.value.reason == "unknown-key"


def test_check_receipts_proves_inclusion(running) -> None:
    setup, base_url = running
    with _client(base_url, setup.appender, setup.verifier_key) as client:
        receipts = client.append_many([annotation(n) for n in range(5)])
        receipts.append(client.append(annotation(9)))
    with _client(base_url, setup.auditor, setup.verifier_key) as client:
        checks = client.check_receipts(receipts)
    assert [check.included for check in checks] == [True] * 6
    assert {check.tree_size for check in checks} == {6}
    assert all(check.problem is None for check in checks)


def test_check_receipts_flags_altered_receipt(running) -> None:
    setup, base_url = running
    with _client(base_url, setup.admin, setup.verifier_key) as client:
        receipts = client.append_many([annotation(n) for n in range(3)])
        altered = {**receipts[1], "entry_hash": receipts[2]["entry_hash"]}
        checks = client.check_receipts([receipts[0], altered])
    assert checks[0].included
    assert not checks[1].included
    assert "signature" in (checks[1].problem or "")


def test_get_entry_and_verify(running) -> None:
    setup, base_url = running
    with _client(base_url, setup.admin, setup.verifier_key) as client:
        receipt = client.append(annotation(3))
        entry = client.get_entry(receipt["seq"])
        result = client.verify()
    assert entry["entry_hash"] == receipt["entry_hash"]
    assert result["ok"] is True
    with _client(base_url, setup.appender, setup.verifier_key) as client:
        with pytest.raises(ServiceError) as caught:
            client.verify()
    assert caught.value.status == 403


# -- retries -----------------------------------------------------------------


class LoseFirstAnswer(httpx.HTTPTransport):
    """Send each request to the real server, but lose the first POST's response.

    It models a connection that breaks after the service committed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST":
            self.keys.append(request.headers.get("Idempotency-Key"))
            if len(self.keys) == 1:
                response.read()
                response.close()
                raise httpx.ReadError("connection reset after the commit")
        return response


def test_retry_after_lost_answer_appends_once(db_url: str, key_dir: Path) -> None:
    setup = Running(db_url, key_dir)
    transport = LoseFirstAnswer()
    try:
        with threaded_server(setup.app()) as base_url:
            with _client(
                base_url, setup.appender, setup.verifier_key, transport=transport
            ) as client:
                receipt = client.append(annotation(1))
        assert len(transport.keys) == 2
        assert transport.keys[0] == transport.keys[1]
        assert transport.keys[0] is not None
        assert setup.ledger.size == 1
        assert setup.ledger.get(0).entry_hash == receipt["entry_hash"]
        assert client.stats.statuses[200] == 1
        assert client.stats.transport_errors == 1
    finally:
        setup.ledger.close()


class BusyFirst(httpx.HTTPTransport):
    """Return 503 for the first request without sending it, then pass through."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls == 1:
            return httpx.Response(503, headers={"Retry-After": "0"}, json={})
        return super().handle_request(request)


def test_503_is_retried(running) -> None:
    setup, base_url = running
    transport = BusyFirst()
    with _client(
        base_url, setup.appender, setup.verifier_key, transport=transport
    ) as client:
        receipt = client.append(annotation(1))
    assert receipt["seq"] == 0
    assert client.stats.retries == 1
    assert client.stats.statuses[503] == 1


def test_client_waits_for_service_to_start(sqlite_url: str, key_dir: Path) -> None:
    setup = Running(sqlite_url, key_dir)
    port = free_port()
    results: list[dict[str, Any]] = []

    def append() -> None:
        with _client(
            f"http://127.0.0.1:{port}",
            setup.appender,
            setup.verifier_key,
            retries=40,
            backoff_s=0.05,
            max_backoff_s=0.2,
        ) as client:
            results.append(client.append(annotation(1)))
            results.append({"transport_errors": client.stats.transport_errors})

    thread = threading.Thread(target=append)
    thread.start()
    time.sleep(0.5)
    try:
        with threaded_server(setup.app(), port=port):
            thread.join(60)
    finally:
        setup.ledger.close()
    assert results[0]["seq"] == 0
    assert results[1]["transport_errors"] >= 1


def test_unreachable_service_raises_after_retries(
    tmp_path: Path, key_dir: Path
) -> None:
    ledger, key = create_ledger(f"sqlite:///{tmp_path / 'keyonly.db'}", key_dir)
    ledger.close()
    nowhere = f"http://127.0.0.1:{free_port()}"
    with _client(nowhere, "glt_0123456789ab_" + "A" * 43, key, retries=2) as client:
        with pytest.raises(ServiceError) as caught:
            client.append(annotation(1))
    assert caught.value.status == 0
    assert caught.value.reason == "unreachable"
    assert client.stats.transport_errors == 3


# -- checkpoints that do not extend the last one ------------------------------------


def _copy_ledger(source: Path, target: Path) -> None:
    """Copy a SQLite ledger file (WAL checkpointed first) to ``target``."""
    import sqlite3

    connection = sqlite3.connect(source)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    shutil.copyfile(source, target)


def test_checkpoint_detects_rollback_and_fork(tmp_path: Path, key_dir: Path) -> None:
    primary = tmp_path / "primary.db"
    setup = Running(f"sqlite:///{primary}", key_dir)
    port = free_port()
    with threaded_server(setup.app(), port=port) as base_url:
        client = _client(base_url, setup.admin, setup.verifier_key)
        client.append_many([annotation(n) for n in range(2)])
        client.checkpoint(min_tree_size=2)
    setup.ledger.close()

    # Keep a copy of the ledger at size 2, then let the primary grow to 5.
    old_copy = tmp_path / "old.db"
    _copy_ledger(primary, old_copy)
    fork_copy = tmp_path / "fork.db"
    _copy_ledger(primary, fork_copy)
    config = LedgerConfig(key_dir=key_dir)
    with threaded_server(create_app(f"sqlite:///{primary}", config), port=port):
        client.append_many([annotation(n) for n in range(2, 5)])
        assert client.checkpoint(min_tree_size=5).checkpoint.size == 5

    # The old copy is a rollback; a copy grown differently is a fork.
    with threaded_server(create_app(f"sqlite:///{old_copy}", config), port=port):
        with pytest.raises(CheckpointError) as rollback:
            client.checkpoint()
    assert rollback.value.reason == "rollback"

    with Ledger.open(f"sqlite:///{fork_copy}", config=config) as fork:
        fork.append_many([annotation(n) for n in range(10, 14)])
    with threaded_server(create_app(f"sqlite:///{fork_copy}", config), port=port):
        with pytest.raises(ProofError) as fork:
            client.checkpoint(min_tree_size=6)
    assert fork.value.reason == "root-mismatch"
    client.close()


def test_check_receipts_flags_truncated_log(tmp_path: Path, key_dir: Path) -> None:
    primary = tmp_path / "primary.db"
    setup = Running(f"sqlite:///{primary}", key_dir)
    with threaded_server(setup.app()) as base_url:
        with _client(base_url, setup.admin, setup.verifier_key) as client:
            client.append_many([annotation(n) for n in range(2)])
            client.checkpoint(min_tree_size=2)
    setup.ledger.close()
    truncated = tmp_path / "truncated.db"
    _copy_ledger(primary, truncated)

    config = LedgerConfig(key_dir=key_dir)
    with threaded_server(create_app(f"sqlite:///{primary}", config)) as base_url:
        with _client(base_url, setup.admin, setup.verifier_key) as client:
            receipts = client.append_many([annotation(n) for n in range(2, 5)])
    # The operator serves the copy from before the last three appends.
    with threaded_server(create_app(f"sqlite:///{truncated}", config)) as base_url:
        with _client(base_url, setup.auditor, setup.verifier_key) as client:
            checks = client.check_receipts(receipts)
    assert [check.seq for check in checks] == [2, 3, 4]
    assert [check.included for check in checks] == [False, False, False]
    assert {check.tree_size for check in checks} == {2}
    assert all("does not include" in (check.problem or "") for check in checks)
