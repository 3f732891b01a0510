"""Batch checks of entry rows for ``verify``, optionally in worker processes.

``verify`` walks entries one at a time so that it can name the first fault
and its kind. Most ledgers have no fault, so it first runs these batch
checks over ranges of rows: each range is read in one query, every body is
hashed and parsed, and what the walk checks is compared as whole lists. A
range passes only if the walk would pass it too. If any range fails,
``verify`` runs the walk to locate and classify the fault.

Ranges are independent, so a pool of worker processes can check them at the
same time. For each range a worker also rebuilds the perfect subtrees of the
Merkle tree that lie inside it and compares them with the stored nodes. It
returns those subtrees' hashes, the range's first ``prev`` and its last
hash; the caller checks the links between ranges and the tree above them.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any

import msgspec
import orjson
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from .entries import DERIVED_COLUMNS, FORMAT_VERSION, derived_columns, normalize_time
from .merkle import HASH_SIZE

__all__ = [
    "RANGE_SIZE",
    "RangeReport",
    "check_range",
    "check_rows",
    "default_workers",
    "iter_range_reports",
]

logger = logging.getLogger(__name__)

RANGE_SIZE = 8192
"""Rows per range, a power of two: enough to amortize the queries, few
enough to keep memory small."""

_SELECT_ROWS = (
    f"SELECT seq, entry_hash, body, {', '.join(DERIVED_COLUMNS)} FROM entries "
    "WHERE seq >= ? AND seq < ? ORDER BY seq"
)
# Each level's stored nodes come back as one byte string, concatenated in
# index order, which costs far less than a Python object per node.
# PostgreSQL's string_agg takes the order itself. SQLite before 3.44 has no
# ORDER BY inside an aggregate, so group_concat reads an ordered subquery.
# NOTE: SQLite does not promise that group_concat keeps that order. It did
# in every test here. Another order would make the bytes differ and send
# the range to the walk, unless changed nodes mirrored that order exactly.
# Besides the bytes, each query returns the number of rows, of distinct
# integer indexes and of 32-byte hashes. All three must equal the number of
# nodes, so that the bytes cannot be split differently between the rows.
_SELECT_NODES_SQLITE = (
    "SELECT count(*), count(DISTINCT CASE WHEN typeof(idx) = 'integer' THEN idx "
    "END), sum(typeof(hash) = 'blob' AND length(hash) = 32), "
    "CAST(group_concat(hash, '') AS BLOB) FROM (SELECT idx, hash FROM "
    "merkle_nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx)"
)
_SELECT_NODES = (
    "SELECT count(*), count(DISTINCT idx), "
    "count(*) FILTER (WHERE octet_length(hash) = 32), "
    "string_agg(hash, ''::bytea ORDER BY idx) FROM merkle_nodes "
    "WHERE level = %s AND idx >= %s AND idx < %s"
)


@dataclass(frozen=True)
class RangeReport:
    """The outcome of checking the rows with ``start <= seq < end``.

    When ``passed`` is False the other fields are left empty. ``levels[k]``
    contains the 32-byte hashes of the perfect subtrees of ``2**k`` leaves
    inside the range, concatenated left to right, so level 0 is the entry
    hashes. All nodes of level 1 and up matched the stored ones.
    """

    start: int
    end: int
    passed: bool
    levels: tuple[bytes, ...] = ()
    first_prev: str | None = None
    last_hash: str | None = None

    def node(self, level: int, index: int) -> bytes:
        """Return the hash of node ``(level, index)``, which lies in the range."""
        offset = (index - (self.start >> level)) * HASH_SIZE
        return self.levels[level][offset : offset + HASH_SIZE]


class _Member(msgspec.Struct):
    """The fields read from a record's model, target, item or source object."""

    name: Any = None
    version: Any = None
    seq: Any = None
    entry_hash: Any = None
    dataset: Any = None
    id: Any = None
    system: Any = None
    ref: Any = None


class _Record(msgspec.Struct):
    """The record fields that derived columns come from; others are skipped."""

    actor: Any = None
    subject: Any = None
    occurred_at: Any = None
    confidence: Any = None
    model: _Member | None = None
    target: _Member | None = None
    item: _Member | None = None
    source: _Member | None = None


class _Entry(msgspec.Struct, forbid_unknown_fields=True):
    """A format-1 entry: exactly these six members."""

    kind: Any
    prev: Any
    record: _Record
    recorded_at: Any
    seq: Any
    v: Any


# msgspec builds only the fields above, which made this decoder about twice
# as fast as orjson.loads on the benchmark's entries. Like orjson it keeps
# the last of duplicate keys. Inputs it rejects (a member that is not an
# object, nesting deeper than its limit) fail the range, and the walk parses
# them with orjson.
_decode_entry = msgspec.json.Decoder(_Entry).decode
_NO_MEMBER = _Member()
_DECODE_ERRORS = (msgspec.DecodeError, orjson.JSONDecodeError, RecursionError)
_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1


def _entry_facts(body: bytes) -> tuple[Any, ...]:
    """Parse a body and return what the walk checks, in ``check_rows`` order.

    The derived values are those of ``derived_columns``, except that text
    members are taken as parsed: a value that is not a str equals no stored
    str, so its row goes to the exact check, which derives None for it.
    """
    if not body.isascii() or b"\\u" in body:
        # msgspec skips the members it does not read without checking their
        # UTF-8 or their \u escapes, so such a body is parsed in full once.
        orjson.loads(body)
    entry = _decode_entry(body)
    record = entry.record
    model = record.model or _NO_MEMBER
    target = record.target or _NO_MEMBER
    item = record.item or _NO_MEMBER
    source = record.source or _NO_MEMBER
    occurred_at = record.occurred_at
    if type(occurred_at) is not str:
        occurred_at = None
    elif len(occurred_at) == 20 and occurred_at[10] == "T" and occurred_at[19] == "Z":
        occurred_at = occurred_at[:19] + ".000000Z"  # normalize_time's fast path
    else:
        occurred_at = normalize_time(occurred_at)
    confidence = record.confidence
    if type(confidence) is int or type(confidence) is float:
        confidence = float(confidence)
    else:
        confidence = None
    target_seq = target.seq
    # orjson, which the walk uses, reads integers outside the 64-bit range
    # as floats, which do not derive a seq.
    if type(target_seq) is not int or not _INT64_MIN <= target_seq <= _UINT64_MAX:
        target_seq = None
    return (
        entry.v,
        entry.seq,
        type(entry.seq),
        entry.prev,
        entry.kind,
        record.actor,
        record.subject,
        entry.recorded_at,
        occurred_at,
        model.name,
        model.version,
        confidence,
        target_seq,
        target.entry_hash,
        item.dataset,
        item.id,
        source.system,
        source.ref,
    )


def _exact_row_check(facts: tuple[Any, ...], row: tuple[Any, ...], prev: str) -> bool:
    """Check one row whose facts differ, with the walk's own derivation."""
    # The version, seq and prev must match as they are.
    if facts[:4] != (FORMAT_VERSION, row[0], int, prev):
        return False
    entry = orjson.loads(row[2])
    if type(entry["kind"]) is not str or type(entry["recorded_at"]) is not str:
        return False
    derived = derived_columns(entry["kind"], entry["recorded_at"], entry["record"])
    return tuple(derived[name] for name in DERIVED_COLUMNS) == row[3:]


def check_rows(
    start: int, end: int, rows: list[tuple[Any, ...]]
) -> tuple[RangeReport, list[bytes]]:
    """Check one range of rows: (seq, entry_hash, body, derived columns...).

    The rules are those of the walk: seqs run from ``start`` to ``end - 1``,
    each body hashes to its stored hash, parses as a format-1 entry with
    that seq, links to the previous row's hash, and yields the stored
    derived columns. The link into the range is left to the caller, which
    compares ``first_prev`` with the hash of entry ``start - 1``. Returns
    the report and the entry hashes.
    """
    failed = RangeReport(start, end, passed=False), []
    if len(rows) != end - start or not rows:
        return failed
    if [row[0] for row in rows] != list(range(start, end)):
        return failed
    bodies = [row[2] for row in rows]
    if set(map(type, bodies)) != {bytes}:
        return failed
    sha256 = hashlib.sha256
    digests = [sha256(b"\x00" + body).digest() for body in bodies]
    hashes = [digest.hex() for digest in digests]
    if hashes != [row[1] for row in rows]:
        return failed
    try:
        facts = list(map(_entry_facts, bodies))
    except (*_DECODE_ERRORS, OverflowError):
        return failed
    first_prev = facts[0][3]
    if type(first_prev) is not str:
        return failed
    prevs = [first_prev, *hashes[:-1]]
    # The facts a body must show: version, seq, prev and the stored columns.
    expected = [
        (FORMAT_VERSION, row[0], int, prev, *row[3:])
        for row, prev in zip(rows, prevs, strict=True)
    ]
    if facts != expected:
        for index, (have, want) in enumerate(zip(facts, expected, strict=True)):
            if have != want and not _exact_row_check(have, rows[index], prevs[index]):
                return failed
    report = RangeReport(
        start, end, passed=True, first_prev=first_prev, last_hash=hashes[-1]
    )
    return report, digests


def _subtree_levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Return the node hashes of each level above ``leaves``, level 1 first.

    Level ``k`` contains one node per whole group of ``2**k`` leaves. A leaf
    or node left over at the right end has no parent in the range.
    """
    sha256 = hashlib.sha256
    levels = []
    nodes = leaves
    while len(nodes) > 1:
        nodes = [
            sha256(b"\x01" + left + right).digest()
            for left, right in zip(nodes[0::2], nodes[1::2], strict=False)
        ]
        levels.append(nodes)
    return levels


def _check_nodes(
    connection: Connection, report: RangeReport, leaves: list[bytes]
) -> RangeReport:
    """Rebuild the nodes inside the range and compare them with the stored ones."""
    cursor = connection.connection.cursor()
    if connection.dialect.name == "sqlite":
        statement = _SELECT_NODES_SQLITE
    else:
        statement = _SELECT_NODES
    levels = [b"".join(leaves)]
    for level, nodes in enumerate(_subtree_levels(leaves), start=1):
        low = report.start >> level
        cursor.execute(statement, (level, low, low + len(nodes)))
        rows, indexes, hashes, stored = cursor.fetchone()
        joined = b"".join(nodes)
        if (
            rows != len(nodes)
            or indexes != len(nodes)
            or hashes != len(nodes)
            or stored is None
            or bytes(stored) != joined
        ):
            return RangeReport(report.start, report.end, passed=False)
        levels.append(joined)
    return RangeReport(
        report.start,
        report.end,
        passed=True,
        levels=tuple(levels),
        first_prev=report.first_prev,
        last_hash=report.last_hash,
    )


def _driver_sql(connection: Connection, statement: str) -> str:
    if connection.dialect.paramstyle == "qmark":
        return statement
    return statement.replace("?", "%s")


def check_range(connection: Connection, start: int, end: int) -> RangeReport:
    """Read and check the rows with ``start <= seq < end`` and their nodes.

    ``start`` must be a multiple of ``RANGE_SIZE``, so that every perfect
    subtree inside the range is a node of the ledger's tree.
    """
    try:
        return _check_range(connection, start, end)
    except connection.dialect.dbapi.Error:
        # A stored value the driver cannot read, such as text that is not
        # UTF-8; the walk reports it.
        return RangeReport(start, end, passed=False)


def _check_range(connection: Connection, start: int, end: int) -> RangeReport:
    cursor = connection.connection.cursor()
    cursor.execute(_driver_sql(connection, _SELECT_ROWS), (start, end))
    rows = cursor.fetchall()
    if rows and type(rows[0][2]) is memoryview:  # bytea from psycopg2
        rows = [(row[0], row[1], bytes(row[2]), *row[3:]) for row in rows]
    try:
        report, leaves = check_rows(start, end, rows)
    except (TypeError, ValueError):
        # A body of an unexpected type or a record the walk's derivation
        # rejects; the walk reports it.
        return RangeReport(start, end, passed=False)
    if report.passed:
        report = _check_nodes(connection, report, leaves)
    return report


# Worker side: each worker process keeps one engine per database URL.
_engines: dict[str, Engine] = {}


def _start_worker() -> None:
    # The checks make many objects and no reference cycles, so the cyclic
    # collector would only rescan live rows.
    gc.disable()
    # Ctrl-C reaches the whole process group. The parent stops the pool, so
    # a worker need not print its own traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector, as in the workers, for one range."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _check_range_in_worker(task: tuple[str, int, int]) -> RangeReport:
    url, start, end = task
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        return check_range(connection, start, end)


def _can_fork() -> bool:
    """Return whether worker processes can be forked safely now.

    Fork is safe only while this process runs a single thread, because a
    lock held by another thread would stay locked in the child forever.
    """
    if threading.active_count() > 1:
        return False
    return "fork" in multiprocessing.get_all_start_methods()


def default_workers(rows: int) -> int:
    """Return how many worker processes to use for ``rows`` entries.

    Small ledgers, and processes that cannot fork safely, are checked in
    this process.
    """
    cores = os.cpu_count() or 1
    if rows < 4 * RANGE_SIZE or cores < 2 or not _can_fork():
        return 0
    return min(cores, 8)


def iter_range_reports(
    engine: Engine, start: int, end: int, *, workers: int = 0
) -> Iterator[RangeReport]:
    """Yield the reports of the ranges covering ``[start, end)``, in order.

    With ``workers`` > 0 the ranges are checked by that many forked worker
    processes, otherwise in this process. Workers are not used while other
    threads run, because forking then could deadlock the workers.
    """
    bounds = [
        (low, min(low + RANGE_SIZE, end)) for low in range(start, end, RANGE_SIZE)
    ]
    url = engine.url
    in_memory = url.get_backend_name() == "sqlite" and url.database in (
        None,
        "",
        ":memory:",
    )
    if workers > 0 and not _can_fork():
        logger.warning(
            "verify checks ranges in this process instead of %d workers "
            "because %d threads run and forking now could deadlock the workers",
            workers,
            threading.active_count(),
        )
        workers = 0
    if workers <= 0 or len(bounds) < 2 or in_memory:
        for low, high in bounds:
            with engine.connect() as connection, _collector_paused():
                report = check_range(connection, low, high)
            yield report
        return
    text_url = url.render_as_string(hide_password=False)
    tasks = iter([(text_url, low, high) for low, high in bounds])
    context = multiprocessing.get_context("fork")
    with context.Pool(processes=workers, initializer=_start_worker) as pool:
        # A bounded window of ranges in flight keeps memory flat when the
        # workers run ahead of the caller.
        window = deque(
            pool.apply_async(_check_range_in_worker, (task,))
            for task in islice(tasks, 2 * workers)
        )
        while window:
            report = window.popleft().get()
            for task in islice(tasks, 1):
                window.append(pool.apply_async(_check_range_in_worker, (task,)))
            yield report
