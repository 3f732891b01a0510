"""Several `govledger serve` processes on one database, and SIGKILL storms.

These tests start real service processes on 127.0.0.1, drive them with
LedgerClient threads, and check afterwards, from the database, that every
acknowledged receipt's entry is stored with its hash and that the ledger
verifies. They are bounded in size and time, and marked ``slow``.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ledger import Ledger, LedgerConfig
from ledger.client import LedgerClient, ServiceError
from ledger.tokens import create_token
from tests.ledger._service_harness import ServeProcess, annotation, create_ledger

pytestmark = pytest.mark.slow


@dataclass
class Outcome:
    """What the client threads of one database saw."""

    receipts: list[dict[str, Any]] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    server_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, receipts: list[dict[str, Any]], refs: list[str]) -> None:
        with self.lock:
            self.receipts.extend(receipts)
            self.refs.extend(refs)

    def fail(self, problem: str) -> None:
        with self.lock:
            self.failures.append(problem)


def _records(prefix: str, start: int, count: int) -> list[dict[str, Any]]:
    return [
        annotation(number, source={"system": "stress", "ref": f"{prefix}-{number}"})
        for number in range(start, start + count)
    ]


def _check_ledger(url: str, key_dir: Path, outcome: Outcome) -> Ledger:
    """Check every receipt against the stored entries; return the open ledger."""
    ledger = Ledger.open(url, config=LedgerConfig(key_dir=key_dir))
    stored = {seq: stored_hash for seq, stored_hash, _, _ in ledger.iter_raw()}
    missing = [
        receipt["seq"]
        for receipt in outcome.receipts
        if stored.get(receipt["seq"]) != receipt["entry_hash"]
    ]
    assert missing == []
    refs = Counter(
        entry.record["source"]["ref"] for entry in ledger.entries(kind="annotation")
    )
    assert [ref for ref, count in refs.items() if count > 1] == []
    result = ledger.verify()
    assert result.ok, result.to_dict()
    return ledger


# -- many processes, many clients ------------------------------------------------

PER_THREAD_SINGLE = 125
PER_THREAD_BATCHES = 20
BATCH = 25


def _drive(base_url: str, token: str, key: str, prefix: str, outcome: Outcome) -> None:
    """Append 625 records: 125 one by one, then 20 batches of 25."""
    with LedgerClient(base_url, token, key, retries=8, backoff_s=0.05) as client:
        try:
            for record in _records(prefix, 0, PER_THREAD_SINGLE):
                outcome.add([client.append(record)], [record["source"]["ref"]])
            for batch in range(PER_THREAD_BATCHES):
                start = PER_THREAD_SINGLE + batch * BATCH
                records = _records(prefix, start, BATCH)
                outcome.add(
                    client.append_many(records),
                    [record["source"]["ref"] for record in records],
                )
        except Exception as error:  # noqa: BLE001 - every failure is reported
            outcome.fail(f"{prefix}: {type(error).__name__}: {error}")
        finally:
            with outcome.lock:
                outcome.server_errors += client.stats.server_errors


def test_six_processes_two_databases_20000_appends(
    postgres_url: str, tmp_path: Path
) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    plan = {
        # url: (key dir, service processes, client threads per process)
        postgres_url: (tmp_path / "pg-keys", 4, 5),
        sqlite_url: (tmp_path / "sqlite-keys", 2, 6),
    }
    servers: list[ServeProcess] = []
    threads: list[threading.Thread] = []
    outcomes = {url: Outcome() for url in plan}
    try:
        for url, (key_dir, processes, per_process) in plan.items():
            ledger, key = create_ledger(url, key_dir)
            token = create_token(ledger, name="stress", role="appender")[1]
            ledger.close()
            for _ in range(processes):
                server = ServeProcess(
                    url,
                    key_dir,
                    tmp_path / f"serve-{len(servers)}.log",
                    extra=("--log-level", "warning"),
                )
                server.start(wait=False)
                servers.append(server)
                for thread_number in range(per_process):
                    prefix = f"p{len(servers)}t{thread_number}"
                    threads.append(
                        threading.Thread(
                            target=_drive,
                            args=(server.base_url, token, key, prefix, outcomes[url]),
                        )
                    )
        for server in servers:
            server.wait_ready()
        assert len(threads) == 32
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(240)
        elapsed = time.monotonic() - started
    finally:
        for server in servers:
            server.stop()

    logs = "".join(path.read_text() for path in tmp_path.glob("serve-*.log"))
    total = 0
    for url, (key_dir, processes, per_process) in plan.items():
        outcome = outcomes[url]
        expected = (
            processes * per_process * (PER_THREAD_SINGLE + PER_THREAD_BATCHES * BATCH)
        )
        assert outcome.failures == []
        assert outcome.server_errors == 0
        assert len(outcome.receipts) == expected
        assert len({receipt["seq"] for receipt in outcome.receipts}) == expected
        ledger = _check_ledger(url, key_dir, outcome)
        assert ledger.size == expected
        ledger.close()
        total += expected
    assert total == 20_000
    assert "Traceback" not in logs
    assert elapsed < 180


# -- SIGKILL during an append storm ------------------------------------------------

# SIGKILLs per run: at least 20 on SQLite; fewer on PostgreSQL, whose
# restarts are slower, to keep the suite short.
KILLS = {"sqlite": 20, "postgresql": 10}


def _storm(
    base_url: str,
    token: str,
    key: str,
    prefix: str,
    stop: threading.Event,
    outcome: Outcome,
) -> None:
    """Append batches of 1 to 5 records until stopped; keep what was acknowledged."""
    number = 0
    with LedgerClient(
        base_url,
        token,
        key,
        retries=200,
        backoff_s=0.02,
        max_backoff_s=0.25,
        timeout=10,
    ) as client:
        while not stop.is_set():
            size = random.randint(1, 5)
            records = _records(prefix, number, size)
            number += size
            try:
                if size == 1:
                    receipts = [client.append(records[0])]
                else:
                    receipts = client.append_many(records)
            except ServiceError as error:
                outcome.fail(f"{prefix}: {error}")
                continue
            outcome.add(receipts, [record["source"]["ref"] for record in records])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_storm_keeps_every_acknowledged_receipt(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    key_dir = tmp_path / "keys"
    ledger, key = create_ledger(url, key_dir)
    token = create_token(ledger, name="storm", role="appender")[1]
    ledger.close()

    server = ServeProcess(url, key_dir, tmp_path / "serve.log")
    server.start()
    outcome = Outcome()
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=_storm, args=(server.base_url, token, key, f"t{n}", stop, outcome)
        )
        for n in range(6)
    ]
    for thread in threads:
        thread.start()
    kills = 0
    try:
        while kills < KILLS[backend]:
            # Kill once appends are flowing again since the last restart.
            before = len(outcome.receipts)
            deadline = time.monotonic() + 5
            while len(outcome.receipts) == before and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(random.uniform(0.0, 0.15))
            server.kill()
            kills += 1
            server.start()
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
        server.stop()

    assert kills == KILLS[backend]
    assert outcome.failures == []
    assert len(outcome.receipts) > kills
    assert len(set(outcome.refs)) == len(outcome.refs)
    ledger = _check_ledger(url, key_dir, outcome)
    # Every acknowledged record is stored once; none was appended twice.
    assert ledger.size >= len(outcome.receipts)
    ledger.close()
