"""RFC 9162 (Certificate Transparency v2) Merkle trees: tree hashes, inclusion, batch and consistency proofs.

Pure. The hash functions come from tools/verify_export.py, the verifier handed to auditors (which imports
nothing from the app): this module builds trees and proofs, that one checks them, by the same rules.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from hashlib import sha256

from tools.verify_export import leaf_hash as leaf_hash  # re-exported: the app hashes leaves through here
from tools.verify_export import node_hash, split

EMPTY_ROOT = sha256(b"").digest()


# A node of the tree being built: (start, size, hash, contains a marked leaf).
_Node = tuple[int, int, bytes, bool]


class TreeBuilder:
    """Builds a tree from a stream of leaf hashes, keeping only the peaks (the perfect subtrees the leaves so far
    decompose into, at most log2(n) of them), plus, for the marked leaves, the nodes their proofs need.

    A node is remembered when it is combined with a sibling and either of the two holds a marked leaf: those are
    exactly the nodes on the marked leaves' audit paths, so memory stays O(|marked| log n). With ``paths=False``
    only the siblings holding no marked leaf are kept: all a batch proof needs, and far fewer when most leaves are
    marked (an export marks most of the log), but then ``inclusion_path`` is not available.
    """

    def __init__(self, marked: Container[int] = (), *, paths: bool = True) -> None:
        self._marked = marked
        self._paths = paths
        self._peaks: list[_Node] = []
        self._size = 0
        self._nodes: dict[tuple[int, int], tuple[bytes, bool]] = {}
        self._root: bytes | None = None

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> None:
        """Add the next leaf, given as its leaf hash (``leaf_hash(entry)``)."""
        if self._root is not None:
            raise RuntimeError("append after finish()")
        if len(leaf) != 32:
            raise ValueError("append takes a 32-byte leaf hash")
        index = self._size
        self._size = index + 1
        node = (index, 1, leaf, index in self._marked)
        peaks = self._peaks
        # Leaf `index` closes one perfect subtree per trailing 1 bit of `index`.
        carry = index
        while carry & 1:
            start, size, left, left_marked = peaks.pop()
            _, _, right, right_marked = node
            marked = left_marked or right_marked
            if marked:
                self._remember(start, size, left, left_marked)
                self._remember(start + size, size, right, right_marked)
            node = (start, size * 2, sha256(b"\x01" + left + right).digest(), marked)
            carry >>= 1
        peaks.append(node)

    def root(self) -> bytes:
        """The tree hash of the leaves so far; the builder is left as it was."""
        return self._fold(record=False)

    def finish(self) -> bytes:
        """End the tree: return its root and remember the nodes the final fold combines for the marked leaves."""
        if self._root is None:
            self._root = self._fold(record=True)
        return self._root

    def _remember(self, start: int, size: int, node: bytes, marked: bool) -> None:
        if self._paths or not marked:
            self._nodes[(start, size)] = (node, marked)

    def _fold(self, *, record: bool) -> bytes:
        if not self._peaks:
            return EMPTY_ROOT
        n = self._size
        # The accumulator covers [start, n): the peak sizes are n's binary digits, so the peak to its left is
        # larger than the whole of it and the pair is exactly RFC 9162's split of [peak start, n).
        start, _, acc, acc_marked = self._peaks[-1]
        for p_start, p_size, p_hash, p_marked in reversed(self._peaks[:-1]):
            if record and (p_marked or acc_marked):
                self._remember(p_start, p_size, p_hash, p_marked)
                self._remember(start, n - start, acc, acc_marked)
            acc, acc_marked, start = node_hash(p_hash, acc), p_marked or acc_marked, p_start
        return acc

    def inclusion_path(self, index: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 PATH(index, D[n]) of a marked leaf, from the leaf upwards."""
        if self._root is None:
            raise RuntimeError("inclusion_path before finish()")
        if not self._paths:
            raise RuntimeError("inclusion_path of a tree built with paths=False")
        if not 0 <= index < self._size or index not in self._marked:
            raise ValueError(f"leaf {index} is not a marked leaf of this tree")
        path = []
        start, size = 0, self._size
        while size > 1:
            k = split(size)
            if index < start + k:
                path.append(self._nodes[(start + k, size - k)][0])
                size = k
            else:
                path.append(self._nodes[(start, k)][0])
                start, size = start + k, size - k
        path.reverse()
        return path

    def batch_proof(self) -> list[tuple[int, int, bytes]]:
        """(start, size, hash) of the remembered subtrees holding no marked leaf, by start: with the marked leaves'
        own hashes, exactly what recomputes the root."""
        if self._root is None:
            raise RuntimeError("batch_proof before finish()")
        return sorted((start, size, h) for (start, size), (h, marked) in self._nodes.items() if not marked)


def subtree_hash(leaves: Sequence[bytes], start: int, size: int) -> bytes:
    """MTH of the ``size`` leaf hashes from ``start``."""
    if size == 0:
        return EMPTY_ROOT
    if size == 1:
        return leaves[start]
    k = split(size)
    return node_hash(subtree_hash(leaves, start, k), subtree_hash(leaves, start + k, size - k))


def consistency_proof(leaves: Sequence[bytes], m: int, n: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(m, D[n]) from the first ``n`` of ``leaves`` (leaf hashes)."""
    if not 0 < m <= n <= len(leaves):
        raise ValueError(f"no consistency proof from {m} to {n} over {len(leaves)} leaves")

    def subproof(m: int, start: int, size: int, complete: bool) -> list[bytes]:
        if m == size:
            return [] if complete else [subtree_hash(leaves, start, size)]
        k = split(size)
        if m <= k:
            return [*subproof(m, start, k, complete), subtree_hash(leaves, start + k, size - k)]
        return [*subproof(m - k, start + k, size - k, False), subtree_hash(leaves, start, k)]

    return subproof(m, 0, n, True)
