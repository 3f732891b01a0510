"""Benchmark policy evaluation against a plain scan of the same ledger.

For each ledger size (a repeating mix of decisions, annotations and reviews,
as in tests/policies/test_scale.py) the script measures, best of N rounds:

- baseline: one SQL statement reading every entry's bytes
  (``SELECT sum(length(body)) FROM entries``), the least work any
  evaluation needs;
- evaluate: ``policies.evaluate`` of all six frameworks with a verification
  result passed in, so only the evidence layer runs;
- verify: ``Ledger.verify``, which ``evaluate`` runs once when not given one.

It prints evaluate / baseline, verify / baseline and the evidence statements
issued, which must not grow with the ledger. It also prints evaluate / verify
(goal <= 2) and the peak resident memory of the evaluation (goal < 500 MB,
1 MB = 10^6 bytes). Verify and evaluate each run in a fresh spawned process
(``bench/_ledger_builder.py``), so building the ledger does not count towards
the peak, which includes the interpreter and its imports.

The ledgers are built with unsigned receipts in batches of 50,000 records;
1,000,000 entries take a few minutes on a 2-core machine.

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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ledger_builder import (  # noqa: E402
    build_ledger,
    ledger_config,
    peak_rss_bytes,
    run_in_child,
)

from ledger import Ledger  # noqa: E402
from policies import evaluate  # noqa: E402
from tests.policies.test_scale import POLICY  # noqa: E402

RATIO_GOAL = 2.0
MEMORY_GOAL_BYTES = 500 * 10**6


def best_of(rounds: int, work: Callable[[], Any]) -> float:
    """Return the shortest wall time of ``rounds`` runs of ``work``."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def verify_step(url: str, key_dir: Path, rounds: int) -> dict[str, Any]:
    """Time ``Ledger.verify`` in this (child) process and return the last result."""
    with Ledger.open(url, config=ledger_config(key_dir)) as ledger:
        before = peak_rss_bytes()
        results = []
        seconds = best_of(rounds, lambda: results.append(ledger.verify()))
    return {
        "seconds": seconds,
        "result": results[-1],
        "rss_before": before,
        "rss_peak": peak_rss_bytes(),
    }


def evaluate_step(
    url: str, key_dir: Path, rounds: int, verified: Any
) -> dict[str, Any]:
    """Time all six frameworks' evaluation in this (child) process.

    The SQL statements are counted during the first round only.
    """
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    with Ledger.open(url, config=ledger_config(key_dir)) as ledger:
        before = peak_rss_bytes()
        event.listen(ledger.engine, "before_cursor_execute", count)
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            evaluate(ledger, policy=POLICY, verification=verified)
            times.append(time.perf_counter() - start)
            if event.contains(ledger.engine, "before_cursor_execute", count):
                event.remove(ledger.engine, "before_cursor_execute", count)
    return {
        "seconds": min(times),
        "statements": len(statements),
        "rss_before": before,
        "rss_peak": peak_rss_bytes(),
    }


def measure(ledger: Ledger, key_dir: Path, rounds: int) -> dict[str, Any]:
    """Time the baseline scan here, then verification and evaluation in children."""

    def scan() -> None:
        with ledger.engine.connect() as connection:
            connection.execute(text("SELECT sum(length(body)) FROM entries")).one()

    baseline = best_of(rounds, scan)
    verification = run_in_child(verify_step, ledger.url, key_dir, rounds)
    if not verification["result"].ok:
        raise SystemExit(
            f"the benchmark ledger failed verification: {verification['result'].fault}"
        )
    evaluation = run_in_child(
        evaluate_step, ledger.url, key_dir, rounds, verification["result"]
    )
    return {
        "baseline": baseline,
        "evaluate": evaluation["seconds"],
        "verify": verification["seconds"],
        "statements": evaluation["statements"],
        "evaluate_rss_before": evaluation["rss_before"],
        "evaluate_rss_peak": evaluation["rss_peak"],
        "verify_rss_peak": verification["rss_peak"],
    }


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def report(label: str, size: int, figures: dict[str, Any]) -> None:
    base = figures["baseline"]
    print(
        f"{label:<10} {size:>8} entries  baseline {base:7.3f} s  "
        f"evaluate {figures['evaluate']:7.3f} s ({figures['evaluate'] / base:6.1f}x)  "
        f"verify {figures['verify']:7.3f} s ({figures['verify'] / base:6.1f}x)  "
        f"statements {figures['statements']}"
    )
    ratio = figures["evaluate"] / figures["verify"]
    peak = figures["evaluate_rss_peak"]
    rise = peak - figures["evaluate_rss_before"]
    print(
        f"{'':<10} evaluate / verify {ratio:.2f} (goal <= {RATIO_GOAL:g}, "
        f"{verdict(ratio <= RATIO_GOAL)})  evaluate peak RSS {peak / 1e6:.0f} MB, "
        f"{rise / 1e6:.0f} MB above the child's peak before evaluating "
        f"(goal < {MEMORY_GOAL_BYTES / 1e6:.0f} MB, "
        f"{verdict(peak < MEMORY_GOAL_BYTES)})  "
        f"verify peak RSS {figures['verify_rss_peak'] / 1e6:.0f} MB",
        flush=True,
    )


def print_progress(count: int) -> None:
    print(f"  built {count:,} entries", file=sys.stderr, flush=True)


def run_sqlite(sizes: list[int], rounds: int, root: Path) -> None:
    for size in sizes:
        url = f"sqlite:///{root / f'bench-{size}.db'}"
        key_dir = root / f"keys-{size}"
        with build_ledger(url, key_dir, size, progress=print_progress) as ledger:
            report("sqlite", size, measure(ledger, key_dir, rounds))


def run_postgres(admin_url: str, sizes: list[int], rounds: int, root: Path) -> None:
    import psycopg

    dsn = admin_url.replace("postgresql+psycopg://", "postgresql://")
    for size in sizes:
        name = f"govledger_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        try:
            url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
            key_dir = root / f"pg-keys-{size}"
            with build_ledger(url, key_dir, size, progress=print_progress) as ledger:
                report("postgresql", size, measure(ledger, key_dir, rounds))
        finally:
            with psycopg.connect(dsn, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[10_000, 100_000],
        help="ledger sizes in entries, one ledger each (default: 10000 100000)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="timed runs of each step; the shortest counts (default: 3)",
    )
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
