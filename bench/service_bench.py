"""Benchmark the HTTP service and the PostgreSQL store against baselines.

Three ratios, each govledger's rate divided by a baseline measured in the
same run:

- single appends: one-record appends over HTTP by 16 concurrent clients,
  against the same server's /healthz requests per second with the same 16
  clients (goal >= 0.5);
- batch appends: records per second of 500-record batches over HTTP,
  against local ``Ledger.append_many`` of the same batches on another
  SQLite file (goal >= 0.5);
- PostgreSQL: records per second of ``Ledger.append_many``, against raw
  psycopg inserting the same entry rows into a copy of the entries table
  with its indexes, one transaction per batch (goal >= 0.35). A first
  batch on each side warms up connections and prepared statements and is
  not counted.

Each pair is measured in alternation (A, B, A, B, ...) so that both sides
see the same load from other processes on a shared machine. The server is
one ``govledger serve`` process on 127.0.0.1; the load generator is this
process, asyncio with httpx.

Run: ``.venv/bin/python bench/service_bench.py [--rounds N] [--batches N]``.
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
).replace("postgresql+psycopg://", "postgresql://")
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


def batch(number: int) -> list[dict[str, Any]]:
    """Return the records of batch ``number``."""
    return [record(number * BATCH + offset) for offset in range(BATCH)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(url: str, key_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """Start ``govledger serve`` on 127.0.0.1 and wait until /healthz responds."""
    command = [
        sys.executable,
        str(ROOT / "cli.py"),
        "--db",
        url,
        "--key-dir",
        str(key_dir),
        "serve",
        "--host",
        "127.0.0.1",
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


class Load:
    """16 HTTP clients that send /healthz requests or one-record appends."""

    def __init__(self, base_url: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        self.clients = [
            httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60)
            for _ in range(CLIENTS)
        ]
        self.numbers = iter(range(10**9))

    async def run(self, seconds: float, *, append: bool) -> tuple[int, float]:
        """Keep all clients busy for ``seconds``; return (requests, seconds)."""
        stop_at = time.monotonic() + seconds
        counts = await asyncio.gather(
            *(self._worker(client, stop_at, append) for client in self.clients)
        )
        return sum(counts), seconds

    async def _worker(
        self, client: httpx.AsyncClient, stop_at: float, append: bool
    ) -> int:
        done = 0
        while time.monotonic() < stop_at:
            if append:
                response = await client.post(
                    "/v1/entries",
                    content=json.dumps(record(next(self.numbers))).encode(),
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
        return done

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


async def single_appends(base_url: str, token: str, rounds: int) -> tuple[float, float]:
    """Return (appends/s, healthz/s), alternating 2-second windows."""
    load = Load(base_url, token)
    totals = {True: [0, 0.0], False: [0, 0.0]}
    try:
        await load.run(0.5, append=False)
        await load.run(0.5, append=True)
        for _ in range(rounds):
            for append in (False, True):
                count, seconds = await load.run(2.0, append=append)
                totals[append][0] += count
                totals[append][1] += seconds
    finally:
        await load.close()
    return (
        totals[True][0] / totals[True][1],
        totals[False][0] / totals[False][1],
    )


def batch_appends(
    base_url: str, token: str, ledger: Ledger, batches: int
) -> tuple[float, float]:
    """Return records/s of batches over HTTP and of local append_many."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    http_seconds = local_seconds = 0.0
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
        for number in range(batches):
            body = json.dumps({"records": batch(1000 + number)}).encode()
            started = time.perf_counter()
            response = client.post("/v1/entries", content=body)
            http_seconds += time.perf_counter() - started
            if response.status_code != 201:
                raise SystemExit(
                    f"batch failed: {response.status_code} {response.text}"
                )
            records = batch(number)
            started = time.perf_counter()
            ledger.append_many(records)
            local_seconds += time.perf_counter() - started
    total = batches * BATCH
    return total / http_seconds, total / local_seconds


def postgres_appends(batches: int, key_dir: Path) -> tuple[float, float, float]:
    """Return records/s on PostgreSQL: append_many, raw psycopg, and unsigned.

    The third rate is ``append_many(sign_receipts=False)``, which shows how
    much of the gap the receipt signatures make.
    """
    name = f"govledger_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    url = f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    try:
        ledger = Ledger.create(url, origin=ORIGIN, config=LedgerConfig(key_dir=key_dir))
        with ledger, psycopg.connect(f"{base}/{name}") as raw:
            columns = [
                row[0]
                for row in raw.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = 'entries' ORDER BY ordinal_position"
                )
            ]
            raw.execute("CREATE TABLE raw_entries (LIKE entries INCLUDING ALL)")
            raw.commit()
            select = (
                f"SELECT {', '.join(columns)} FROM entries "
                "WHERE seq >= %s AND seq < %s ORDER BY seq"
            )
            insert = (
                f"INSERT INTO raw_entries ({', '.join(columns)}) "
                f"VALUES ({', '.join(['%s'] * len(columns))})"
            )
            seconds = {"ledger": 0.0, "raw": 0.0, "unsigned": 0.0}
            # Round 0 warms up both sides (connections, prepared statements,
            # caches) and is not counted.
            for number in range(batches + 1):
                counted = 1.0 if number else 0.0
                records = batch(number)
                started = time.perf_counter()
                receipts = ledger.append_many(records)
                seconds["ledger"] += counted * (time.perf_counter() - started)

                first = receipts[0]["seq"]
                rows = raw.execute(select, (first, first + BATCH)).fetchall()
                raw.commit()
                started = time.perf_counter()
                with raw.cursor() as cursor:
                    cursor.executemany(insert, rows)
                raw.commit()
                seconds["raw"] += counted * (time.perf_counter() - started)

                records = batch(batches + 1 + number)
                started = time.perf_counter()
                ledger.append_many(records, sign_receipts=False)
                seconds["unsigned"] += counted * (time.perf_counter() - started)
        total = batches * BATCH
        return (
            total / seconds["ledger"],
            total / seconds["raw"],
            total / seconds["unsigned"],
        )
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=4, help="Pairs of 2-second HTTP load windows."
    )
    parser.add_argument(
        "--batches", type=int, default=20, help="500-record batches per measure."
    )
    args = parser.parse_args()
    os.environ.setdefault("GOVLEDGER_KEY_PASSPHRASE", "bench-passphrase")

    with tempfile.TemporaryDirectory() as temp:
        directory = Path(temp)
        url = f"sqlite:///{directory / 'service.db'}"
        key_dir = directory / "keys"
        ledger = Ledger.create(url, origin=ORIGIN, config=LedgerConfig(key_dir=key_dir))
        token = create_token(ledger, name="bench", role="appender")[1]
        ledger.close()
        local = Ledger.create(
            f"sqlite:///{directory / 'local.db'}",
            origin=ORIGIN,
            config=LedgerConfig(key_dir=directory / "local-keys"),
        )
        port = free_port()
        server = start_server(url, key_dir, port)
        base_url = f"http://127.0.0.1:{port}"
        try:
            append_rate, health_rate = asyncio.run(
                single_appends(base_url, token, args.rounds)
            )
            http_batch, local_batch = batch_appends(
                base_url, token, local, args.batches
            )
        finally:
            server.terminate()
            server.wait(30)
            local.close()
        pg_ledger, pg_raw, pg_unsigned = postgres_appends(
            args.batches, directory / "pg-keys"
        )

    rows = [
        (
            "single",
            "HTTP one-record appends/s, 16 clients",
            append_rate,
            "/healthz requests/s, 16 clients",
            health_rate,
        ),
        (
            "batch",
            "HTTP batch records/s (500/request)",
            http_batch,
            "local append_many records/s",
            local_batch,
        ),
        (
            "postgres",
            "PostgreSQL append_many records/s",
            pg_ledger,
            "raw psycopg inserted rows/s",
            pg_raw,
        ),
    ]
    print(f"{'measure':<38} {'rate':>8}   {'baseline':<32} {'rate':>8}  ratio  goal")
    for name, label, rate, base_label, baseline in rows:
        ratio = rate / baseline
        verdict = "met" if ratio >= GOALS[name] else "MISSED"
        print(
            f"{label:<38} {rate:>8,.0f}   {base_label:<32} {baseline:>8,.0f}  "
            f"{ratio:5.2f}  >= {GOALS[name]} {verdict}"
        )
    print(
        f"PostgreSQL append_many(sign_receipts=False): {pg_unsigned:,.0f} records/s, "
        f"ratio {pg_unsigned / pg_raw:.2f} to raw psycopg"
    )


if __name__ == "__main__":
    main()
