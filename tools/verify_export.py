"""Verify Countersign's audit log proofs and signed checkpoints, for outside auditors.

Stands alone on purpose: it needs Python and the ``cryptography`` package, nothing from Countersign itself, so an
auditor can read all of what they run. Trees, proofs and hashes follow RFC 9162 (Certificate Transparency v2).
"""

from __future__ import annotations

import base64
import re
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from datetime import datetime
from hashlib import sha256
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key


class VerificationError(Exception):
    pass


def leaf_hash(entry: bytes) -> bytes:
    return sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right).digest()


def split(size: int) -> int:
    """The largest power of two strictly smaller than ``size`` (>= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root that ``path`` proves leaf hash ``leaf`` at ``index`` is under: RFC 9162 §2.1.3.2."""
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is outside a tree of size {size}")
    if len(leaf) != 32 or any(len(p) != 32 for p in path):
        raise VerificationError("inclusion proof hashes must be 32 bytes")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise VerificationError(f"inclusion proof too long for leaf {index} of {size}")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError(f"inclusion proof too short for leaf {index} of {size}")
    return r


def root_from_batch(size: int, leaves: Mapping[int, bytes], nodes: Mapping[tuple[int, int], bytes]) -> bytes:
    """The root of a tree of ``size`` leaves from some of its leaf hashes (by index) and the hashes of the
    subtrees (by (start, size)) that hold none of them.

    A subtree holding a given leaf is always recomputed, never taken from ``nodes``: otherwise a proof carrying
    that subtree's (or the root's) hash would vouch for any leaf at all.
    """
    if size < 1:
        raise VerificationError("a batch proof needs a tree of at least one leaf")
    given = sorted(leaves)
    if given and not 0 <= given[0] <= given[-1] < size:
        raise VerificationError(f"leaf index outside a tree of size {size}")

    def mth(start: int, n: int) -> bytes:
        i = bisect_left(given, start)
        if i == len(given) or given[i] >= start + n:
            try:
                return nodes[(start, n)]
            except KeyError:
                raise VerificationError(f"batch proof lacks the hash of leaves [{start}, {start + n})") from None
        if n == 1:
            return leaves[start]
        k = split(n)
        return node_hash(mth(start, k), mth(start + k, n - k))

    return mth(0, size)


def verify_consistency(m: int, n: int, root_m: bytes, root_n: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree of size ``n`` with root ``root_n`` extends the one of size ``m``: RFC 9162 §2.1.4.2."""
    if not 0 <= m <= n:
        raise VerificationError(f"no consistency between sizes {m} and {n}")
    if m == 0 or m == n:
        # Every tree extends the empty one, and a tree only itself; neither takes a proof.
        if proof:
            raise VerificationError(f"a consistency proof from {m} to {n} must be empty")
        if (m == 0 and root_m != sha256(b"").digest()) or (m == n and root_m != root_n):
            raise VerificationError(f"roots differ for sizes {m} and {n}")
        return
    if any(len(c) != 32 for c in proof):
        raise VerificationError("consistency proof hashes must be 32 bytes")
    path = [root_m, *proof] if m & (m - 1) == 0 else list(proof)
    if not path:
        raise VerificationError("empty consistency proof")
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or fr != root_m or sr != root_n:
        raise VerificationError(f"consistency proof from {m} to {n} does not hold")


_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX16 = re.compile(r"[0-9a-f]{16}")


def checkpoint_body(cp: Mapping[str, Any]) -> bytes:
    """The exact bytes a checkpoint's signature covers."""
    try:
        tree_size, root_hash, time = cp["tree_size"], cp["root_hash"], cp["time"]
    except KeyError as missing:
        raise VerificationError(f"checkpoint lacks {missing}") from None
    if type(tree_size) is not int or tree_size < 0:
        raise VerificationError("checkpoint tree_size must be a non-negative integer")
    if not isinstance(root_hash, str) or not _HEX64.fullmatch(root_hash):
        raise VerificationError("checkpoint root_hash must be 64 lowercase hex digits")
    try:
        datetime.fromisoformat(time)
    except (TypeError, ValueError):
        raise VerificationError("checkpoint time must be an ISO 8601 string") from None
    return f"countersign audit checkpoint v1\ntree_size {tree_size}\nroot_hash {root_hash}\ntime {time}\n".encode()


def key_id(public_key_raw: bytes) -> str:
    return sha256(public_key_raw).hexdigest()[:16]


def load_public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM "PUBLIC KEY" block or the standard base64 of its 32 raw bytes."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = load_pem_public_key(text.encode())
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise VerificationError(f"unreadable PEM public key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise VerificationError("the PEM public key is not an Ed25519 key")
        return key
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII character
        raise VerificationError("public key is neither PEM nor base64") from None
    if len(raw) != 32:
        raise VerificationError("a raw Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_checkpoint(cp: Mapping[str, Any], public_key: Ed25519PublicKey) -> None:
    body = checkpoint_body(cp)
    expected = key_id(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw))
    if cp.get("key_id") != expected:
        raise VerificationError(f"checkpoint was signed by key {cp.get('key_id')!r}, not {expected}")
    try:
        signature = base64.b64decode(cp["signature"], validate=True)
    except (KeyError, TypeError, ValueError):
        raise VerificationError("checkpoint signature is missing or not base64") from None
    if len(signature) != 64:
        raise VerificationError("an Ed25519 signature is 64 bytes")
    try:
        public_key.verify(signature, body)
    except InvalidSignature:
        raise VerificationError("checkpoint signature does not verify") from None
