"""RFC 9162 (Certificate Transparency v2) Merkle trees: tree hashes, inclusion, batch and consistency proofs.

Pure. The hash functions come from tools/verify_export.py, the verifier handed to auditors (which imports
nothing from the app): this module builds trees and proofs, that one checks them, by the same rules.
"""

from __future__ import annotations

import operator
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
        if len(leaf) != 32:
            raise ValueError("append takes a 32-byte leaf hash")
        self._add((self._size, 1, leaf, self._size in self._marked))

    def extend(self, leaves: bytes) -> None:
        """Add many leaves at once, given as their leaf hashes end to end: the same tree as appending each,
        hashed a level at a time over the largest perfect subtrees they fill."""
        if len(leaves) % 32:
            raise ValueError("extend takes 32-byte leaf hashes end to end")
        view, done, count = memoryview(leaves), 0, len(leaves) // 32
        while done < count:
            start = self._size
            size = start & -start if start else 1 << 62  # the largest subtree that may start here
            while size > count - done:
                size >>= 1
            self._add(self._subtree(bytes(view[done * 32:(done + size) * 32]), start, size))
            done += size

    def _subtree(self, level: bytes, start: int, size: int) -> _Node:
        """The perfect subtree of ``size`` leaves from ``start``, remembering its nodes that proofs need."""
        marks = self._flags(start, size)
        width = 1
        while width < size:
            if marks is not None:
                self._remember_level(level, marks, start, width)
                marks = bytes(map(operator.or_, marks[0::2], marks[1::2]))
            level = b"".join([sha256(b"\x01" + level[i:i + 64]).digest() for i in range(0, len(level), 64)])
            width *= 2
        return start, size, level, bool(marks and marks[0])

    def _flags(self, start: int, size: int) -> bytes | None:
        """One byte per leaf, 1 for a marked one; None when none is."""
        if isinstance(self._marked, LeafSet):
            flags = self._marked.flags(start, size)
        elif self._marked:
            flags = bytes(index in self._marked for index in range(start, start + size))
        else:
            return None
        return flags if 1 in flags else None

    def _remember_level(self, level: bytes, marks: bytes, start: int, width: int) -> None:
        """What `_add` remembers when it combines each pair of this level's nodes (``width`` leaves each)."""
        # without paths, only a pair with exactly one marked node keeps anything: the other one
        pairs = bytes(map(operator.or_ if self._paths else operator.xor, marks[0::2], marks[1::2]))
        pair = pairs.find(1)
        while pair >= 0:
            for k in (2 * pair, 2 * pair + 1):
                self._remember(start + k * width, width, level[k * 32:k * 32 + 32], bool(marks[k]))
            pair = pairs.find(1, pair + 1)

    def _add(self, node: _Node) -> None:
        """Put the perfect subtree ``node``, which starts where the leaves so far end, on the peaks."""
        if self._root is not None:
            raise RuntimeError("append after finish()")
        self._size = node[0] + node[1]
        peaks = self._peaks
        while peaks and peaks[-1][1] == node[1]:
            start, size, left, left_marked = peaks.pop()
            _, _, right, right_marked = node
            marked = left_marked or right_marked
            if marked:
                self._remember(start, size, left, left_marked)
                self._remember(start + size, size, right, right_marked)
            node = (start, size * 2, sha256(b"\x01" + left + right).digest(), marked)
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


class LeafSet:
    """Leaf indexes below ``size``, as a bitmap: size / 8 bytes however many are in it (a set of
    a million ints takes some 60 MB)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._bits = bytearray((size + 7) // 8)

    def add(self, index: int) -> None:
        if not 0 <= index < self.size:
            raise ValueError(f"leaf {index} is outside a tree of {self.size}")
        self._bits[index >> 3] |= 1 << (index & 7)

    def __contains__(self, index: object) -> bool:
        return isinstance(index, int) and 0 <= index < self.size and bool(self._bits[index >> 3] >> (index & 7) & 1)

    def flags(self, start: int, size: int) -> bytes:
        """One byte per index from ``start``, 1 for those in the set."""
        if start % 8 or size % 8:
            return bytes(index in self for index in range(start, start + size))
        return b"".join([_BYTE_FLAGS[byte] for byte in self._bits[start // 8:(start + size) // 8]])


_BYTE_FLAGS = [bytes(byte >> bit & 1 for bit in range(8)) for byte in range(256)]


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
