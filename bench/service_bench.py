"""Benchmark the HTTP service and the PostgreSQL store against baselines.

Three ratios, each measured against a baseline in the same run:

- single appends: one-record appends over HTTP by 16 concurrent clients,
  divided by the same server's /healthz requests per second with the same
  16 clients (goal >= 0.5);
- batch appends: records per second of 500-record batches over HTTP,
  divided by local ``Ledger.append_many`` of the same batches on a SQLite
  file (goal >= 0.5);
- PostgreSQL: records per second of ``Ledger.append_many`` on PostgreSQL,
  divided by raw psycopg inserting the same entry rows into a copy of the
  entries table with its indexes, one transaction per batch (goal >= 0.35).

The server is one ``govledger serve`` process on 127.0.0.1; the load
generator is one asyncio process with httpx, on the same machine.

Run: ``.venv/bin/python bench/service_bench.py [--seconds S] [--batches N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg

from ledger import Ledger, LedgerConfig
from ledger.tokens import create_token

ROOT = Path(__file__).resolve().parents[1]
ORIGIN = "bench.example/ledger"
PG_ADMIN = os.environ.get(
    "GOVLEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
GOALS = {"single": 0.5, "batch": 0.5, "postgres": 0.35}
CLIENTS = 16
BATCH = 500


def record(number: int) -> dict[str, Any]:
    """Return an annotation record like an annotation tool sends."""
    return {
        "kind": "annotation",
        "actor": f"user:annotator-{number % 40}",
        "occurred_at": "2026-03-01T12:00:00Z",
        "item": {"dataset": "support-tickets", "id": f"ticket-{number}"},
        "label": {"intent": "refund" if number % 3 else "complaint", "urgent": False},
        "guideline": "v3",
        "source": {"system": "labeler", "ref": f"bench-{number}"},
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(url: str, key_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """Start ``govledger serve`` and wait until /healthz answers."""
    command = [
        sys.executable,
        str(ROOT / "cli.py"),
        "--db",
        url,
        "--key-dir",
        str(key_dir),
        "serve",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("govledger serve did not start")


async def load(
    base_url: str, token: str, seconds: float, *, append: bool
) -> tuple[int, float]:
    """Run 16 concurrent clients for ``seconds``; return (requests, elapsed)."""
    counter = iter(range(10**9))
    done = 0
    stop_at = 0.0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            if append:
                number = next(counter)
                response = await client.post(
                    "/v1/entries",
                    content=json.dumps(record(number)).encode(),
                    headers={
                        "Content-Type": "application/json",
                        "Idempotency-Key": str(uuid.uuid4()),
                    },
                )
                expected = 201
            else:
                response = await client.get("/healthz")
                expected = 200
            if response.status_code != expected:
                raise SystemExit(f"unexpected {response.status_code}: {response.text}")
            done += 1

    headers = {"Authorization": f"Bearer {token}"}
    clients = [
        httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60)
        for _ in range(CLIENTS)
    ]
    try:
        # Warm up the connections, then measure.
        stop_at = time.monotonic() + 0.5
        await asyncio.gather(*(worker(client) for client in clients))
        done = 0
        started = time.monotonic()
        stop_at = started + seconds
        await asyncio.gather(*(worker(client) for client in clients))
        return done, time.monotonic() - started
    finally:
        for client in clients:
            await client.aclose()


def batch_over_http(base_url: str, token: str, batches: int, offset: int) -> float:
    """Append ``batches`` batches of 500 records over HTTP; return records/s."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    bodies = [
        json.dumps(
            {"records": [record(offset + b * BATCH + i) for i in range(BATCH)]}
        ).encode()
        for b in range(batches)
    ]
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
        started = time.perf_counter()
        for body in bodies:
            response = client.post("/v1/entries", content=body)
            if response.status_code != 201:
                raise SystemExit(
                    f"batch failed: {response.status_code} {response.text}"
                )
        elapsed = time.perf_counter() - started
    return batches * BATCH / elapsed


def batch_local(url: str, key_dir: Path, batches: int) -> float:
    """Append the same batches with Ledger.append_many; return records/s."""
    ledger = Ledger.create(url, origin=ORIGIN, config=LedgerConfig(key_dir=key_dir))
    with ledger:
        groups = [[record(b * BATCH + i) for i in range(BATCH)] for b in range(batches)]
        started = time.perf_counter()
        for group in groups:
            ledger.append_many(group)
        elapsed = time.perf_counter() - started
    return batches * BATCH / elapsed


def postgres_ratio(
    batches: int, key_dir: Path
) -> tuple[float, float, dict[str, float]]:
    """Return records/s of Ledger.append_many on PostgreSQL and of raw psycopg.

    The third value holds the parts that explain the gap: the same appends
    without receipt signatures, and validation alone (``Ledger.prepare``).
    """
    name = f"govledger_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    url = f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    try:
        ledger = Ledger.create(url, origin=ORIGIN, config=LedgerConfig(key_dir=key_dir))
        with ledger:
            groups = [
                [record(b * BATCH + i) for i in range(BATCH)] for b in range(batches)
            ]
            started = time.perf_counter()
            for group in groups:
                ledger.append_many(group)
            ledger_rate = batches * BATCH / (time.perf_counter() - started)
            parts: dict[str, float] = {}
            started = time.perf_counter()
            for group in groups:
                ledger.append_many(group, sign_receipts=False)
            parts["append_many without receipt signatures"] = (
                batches * BATCH / (time.perf_counter() - started)
            )
            started = time.perf_counter()
            for group in groups:
                ledger.prepare(group)
            parts["validation only (Ledger.prepare)"] = (
                batches * BATCH / (time.perf_counter() - started)
            )

        with psycopg.connect(f"{base}/{name}") as connection:
            columns = [
                row[0]
                for row in connection.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = 'entries' ORDER BY ordinal_position"
                )
            ]
            rows = connection.execute(
                f"SELECT {', '.join(columns)} FROM entries ORDER BY seq "
                f"LIMIT {batches * BATCH}"
            ).fetchall()
            connection.execute("CREATE TABLE raw_entries (LIKE entries INCLUDING ALL)")
            connection.commit()
            insert = (
                f"INSERT INTO raw_entries ({', '.join(columns)}) "
                f"VALUES ({', '.join(['%s'] * len(columns))})"
            )
            started = time.perf_counter()
            for start in range(0, len(rows), BATCH):
                with connection.cursor() as cursor:
                    cursor.executemany(insert, rows[start : start + BATCH])
                connection.commit()
            raw_rate = len(rows) / (time.perf_counter() - started)
        return ledger_rate, raw_rate, parts
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="Per HTTP load run.")
    parser.add_argument("--batches", type=int, default=20, help="500-record batches.")
    args = parser.parse_args()
    os.environ.setdefault("GOVLEDGER_KEY_PASSPHRASE", "bench-passphrase")

    with tempfile.TemporaryDirectory() as temp:
        directory = Path(temp)
        url = f"sqlite:///{directory / 'service.db'}"
        key_dir = directory / "keys"
        ledger = Ledger.create(url, origin=ORIGIN, config=LedgerConfig(key_dir=key_dir))
        token = create_token(ledger, name="bench", role="appender")[1]
        ledger.close()
        port = free_port()
        server = start_server(url, key_dir, port)
        base_url = f"http://127.0.0.1:{port}"
        try:
            health, health_s = asyncio.run(
                load(base_url, token, args.seconds, append=False)
            )
            appends, appends_s = asyncio.run(
                load(base_url, token, args.seconds, append=True)
            )
            http_batch = batch_over_http(base_url, token, args.batches, offset=10**7)
        finally:
            server.terminate()
            server.wait(30)
        local_batch = batch_local(
            f"sqlite:///{directory / 'local.db'}",
            directory / "local-keys",
            args.batches,
        )
        pg_ledger, pg_raw, pg_parts = postgres_ratio(
            args.batches, directory / "pg-keys"
        )

    health_rate = health / health_s
    append_rate = appends / appends_s
    results = {
        "single": (append_rate, health_rate),
        "batch": (http_batch, local_batch),
        "postgres": (pg_ledger, pg_raw),
    }
    labels = {
        "single": (
            "HTTP single appends/s, 16 clients",
            "/healthz requests/s, 16 clients",
        ),
        "batch": ("HTTP batch records/s (500/request)", "local append_many records/s"),
        "postgres": ("PostgreSQL append_many records/s", "raw psycopg inserts rows/s"),
    }
    print(f"{'measure':<38} {'rate':>10}   {'baseline':<34} {'rate':>10}  ratio  goal")
    for name, (rate, baseline) in results.items():
        ratio = rate / baseline
        verdict = "met" if ratio >= GOALS[name] else "MISSED"
        label, base_label = labels[name]
        print(
            f"{label:<38} {rate:>10,.0f}   {base_label:<34} {baseline:>10,.0f}  "
            f"{ratio:5.2f}  >= {GOALS[name]} {verdict}"
        )
    print("PostgreSQL parts, records/s (ratio to raw psycopg):")
    for label, rate in pg_parts.items():
        print(f"  {label:<44} {rate:>10,.0f}  ({rate / pg_raw:.2f})")


if __name__ == "__main__":
    main()
