"""Krippendorff's alpha (nominal): a textbook example and the bundled Prodigy data."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

from ledger.canonical import canonical_bytes
from ledger.importers import read_prodigy
from policies.checks import CHECKS, krippendorff_alpha
from policies.config import PolicyConfig

from ..conftest import DATA
from .support import Clock, annotation, create_ledger, evidence

PRODIGY = DATA / "prodigy_pydata-ams-2023.jsonl"

# Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011), the
# example for nominal data with four observers, twelve units and missing
# values (None). The paper reports alpha = 0.743; exactly it is 113/152:
# n = 40 pairable values, D_o = 8 off-diagonal coincidences and
# D_e = 40^2 - (9^2 + 13^2 + 10^2 + 5^2 + 3^2) = 1216 for the value
# counts 9, 13, 10, 5, 3, so alpha = 1 - 39 * 8 / 1216 = 113/152.
TEXTBOOK = {
    "user:observer-a": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "user:observer-b": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "user:observer-c": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "user:observer-d": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}
TEXTBOOK_ALPHA = Fraction(113, 152)


def independent_alpha(units: dict[str, list[str]]) -> Fraction:
    """Alpha by the definition: every ordered pair of values within a unit."""
    coincidences: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
    for values in units.values():
        m = len(values)
        if m < 2:
            continue
        for i, j in itertools.permutations(range(m), 2):
            coincidences[(values[i], values[j])] += Fraction(1, m - 1)
    totals: dict[str, Fraction] = defaultdict(Fraction)
    for (c, _k), value in coincidences.items():
        totals[c] += value
    n = sum(totals.values())
    observed = sum(v for (c, k), v in coincidences.items() if c != k)
    expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k)
    return 1 - (n - 1) * observed / expected


def test_krippendorff_alpha_from_matrix_by_hand() -> None:
    """Two items, labels x/y: (x, x) agree, (x, y) disagree.

    Coincidences: o_xx = 2, o_xy = o_yx = 1; n_x = 3, n_y = 1, n = 4;
    alpha = 1 - 3 * 2 / (16 - 9 - 1) = 0.
    """
    cells = {
        ('"x"', '"x"'): Fraction(2),
        ('"x"', '"y"'): Fraction(1),
        ('"y"', '"x"'): Fraction(1),
    }
    assert krippendorff_alpha(cells) == 0


def test_krippendorff_alpha_undefined_for_one_label() -> None:
    assert krippendorff_alpha({('"x"', '"x"'): Fraction(4)}) is None


def test_textbook_example_alpha_exact(db_url: str, key_dir: Path) -> None:
    records = [
        annotation(f"u{unit + 1}", value, actor=observer)
        for observer, values in TEXTBOOK.items()
        for unit, value in enumerate(values)
        if value is not None
    ]
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append_many(records)
        policy = PolicyConfig()
        with evidence(ledger, policy=policy) as collected:
            matrix = collected.coincidences()
            result = CHECKS["inter-annotator-agreement"].run(collected, policy)
    assert matrix.units == 11
    assert matrix.values == 40
    assert krippendorff_alpha(matrix.cells) == TEXTBOOK_ALPHA
    assert result.figures["alpha_exact"] == "113/152"
    assert round(result.figures["alpha"], 3) == 0.743
    assert result.status == "satisfied"


def test_textbook_matches_independent_computation() -> None:
    units: dict[str, list[str]] = defaultdict(list)
    for values in TEXTBOOK.values():
        for unit, value in enumerate(values):
            if value is not None:
                units[str(unit)].append(str(value))
    assert independent_alpha(units) == TEXTBOOK_ALPHA


def test_alpha_below_minimum_not_satisfied(db_url: str, key_dir: Path) -> None:
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append_many(
            [
                annotation("i1", "x", actor="user:a"),
                annotation("i1", "x", actor="user:b"),
                annotation("i2", "x", actor="user:a"),
                annotation("i2", "y", actor="user:b"),
            ]
        )
        policy = PolicyConfig()
        with evidence(ledger, policy=policy) as collected:
            result = CHECKS["inter-annotator-agreement"].run(collected, policy)
    assert result.figures["alpha"] == 0.0
    assert result.status == "not-satisfied"
    assert result.findings[0].seqs == (2,)


def prodigy_units() -> dict[str, list[str]]:
    """Units of the raw Prodigy file, read without the importer or the ledger."""
    units: dict[str, list[str]] = defaultdict(list)
    with PRODIGY.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            task = json.loads(line)
            label = {"answer": task["answer"]}
            for name in ("label", "accept", "spans"):
                if name in task:
                    label[name] = task[name]
            units[str(task["_input_hash"])].append(canonical_bytes(label).decode())
    return units


# Computed once from the bundled file (about 0.3854) and equal to the
# independent computation; a change means the data, the import or alpha
# changed.
PRODIGY_ALPHA = Fraction(262254897842912389, 680414407664191200)


def test_prodigy_alpha_over_117_items(db_url: str, key_dir: Path) -> None:
    units = prodigy_units()
    shared = {item: values for item, values in units.items() if len(values) >= 2}
    expected = independent_alpha(units)
    with create_ledger(db_url, key_dir, Clock()) as ledger:
        ledger.append_many(list(read_prodigy(PRODIGY)))
        policy = PolicyConfig()
        with evidence(ledger, policy=policy) as collected:
            matrix = collected.coincidences()
            result = CHECKS["inter-annotator-agreement"].run(collected, policy)
    alpha = krippendorff_alpha(matrix.cells)
    assert len(shared) == 117
    assert matrix.units == 117
    assert matrix.values == sum(len(values) for values in shared.values())
    assert alpha == expected
    assert alpha == PRODIGY_ALPHA
    assert result.figures["units"] == 117
    assert result.figures["alpha"] == 0.385434
    assert result.status == "not-satisfied"
