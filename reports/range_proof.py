"""Tie a contiguous run of entries to a signed tree root (RFC 9162 section 2.1).

An audit pack that covers a period embeds the entries of that period, seqs
``start`` to ``end - 1``, and a *range proof*: the hashes of the subtrees
that lie wholly left or wholly right of the run. With them a verifier
recomputes the root of the whole tree from the embedded entries alone.

The recursion of RFC 9162 2.1.1 splits a range of ``n`` leaves at the
largest power of two below ``n``. Walking it from the root, a subtree that
lies outside the run and whose parent overlaps it is always a sibling on
the inclusion path of leaf ``start`` (if it lies left) or of leaf
``end - 1`` (if it lies right). So the two inclusion proofs of those leaves
supply every hash the proof needs, and the proof contains O(log n) hashes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ledger.errors import ProofError
from ledger.merkle import HASH_SIZE, node_hash

__all__ = [
    "RangeProof",
    "inclusion_path_ranges",
    "range_proof_from_inclusion_proofs",
    "root_from_range",
]


@dataclass(frozen=True, kw_only=True)
class RangeProof:
    """The hashes that tie leaves ``[start, end)`` to the root of ``tree_size``.

    ``left`` and ``right`` are the hashes of the subtrees wholly left and
    wholly right of the run, in the order the RFC 9162 recursion meets them
    (left to right).
    """

    tree_size: int
    start: int
    end: int
    left: tuple[bytes, ...]
    right: tuple[bytes, ...]

    def to_json(self) -> dict[str, object]:
        """Return the proof as the JSON object embedded in a pack."""
        return {
            "type": "range",
            "tree_size": self.tree_size,
            "start": self.start,
            "end": self.end,
            "left": [value.hex() for value in self.left],
            "right": [value.hex() for value in self.right],
        }


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_path_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Return the leaf ranges whose hashes form PATH(index, D[size]), leaf first.

    This is the order of the hashes in an RFC 9162 2.1.3.1 inclusion proof.
    Requires ``0 <= index < size``; raises ValueError otherwise.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    low, high = 0, size
    while high - low > 1:
        split = low + _largest_power_of_two_below(high - low)
        if index < split:
            ranges.append((split, high))
            high = split
        else:
            ranges.append((low, split))
            low = split
    ranges.reverse()
    return ranges


def _outside_ranges(start: int, end: int, size: int) -> list[tuple[int, int]]:
    """Return the subtrees outside ``[start, end)`` that the recursion meets."""
    found: list[tuple[int, int]] = []

    def walk(low: int, high: int) -> None:
        if high <= start or low >= end:
            found.append((low, high))
            return
        if high - low == 1 or (start <= low and high <= end):
            return
        split = low + _largest_power_of_two_below(high - low)
        walk(low, split)
        walk(split, high)

    walk(0, size)
    return found


def range_proof_from_inclusion_proofs(
    *,
    tree_size: int,
    start: int,
    end: int,
    first_proof: Sequence[bytes],
    last_proof: Sequence[bytes],
) -> RangeProof:
    """Build the range proof of ``[start, end)`` from two inclusion proofs.

    ``first_proof`` is the RFC 9162 inclusion proof of leaf ``start`` and
    ``last_proof`` that of leaf ``end - 1``, both in the tree of
    ``tree_size``. Requires ``0 <= start < end <= tree_size``.

    Raises:
        ValueError: the range is empty or outside the tree, or a proof has
            the wrong number of hashes for its leaf.
    """
    if not 0 <= start < end <= tree_size:
        raise ValueError(
            f"range [{start}, {end}) is empty or outside a tree of size {tree_size}"
        )
    known: dict[tuple[int, int], bytes] = {}
    for index, proof in ((start, first_proof), (end - 1, last_proof)):
        path = inclusion_path_ranges(index, tree_size)
        if len(path) != len(proof):
            raise ValueError(
                f"the inclusion proof of leaf {index} has {len(proof)} hashes, "
                f"expected {len(path)} for a tree of size {tree_size}"
            )
        known.update(zip(path, proof, strict=True))
    left: list[bytes] = []
    right: list[bytes] = []
    for low, high in _outside_ranges(start, end, tree_size):
        (left if high <= start else right).append(known[(low, high)])
    return RangeProof(
        tree_size=tree_size,
        start=start,
        end=end,
        left=tuple(left),
        right=tuple(right),
    )


def root_from_range(proof: RangeProof, leaf_hash_at: Callable[[int], bytes]) -> bytes:
    """Recompute the tree root from the leaves of ``[start, end)`` and the proof.

    ``leaf_hash_at(seq)`` returns the leaf hash (entry hash) of an embedded
    entry. This only computes; the caller compares the result with the
    signed root. Time is linear in the number of leaves in the range.

    Raises:
        ProofError: the range is empty or lies outside the tree
            (``bad-range``), a hash is not 32 bytes (``bad-hash-length``),
            or the proof contains too few or too many hashes
            (``bad-proof-size``).
    """
    start, end, size = proof.start, proof.end, proof.tree_size
    if not 0 <= start < end <= size:
        raise ProofError(
            f"range proof rejected: range [{start}, {end}) is empty or outside "
            f"a tree of size {size}",
            reason="bad-range",
        )
    for value in (*proof.left, *proof.right):
        if len(value) != HASH_SIZE:
            raise ProofError(
                f"range proof rejected: a hash is {len(value)} bytes long, "
                f"expected {HASH_SIZE}",
                reason="bad-hash-length",
            )
    left = iter(proof.left)
    right = iter(proof.right)

    def take(hashes: Iterator[bytes], side: str) -> bytes:
        value = next(hashes, None)
        if value is None:
            raise ProofError(
                f"range proof rejected: the {side} hashes run out before the "
                f"root of tree size {size} is reached",
                reason="bad-proof-size",
            )
        return value

    def subtree_hash(low: int, high: int) -> bytes:
        if high <= start:
            return take(left, "left")
        if low >= end:
            return take(right, "right")
        if high - low == 1:
            return leaf_hash_at(low)
        split = low + _largest_power_of_two_below(high - low)
        return node_hash(subtree_hash(low, split), subtree_hash(split, high))

    root = subtree_hash(0, size)
    if next(left, None) is not None or next(right, None) is not None:
        raise ProofError(
            f"range proof rejected: it contains more hashes than the range "
            f"[{start}, {end}) of tree size {size} needs",
            reason="bad-proof-size",
        )
    return root
