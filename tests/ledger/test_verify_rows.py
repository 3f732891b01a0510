"""The batch range check that verify runs before its per-entry walk.

The range check must pass only what the walk passes, so each case below
builds rows whose bodies hash correctly and checks that the range check
agrees with the walk's derivation. The end-to-end tests run verify with
small ranges and worker processes on both databases.

Every test runs twice: with the compiled fast path (ledger/_rowcheck.c) and
with the Python check alone. tests/ledger/test_rowcheck.py compares the two
on many more rows.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ledger.verify as verify_module
import ledger.verify_rows as verify_rows
from ledger import Ledger, LedgerConfig
from ledger.canonical import canonical_bytes
from ledger.entries import DERIVED_COLUMNS, GENESIS_PREV, derived_columns
from ledger.verify_rows import check_rows
from tests.ledger.test_verify import drop_triggers, execute, fetch

RECORDED_AT = "2026-03-01T12:00:00.000000Z"


@pytest.fixture(autouse=True, params=["compiled", "python"])
def implementation(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Check ranges with the compiled module, or with Python alone."""
    if request.param == "python":
        monkeypatch.setattr(verify_rows, "_rowcheck", None)
    elif verify_rows._rowcheck is None:
        if os.environ.get("GOVLEDGER_REQUIRE_ACCELERATOR") == "1":
            pytest.fail("ledger._rowcheck was not built")
        pytest.skip("ledger._rowcheck was not built (no C compiler or libssl-dev)")
    return request.param


def test_compiled_module_reads_sqlite_itself(implementation: str) -> None:
    if implementation == "compiled":
        assert verify_rows._rowcheck.SQLITE_READER


def _record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "actor": "svc:credit-model",
        "occurred_at": "2026-03-01T11:59:00Z",
        "item": {"dataset": "applications", "id": "app-1"},
        "model": {"name": "credit-risk", "version": "4.2.0"},
        "output": "approve",
        "confidence": 0.91,
    }
    record.update(changes)
    return record


def _row(
    record: dict[str, Any],
    *,
    body: bytes | None = None,
    columns: dict[str, Any] | None = None,
    seq: int = 0,
) -> tuple[Any, ...]:
    """Build a stored row (seq, entry_hash, body, derived columns...).

    The hash matches the body. The derived columns are computed from
    ``record`` unless ``columns`` replaces some of them, as an attacker
    editing the table would.
    """
    if body is None:
        body = canonical_bytes(
            {
                "kind": "decision",
                "prev": GENESIS_PREV,
                "record": record,
                "recorded_at": RECORDED_AT,
                "seq": seq,
                "v": 1,
            }
        )
    derived = derived_columns("decision", RECORDED_AT, record)
    derived.update(columns or {})
    entry_hash = hashlib.sha256(b"\x00" + body).hexdigest()
    return (seq, entry_hash, body, *(derived[name] for name in DERIVED_COLUMNS))


def _passes(row: tuple[Any, ...]) -> bool:
    report, _leaves = check_rows(row[0], row[0] + 1, [row])
    return report.passed


def test_clean_row_passes() -> None:
    assert _passes(_row(_record()))


@pytest.mark.parametrize(
    "changes",
    [
        {"occurred_at": "2026-03-01T12:59:00+01:00"},
        {"occurred_at": "2026-03-01T11:59:00.250Z"},
        {"confidence": 1},
        {"model": None},
        {"subject": {"id": "patient-7"}},
        {"target": {"seq": 4, "entry_hash": "ab" * 32}},
        {"source": {"system": "label-studio", "ref": "task-9"}},
    ],
)
def test_rows_needing_exact_derivation_pass(changes: dict[str, Any]) -> None:
    assert _passes(_row(_record(**changes)))


@pytest.mark.parametrize(
    ("changes", "columns"),
    [
        ({}, {"actor": "svc:other-model"}),
        ({}, {"confidence": 0.92}),
        ({}, {"occurred_at": "2026-03-01T11:58:00.000000Z"}),
        ({}, {"item_id": None}),
        ({"confidence": True}, {"confidence": 1.0}),
        ({"target": {"seq": True}}, {"target_seq": 1}),
        ({"actor": 7}, {"actor": "7"}),
    ],
)
def test_rows_with_wrong_columns_fail(
    changes: dict[str, Any], columns: dict[str, Any]
) -> None:
    assert not _passes(_row(_record(**changes), columns=columns))


def test_float_target_seq_fails() -> None:
    # JSON 2.0 parses as a float, which the walk does not derive as a seq.
    record = _record(target={"seq": 2})
    body = _row(record)[2].replace(b'"seq":2}', b'"seq":2.0}')
    assert not _passes(_row(record, body=body))


def test_boolean_seq_fails() -> None:
    body = canonical_bytes(
        {
            "kind": "decision",
            "prev": GENESIS_PREV,
            "record": _record(),
            "recorded_at": RECORDED_AT,
            "seq": True,
            "v": 1,
        }
    )
    assert not _passes(_row(_record(), body=body, seq=1))


def test_extra_entry_member_fails() -> None:
    entry = {
        "extra": 1,
        "kind": "decision",
        "prev": GENESIS_PREV,
        "record": _record(),
        "recorded_at": RECORDED_AT,
        "seq": 0,
        "v": 1,
    }
    assert not _passes(_row(_record(), body=canonical_bytes(entry)))


def test_duplicate_keys_fail() -> None:
    # govledger writes canonical JSON, which has no duplicate keys, so such
    # a body fails whichever value a parser would keep.
    body = canonical_bytes(
        {
            "kind": "decision",
            "prev": GENESIS_PREV,
            "record": _record(actor="svc:first"),
            "recorded_at": RECORDED_AT,
            "seq": 0,
            "v": 1,
        }
    ).replace(b'"actor":"svc:first"', b'"actor":"svc:first","actor":"svc:last"')
    assert not _walk_passes(_row(_record(actor="svc:last"), body=body))
    assert not _passes(_row(_record(actor="svc:last"), body=body))
    assert not _passes(_row(_record(actor="svc:first"), body=body))


@pytest.mark.parametrize(
    ("canonical", "altered"),
    [
        (b'"confidence":0.91', b'"confidence":0.910'),
        (b'"confidence":0.91', b'"confidence":9.1e-1'),
        (b'"output":"approve"', b'"output" : "approve"'),
        (b'"output":"approve"', b'"output":"appro\\u0076e"'),
        (b'"kind":"decision"', b'"kind":"decisio\\u006e"'),
    ],
    ids=["trailing-zero", "exponent", "whitespace", "escape", "escaped-kind"],
)
def test_non_canonical_body_fails(canonical: bytes, altered: bytes) -> None:
    # The same value in other bytes: an auditor hashing the canonical form
    # would not get the stored hash, so the walk and the range check fail it.
    seq, _hash, body, *columns = _row(_record())
    assert canonical in body
    changed = body.replace(canonical, altered)
    row = (seq, hashlib.sha256(b"\x00" + changed).hexdigest(), changed, *columns)
    assert not _walk_passes(row)
    assert not _passes(row)


def test_large_integral_float_passes() -> None:
    # 1e16 is written 10000000000000000 and parses back as an int.
    row = _row(_record(output={"count": 1e16}))
    assert b'"count":10000000000000000' in row[2]
    assert _walk_passes(row)
    assert _passes(row)


def _entry_body(record_text: bytes) -> bytes:
    body = canonical_bytes(
        {
            "kind": "decision",
            "prev": GENESIS_PREV,
            "record": {"placeholder": 0},
            "recorded_at": RECORDED_AT,
            "seq": 0,
            "v": 1,
        }
    )
    return body.replace(b'{"placeholder":0}', record_text)


@pytest.mark.parametrize(
    "output",
    [b'"\xff"', b'"\\ud800"', b'{"\xc3":1}'],
    ids=["invalid-utf8", "lone-surrogate", "invalid-utf8-key"],
)
def test_invalid_text_in_unread_member_fails(output: bytes) -> None:
    # The walk's parser rejects these bodies even though no derived column
    # comes from the member.
    body = _entry_body(b'{"actor":"svc:credit-model","output":' + output + b"}")
    assert not _passes(_row({"actor": "svc:credit-model"}, body=body))


def test_target_seq_beyond_64_bits_fails() -> None:
    # orjson reads 2**64 as a float, so the walk derives no target_seq.
    huge = 2**64
    body = _entry_body(b'{"actor":"svc:credit-model","target":{"seq":%d}}' % huge)
    row = _row({"actor": "svc:credit-model"}, body=body, columns={"target_seq": huge})
    assert not _passes(row)


def _walk_passes(row: tuple[Any, ...]) -> bool:
    checker = verify_module._ChainChecker()
    checker.expected_seq = row[0]
    try:
        checker.check(row[0], row[1], row[2], tuple(row[3:]))
    except verify_module._Stop:
        return False
    return True


def test_non_object_member_reads_as_no_member() -> None:
    # The walk derives no model columns from a model that is not an object.
    row = _row(_record(model="credit-risk"))
    assert _walk_passes(row)
    assert _passes(row)
    wrong = _row(_record(model="credit-risk"), columns={"model_name": "credit-risk"})
    assert not _walk_passes(wrong)
    assert not _passes(wrong)


def test_changed_body_fails() -> None:
    seq, entry_hash, body, *columns = _row(_record())
    changed = body.replace(b"approve", b"decline")
    assert not _passes((seq, entry_hash, changed, *columns))


def test_rows_must_be_consecutive() -> None:
    rows = [_row(_record(), seq=0), _row(_record(), seq=2)]
    report, _leaves = check_rows(0, 2, rows)
    assert not report.passed


# End to end: verify with ranges of 64 entries, in worker processes.

SIZE = 300


@pytest.fixture
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_rows, "RANGE_SIZE", 64)


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """Record each verification pass: range workers, or None for the walk."""
    calls: list[int | None] = []
    original = verify_module._verify_once

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["range_workers"])
        return original(*args, **kwargs)

    monkeypatch.setattr(verify_module, "_verify_once", recording)
    return calls


@pytest.fixture
def checkpointed(db_url: str, key_dir: Path, small_ranges: None) -> Iterator[Ledger]:
    # Checkpoints at 25, 75, 125, ... fall inside the 64-entry ranges.
    config = LedgerConfig(key_dir=key_dir, checkpoint_every=50, checkpoint_interval_s=0)
    with Ledger.create(db_url, origin="test.example/ledger", config=config) as opened:
        for start in range(0, SIZE, 25):
            batch = [
                {
                    "kind": "decision",
                    **_record(item={"dataset": "applications", "id": f"app-{i}"}),
                }
                for i in range(start, start + 25)
            ]
            opened.append_many(batch)
        yield opened


@pytest.mark.parametrize("workers", [0, 2])
def test_clean_ledger_passes_range_check(
    checkpointed: Ledger, walks: list[int | None], workers: int
) -> None:
    result = checkpointed.verify(workers=workers)
    assert result.ok, result.fault
    assert result.entries_checked == SIZE
    assert result.checkpoints_checked == 6
    assert walks == [workers]


@pytest.fixture
def range_pids(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Record the pid of the process that checks each range, in a file.

    Forked workers inherit the patched function, so they record too.
    """
    log = tmp_path / "range-pids.txt"
    original = verify_rows.check_range

    def recording(*args: Any, **kwargs: Any) -> Any:
        with log.open("a", encoding="ascii") as file:
            file.write(f"{os.getpid()}\n")
        return original(*args, **kwargs)

    monkeypatch.setattr(verify_rows, "check_range", recording)
    return log


def _pids(log: Path) -> set[int]:
    return {int(line) for line in log.read_text(encoding="ascii").split()}


def test_workers_are_other_processes(checkpointed: Ledger, range_pids: Path) -> None:
    assert checkpointed.verify(workers=2).ok
    pids = _pids(range_pids)
    assert os.getpid() not in pids
    assert len(pids) == 2


def test_no_fork_while_threads_run(
    checkpointed: Ledger, range_pids: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Forking while another thread holds a lock could hang the workers, so
    # verify checks the ranges itself, with a warning.
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with caplog.at_level("WARNING", logger="ledger.verify_rows"):
            assert checkpointed.verify(workers=2).ok
    finally:
        stop.set()
        other.join()
    assert _pids(range_pids) == {os.getpid()}
    assert "instead of 2 workers" in caplog.text


def test_trusted_checkpoint_inside_range(
    checkpointed: Ledger, walks: list[int | None]
) -> None:
    sizes = [c.tree_size for c in checkpointed.checkpoints()]
    assert sizes == [25, 75, 125, 175, 225, 275]
    trusted = checkpointed.checkpoints()[2]
    result = checkpointed.verify(trusted_checkpoint=trusted.note, workers=2)
    assert result.ok, result.fault
    assert result.trusted_checkpoint_consistent is True
    assert walks == [2]


def _change_column(url: str) -> None:
    execute(url, "UPDATE entries SET actor = 'svc:other' WHERE seq = 130")


def _change_node(url: str) -> None:
    # Level 3 lies inside a 64-entry range; the worker compares it.
    execute(
        url,
        "UPDATE merkle_nodes SET hash = ? WHERE level = 3 AND idx = 20",
        (b"\x07" * 32,),
    )


def _change_high_node(url: str) -> None:
    # Level 7 spans two ranges; the parent process compares it.
    execute(
        url,
        "UPDATE merkle_nodes SET hash = ? WHERE level = 7 AND idx = 0",
        (b"\x07" * 32,),
    )


def _change_body(url: str) -> None:
    (body,) = fetch(url, "SELECT body FROM entries WHERE seq = 200")[0]
    changed = bytes(body).replace(b"approve", b"decline")
    execute(url, "UPDATE entries SET body = ? WHERE seq = 200", (changed,))


def _delete_row(url: str) -> None:
    execute(url, "DELETE FROM entries WHERE seq = 64")


def _insert_negative_row(url: str) -> None:
    from tests.ledger.test_verify import insert_forged

    insert_forged(
        url,
        {
            "kind": "decision",
            "prev": GENESIS_PREV,
            "record": _record(),
            "recorded_at": RECORDED_AT,
            "seq": -1,
            "v": 1,
        },
    )


def _shift_node_bytes(url: str) -> None:
    # Move 16 bytes from node (1, 1) to node (1, 0): the concatenation of the
    # level stays the same, but both nodes are wrong.
    (first,) = fetch(url, "SELECT hash FROM merkle_nodes WHERE level = 1 AND idx = 1")[
        0
    ]
    first = bytes(first)
    (zero,) = fetch(url, "SELECT hash FROM merkle_nodes WHERE level = 1 AND idx = 0")[0]
    execute(
        url,
        "UPDATE merkle_nodes SET hash = ? WHERE level = 1 AND idx = 0",
        (bytes(zero) + first[:16],),
    )
    execute(
        url,
        "UPDATE merkle_nodes SET hash = ? WHERE level = 1 AND idx = 1",
        (first[16:],),
    )


@pytest.mark.parametrize(
    ("tamper", "kind", "seq"),
    [
        (_change_column, "derived-column-changed", 130),
        (_change_node, "merkle-node-changed", 160),
        (_change_high_node, "merkle-node-changed", 0),
        (_change_body, "body-changed", 200),
        (_delete_row, "entry-deleted", 64),
        (_shift_node_bytes, "merkle-node-changed", 0),
        (_insert_negative_row, "entry-inserted", -1),
    ],
)
def test_workers_report_the_walk_fault(
    checkpointed: Ledger,
    walks: list[int | None],
    tamper: Any,
    kind: str,
    seq: int,
) -> None:
    url = checkpointed.engine.url.render_as_string(hide_password=False)
    drop_triggers(url)
    tamper(url)
    result = checkpointed.verify(workers=2)
    assert result.fault is not None
    assert result.fault.kind == kind
    assert result.fault.seq == seq
    # The range check failed, so the walk ran to locate the fault.
    assert walks == [2, None]


def test_text_body_is_a_fault_not_a_crash(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = LedgerConfig(
        key_dir=tmp_path / "keys", checkpoint_every=0, checkpoint_interval_s=0
    )
    with Ledger.create(url, origin="test.example/ledger", config=config) as opened:
        opened.append_many([{"kind": "decision", **_record()}])
        drop_triggers(url)
        execute(
            url, "UPDATE entries SET body = CAST(body || 'x' AS TEXT) WHERE seq = 0"
        )
        result = opened.verify(workers=0)
    assert result.fault is not None
    assert result.fault.kind == "body-changed"
    assert result.fault.seq == 0


def test_verify_during_appends_passes(db_url: str, key_dir: Path) -> None:
    # Entries appended while verify runs lie beyond the head it read first;
    # they are not checked, and they are not a fault.
    config = LedgerConfig(key_dir=key_dir, checkpoint_every=0, checkpoint_interval_s=0)
    with Ledger.create(db_url, origin="test.example/ledger", config=config) as opened:
        opened.append_many([{"kind": "decision", **_record()}] * 200)
        stop = threading.Event()
        appended: list[int] = []

        def append_until_stopped() -> None:
            with Ledger.open(db_url, config=config) as writer:
                while not stop.is_set():
                    writer.append({"kind": "decision", **_record()})
                    appended.append(1)

        thread = threading.Thread(target=append_until_stopped)
        thread.start()
        try:
            results = [opened.verify(workers=0) for _ in range(5)]
        finally:
            stop.set()
            thread.join()
    assert appended, "no entry was appended during verify"
    for result in results:
        assert result.ok, result.fault


def test_path_through_symlink_and_dotdot(tmp_path: Path) -> None:
    # link/../ledger.db is tmp_path/real/ledger.db to the operating system,
    # but tmp_path/ledger.db once the text is normalized. verify must check
    # the file that SQLite opened, whichever reads the rows.
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real" / "sub")
    config = LedgerConfig(
        key_dir=tmp_path / "keys", checkpoint_every=0, checkpoint_interval_s=0
    )
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger.create(url, origin="test.example/ledger", config=config) as opened:
        opened.append_many([{"kind": "decision", **_record()}] * 3)
    (tmp_path / "real" / "ledger.db").write_bytes((tmp_path / "ledger.db").read_bytes())
    drop_triggers(url)
    (body,) = fetch(url, "SELECT body FROM entries WHERE seq = 1")[0]
    changed = bytes(body).replace(b"approve", b"decline")
    execute(url, "UPDATE entries SET body = ? WHERE seq = 1", (changed,))
    linked = f"sqlite:///{tmp_path / 'link' / '..' / 'ledger.db'}"
    with Ledger.open(linked, config=config) as opened:
        result = opened.verify(workers=0)
    assert result.fault is not None
    assert result.fault.seq == 1
