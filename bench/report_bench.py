"""Benchmark a signed audit pack against the evaluation it reports.

On one SQLite ledger (default 1,000,000 entries, the record mix of
tests/policies/test_scale.py, built by ``bench/_ledger_builder.py``) the
script measures, in one run:

- verify: ``Ledger.verify``, whose result both later steps reuse, as
  ``govledger report`` does;
- evaluate: ``policies.evaluate`` of all six frameworks with that result;
- pack: ``reports.pack.issue_pack`` of that evaluation with the default
  ``max_embedded`` (10,000), as ``govledger report`` calls it: gather the
  evidence, sign a checkpoint, render the PDF, sign it with the default
  signing identity, write it and append its ``report_issued`` entry.

It prints pack / evaluate (goal <= 3) and the pack step's peak resident
memory (goal < 1 GiB). Each step runs in a fresh spawned process, so the
ledger build does not count towards a peak. A peak includes the
interpreter and its imports. Loading the signing identity is not timed.

Run: ``.venv/bin/python bench/report_bench.py [--size 1000000]``.
Building 1,000,000 entries takes a few minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
from reports.pack import DEFAULT_ACTOR, DEFAULT_MAX_EMBEDDED, issue_pack  # noqa: E402
from reports.signing import (  # noqa: E402
    ensure_signing_identity,
    load_signing_identity,
)
from tests.policies.test_scale import POLICY  # noqa: E402

RATIO_GOAL = 3.0
MEMORY_GOAL_BYTES = 2**30
MIB = 2**20


def verify_step(url: str, key_dir: Path) -> dict[str, Any]:
    """Verify the whole ledger in this (child) process."""
    with Ledger.open(url, config=ledger_config(key_dir)) as ledger:
        start = time.perf_counter()
        result = ledger.verify()
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "result": result, "rss_peak": peak_rss_bytes()}


def evaluate_step(url: str, key_dir: Path, verified: Any) -> dict[str, Any]:
    """Evaluate all six frameworks in this (child) process and return the result."""
    with Ledger.open(url, config=ledger_config(key_dir)) as ledger:
        start = time.perf_counter()
        evaluation = evaluate(ledger, policy=POLICY, verification=verified)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "evaluation": evaluation, "rss_peak": peak_rss_bytes()}


def pack_step(
    url: str,
    key_dir: Path,
    signing_dir: Path,
    evaluation: Any,
    verified: Any,
    out: Path,
) -> dict[str, Any]:
    """Issue the signed audit pack of ``evaluation`` in this (child) process."""
    with Ledger.open(url, config=ledger_config(key_dir)) as ledger:
        identity = load_signing_identity(signing_dir)
        before = peak_rss_bytes()
        start = time.perf_counter()
        issued = issue_pack(
            ledger,
            evaluation,
            out=out,
            identity=identity,
            organisation=ledger.origin,
            max_embedded=DEFAULT_MAX_EMBEDDED,
            verification=verified,
            actor=DEFAULT_ACTOR,
        )
        seconds = time.perf_counter() - start
    scope = issued.manifest["scope"]
    return {
        "seconds": seconds,
        "size": issued.size,
        "mode": scope["mode"],
        "cited": len(scope["cited_seqs"]),
        "rss_before": before,
        "rss_peak": peak_rss_bytes(),
    }


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def run(size: int, root: Path) -> None:
    url = f"sqlite:///{root / 'bench.db'}"
    key_dir = root / "keys"
    signing_dir = root / "signing"

    def progress(count: int) -> None:
        print(f"  built {count:,} entries", file=sys.stderr, flush=True)

    build_start = time.perf_counter()
    with build_ledger(url, key_dir, size, progress=progress) as ledger:
        origin = ledger.origin
    build_seconds = time.perf_counter() - build_start
    ensure_signing_identity(signing_dir, origin[:64])

    verification = run_in_child(verify_step, url, key_dir)
    verified = verification["result"]
    if not verified.ok:
        raise SystemExit(f"the benchmark ledger failed verification: {verified.fault}")
    evaluation = run_in_child(evaluate_step, url, key_dir, verified)
    pack = run_in_child(
        pack_step,
        url,
        key_dir,
        signing_dir,
        evaluation["evaluation"],
        verified,
        root / "audit-pack.pdf",
    )

    ratio = pack["seconds"] / evaluation["seconds"]
    peak = pack["rss_peak"]
    rise = peak - pack["rss_before"]
    print(f"sqlite {size:,} entries, built in {build_seconds:.1f} s")
    print(
        f"verify   {verification['seconds']:8.3f} s  "
        f"peak RSS {verification['rss_peak'] / MIB:6.0f} MiB"
    )
    print(
        f"evaluate {evaluation['seconds']:8.3f} s  "
        f"peak RSS {evaluation['rss_peak'] / MIB:6.0f} MiB"
    )
    print(
        f"pack     {pack['seconds']:8.3f} s  peak RSS {peak / MIB:6.0f} MiB "
        f"({rise / MIB:.0f} MiB above the child's peak before the pack step); "
        f"{pack['size']:,} bytes, scope mode {pack['mode']}, "
        f"{pack['cited']:,} cited entries"
    )
    print(
        f"pack / evaluate {ratio:.2f} (goal <= {RATIO_GOAL:g}, "
        f"{verdict(ratio <= RATIO_GOAL)})  pack peak RSS {peak / MIB:.0f} MiB "
        f"(goal < 1024 MiB, {verdict(peak < MEMORY_GOAL_BYTES)})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size",
        type=int,
        default=1_000_000,
        help="ledger size in entries (default: 1000000)",
    )
    args = parser.parse_args()
    os.environ.setdefault("GOVLEDGER_KEY_PASSPHRASE", "bench-only-passphrase")
    with tempfile.TemporaryDirectory() as directory:
        run(args.size, Path(directory))


if __name__ == "__main__":
    main()
