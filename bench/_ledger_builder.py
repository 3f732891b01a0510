"""Build large benchmark ledgers and measure steps in a fresh child process.

The ledgers repeat the record mix of tests/policies/test_scale.py (half
decisions, 30% annotations, 20% reviews), appended with unsigned receipts
in batches of ``BATCH`` records so that 1,000,000 entries take minutes.

``run_in_child`` runs one measured step in a new interpreter started with
the ``spawn`` method, so the step's peak memory leaves out the ledger build.
``peak_rss_bytes`` reads that peak from ``VmHWM``, not from ``ru_maxrss``.
On Linux, ``ru_maxrss`` survives the fork and exec of a spawn, so a spawned
child reports at least its parent's RSS. With a parent of 300 MiB, Linux
6.18 and Python 3.11.7, a spawned child read 321,952 KiB of ``ru_maxrss``
and 15,528 KiB of ``VmHWM``.
"""

from __future__ import annotations

import multiprocessing
import resource
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger import Ledger, LedgerConfig  # noqa: E402
from tests.policies.support import T0, Clock  # noqa: E402
from tests.policies.test_scale import pattern  # noqa: E402

BATCH = 50_000
ORIGIN = "bench.example/ledger"

Result = TypeVar("Result")


def ledger_config(key_dir: Path) -> LedgerConfig:
    """Return the config of a benchmark ledger: no automatic checkpoints."""
    return LedgerConfig(key_dir=key_dir, checkpoint_every=0, checkpoint_interval_s=0)


def build_ledger(
    url: str,
    key_dir: Path,
    size: int,
    *,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> Ledger:
    """Create a ledger at ``url`` and append ``size`` records of the test pattern.

    Each batch is one ``append_many`` call with unsigned receipts. The clock
    moves one hour per batch, so ``recorded_at`` spans ``size / batch`` hours
    from 2026-01-05 09:00 UTC. ``progress`` receives the entry count after
    each batch. The log key is encrypted with GOVLEDGER_KEY_PASSPHRASE.
    """
    clock = Clock()
    ledger = Ledger.create(
        url, origin=ORIGIN, config=ledger_config(key_dir), clock=clock
    )
    for start in range(0, size, batch):
        clock.at(T0 + timedelta(hours=start // batch))
        stop = min(size, start + batch)
        records = [pattern(index) for index in range(start, stop)]
        ledger.append_many(records, sign_receipts=False)
        if progress is not None:
            progress(stop)
    return ledger


def peak_rss_bytes() -> int:
    """Return the peak resident set size of this process's program in bytes.

    On Linux this is ``VmHWM`` of /proc/self/status, which starts again at
    exec. Elsewhere it falls back to ``ru_maxrss`` (bytes on macOS, KiB on
    other systems), which may include the parent's peak.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def run_in_child(step: Callable[..., Result], *args: Any) -> Result:
    """Run ``step(*args)`` in a new spawned process and return its result.

    ``step`` must be a module-level function, and its arguments and result
    must pickle. The step reads its own ``peak_rss_bytes()`` and returns it.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(step, *args).result()
