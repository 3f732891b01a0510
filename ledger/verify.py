"""Full verification of a ledger, streamed in seq order.

For each entry, in order:

1. the row's seq is the next one (a gap means an entry was deleted);
2. the body parses as a format-1 entry whose ``seq`` equals the row's (a
   smaller seq means an entry was inserted before it, a different one that
   entries were reordered or swapped);
3. SHA-256(0x00 || body) equals the stored hash (else the body or the stored
   hash changed; the next entry's ``prev`` shows which);
4. ``prev`` equals the previous entry's hash;
5. the derived columns equal those computed from the body.

Meanwhile the Merkle tree is rebuilt from the leaves: every stored node is
compared with the rebuilt one, every stored checkpoint's root with the root
at its size, and its signature is checked. At the end the chain head must
match, and a trusted checkpoint, if given, must be a prefix of this ledger.
Memory stays flat: rows are read in chunks and only the tree's peaks, the
checkpoints and one chunk are held.

The walk above runs only when needed. First, ``ledger.verify_rows`` checks
the same rules over ranges of entries, in worker processes where the ledger
is large; if every range passes, so would the walk. When a range fails, the
walk runs from the start to locate and classify the first fault.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from . import merkle
from .entries import (
    DERIVED_COLUMNS,
    GENESIS_PREV,
    derived_columns,
    entry_hash,
    parse_entry,
)
from .errors import ChainError, GovLedgerError
from .store import EntryRow, MerkleNode
from .verify_rows import default_workers, iter_range_reports

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from .core import Ledger

__all__ = ["Fault", "VerifyResult", "verify_ledger"]


@dataclass(frozen=True)
class Fault:
    """The first fault found: its kind (a reason code), seq and message."""

    kind: str
    message: str
    seq: int | None = None
    expected: str | None = None
    actual: str | None = None

    def __post_init__(self) -> None:
        # Tampered rows can contain bytes or text that is not UTF-8, which a
        # message quotes. Such values are shown escaped, so the fault can
        # always be printed and serialized as JSON.
        for name in ("message", "expected", "actual"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _printable(value))

    def to_dict(self) -> dict[str, Any]:
        return {
            key: value
            for key, value in {
                "kind": self.kind,
                "seq": self.seq,
                "message": self.message,
                "expected": self.expected,
                "actual": self.actual,
            }.items()
            if value is not None
        }


# Control characters from a stored value could end a line early or drive a
# terminal, so faults show them as \xNN escapes.
_CONTROL_ESCAPES = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F]}


def _printable(value: Any) -> str:
    """Return ``value`` as text that encodes to UTF-8: bytes as hex, and
    control characters and characters that have no UTF-8 form as backslash
    escapes."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    text = str(value).translate(_CONTROL_ESCAPES)
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


@dataclass
class VerifyResult:
    """The outcome of ``verify``: named checks, the figures, the first fault."""

    entries_checked: int = 0
    size: int = 0
    root: str | None = None
    head_hash: str | None = None
    checkpoints_checked: int = 0
    trusted_checkpoint_size: int | None = None
    chain_intact: bool = False
    merkle_intact: bool = False
    checkpoints_valid: bool = False
    trusted_checkpoint_consistent: bool | None = None
    fault: Fault | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return self.fault is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries_checked": self.entries_checked,
            "size": self.size,
            "root": self.root,
            "head_hash": self.head_hash,
            "checkpoints_checked": self.checkpoints_checked,
            "chain_intact": self.chain_intact,
            "merkle_intact": self.merkle_intact,
            "checkpoints_valid": self.checkpoints_valid,
            "trusted_checkpoint_consistent": self.trusted_checkpoint_consistent,
            "trusted_checkpoint_size": self.trusted_checkpoint_size,
            "fault": None if self.fault is None else self.fault.to_dict(),
            "warnings": self.warnings,
        }


class _Stop(Exception):
    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.message)
        self.fault = fault


def _columns_of(
    entry_kind: str, recorded_at: str, record: dict[str, Any]
) -> tuple[Any, ...]:
    derived = derived_columns(entry_kind, recorded_at, record)
    return tuple(derived[name] for name in DERIVED_COLUMNS)


def _parse_for_check(seq: int, body: bytes) -> Any:
    try:
        return parse_entry(body, strict=False)
    except (GovLedgerError, ValueError) as error:
        raise _Stop(
            Fault(
                "body-changed",
                f"entry {seq}: body is not a valid entry ({error}); "
                "the stored bytes were altered",
                seq=seq,
            )
        ) from None


class _ChainChecker:
    """Check entries one at a time; remember only the last one."""

    def __init__(self) -> None:
        self.expected_seq = 0
        self.prev_hash = GENESIS_PREV
        self.pending: tuple[int, str, str] | None = None  # seq, stored, computed

    def check(
        self, seq: int, stored: str, body: bytes, columns: tuple[Any, ...]
    ) -> bytes:
        if type(seq) is int and seq < self.expected_seq:
            # Rows come in seq order, so this is a second row with a seq
            # already read, possible once the table's key was dropped.
            raise _Stop(
                Fault(
                    "entry-inserted",
                    f"a second row with seq {seq} was inserted",
                    seq=seq,
                )
            )
        if seq != self.expected_seq:
            raise _Stop(
                Fault(
                    "entry-deleted",
                    f"entry {self.expected_seq} is missing: the next stored "
                    f"entry is {seq}",
                    seq=self.expected_seq,
                )
            )
        entry = _parse_for_check(seq, body)
        if entry.seq != seq:
            if entry.seq == seq - 1:
                kind, what = "entry-inserted", "an entry was inserted before it"
            else:
                kind, what = "entries-reordered", "entries were reordered or swapped"
            raise _Stop(
                Fault(
                    kind,
                    f"entry {seq}: the row holds the body of entry {entry.seq}; {what}",
                    seq=seq,
                    expected=str(seq),
                    actual=str(entry.seq),
                )
            )
        computed = entry_hash(body).hex()
        if computed != stored:
            # Decided when the next entry (or the head) shows which is original.
            self.pending = (seq, stored, computed)
        if entry.prev != self.prev_hash:
            self._fault_on_prev(seq, entry.prev)
        self._resolve_pending_with(entry.prev, seq)
        if self.pending is None and columns != _columns_of(
            entry.kind, entry.recorded_at, entry.record
        ):
            expected = _columns_of(entry.kind, entry.recorded_at, entry.record)
            for name, have, want in zip(
                DERIVED_COLUMNS, columns, expected, strict=True
            ):
                if have != want:
                    raise _Stop(
                        Fault(
                            "derived-column-changed",
                            f"entry {seq}: column {name} is {have!r} but the "
                            f"entry body says {want!r}",
                            seq=seq,
                            expected=json.dumps(want),
                            actual=json.dumps(have),
                        )
                    )
        self.prev_hash = computed
        self.expected_seq = seq + 1
        return bytes.fromhex(computed)

    def _fault_on_prev(self, seq: int, prev: str) -> None:
        if self.pending is not None and self.pending[0] == seq - 1:
            pending_seq, stored, computed = self.pending
            if prev == stored:
                raise _Stop(
                    Fault(
                        "body-changed",
                        f"entry {pending_seq}: body changed; it hashes to "
                        f"{computed}, but the stored hash and the next entry's "
                        f"prev are {stored}",
                        seq=pending_seq,
                        expected=stored,
                        actual=computed,
                    )
                )
        raise _Stop(
            Fault(
                "prev-mismatch",
                f"entry {seq}: prev is {prev}, but entry {seq - 1} hashes to "
                f"{self.prev_hash}; entry {seq - 1} or entry {seq} was rewritten",
                seq=seq,
                expected=self.prev_hash,
                actual=prev,
            )
        )

    def _resolve_pending_with(self, prev: str, seq: int) -> None:
        if self.pending is None or self.pending[0] != seq - 1:
            return
        pending_seq, stored, computed = self.pending
        # prev matched the recomputed hash of the previous body, so the
        # body is original and its stored hash column was changed.
        raise _Stop(
            Fault(
                "hash-changed",
                f"entry {pending_seq}: stored hash {stored} does not match the "
                f"body, which hashes to {computed} as the next entry's prev "
                "confirms",
                seq=pending_seq,
                expected=computed,
                actual=stored,
            )
        )

    def finish(self, reference_hash: str) -> None:
        """Raise the pending hash fault, if any.

        ``reference_hash`` is the original hash of the pending entry as some
        later record shows it: the next entry's ``prev`` or the chain head.
        """
        if self.pending is None:
            return
        pending_seq, stored, computed = self.pending
        if reference_hash == stored:
            kind, expected, actual = "body-changed", stored, computed
            what = "body changed; the chain still links to the old hash"
        else:
            kind, expected, actual = "hash-changed", computed, stored
            what = "stored hash does not match the body"
        raise _Stop(
            Fault(
                kind,
                f"entry {pending_seq}: {what} (expected {expected}, got {actual})",
                seq=pending_seq,
                expected=expected,
                actual=actual,
            )
        )


class _TreeChecker:
    """Rebuild the Merkle tree from the leaves and compare stored nodes."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.peaks: list[tuple[int, int, bytes]] = []
        self.size = 0

    def add(self, leaves: list[bytes]) -> None:
        if not leaves:
            return
        new_nodes, self.peaks = merkle.extend(self.peaks, self.size, leaves)
        self.size += len(leaves)
        self._compare_stored(new_nodes)

    def add_subtree(self, level: int, node: bytes) -> None:
        """Add a perfect subtree of ``2**level`` leaves whose nodes were checked.

        The tree's size must be a multiple of ``2**level``. Only the nodes
        above the subtree are made and compared with the stored ones.
        """
        leaves = 1 << level
        index = self.size >> level
        new_nodes = []
        while self.peaks and self.peaks[-1][0] == level:
            left = self.peaks.pop()[2]
            node = merkle.node_hash(left, node)
            level += 1
            index >>= 1
            new_nodes.append((level, index, node))
        self.peaks.append((level, index, node))
        self.size += leaves
        if new_nodes:
            self._compare_stored(new_nodes)

    def root(self) -> bytes:
        return merkle.fold_right([node for _, _, node in self.peaks])

    def _compare_stored(self, nodes: list[tuple[int, int, bytes]]) -> None:
        from .core import _fetch_driver_sql

        # merkle.extend and add_subtree make each level's nodes in index order,
        # with no gaps.
        by_level: dict[int, list[tuple[int, bytes]]] = {}
        for level, idx, node in nodes:
            by_level.setdefault(level, []).append((idx, node))
        with self.ledger.engine.connect() as connection:
            for level, wanted in by_level.items():
                # A hash stored as text, even with the right bytes, is a
                # change, because it differs from every bytes value.
                stored = [
                    (idx, bytes(node) if isinstance(node, memoryview) else node)
                    for idx, node in _fetch_driver_sql(
                        connection,
                        "SELECT idx, hash FROM merkle_nodes WHERE level = ? "
                        "AND idx >= ? AND idx <= ? ORDER BY idx",
                        (level, wanted[0][0], wanted[-1][0]),
                    )
                ]
                if stored != wanted:
                    _raise_node_fault(level, wanted, dict(stored))


def _raise_node_fault(
    level: int, wanted: list[tuple[int, bytes]], stored: dict[int, Any]
) -> None:
    for idx, node in wanted:
        have = stored.get(idx)
        if have != node:
            first = idx << level
            raise _Stop(
                Fault(
                    "merkle-node-changed",
                    f"stored Merkle node (level {level}, index {idx}) "
                    f"over entries {first} to {first + (1 << level) - 1} "
                    + ("is missing" if have is None else "was altered"),
                    seq=first,
                    expected=node.hex(),
                    actual=None if have is None else _printable(have),
                )
            )


def _check_stored_checkpoint(
    checkpoint: Any, root: bytes, verifiers: Sequence[Any], origin: str
) -> None:
    from .checkpoints import open_checkpoint
    from .note import format_key_id

    try:
        signed = open_checkpoint(checkpoint.note, verifiers, origin=origin)
    except GovLedgerError as error:
        raise _Stop(
            Fault(
                "checkpoint-signature-invalid",
                f"stored checkpoint of tree size {checkpoint.tree_size}: {error}",
                seq=checkpoint.tree_size,
            )
        ) from None
    signing_keys = [format_key_id(key_id) for key_id in signed.key_ids]
    if checkpoint.key_id not in signing_keys:
        raise _Stop(
            Fault(
                "checkpoint-row-changed",
                f"stored checkpoint of tree size {checkpoint.tree_size}: its "
                f"key_id column says {checkpoint.key_id!r} but its note is "
                f"signed by log key {', '.join(signing_keys)}",
                seq=checkpoint.tree_size,
                expected=", ".join(signing_keys),
                actual=str(checkpoint.key_id),
            )
        )
    if signed.checkpoint.size != checkpoint.tree_size:
        raise _Stop(
            Fault(
                "checkpoint-root-mismatch",
                f"stored checkpoint row says tree size {checkpoint.tree_size}, "
                f"its signed note says {signed.checkpoint.size}",
                seq=checkpoint.tree_size,
            )
        )
    if signed.checkpoint.root != root:
        raise _Stop(
            Fault(
                "checkpoint-root-mismatch",
                f"signed checkpoint of tree size {checkpoint.tree_size} has root "
                f"{signed.checkpoint.root.hex()}, but the entries give "
                f"{root.hex()}; the ledger was rewritten after it was signed",
                seq=checkpoint.tree_size,
                expected=signed.checkpoint.root.hex(),
                actual=root.hex(),
            )
        )


def _open_trusted(note: str, verifiers: Sequence[Any], origin: str) -> Any:
    from .checkpoints import open_checkpoint

    try:
        return open_checkpoint(note, verifiers, origin=origin)
    except GovLedgerError as error:
        raise _Stop(
            Fault(
                "trusted-checkpoint-invalid",
                f"trusted checkpoint does not verify: {error}",
            )
        ) from None


def verify_ledger(
    ledger: Ledger,
    *,
    trusted_checkpoint: str | None = None,
    trusted_keys: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> VerifyResult:
    """Verify every entry, link, node and checkpoint; return the result.

    ``trusted_checkpoint`` is the text of a signed checkpoint kept outside
    the ledger; it is verified with ``trusted_keys`` (verifier keys in note
    form) if given, else with the log keys stored in the ledger, and the
    ledger must extend the tree it commits to (no truncation, rollback or
    rewrite). ``progress`` is called with the number of entries checked.

    Entries are first checked in ranges (see ``ledger.verify_rows``) by
    ``workers`` processes: None picks a number from the CPU count, 0 checks
    in this process. If anything fails, the entries are walked again one at
    a time, which locates and classifies the first fault.
    """
    if workers is None or workers > 0:
        # Workers are forked, which is safe only while this process runs
        # one thread, so the ledger's idle receipt thread stops first.
        ledger.stop_receipt_thread()
    with _lenient_reader(ledger) as reader:
        if workers is None:
            try:
                size = reader.head().size
            except ChainError:
                size = 0  # the walk below reports the head row
            workers = default_workers(size)
        run = partial(
            _verify_once,
            reader,
            trusted_checkpoint=trusted_checkpoint,
            trusted_keys=trusted_keys,
            progress=progress,
            range_engine=ledger.engine,
        )
        result = run(range_workers=workers)
        if result.fault is None:
            return result
        return run(range_workers=None)


@contextmanager
def _lenient_reader(ledger: Ledger) -> Iterator[Ledger]:
    """Yield ``ledger`` read through an engine that accepts text that is not UTF-8.

    An attacker can store any bytes in a SQLite text column, and the driver
    raises on reading them. Through this engine they arrive as lone
    surrogates, which differ from every value the walk expects, so verify
    names the row. The range check keeps the strict engine, which is faster,
    and fails a range whose text it cannot read.
    """
    if ledger.engine.dialect.name != "sqlite":
        yield ledger
        return
    from .store import make_engine

    engine = make_engine(ledger.url, lenient_text=True)
    try:
        yield ledger.on_engine(engine)
    finally:
        engine.dispose()


def _verify_once(
    ledger: Ledger,
    *,
    trusted_checkpoint: str | None,
    trusted_keys: Sequence[str],
    progress: Callable[[int], None] | None,
    range_workers: int | None,
    range_engine: Engine,
) -> VerifyResult:
    """Run one verification: by ranges with ``range_workers``, or per entry if None.

    The range check reads through ``range_engine``, everything else through
    ``ledger``.
    """
    from .note import parse_verifier_key

    result = VerifyResult()
    # Keys given by the auditor replace the ledger's own key table, which an
    # operator could have rewritten together with the checkpoints.
    pinned = [parse_verifier_key(key) for key in trusted_keys]
    trusted = None
    chain = _ChainChecker()
    try:
        head = _read_or_stop(ledger.head, "head-mismatch")
        result.size = head.size
        if pinned:
            pinned = _follow_key_rotations(ledger, pinned)
        stored_verifiers = pinned or _read_or_stop(ledger.verifiers, "key-row-changed")
        if trusted_checkpoint is not None:
            keys = stored_verifiers
            trusted = _open_trusted(trusted_checkpoint, keys, ledger.origin)
            result.trusted_checkpoint_size = trusted.checkpoint.size
            if trusted.checkpoint.size > head.size:
                raise _Stop(
                    Fault(
                        "rollback",
                        f"the ledger ({head.size} entries) is smaller than the "
                        f"trusted checkpoint ({trusted.checkpoint.size} entries): "
                        "it was truncated or rolled back to an older state",
                        seq=head.size,
                        expected=str(trusted.checkpoint.size),
                        actual=str(head.size),
                    )
                )
        checkpoints = _read_or_stop(ledger.checkpoints, "checkpoint-row-changed")
        pending_checkpoints = [c for c in checkpoints if c.tree_size <= head.size]
        for late in (c for c in checkpoints if c.tree_size > head.size):
            raise _Stop(
                Fault(
                    "rollback",
                    f"a stored checkpoint commits to {late.tree_size} entries "
                    f"but the ledger has {head.size}: entries were removed",
                    seq=head.size,
                    expected=str(late.tree_size),
                    actual=str(head.size),
                )
            )
        _check_checkpoint_rows(checkpoints)
        tree = _TreeChecker(ledger)
        position = 0

        def settle_checkpoints() -> None:
            nonlocal position
            while (
                position < len(pending_checkpoints)
                and pending_checkpoints[position].tree_size == tree.size
            ):
                _check_stored_checkpoint(
                    pending_checkpoints[position],
                    tree.root() if tree.size else merkle.EMPTY_ROOT,
                    stored_verifiers,
                    ledger.origin,
                )
                position += 1
                result.checkpoints_checked += 1
            if trusted is not None and trusted.checkpoint.size == tree.size:
                _check_trusted_root(trusted, tree)
                result.trusted_checkpoint_consistent = True

        def advance(new_leaves: list[bytes]) -> None:
            # A tree or checkpoint fault caused by an entry whose hash does
            # not match its body is reported as that entry's fault.
            try:
                tree.add(new_leaves)
                settle_checkpoints()
            except _Stop:
                if chain.pending is not None:
                    chain.finish(_reference_hash(ledger, chain.pending[0], head))
                raise

        def next_boundary() -> int | None:
            sizes = [trusted.checkpoint.size] if trusted is not None else []
            if position < len(pending_checkpoints):
                sizes.append(pending_checkpoints[position].tree_size)
            later = [size for size in sizes if size > tree.size]
            return min(later) if later else None

        settle_checkpoints()
        if range_workers is not None:
            _walk_ranges(
                range_engine,
                head.size,
                range_workers,
                chain,
                tree,
                settle_checkpoints,
                next_boundary,
                progress,
            )
        leaves: list[bytes] = []
        for seq, stored, body, columns in ledger.iter_raw(
            start=chain.expected_seq, end=head.size
        ):
            try:
                leaves.append(chain.check(seq, stored, body, columns))
            except (TypeError, ValueError, AttributeError) as error:
                raise _Stop(
                    Fault(
                        "body-changed",
                        f"entry {seq}: the stored row is corrupt ({error})",
                        seq=seq,
                    )
                ) from None
            boundary = _boundary(
                pending_checkpoints, position, trusted, tree.size + len(leaves)
            )
            if boundary or len(leaves) >= 5000:
                advance(leaves)
                leaves = []
                if progress:
                    progress(chain.expected_seq)
        advance(leaves)
        if progress:
            progress(chain.expected_seq)
        chain.finish(head.head_hash)
        result.entries_checked = chain.expected_seq
        beyond = _rows_from(ledger, head.size)
        if beyond:
            raise _Stop(
                Fault(
                    "entry-inserted",
                    f"{beyond} rows with seq {head.size} or more were inserted "
                    f"behind the chain head, which records {head.size} entries",
                    seq=head.size,
                )
            )
        negative = _negative_rows(ledger)
        if negative:
            count, lowest = negative
            raise _Stop(
                Fault(
                    "entry-inserted",
                    f"{count} rows with a negative seq (from {lowest}) were "
                    "inserted outside the chain",
                    seq=lowest,
                )
            )
        repeated = _repeated_seq(ledger, head.size)
        if repeated is not None:
            seq, count = repeated
            raise _Stop(
                Fault(
                    "entry-inserted",
                    f"{count} rows have seq {seq}: rows were inserted beside "
                    "the chain's entry, which the table's key should prevent",
                    seq=seq,
                )
            )
        if chain.expected_seq != head.size:
            if chain.expected_seq < head.size:
                raise _Stop(
                    Fault(
                        "entry-deleted",
                        f"the chain head records {head.size} entries but only "
                        f"{chain.expected_seq} are stored: entries from "
                        f"{chain.expected_seq} on were deleted",
                        seq=chain.expected_seq,
                    )
                )
            raise _Stop(
                Fault(
                    "entry-inserted",
                    f"{chain.expected_seq - head.size} entries after the chain "
                    f"head (size {head.size}) were inserted",
                    seq=head.size,
                )
            )
        if chain.prev_hash != head.head_hash:
            raise _Stop(
                Fault(
                    "head-mismatch",
                    f"the chain head records hash {head.head_hash} but entry "
                    f"{head.size - 1} hashes to {chain.prev_hash}",
                    seq=head.size - 1,
                    expected=head.head_hash,
                    actual=chain.prev_hash,
                )
            )
        stored_peaks = bytes(head.peaks or b"")
        rebuilt_peaks = b"".join(node for _, _, node in tree.peaks)
        if stored_peaks and stored_peaks != rebuilt_peaks:
            raise _Stop(
                Fault(
                    "head-mismatch",
                    "the chain head's stored tree peaks differ from the peaks "
                    "rebuilt from the entries; the head row was altered",
                    seq=head.size,
                    expected=rebuilt_peaks.hex(),
                    actual=stored_peaks.hex(),
                )
            )
        _check_no_extra_nodes(ledger, head.size)
        _check_personal_values(ledger, head.size)
        result.chain_intact = True
        result.merkle_intact = True
        result.checkpoints_valid = True
        result.head_hash = head.head_hash
        result.root = (tree.root() if tree.size else merkle.EMPTY_ROOT).hex()
        if not checkpoints:
            result.warnings.append(
                "no signed checkpoint is stored; run `govledger checkpoint`"
            )
    except _Stop as stop:
        result.fault = stop.fault
        result.entries_checked = chain.expected_seq
    return result


def _read_or_stop(read: Callable[[], Any], kind: str) -> Any:
    """Call ``read``; a row it cannot read stops verify with a fault of ``kind``."""
    try:
        return read()
    except ChainError as error:
        if error.reason != "row-altered":
            raise
        raise _Stop(Fault(kind, error.message)) from None


def _walk_ranges(
    engine: Engine,
    size: int,
    workers: int,
    chain: _ChainChecker,
    tree: _TreeChecker,
    settle_checkpoints: Callable[[], None],
    next_boundary: Callable[[], int | None],
    progress: Callable[[int], None] | None,
) -> None:
    """Check entries ``[0, size)`` by ranges and add them to the tree.

    Every stored and trusted checkpoint is compared with the root at its size.
    Raises ``_Stop`` with kind ``range-check-failed`` when a range breaks a
    rule, and the caller then walks the entries one at a time.
    """
    for report in iter_range_reports(engine, 0, size, workers=workers):
        if not report.passed or report.first_prev != chain.prev_hash:
            raise _Stop(
                Fault(
                    "range-check-failed",
                    f"entries {report.start} to {report.end - 1} failed the range "
                    "check; walk them one at a time to locate the fault",
                    seq=report.start,
                )
            )
        # Add the range as its perfect subtrees, whose nodes the range check
        # compared, stopping at each checkpoint size inside the range.
        while tree.size < report.end:
            boundary = next_boundary()
            stop = report.end if boundary is None else min(boundary, report.end)
            for level, index in merkle.subtree_addresses(tree.size, stop):
                tree.add_subtree(level, report.node(level, index))
            settle_checkpoints()
        chain.prev_hash = str(report.last_hash)
        chain.expected_seq = report.end
        if progress:
            progress(report.end)


def _follow_key_rotations(ledger: Ledger, trusted: list[Any]) -> list[Any]:
    """Extend pinned keys along the ledger's ``key_rotated`` entries.

    A rotation entry names the new key and carries the old key's signature
    over JCS({"new_key", "old_key", "origin"}); a new key becomes trusted
    only when that signature verifies with a key already trusted. The
    entries' own integrity is checked by the chain walk.
    """
    import base64

    from .canonical import canonical_bytes
    from .note import parse_verifier_key

    keys = list(trusted)
    for entry in ledger.entries(kind="key_rotated"):
        record = entry.record
        try:
            statement = {
                "new_key": record["new_key"],
                "old_key": record["old_key"],
                "origin": record["origin"],
            }
            signature = base64.b64decode(record["old_key_signature"], validate=True)
            new_key = parse_verifier_key(record["new_key"])
        except (KeyError, TypeError, ValueError, GovLedgerError):
            continue
        message = canonical_bytes(statement)
        if any(
            str(key) == record["old_key"] and key.verify(message, signature)
            for key in keys
        ) and all(str(key) != str(new_key) for key in keys):
            keys.append(new_key)
    return keys


def _check_checkpoint_rows(checkpoints: Sequence[Any]) -> None:
    """Check that no stored checkpoint row was deleted or had a column changed.

    Rows get ids 1, 2, 3 and on, so a gap or a first id above 1 shows a
    deleted row. A deleted last row shows only against a trusted checkpoint.
    The tree size and root columns must equal the values in the signed note.
    ``_check_stored_checkpoint`` compares the key ID column with the key
    that signed it.

    NOTE: PostgreSQL also skips an id when a checkpoint insert fails and
    rolls back, which this reports as a deleted checkpoint.
    """
    from .checkpoints import parse_checkpoint

    ids = sorted(row.id for row in checkpoints)
    for before, after in zip([0, *ids], ids, strict=False):
        if after != before + 1:
            raise _Stop(
                Fault(
                    "checkpoint-deleted",
                    f"stored checkpoint rows {before + 1} to {after - 1} are "
                    "missing: checkpoints were deleted",
                )
            )
    for row in checkpoints:
        try:
            body = parse_checkpoint(_note_text(row.note))
        except GovLedgerError as error:
            raise _Stop(
                Fault(
                    "checkpoint-signature-invalid",
                    f"stored checkpoint {row.id} is not a valid signed note: {error}",
                    seq=row.tree_size,
                )
            ) from None
        if body.size != row.tree_size or body.root.hex() != row.root_hash:
            raise _Stop(
                Fault(
                    "checkpoint-row-changed",
                    f"stored checkpoint {row.id}: its columns say tree size "
                    f"{row.tree_size} and root {row.root_hash}, its signed note "
                    f"says {body.size} and {body.root.hex()}",
                    seq=row.tree_size,
                    expected=body.root.hex(),
                    actual=row.root_hash,
                )
            )


def _note_text(note: str) -> str:
    """Return the text part of a signed note (before the blank line)."""
    text, separator, _signatures = note.partition("\n\n")
    if not separator:
        raise ChainError("signed note has no blank line before its signatures")
    return text + "\n"


def _check_no_extra_nodes(ledger: Ledger, size: int) -> None:
    """Check that merkle_nodes contains exactly the nodes of a tree of ``size``.

    Each stored node was compared while the tree was rebuilt; a node beyond
    the tree (planted ahead of future appends) is found here.
    """
    from sqlalchemy import or_

    from .core import _fetch_driver_sql

    with ledger.engine.connect() as connection:
        # One statement reads both, so appends made while verify runs, which
        # add nodes and grow the head together, are counted consistently.
        ((stored, current),) = _fetch_driver_sql(
            connection,
            "SELECT (SELECT count(*) FROM merkle_nodes), "
            "(SELECT size FROM chain_head WHERE id = 1)",
            (),
        )
        size = max(size, int(current or 0))
        expected = sum(size >> level for level in range(1, max(size, 1).bit_length()))
        if stored == expected:
            return
        extra = connection.execute(
            select(MerkleNode.level, MerkleNode.idx)
            .where(
                or_(
                    MerkleNode.level < 1,
                    *[
                        (MerkleNode.level == level)
                        & (MerkleNode.idx >= (size >> level))
                        for level in range(1, 64)
                    ],
                )
            )
            .limit(1)
        ).first()
    where = (
        f"(level {extra[0]}, index {extra[1]})" if extra is not None else "somewhere"
    )
    raise _Stop(
        Fault(
            "merkle-node-inserted",
            f"merkle_nodes holds {stored} nodes but a tree of {size} entries has "
            f"{expected}; a node was inserted {where}, which would also block "
            "future appends",
            seq=size,
            expected=str(expected),
            actual=str(stored),
        )
    )


def _check_personal_values(ledger: Ledger, size: int, chunk: int = 2000) -> None:
    """Check every stored personal value against its entry's commitment.

    SHA-256(salt || value) must equal the commitment the entry holds for
    that field; a value changed, or added for a field the entry has no
    commitment for, is a fault. Erased values are simply absent.
    """
    import hashlib

    from .store import PersonalValue

    last: tuple[int, str] = (-1, "")
    while True:
        with ledger.engine.connect() as connection:
            rows = connection.execute(
                select(
                    PersonalValue.seq,
                    PersonalValue.name,
                    PersonalValue.salt,
                    PersonalValue.value,
                )
                .where(
                    (PersonalValue.seq > last[0])
                    | ((PersonalValue.seq == last[0]) & (PersonalValue.name > last[1]))
                )
                .order_by(PersonalValue.seq, PersonalValue.name)
                .limit(chunk)
            ).all()
            if not rows:
                return
            seqs = sorted({row[0] for row in rows})
            bodies = dict(
                connection.execute(
                    select(EntryRow.seq, EntryRow.body).where(EntryRow.seq.in_(seqs))
                ).all()
            )
        for seq, name, salt, value in rows:
            body = bodies.get(seq)
            commitments = {}
            if seq >= size and body is not None:
                # An entry appended while verify runs is within the current
                # head. A value beyond the head has no entry at all.
                size = max(size, ledger.head().size)
            if body is not None and seq < size:
                try:
                    record = json.loads(bytes(body))["record"]
                    commitments = record.get("personal") or {}
                except (ValueError, KeyError, TypeError, AttributeError):
                    commitments = {}
            digest = hashlib.sha256(bytes(salt) + bytes(value)).hexdigest()
            if commitments.get(name) != digest:
                what = (
                    "has no commitment for it"
                    if name not in commitments
                    else "commits to another value"
                )
                raise _Stop(
                    Fault(
                        "personal-value-changed",
                        f"entry {seq}: stored personal value {name!r} does not "
                        f"match the entry, which {what}; the personal_values "
                        "table was altered",
                        seq=seq,
                        expected=commitments.get(name),
                        actual=digest,
                    )
                )
        last = (rows[-1][0], rows[-1][1])


def _rows_from(ledger: Ledger, seq: int) -> int:
    """Count the rows with seq ``seq`` or more that lie beyond the chain head.

    The head is read in the same statement, so entries appended while
    verify runs, whose rows and head update commit together, are not
    counted.
    """
    from .core import _fetch_driver_sql

    with ledger.engine.connect() as connection:
        ((count,),) = _fetch_driver_sql(
            connection,
            "SELECT count(*) FROM entries WHERE seq >= ? AND seq >= "
            "(SELECT size FROM chain_head WHERE id = 1)",
            (seq,),
        )
    return int(count)


def _repeated_seq(ledger: Ledger, size: int) -> tuple[int, int] | None:
    """Return the lowest seq below ``size`` stored in more than one row, and
    its number of rows, if any.

    The walk reads each seq once, so a second row with the same seq (in a
    table whose primary key was dropped) shows only in the row count.
    """
    from .core import _fetch_driver_sql

    with ledger.engine.connect() as connection:
        ((count,),) = _fetch_driver_sql(
            connection,
            "SELECT count(*) FROM entries WHERE seq >= 0 AND seq < ?",
            (size,),
        )
        if count == size:
            return None
        rows = _fetch_driver_sql(
            connection,
            "SELECT seq, count(*) FROM entries WHERE seq >= 0 AND seq < ? "
            "GROUP BY seq HAVING count(*) > 1 ORDER BY seq LIMIT 1",
            (size,),
        )
    return (int(rows[0][0]), int(rows[0][1])) if rows else None


def _negative_rows(ledger: Ledger) -> tuple[int, int] | None:
    """Return the number and lowest seq of rows with a negative seq, if any."""
    from .core import _fetch_driver_sql

    with ledger.engine.connect() as connection:
        ((count, lowest),) = _fetch_driver_sql(
            connection, "SELECT count(*), min(seq) FROM entries WHERE seq < 0", ()
        )
    return (int(count), int(lowest)) if count else None


def _reference_hash(ledger: Ledger, seq: int, head: Any) -> str:
    """Return entry ``seq``'s original hash as the next entry or the head records it."""
    for _next_seq, _stored, body, _columns in ledger.iter_raw(seq + 1, seq + 2):
        try:
            return str(json.loads(body).get("prev"))
        except (ValueError, AttributeError):
            break
    return str(head.head_hash)


def _boundary(
    checkpoints: Sequence[Any], position: int, trusted: Any, size: int
) -> bool:
    if position < len(checkpoints) and checkpoints[position].tree_size == size:
        return True
    return trusted is not None and trusted.checkpoint.size == size


def _check_trusted_root(trusted: Any, tree: _TreeChecker) -> None:
    root = tree.root() if tree.size else merkle.EMPTY_ROOT
    if trusted.checkpoint.root != root:
        raise _Stop(
            Fault(
                "rewritten",
                f"the first {tree.size} entries give root {root.hex()}, but the "
                f"trusted checkpoint of that size has root "
                f"{trusted.checkpoint.root.hex()}: the ledger was rewritten "
                "since the checkpoint was signed (somewhere before seq "
                f"{tree.size})",
                expected=trusted.checkpoint.root.hex(),
                actual=root.hex(),
            )
        )
