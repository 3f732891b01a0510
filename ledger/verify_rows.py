"""Batch checks of entry rows for ``verify``, optionally in worker processes.

``verify`` walks entries one at a time so that it can name the first fault
and its kind. Most ledgers have no fault, so it first runs these batch
checks over ranges of rows: each range is read in one query, and every
body is hashed and checked against its row by the walk's own rules. A
range passes only if the walk would pass it too. If any range fails,
``verify`` runs the walk to locate and classify the fault.

The compiled module ``ledger._rowcheck`` (ledger/_rowcheck.c), when it was
built, checks the rows in the form govledger writes and leaves the others
to ``_row_passes`` here. On a SQLite file it reads the rows itself.

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

from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from .entries import DERIVED_COLUMNS, derived_values, entry_members
from .errors import GovLedgerError
from .merkle import HASH_SIZE

try:
    from . import _rowcheck
except ImportError:  # built without a C compiler or libssl-dev
    _rowcheck = None

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
# The compiled reader compares each node itself, so it reads them as rows.
_SELECT_NODE_ROWS = (
    "SELECT idx, hash FROM merkle_nodes WHERE level = ? AND idx >= ? AND idx < ? "
    "ORDER BY idx"
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


def _row_passes(row: tuple[Any, ...], prev: str | None) -> tuple[bool, Any]:
    """Check one row's body against its seq, columns and ``prev`` as the walk does.

    The walk's own functions parse and check the body (``entry_members``,
    inside ``parse_entry``) and derive its columns (``derived_values``).
    ``prev`` is the hex hash of the previous row, or None for the range's
    first row, whose link the caller checks. Returns whether the row passes
    and the body's ``prev``.
    """
    try:
        entry = entry_members(row[2], strict=False)
    except (GovLedgerError, ValueError):
        return False, None
    body_prev = entry["prev"]
    if entry["seq"] != row[0] or (prev is not None and body_prev != prev):
        return False, body_prev
    derived = derived_values(entry["kind"], entry["recorded_at"], entry["record"])
    return derived == tuple(row[3:]), body_prev


def check_rows(
    start: int, end: int, rows: list[tuple[Any, ...]]
) -> tuple[RangeReport, bytes]:
    """Check one range of rows: (seq, entry_hash, body, derived columns...).

    The rules are those of the walk: seqs run from ``start`` to ``end - 1``,
    each body hashes to its stored hash, parses as a format-1 entry with
    that seq, links to the previous row's hash, and yields the stored
    derived columns. The link into the range is left to the caller, which
    compares ``first_prev`` with the hash of entry ``start - 1``. Returns
    the report and the entry hashes, concatenated.

    The compiled ``_rowcheck``, when built, hashes the rows and vouches for
    the rows in the form it reads; the others are checked here.
    """
    failed = RangeReport(start, end, passed=False), b""
    if len(rows) != end - start or not rows:
        return failed
    fast = None
    if _rowcheck is not None:
        try:
            fast = _rowcheck.check_rows(start, rows)
        except (ValueError, OverflowError):  # seqs beyond 64 bits
            fast = None
    if fast is None:
        return _check_rows_in_python(start, end, rows)
    return _settle_undecided(start, end, fast, rows)


def _settle_undecided(
    start: int,
    end: int,
    fast: tuple[bytes, list[int], str | None],
    rows: list[tuple[Any, ...]] | None,
) -> tuple[RangeReport, bytes]:
    """Finish a range that ``_rowcheck`` hashed, checking the rows it left.

    ``fast`` is what ``_rowcheck`` returned: the entry hashes, the indexes
    of the rows it left undecided and the first row's prev. ``rows`` contains
    the range's rows when there are undecided ones. If they were read
    separately, each must still be the row that was hashed.
    """
    failed = RangeReport(start, end, passed=False), b""
    leaves, undecided, first_prev = fast
    if undecided and (rows is None or len(rows) != end - start):
        return failed
    for index in undecided:
        row = rows[index]
        leaf = leaves[HASH_SIZE * index : HASH_SIZE * (index + 1)]
        if (
            row[0] != start + index
            or type(row[2]) is not bytes
            or hashlib.sha256(b"\x00" + row[2]).digest() != leaf
            or row[1] != leaf.hex()
        ):
            return failed
        prev = None
        if index > 0:
            prev = leaves[HASH_SIZE * (index - 1) : HASH_SIZE * index].hex()
        passed, body_prev = _row_passes(row, prev)
        if not passed:
            return failed
        if index == 0:
            first_prev = body_prev
    report = RangeReport(
        start,
        end,
        passed=True,
        first_prev=first_prev,
        last_hash=leaves[-HASH_SIZE:].hex(),
    )
    return report, leaves


def _check_rows_in_python(
    start: int, end: int, rows: list[tuple[Any, ...]]
) -> tuple[RangeReport, bytes]:
    """Run ``check_rows`` without the compiled module."""
    failed = RangeReport(start, end, passed=False), b""
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
    first_prev = None
    for index, row in enumerate(rows):
        passed, body_prev = _row_passes(row, hashes[index - 1] if index else None)
        if not passed:
            return failed
        if index == 0:
            first_prev = body_prev
    report = RangeReport(
        start, end, passed=True, first_prev=first_prev, last_hash=hashes[-1]
    )
    return report, b"".join(digests)


def _subtree_levels(leaves: bytes) -> list[bytes]:
    """Return the node hashes of each level above ``leaves``, level 1 first.

    ``leaves`` and each level are 32-byte hashes, concatenated. Level ``k``
    contains one node per whole group of ``2**k`` leaves. A leaf or node
    left over at the right end has no parent in the range.
    """
    if _rowcheck is not None:
        return _rowcheck.subtree_levels(leaves)
    sha256 = hashlib.sha256
    levels = []
    nodes = [
        leaves[offset : offset + HASH_SIZE]
        for offset in range(0, len(leaves), HASH_SIZE)
    ]
    while len(nodes) > 1:
        nodes = [
            sha256(b"\x01" + left + right).digest()
            for left, right in zip(nodes[0::2], nodes[1::2], strict=False)
        ]
        levels.append(b"".join(nodes))
    return levels


def _check_nodes(
    connection: Connection, report: RangeReport, leaves: bytes
) -> RangeReport:
    """Rebuild the nodes inside the range and compare them with the stored ones."""
    cursor = connection.connection.cursor()
    if connection.dialect.name == "sqlite":
        statement = _SELECT_NODES_SQLITE
    else:
        statement = _SELECT_NODES
    levels = [leaves]
    for level, joined in enumerate(_subtree_levels(leaves), start=1):
        count = len(joined) // HASH_SIZE
        low = report.start >> level
        cursor.execute(statement, (level, low, low + count))
        rows, indexes, hashes, stored = cursor.fetchone()
        if (
            rows != count
            or indexes != count
            or hashes != count
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
    path = _sqlite_file(connection)
    if path is not None:
        try:
            fast = _rowcheck.read_sqlite_range(
                path, _SELECT_ROWS, _SELECT_NODE_ROWS, start, end
            )
        except ValueError:  # a path that is not UTF-8 or contains a NUL
            fast = None
        if fast is not None:
            return _finish_sqlite_range(connection, start, end, fast)
    rows = _fetch_rows(connection, start, end)
    try:
        report, leaves = check_rows(start, end, rows)
    except (TypeError, ValueError):
        # A body of an unexpected type or a record the walk's derivation
        # rejects; the walk reports it.
        return RangeReport(start, end, passed=False)
    if report.passed:
        report = _check_nodes(connection, report, leaves)
    return report


def _fetch_rows(connection: Connection, start: int, end: int) -> list[tuple[Any, ...]]:
    cursor = connection.connection.cursor()
    cursor.execute(_driver_sql(connection, _SELECT_ROWS), (start, end))
    rows = cursor.fetchall()
    if rows and type(rows[0][2]) is memoryview:  # bytea from psycopg2
        rows = [(row[0], row[1], bytes(row[2]), *row[3:]) for row in rows]
    return rows


def _finish_sqlite_range(
    connection: Connection, start: int, end: int, fast: tuple[Any, ...]
) -> RangeReport:
    """Finish a range that ``_rowcheck`` read from the SQLite file itself."""
    leaves, undecided, first_prev, levels = fast
    if levels is None:  # a stored node differs; the walk names it
        return RangeReport(start, end, passed=False)
    rows = _fetch_rows(connection, start, end) if undecided else None
    try:
        report, _leaves = _settle_undecided(
            start, end, (leaves, undecided, first_prev), rows
        )
    except (TypeError, ValueError):
        return RangeReport(start, end, passed=False)
    if not report.passed:
        return report
    return RangeReport(
        start,
        end,
        passed=True,
        levels=(leaves, *levels),
        first_prev=report.first_prev,
        last_hash=report.last_hash,
    )


def _sqlite_file(connection: Connection) -> str | None:
    """Return the path of the SQLite file that ``_rowcheck`` can read itself.

    None for other databases, in-memory and URI-named SQLite databases, and
    when the compiled module or its access to SQLite is missing.
    """
    if _rowcheck is None or not _rowcheck.SQLITE_READER:
        return None
    url = connection.engine.url
    if url.get_backend_name() != "sqlite" or url.get_driver_name() != "pysqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if url.query:
        return None
    # The file SQLite has open, which can differ from the URL's text: a
    # path like link/../ledger.db names another file once the link is
    # followed.
    for _seq, name, file in connection.connection.execute("PRAGMA database_list"):
        if name == "main":
            return file or None
    return None


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
