"""Benchmark the ledger core against raw sqlite3 + hashlib in the same run.

Three ratios, each govledger's rate divided by the baseline's rate:

- append_many: 100k decision records in one call, against raw sqlite3
  hashing the same canonical bytes and inserting the same rows (same
  table and indexes) in one transaction;
- verify: a full ``verify``, against raw sqlite3 reading every row and
  recomputing the same SHA-256 in one process. ``verify`` uses worker
  processes (one per CPU) for a ledger this size; verify_serial is the same
  check in one process, printed for comparison. Both use the compiled
  module ``ledger._rowcheck`` unless ``--python-check`` is given;
- single appends: durable one-record appends, against raw sqlite3 inserting
  the same rows (read back from the ledger) one transaction each, with the
  same WAL and synchronous=FULL, into a table that already holds every
  earlier row of the ledger, so both sides insert into trees of one size.

Verify and single appends run in interleaved rounds (``--rounds``), and
each side keeps its best round.

Run: ``.venv/bin/python bench/ledger_bench.py [--records N] [--singles N]``;
``--python-check`` measures verify without its compiled module.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from ledger import Ledger, LedgerConfig, verify_rows

GOALS = {
    "append_many": 0.35,
    "append_signed": 0.35,
    "verify": 0.5,
    "verify_serial": None,
    "single_append": 0.5,
}


def make_records(count: int) -> list[dict]:
    """Build ``count`` decision records like a model server would send."""
    return [
        {
            "kind": "decision",
            "actor": "svc:credit-model",
            "occurred_at": "2026-03-01T12:00:00Z",
            "item": {"dataset": "applications-2026", "id": f"app-{i}"},
            "model": {"name": "credit-risk", "version": "4.2.0"},
            "output": "approve" if i % 3 else "refer",
            "confidence": round(0.5 + (i % 500) / 1000, 3),
            "threshold": 0.8,
        }
        for i in range(count)
    ]


def entries_schema(ledger_path: Path) -> list[str]:
    """Return the DDL of the ledger's entries table and its indexes."""
    with sqlite3.connect(ledger_path) as source:
        return [
            sql
            for (sql,) in source.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'entries' "
                "AND type IN ('table', 'index') AND sql IS NOT NULL"
            )
        ]


def raw_connection(path: Path, schema: list[str]) -> sqlite3.Connection:
    """Open a raw sqlite3 database with the same entries table and indexes."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    for statement in schema:
        connection.execute(statement)
    return connection


def raw_insert(
    connection: sqlite3.Connection, rows: list[tuple], columns: list[str]
) -> None:
    """Hash each body and insert the same rows the ledger inserted."""
    marks = ", ".join("?" for _ in columns)
    statement = f"INSERT INTO entries ({', '.join(columns)}) VALUES ({marks})"
    hashed = [
        (row[0], hashlib.sha256(b"\x00" + row[2]).hexdigest(), *row[2:]) for row in rows
    ]
    connection.execute("BEGIN")
    connection.executemany(statement, hashed)
    connection.execute("COMMIT")


def raw_verify(connection: sqlite3.Connection) -> int:
    count = 0
    for _seq, stored, body in connection.execute(
        "SELECT seq, entry_hash, body FROM entries ORDER BY seq"
    ):
        if hashlib.sha256(b"\x00" + body).hexdigest() != stored:
            raise AssertionError("raw verify mismatch")
        count += 1
    return count


def stored_rows(
    ledger_path: Path, start: int, end: int
) -> tuple[list[str], list[tuple]]:
    """Read the entry rows with ``start <= seq < end`` as the ledger stored them."""
    with sqlite3.connect(ledger_path) as source:
        cursor = source.execute(
            "SELECT * FROM entries WHERE seq >= ? AND seq < ? ORDER BY seq",
            (start, end),
        )
        columns = [description[0] for description in cursor.description]
        return columns, cursor.fetchall()


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--singles", type=int, default=300)
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds of verify and single appends"
    )
    parser.add_argument(
        "--signed", type=int, default=20_000, help="records for the signed run"
    )
    parser.add_argument(
        "--python-check",
        action="store_true",
        help="verify without the compiled module ledger._rowcheck",
    )
    args = parser.parse_args()
    if args.python_check:
        verify_rows._rowcheck = None
    os.environ.setdefault("GOVLEDGER_KEY_PASSPHRASE", "bench-only")
    records = make_records(args.records)
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        config = LedgerConfig(
            key_dir=workdir / "keys", checkpoint_every=0, checkpoint_interval_s=0
        )
        ledger = Ledger.create(
            f"sqlite:///{workdir / 'ledger.db'}",
            origin="bench.example/ledger",
            config=config,
        )
        ledger_time, _ = timed(lambda: ledger.append_many(records, sign_receipts=False))
        signed_records = make_records(args.signed)
        signed_time, _ = timed(ledger.append_many, signed_records)
        schema = entries_schema(workdir / "ledger.db")
        size = args.records + args.signed
        columns, rows = stored_rows(workdir / "ledger.db", 0, args.records)
        raw = raw_connection(workdir / "raw.db", schema)
        raw_time, _ = timed(raw_insert, raw, rows, columns)
        raw_single = raw_connection(workdir / "raw-single.db", schema)
        raw_insert(raw_single, stored_rows(workdir / "ledger.db", 0, size)[1], columns)

        ledger.make_checkpoint()
        verify_times, serial_times, raw_verify_times = [], [], []
        single_times, raw_single_times = [], []
        # Short runs on a shared machine vary a lot, so both sides run in
        # interleaved rounds and each keeps its best round.
        for _ in range(args.rounds):
            verify_time, result = timed(ledger.verify)
            assert result.ok, result.fault
            verify_times.append(verify_time)
            raw_verify_times.append(timed(raw_verify, raw)[0])
            serial_time, result = timed(lambda: ledger.verify(workers=0))
            assert result.ok, result.fault
            serial_times.append(serial_time)

            singles = make_records(args.singles)
            single_times.append(
                timed(lambda batch=singles: [ledger.append(r) for r in batch])[0]
            )
            batch = stored_rows(workdir / "ledger.db", size, size + args.singles)[1]
            assert len(batch) == args.singles, "the ledger grew by other entries"
            size += args.singles

            def raw_singles(batch: list[tuple] = batch) -> None:
                for row in batch:
                    raw_insert(raw_single, [row], columns)

            raw_single_times.append(timed(raw_singles)[0])
        ledger.close()

    n, s = args.records, args.singles
    rows = [
        ("append_many", n / ledger_time, n / raw_time),
        ("append_signed", args.signed / signed_time, n / raw_time),
        ("verify", (n + args.signed) / min(verify_times), n / min(raw_verify_times)),
        (
            "verify_serial",
            (n + args.signed) / min(serial_times),
            n / min(raw_verify_times),
        ),
        ("single_append", s / min(single_times), s / min(raw_single_times)),
    ]
    print(f"records: {n} decisions, single appends: {s}")
    print(f"{'operation':<15}{'govledger/s':>14}{'raw/s':>14}{'ratio':>8}{'goal':>7}")
    for name, ours, baseline in rows:
        ratio = ours / baseline
        goal = GOALS[name]
        if goal is None:
            goal_text, mark = "-", ""
        else:
            goal_text, mark = f"{goal:.2f}", "ok" if ratio >= goal else "MISSED"
        print(
            f"{name:<15}{ours:>14,.0f}{baseline:>14,.0f}{ratio:>8.2f}"
            f"{goal_text:>7} {mark}"
        )


if __name__ == "__main__":
    main()
