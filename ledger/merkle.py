"""RFC 9162 Merkle tree over entry hashes: stored nodes, proofs and verification.

The ledger stores the hash of every perfect subtree as a node addressed by
``(level, index)``: the node covers leaves ``[index * 2**level, (index + 1) *
2**level)``. Level 0 nodes are the leaf hashes themselves, which are the entry
hashes (already ``SHA-256(0x00 || entry)``), so this module never hashes a
stored leaf again. With those nodes a root, an inclusion proof and a
consistency proof each need O(log n) node reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NoReturn, Protocol

from ledger.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "NodeReader",
    "consistency_proof",
    "extend",
    "fold_right",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "root_addresses",
    "root_from_inclusion_proof",
    "roots_from_consistency_proof",
    "subtree_addresses",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Length in bytes of a leaf hash, node hash or root (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH of the empty tree, SHA-256 of the empty string (RFC 9162 2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class NodeReader(Protocol):
    """Read access to stored nodes, implemented by the database layer."""

    def read_nodes(self, addresses: Sequence[tuple[int, int]]) -> list[bytes]:
        """Return the hash of each ``(level, index)`` node, in the order given.

        Level 0 nodes are the entry hashes. Raises KeyError for a missing node.
        """
        ...


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 9162 2.1.1 leaf hash ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 2.1.1 interior node hash ``SHA-256(0x01 || left || right)``.

    Both children must be 32-byte hashes. This function does not check them.
    """
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def subtree_addresses(start: int, end: int) -> list[tuple[int, int]]:
    """Return the ``(level, index)`` of the perfect subtrees covering ``[start, end)``.

    The subtrees are listed left to right, and each one is the largest aligned
    subtree that starts where the previous one ends. When ``start`` is a
    multiple of the smallest power of two that is at least ``end - start``,
    the range is a subtree of the RFC 9162 2.1.1 tree, and ``fold_right`` of
    these nodes' hashes is its MTH. This holds for ``[0, size)`` and for every
    range on the right edge of a tree that a proof uses. For other ranges the
    fold is well defined but is not an RFC 9162 value.

    Requires ``0 <= start <= end``. Raises ValueError otherwise.
    """
    if start < 0 or end < start:
        raise ValueError(
            f"invalid leaf range [{start}, {end}): requires 0 <= start <= end"
        )
    addresses: list[tuple[int, int]] = []
    while start < end:
        # The largest power of two that fits in the rest of the range, capped
        # by the alignment of start (start & -start is its lowest set bit).
        size = 1 << ((end - start).bit_length() - 1)
        if start:
            size = min(size, start & -start)
        level = size.bit_length() - 1
        addresses.append((level, start >> level))
        start += size
    return addresses


def root_addresses(size: int) -> list[tuple[int, int]]:
    """Return the peaks of a tree of ``size`` leaves, left to right.

    Folding their hashes with ``fold_right`` gives the tree's root. Requires
    ``size >= 0``. Raises ValueError otherwise.
    """
    return subtree_addresses(0, size)


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Combine the hashes of a range's subtrees into the range's MTH.

    The hashes are those of ``subtree_addresses`` for the range, left to
    right. RFC 9162 2.1.1 splits a range at the largest power of two below
    its size, so the rightmost subtrees join first: the fold runs right to
    left. An empty list folds to ``EMPTY_ROOT``, the MTH of no leaves.
    """
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def root(reader: NodeReader, size: int) -> bytes:
    """Return the root (MTH, RFC 9162 2.1.1) of the tree of the first ``size`` leaves.

    Reads one node per set bit of ``size``, in one ``read_nodes`` call, and
    none for size 0. Requires ``size >= 0`` (ValueError otherwise). The
    reader raises KeyError when a node is missing.
    """
    if size < 0:
        raise ValueError(f"invalid tree size {size}: requires size >= 0")
    if size == 0:
        return EMPTY_ROOT
    return fold_right(reader.read_nodes(root_addresses(size)))


def _largest_power_of_two_below(n: int) -> int:
    """Return the k of RFC 9162 2.1.1: the largest power of two below ``n >= 2``."""
    return 1 << ((n - 1).bit_length() - 1)


def _inclusion_path_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Return the leaf ranges whose MTHs form PATH(index, D[size]), in proof order.

    Follows the recursion of RFC 9162 2.1.3.1 from the root down, then
    reverses the siblings so that the leaf's sibling comes first. Requires
    ``0 <= index < size``.
    """
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


def _consistency_proof_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Return the leaf ranges whose MTHs form PROOF(old_size, D[new_size]), in order.

    Follows SUBPROOF of RFC 9162 2.1.4.1 from the root down. ``complete`` is
    the flag b of SUBPROOF. It stays true while the old tree is the left part
    of the current subtree. The verifier then already has the MTH of that part
    (the old root), so the proof leaves it out. Requires
    ``0 < old_size <= new_size``.
    """
    ranges: list[tuple[int, int]] = []
    low, high = 0, new_size
    complete = True
    while high != old_size:
        split = low + _largest_power_of_two_below(high - low)
        if old_size <= split:
            ranges.append((split, high))
            high = split
        else:
            ranges.append((low, split))
            low = split
            complete = False
    if not complete:
        ranges.append((low, high))
    ranges.reverse()
    return ranges


def _read_range_hashes(
    reader: NodeReader, ranges: Sequence[tuple[int, int]]
) -> list[bytes]:
    """Return the MTH of each range, reading all their nodes in one call.

    Every range must be a subtree of the RFC 9162 tree (see
    ``subtree_addresses``). Raises ValueError when the reader returns the
    wrong number of hashes. The reader raises KeyError for a missing node.
    """
    groups = [subtree_addresses(start, end) for start, end in ranges]
    addresses = [address for group in groups for address in group]
    if not addresses:
        return []
    hashes = reader.read_nodes(addresses)
    if len(hashes) != len(addresses):
        raise ValueError(
            f"NodeReader.read_nodes returned {len(hashes)} hashes "
            f"for {len(addresses)} addresses"
        )
    result: list[bytes] = []
    offset = 0
    for group in groups:
        result.append(fold_right(hashes[offset : offset + len(group)]))
        offset += len(group)
    return result


def _check_index(index: int, size: int, action: str) -> None:
    if index < 0 or index >= size:
        raise ProofError(
            f"{action}: leaf index {index} is not in the tree of size {size}. "
            f"Use an index from 0 to size - 1, with a tree size that includes "
            f"the entry.",
            reason="index-out-of-range",
        )


def _check_sizes(old_size: int, new_size: int, action: str) -> None:
    """Raise ProofError unless ``0 < old_size <= new_size``.

    A consistency proof from size 0 is rejected: every tree extends the empty
    tree, so such a proof would prove nothing, and the definition of PROOF(m,
    D[n]) (RFC 6962 2.1.2) requires ``0 < m``.
    """
    if old_size > new_size:
        raise ProofError(
            f"{action}: the old tree size {old_size} is larger than the new tree "
            f"size {new_size}. A log only grows, so swap the sizes or use a "
            f"newer tree.",
            reason="old-size-exceeds-new-size",
        )
    if old_size <= 0:
        raise ProofError(
            f"{action}: the old tree size is {old_size}, and a consistency proof "
            f"needs an old tree of at least 1 leaf. Every tree extends the "
            f"empty tree, so no proof is needed from size 0.",
            reason="size-zero",
        )


def _check_hash(value: bytes, name: str, action: str) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise ProofError(
            f"{action}: {name} is {len(value)} bytes long, expected a "
            f"{HASH_SIZE}-byte SHA-256 hash (actual value {value.hex() or 'empty'}). "
            f"Check that it was decoded from hex or base64 correctly.",
            reason="bad-hash-length",
            actual=value.hex(),
        )


def _check_proof_size(
    proof: Sequence[bytes], expected: int, action: str, target: str
) -> None:
    if len(proof) != expected:
        raise ProofError(
            f"{action}: the proof has {len(proof)} hashes, expected {expected} "
            f"for {target}. Request the proof again for exactly these parameters.",
            reason="bad-proof-size",
        )


def _reject_proof_shape(action: str, step: str) -> NoReturn:
    # The RFC 9162 loops call this on a proof of the wrong length, which the
    # length check before them should already have rejected.
    raise ProofError(
        f"{action}: the proof does not fit the tree sizes ({step}). Request the "
        f"proof again for exactly these parameters.",
        reason="bad-proof-size",
    )


def inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    """Build the inclusion proof PATH(index, D[size]) of RFC 9162 2.1.3.1.

    The proof lists the sibling hashes from the leaf up to the root. It needs
    at most about ``2 * log2(size)`` node reads, made in one ``read_nodes``
    call: one per perfect sibling, plus the peaks of the one sibling that can
    lie on the tree's right edge.

    Requires ``0 <= index < size``. Raises ProofError (reason
    ``index-out-of-range``) otherwise. The reader raises KeyError when a node
    is missing.
    """
    _check_index(index, size, "Cannot build the inclusion proof")
    return _read_range_hashes(reader, _inclusion_path_ranges(index, size))


def consistency_proof(reader: NodeReader, old_size: int, new_size: int) -> list[bytes]:
    """Build the consistency proof PROOF(old_size, D[new_size]) of RFC 9162 2.1.4.1.

    The proof is empty when the sizes are equal. It needs at most about
    ``2 * log2(new_size)`` node reads, made in one ``read_nodes`` call.

    Requires ``0 < old_size <= new_size``. Raises ProofError otherwise:
    reason ``size-zero`` for an old size of 0 (the same rule as
    ``roots_from_consistency_proof``), ``old-size-exceeds-new-size`` when the
    sizes are swapped. The reader raises KeyError when a node is missing.
    """
    _check_sizes(old_size, new_size, "Cannot build the consistency proof")
    return _read_range_hashes(reader, _consistency_proof_ranges(old_size, new_size))


def extend(
    peaks: list[tuple[int, int, bytes]], size: int, new_leaves: Sequence[bytes]
) -> tuple[list[tuple[int, int, bytes]], list[tuple[int, int, bytes]]]:
    """Append leaf hashes to a tree and return the nodes to store and the new peaks.

    ``peaks`` are the ``(level, index, hash)`` of ``root_addresses(size)``,
    left to right. Each new leaf joins the peaks like a carry in binary
    addition: whenever two peaks of equal level meet, their parent (RFC 9162
    2.1.1 node hash) becomes a new stored node. The first list returned contains
    those new nodes, all of level 1 or more, in the order they were made. The
    leaves themselves (level 0) are the entry hashes, which the caller stores.
    The second list is the peaks of the tree of ``size + len(new_leaves)``.
    Time is linear in ``len(new_leaves)``: it computes at most
    ``len(new_leaves) + size.bit_length()`` node hashes.

    Raises ValueError when ``peaks`` are not the peaks of a tree of ``size``,
    or when a peak or a leaf is not a 32-byte hash.
    """
    expected = root_addresses(size)
    actual = [(level, index) for level, index, _ in peaks]
    if actual != expected:
        raise ValueError(
            f"peaks {actual} are not the peaks {expected} of a tree of size {size}"
        )
    for level, index, value in peaks:
        if len(value) != HASH_SIZE:
            raise ValueError(
                f"peak ({level}, {index}) is {len(value)} bytes long, "
                f"expected {HASH_SIZE}"
            )

    stack = list(peaks)
    new_nodes: list[tuple[int, int, bytes]] = []
    sha256 = hashlib.sha256
    position = size
    for leaf in new_leaves:
        if len(leaf) != HASH_SIZE:
            raise ValueError(
                f"leaf hash {position} is {len(leaf)} bytes long, expected {HASH_SIZE}"
            )
        level, index, value = 0, position, leaf
        while stack and stack[-1][0] == level:
            left = stack.pop()[2]
            value = sha256(_NODE_PREFIX + left + value).digest()
            level += 1
            index >>= 1
            new_nodes.append((level, index, value))
        stack.append((level, index, value))
        position += 1
    return new_nodes, stack


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """Recompute the root from an inclusion proof (RFC 9162 2.1.3.2).

    This only computes. ``verify_inclusion`` compares the result with a
    trusted root.

    Raises ProofError when the input is malformed, with one of these reasons:

    - ``index-out-of-range`` unless ``0 <= index < size``, so size 0 always
      fails.
    - ``bad-hash-length`` when the leaf hash or a proof hash is not 32 bytes.
    - ``bad-proof-size`` when the proof length differs from that of
      PATH(index, D[size]).

    Raises TypeError when a hash is not bytes.
    """
    action = "Inclusion proof rejected"
    _check_index(index, size, action)
    _check_hash(leaf_hash, "the leaf hash", action)
    for position, value in enumerate(proof):
        _check_hash(value, f"proof hash {position}", action)
    expected = len(_inclusion_path_ranges(index, size))
    target = f"leaf {index} of tree size {size}"
    _check_proof_size(proof, expected, action, target)

    # fn is the index of the running node within its level and sn the index of
    # the level's last node (the names of RFC 9162 2.1.3.2). The proof hash goes
    # on the left when the node is a right child or the last node of its level.
    fn, sn = index, size - 1
    result = leaf_hash
    for value in proof:
        if sn == 0:
            _reject_proof_shape(action, "proof longer than the path to the root")
        if fn & 1 or fn == sn:
            result = node_hash(value, result)
            # A last node that is a left child has no sibling, so it moves up
            # unchanged until it is a right child, where the hash just used is
            # its sibling.
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, value)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        _reject_proof_shape(action, "proof ends below the root")
    return result


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    Uses ``root_from_inclusion_proof`` (RFC 9162 2.1.3.2) and compares its
    result with ``root``. Raises ProofError: the reasons of
    ``root_from_inclusion_proof``, ``bad-hash-length`` when ``root`` is not 32
    bytes, and ``root-mismatch`` (with ``expected`` the trusted root and
    ``actual`` the recomputed one, in hex) when the roots differ.
    """
    action = "Inclusion proof rejected"
    _check_hash(root, "the trusted root", action)
    computed = root_from_inclusion_proof(index, size, leaf_hash, proof)
    if computed != root:
        raise ProofError(
            f"{action}: the root recomputed from the proof for leaf {index} of "
            f"tree size {size} does not match the trusted root: expected "
            f"{root.hex()}, actual {computed.hex()}. The leaf is not in that "
            f"tree, or the proof or the root was altered. Fetch the proof again "
            f"and check the checkpoint that supplied the root.",
            reason="root-mismatch",
            expected=root.hex(),
            actual=computed.hex(),
        )


def roots_from_consistency_proof(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """Recompute the old and the new root from a consistency proof (RFC 9162 2.1.4.2).

    Returns ``(old, new)``. This only computes. ``verify_consistency``
    compares both with trusted roots. ``old_root`` is an input because the
    proof leaves it out when ``old_size`` is a power of two. When the sizes
    are equal the proof must be empty, and the result is ``(old_root,
    old_root)``.

    Size 0 rule: an old size of 0 is always rejected (reason ``size-zero``),
    even with a new size of 0 and an empty proof. Every tree extends the
    empty tree, so such a proof proves nothing, and the definition of
    PROOF(m, D[n]) (RFC 6962 2.1.2) requires ``0 < m``. The
    transparency-dev/merkle test vectors expect the same error.

    Raises ProofError with one of these reasons:

    - ``size-zero`` when ``old_size`` is 0.
    - ``old-size-exceeds-new-size`` when ``old_size > new_size``.
    - ``bad-hash-length`` when ``old_root`` or a proof hash is not 32 bytes.
    - ``bad-proof-size`` when the proof length differs from that of
      PROOF(old_size, D[new_size]).

    Raises TypeError when a hash is not bytes.
    """
    action = "Consistency proof rejected"
    _check_sizes(old_size, new_size, action)
    _check_hash(old_root, "the old root", action)
    for position, value in enumerate(proof):
        _check_hash(value, f"proof hash {position}", action)
    if old_size == new_size:
        _check_proof_size(proof, 0, action, f"equal tree sizes {old_size}")
        return old_root, old_root
    expected = len(_consistency_proof_ranges(old_size, new_size))
    target = f"tree sizes {old_size} to {new_size}"
    _check_proof_size(proof, expected, action, target)

    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # The old tree is a perfect subtree of the new one, so the proof
        # starts above it and its hash is the old root.
        path.insert(0, old_root)
    # fn is the old tree's last leaf and sn the new tree's last leaf, both
    # within the current level. Levels where fn is a right child are skipped
    # first, because the first path hash already covers them.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    old_result = new_result = path[0]
    for value in path[1:]:
        if sn == 0:
            _reject_proof_shape(action, "proof longer than the path to the root")
        if fn & 1 or fn == sn:
            old_result = node_hash(value, old_result)
            new_result = node_hash(value, new_result)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            new_result = node_hash(new_result, value)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        _reject_proof_shape(action, "proof ends below the root")
    return old_result, new_result


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
) -> None:
    """Check that the tree of ``new_size`` with ``new_root`` extends the old tree.

    Uses ``roots_from_consistency_proof`` (RFC 9162 2.1.4.2) and compares
    both results with the trusted roots. Equal sizes with an empty proof and
    equal roots pass. An old size of 0 always fails (see
    ``roots_from_consistency_proof``).

    Raises ProofError: the reasons of ``roots_from_consistency_proof``,
    ``bad-hash-length`` when ``new_root`` is not 32 bytes, and
    ``root-mismatch`` (with ``expected`` the trusted root and ``actual`` the
    recomputed one, in hex) when a root differs. The message names the
    root, old or new.
    """
    action = "Consistency proof rejected"
    if 0 < old_size == new_size and not proof and old_root == new_root:
        # Two identical trees are consistent with nothing to hash, whatever
        # the roots' length; the transparency-dev probes expect acceptance.
        return
    _check_hash(new_root, "the new root", action)
    computed_old, computed_new = roots_from_consistency_proof(
        old_size, new_size, old_root, proof
    )
    for name, size, trusted, computed in (
        ("old", old_size, old_root, computed_old),
        ("new", new_size, new_root, computed_new),
    ):
        if computed != trusted:
            raise ProofError(
                f"{action}: the {name} root recomputed from the proof from tree "
                f"size {old_size} to {new_size} does not match the trusted {name} "
                f"root of size {size}: expected {trusted.hex()}, actual "
                f"{computed.hex()}. The log may have rewritten history, or the "
                f"proof or a root was altered. Fetch the proof again and check "
                f"both checkpoints' signatures.",
                reason="root-mismatch",
                expected=trusted.hex(),
                actual=computed.hex(),
            )
