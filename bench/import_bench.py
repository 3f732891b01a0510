"""Benchmark the decisions-CSV import against a plain append in the same run.

The file is the bundled nannyml log (5,832 decisions and 5,832 ground-truth
reviews). Two ratios, each the import's rate (records per second) divided
by the baseline's:

- import: reading the CSV, skipping known sources and resolving each
  review's ``target.source`` to a seq, in one ``append_many``, against
  ``append_many`` of the same records already holding ``{"seq": N}``
  targets, without the source checks, into a new ledger;
- re-import: the same import again, where every record is skipped.

Run: ``.venv/bin/python bench/import_bench.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ledger import Ledger, LedgerConfig
from ledger.importers import read_decisions_csv

LOG = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "nannyml_california_housing_reference.csv"
)


def read_log() -> list[dict[str, Any]]:
    """Read the nannyml log into input records."""
    return list(
        read_decisions_csv(
            LOG,
            id_col="id",
            score_col="y_pred_proba",
            prediction_col="y_pred",
            time_col="timestamp",
            truth_col="clf_target",
            model="california-housing-clf@0.13.1",
        )
    )


def with_seq_targets(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace each review's source target by the seq its decision will get."""
    seqs: dict[str, int] = {}
    result = []
    for seq, record in enumerate(records):
        seqs[record["source"]["ref"]] = seq
        if record["kind"] == "review":
            ref = record["target"]["source"]["ref"]
            record = {**record, "target": {"seq": seqs[ref]}}
        result.append(record)
    return result


def new_ledger(directory: Path, name: str) -> Ledger:
    return Ledger.create(
        f"sqlite:///{directory / name}.db",
        origin="bench.example/ledger",
        config=LedgerConfig(key_dir=directory / f"{name}-keys"),
    )


def timed(action: Any) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=3, help="Runs of each; best kept."
    )
    options = parser.parse_args()
    os.environ.setdefault("GOVLEDGER_KEY_PASSPHRASE", "bench-passphrase")
    count = len(read_log())
    baseline, imported, reimported = [], [], []
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        for round_number in range(options.rounds):
            plain = with_seq_targets(read_log())
            with new_ledger(directory, f"baseline-{round_number}") as ledger:
                baseline.append(
                    timed(lambda: ledger.append_many(plain, sign_receipts=False))
                )
            with new_ledger(directory, f"import-{round_number}") as ledger:

                def run_import() -> None:
                    ledger.append_many(
                        read_log(),
                        skip_known_sources=True,
                        resolve_source_targets=True,
                        sign_receipts=False,
                    )

                imported.append(timed(run_import))
                reimported.append(timed(run_import))
                assert ledger.size == count
    best = {
        "baseline": min(baseline),
        "import": min(imported),
        "re-import": min(reimported),
    }
    print(f"records: {count}, rounds: {options.rounds}, best of each (seconds)")
    for name, seconds in best.items():
        print(f"{name:>10}: {seconds:7.3f} s  {count / seconds:9.0f} records/s")
    for name in ("import", "re-import"):
        print(f"{name} / baseline rate ratio: {best['baseline'] / best[name]:.2f}")


if __name__ == "__main__":
    main()
