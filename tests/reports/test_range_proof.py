"""Range proofs: every run of leaves recomputes the root; mutations do not."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.errors import ProofError
from reports.range_proof import (
    RangeProof,
    inclusion_path_ranges,
    range_proof_from_inclusion_proofs,
    root_from_range,
)


class _Tree:
    """An in-memory RFC 9162 tree that serves nodes to ledger.merkle."""

    def __init__(self, size: int) -> None:
        self.leaves = [
            hashlib.sha256(b"\x00" + str(i).encode()).digest() for i in range(size)
        ]

    def read_nodes(self, addresses: Sequence[tuple[int, int]]) -> list[bytes]:
        return [
            self.mth(index << level, (index + 1) << level) for level, index in addresses
        ]

    def mth(self, low: int, high: int) -> bytes:
        if high - low == 1:
            return self.leaves[low]
        split = low + (1 << ((high - low - 1).bit_length() - 1))
        return merkle.node_hash(self.mth(low, split), self.mth(split, high))

    def root(self) -> bytes:
        return self.mth(0, len(self.leaves))

    def range_proof(self, start: int, end: int) -> RangeProof:
        size = len(self.leaves)
        return range_proof_from_inclusion_proofs(
            tree_size=size,
            start=start,
            end=end,
            first_proof=merkle.inclusion_proof(self, start, size),
            last_proof=merkle.inclusion_proof(self, end - 1, size),
        )


@st.composite
def _ranges(draw: st.DrawFn) -> tuple[int, int, int]:
    size = draw(st.integers(min_value=1, max_value=70))
    start = draw(st.integers(min_value=0, max_value=size - 1))
    end = draw(st.integers(min_value=start + 1, max_value=size))
    return size, start, end


@settings(max_examples=150, deadline=None)
@given(_ranges())
def test_range_proof_recomputes_root(case: tuple[int, int, int]) -> None:
    size, start, end = case
    tree = _Tree(size)
    proof = tree.range_proof(start, end)
    assert root_from_range(proof, tree.leaves.__getitem__) == tree.root()


@settings(max_examples=100, deadline=None)
@given(_ranges(), st.data())
def test_range_proof_detects_changed_leaf(
    case: tuple[int, int, int], data: st.DataObject
) -> None:
    size, start, end = case
    tree = _Tree(size)
    proof = tree.range_proof(start, end)
    changed = data.draw(st.integers(min_value=start, max_value=end - 1))
    leaves = list(tree.leaves)
    leaves[changed] = hashlib.sha256(b"changed").digest()
    assert root_from_range(proof, leaves.__getitem__) != tree.root()


def test_range_proof_size_is_logarithmic() -> None:
    tree = _Tree(1000)
    proof = tree.range_proof(300, 700)
    assert len(proof.left) + len(proof.right) <= 2 * 10


def test_whole_tree_needs_no_hashes() -> None:
    tree = _Tree(13)
    proof = tree.range_proof(0, 13)
    assert proof.left == ()
    assert proof.right == ()
    assert root_from_range(proof, tree.leaves.__getitem__) == tree.root()


@pytest.mark.parametrize(
    "mutation",
    ["extra-left-hash", "missing-right-hash", "flipped-left-bit", "swapped-sides"],
)
def test_mutated_range_proof_rejected(mutation: str) -> None:
    tree = _Tree(37)
    proof = tree.range_proof(9, 20)
    if mutation == "extra-left-hash":
        proof = replace(proof, left=(*proof.left, proof.left[0]))
    elif mutation == "missing-right-hash":
        proof = replace(proof, right=proof.right[:-1])
    elif mutation == "flipped-left-bit":
        first = proof.left[0]
        proof = replace(
            proof, left=(bytes([first[0] ^ 1]) + first[1:], *proof.left[1:])
        )
    else:
        proof = replace(proof, left=proof.right, right=proof.left)
    try:
        computed = root_from_range(proof, tree.leaves.__getitem__)
    except ProofError:
        return
    assert computed != tree.root()


def test_empty_range_rejected() -> None:
    proof = RangeProof(tree_size=5, start=2, end=2, left=(), right=())
    with pytest.raises(ProofError) as raised:
        root_from_range(proof, lambda seq: b"")
    assert raised.value.reason == "bad-range"


def test_short_hash_rejected() -> None:
    tree = _Tree(8)
    proof = replace(tree.range_proof(2, 5), left=(b"\x00" * 31,))
    with pytest.raises(ProofError) as raised:
        root_from_range(proof, tree.leaves.__getitem__)
    assert raised.value.reason == "bad-hash-length"


def test_inclusion_path_ranges_match_proof_length() -> None:
    tree = _Tree(21)
    for index in range(21):
        assert len(inclusion_path_ranges(index, 21)) == len(
            merkle.inclusion_proof(tree, index, 21)
        )


def test_builder_rejects_wrong_proof_length() -> None:
    tree = _Tree(10)
    with pytest.raises(ValueError):
        range_proof_from_inclusion_proofs(
            tree_size=10,
            start=2,
            end=4,
            first_proof=merkle.inclusion_proof(tree, 2, 10)[:-1],
            last_proof=merkle.inclusion_proof(tree, 3, 10),
        )
