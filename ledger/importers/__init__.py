"""Importers: turn export files of annotation tools and model logs into input records.

Every importer sets ``source = {"system", "ref"}`` from the source's own ids,
so that ``Ledger.append_many(..., skip_known_sources=True)`` appends nothing
when the same file is imported again. Importers whose reviews target records
of the same file (Label Studio, decision logs) name the target by its source
(``target.source``); append their records with
``resolve_source_targets=True``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .decisions_csv import read_decisions_csv
from .jsonl import read_prodigy, read_records
from .label_studio import read_label_studio

__all__ = [
    "IMPORTERS",
    "read_decisions_csv",
    "read_label_studio",
    "read_prodigy",
    "read_records",
]

IMPORTERS: dict[str, Callable[..., Iterator[Any]]] = {
    "records": read_records,
    "prodigy": read_prodigy,
    "label-studio": read_label_studio,
    "decisions-csv": read_decisions_csv,
}
"""The importer of each ``govledger import --format`` name; a path comes first."""
