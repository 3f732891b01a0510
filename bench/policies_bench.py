"""Benchmark policy evaluation against a plain scan of the same ledger.

For each ledger size (a repeating mix of decisions, annotations and reviews,
as in tests/policies/test_scale.py) the script measures, best of N rounds:

- baseline: one SQL statement reading every entry's bytes
  (``SELECT sum(length(body)) FROM entries``), the least work any
  evaluation needs;
- evaluate: ``policies.evaluate`` of all six frameworks with a verification
  result passed in, so only the evidence layer runs;
- verify: ``Ledger.verify``, which ``evaluate`` runs once when not given one.

It prints evaluate / baseline and verify / baseline, and the evidence
statements issued, which must not grow with the ledger.

Run: ``.venv/bin/python bench/policies_bench.py [--sizes 10000 100000]
[--rounds 3] [--postgres postgresql+psycopg://postgres@127.0.0.1/postgres]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger import Ledger  # noqa: E402
from policies import evaluate  # noqa: E402
from tests.policies.test_scale import POLICY, build  # noqa: E402


def best_of(rounds: int, work: Callable[[], Any]) -> float:
    """Return the shortest wall time of ``rounds`` runs of ``work``."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(ledger: Ledger, rounds: int) -> dict[str, float]:
    """Time the baseline scan, the evaluation and the verification."""
    verified = ledger.verify()
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    def scan() -> None:
        with ledger.engine.connect() as connection:
            connection.execute(text("SELECT sum(length(body)) FROM entries")).one()

    baseline = best_of(rounds, scan)
    evaluation = best_of(
        rounds, lambda: evaluate(ledger, policy=POLICY, verification=verified)
    )
    event.listen(ledger.engine, "before_cursor_execute", count)
    evaluate(ledger, policy=POLICY, verification=verified)
    event.remove(ledger.engine, "before_cursor_execute", count)
    verification = best_of(1, ledger.verify)
    return {
        "baseline": baseline,
        "evaluate": evaluation,
        "verify": verification,
        "statements": len(statements),
    }


def report(label: str, size: int, figures: dict[str, float]) -> None:
    base = figures["baseline"]
    print(
        f"{label:<10} {size:>8} entries  baseline {base:7.3f} s  "
        f"evaluate {figures['evaluate']:7.3f} s ({figures['evaluate'] / base:6.1f}x)  "
        f"verify {figures['verify']:7.3f} s ({figures['verify'] / base:6.1f}x)  "
        f"statements {figures['statements']}"
    )


def run_sqlite(sizes: list[int], rounds: int, root: Path) -> None:
    for size in sizes:
        url = f"sqlite:///{root / f'bench-{size}.db'}"
        with build(url, root / f"keys-{size}", size) as ledger:
            report("sqlite", size, measure(ledger, rounds))


def run_postgres(admin_url: str, sizes: list[int], rounds: int, root: Path) -> None:
    import psycopg

    dsn = admin_url.replace("postgresql+psycopg://", "postgresql://")
    for size in sizes:
        name = f"govledger_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        try:
            url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
            with build(url, root / f"pg-keys-{size}", size) as ledger:
                report("postgresql", size, measure(ledger, rounds))
        finally:
            with psycopg.connect(dsn, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--postgres",
        default=None,
        help="admin URL of a PostgreSQL server to benchmark too; a database is "
        "created and dropped for each size",
    )
    args = parser.parse_args()
    os.environ.setdefault("GOVLEDGER_KEY_PASSPHRASE", "bench-only-passphrase")
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        run_sqlite(args.sizes, args.rounds, root)
        if args.postgres:
            run_postgres(args.postgres, args.sizes, args.rounds, root)


if __name__ == "__main__":
    main()
