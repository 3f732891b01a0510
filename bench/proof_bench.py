"""Proof and checkpoint cost at 10,000 and 1,000,000 entries, in one run.

The Merkle tree keeps node hashes, so an inclusion proof, a consistency proof
and a checkpoint's root cost O(log n) reads: going from 10k to 1M entries
(100 times more) should cost at most about 3 times as much. The script
builds both ledgers through ``append_many`` (SQLite, in a temporary
directory), times each operation over many random positions, and prints
the ratio of the 1M time to the 10k time with the goal (<= 3).

Run: ``.venv/bin/python bench/proof_bench.py [--large 1000000] [--small 10000]``.
Building the large ledger takes a few minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ledger_bench import make_records  # noqa: E402

from ledger import Ledger, LedgerConfig  # noqa: E402

GOAL = 3.0


def build(workdir: Path, size: int) -> Ledger:
    config = LedgerConfig(
        key_dir=workdir / "keys", checkpoint_every=0, checkpoint_interval_s=0
    )
    ledger = Ledger.create(
        f"sqlite:///{workdir / 'ledger.db'}",
        origin="bench.example/proofs",
        config=config,
    )
    batch = 50_000
    for start in range(0, size, batch):
        ledger.append_many(make_records(min(batch, size - start)), sign_receipts=False)
        print(f"  built {min(start + batch, size):,} entries", file=sys.stderr)
    ledger.make_checkpoint()
    return ledger


def median_seconds(operation, arguments: list[tuple]) -> float:
    times = []
    for args in arguments:
        start = time.perf_counter()
        operation(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(ledger: Ledger, samples: int, rng: random.Random) -> dict[str, float]:
    size = ledger.size
    inclusion = median_seconds(
        ledger.inclusion_proof,
        [(rng.randrange(size), size) for _ in range(samples)],
    )
    consistency = median_seconds(
        ledger.consistency_proof,
        [(rng.randrange(1, size), size) for _ in range(samples)],
    )
    checkpoint_times = []
    for _ in range(max(5, samples // 20)):
        ledger.append_many(make_records(1), sign_receipts=False)
        start = time.perf_counter()
        ledger.make_checkpoint()
        checkpoint_times.append(time.perf_counter() - start)
    return {
        "inclusion proof": inclusion,
        "consistency proof": consistency,
        "checkpoint": statistics.median(checkpoint_times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("GOVLEDGER_KEY_PASSPHRASE", "bench-only")
    rng = random.Random(7)
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for size in (args.small, args.large):
            workdir = Path(directory) / str(size)
            workdir.mkdir()
            print(f"building a ledger of {size:,} entries", file=sys.stderr)
            ledger = build(workdir, size)
            results[size] = measure(ledger, args.samples, rng)
            ledger.close()
    print(f"{'operation':<20}{args.small:>12,}{args.large:>12,}{'ratio':>8}{'goal':>7}")
    for name in results[args.small]:
        small, large = results[args.small][name], results[args.large][name]
        ratio = large / small
        mark = "ok" if ratio <= GOAL else "MISSED"
        print(
            f"{name:<20}{small * 1e3:>10.3f}ms{large * 1e3:>10.3f}ms"
            f"{ratio:>8.2f}{GOAL:>7.1f} {mark}"
        )


if __name__ == "__main__":
    main()
