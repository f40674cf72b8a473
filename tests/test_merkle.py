"""The RFC 9162 Merkle tree log: tree hashes and proofs (app.audit.merkle), checked with the stand-alone verifier
that outside auditors run (tools.verify_export)."""

from __future__ import annotations

import ast
import base64
import random
from hashlib import sha256
from itertools import pairwise
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from app.audit.merkle import EMPTY_ROOT, LeafSet, TreeBuilder, consistency_proof, leaf_hash
from tools import verify_export as vx
from tools.verify_export import VerificationError

# Published test vectors, copied from transparency-dev/merkle, proof/verify_test.go
# (commit 02194e9afb6c1d95b5381350007963aa70fff472): `leaves`, `roots` (ROOTS[k - 1] is the root of the first k
# leaves), `inclusionProofs` (whose leaf numbers count from 1 there, from 0 here) and `consistencyProofs`.
LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
)]
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
INCLUSION = [  # (leaf index, tree size, audit path)
    (0, 1, []),
    (0, 8, [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]),
    (5, 8, [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ]),
]
CONSISTENCY = [  # (size 1, size 2, proof)
    (1, 1, []),
    (1, 8, [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]),
    (6, 8, [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]),
    (2, 5, [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ]),
    (6, 7, [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]),
]
VECTOR_HASHES = [leaf_hash(entry) for entry in LEAVES]


# RFC 9162 §2.1.1 and §2.1.3.1, written plainly, as the reference the builder is held to.
def reference_root(hashes: list[bytes]) -> bytes:
    if not hashes:
        return sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return sha256(b"\x01" + reference_root(hashes[:k]) + reference_root(hashes[k:])).digest()


def reference_path(m: int, hashes: list[bytes]) -> list[bytes]:
    if len(hashes) == 1:
        return []
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    if m < k:
        return [*reference_path(m, hashes[:k]), reference_root(hashes[k:])]
    return [*reference_path(m - k, hashes[k:]), reference_root(hashes[:k])]


def build(hashes: list[bytes], marked: set[int] | range = range(0)) -> TreeBuilder:
    builder = TreeBuilder(marked)
    for h in hashes:
        builder.append(h)
    builder.finish()
    return builder


def flipped(h: bytes) -> bytes:
    return bytes([h[0] ^ 0x10]) + h[1:]


def inclusion_holds(index: int, size: int, leaf: bytes, path: list[bytes], root: bytes) -> bool:
    try:
        return vx.root_from_inclusion(index, size, leaf, path) == root
    except VerificationError:
        return False


def consistency_holds(m: int, n: int, root_m: bytes, root_n: bytes, proof: list[bytes]) -> bool:
    try:
        vx.verify_consistency(m, n, root_m, root_n, proof)
    except VerificationError:
        return False
    return True


def test_roots_match_the_published_vectors():
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    builder = TreeBuilder()
    assert builder.root() == EMPTY_ROOT
    for size, h in enumerate(VECTOR_HASHES, start=1):
        builder.append(h)
        assert builder.size == size
        assert builder.root() == ROOTS[size - 1]


def test_builder_root_is_the_rfc_tree_hash_for_every_size_to_300():
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(300)]
    builder = TreeBuilder()
    assert builder.root() == reference_root([])
    for size, h in enumerate(hashes, start=1):
        builder.append(h)
        assert builder.root() == builder.root() == reference_root(hashes[:size]), size
    assert builder.finish() == reference_root(hashes)


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_paths_match_the_published_vectors(index, size, path):
    path = [bytes.fromhex(h) for h in path]
    builder = build(VECTOR_HASHES[:size], marked=range(size))
    assert builder.inclusion_path(index) == path
    assert vx.root_from_inclusion(index, size, VECTOR_HASHES[index], path) == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION[1:])
def test_published_inclusion_proofs_refuse_every_corruption(index, size, path):
    path, root, leaf = [bytes.fromhex(h) for h in path], ROOTS[size - 1], VECTOR_HASHES[index]
    assert inclusion_holds(index, size, leaf, path, root)
    wrong = [
        (index - 1, size, leaf, path), (index + 1, size, leaf, path), (index ^ 2, size, leaf, path),
        (index, size * 2, leaf, path), (index, size // 2, leaf, path),
        (index, size, leaf_hash(b"WrongLeaf"), path),
        (index, size, leaf, [*path, root]), (index, size, leaf, [root, *path]), (index, size, leaf, [*path, b""]),
        (index, size, leaf, path[:-1]), (index, size, leaf, [path[0], EMPTY_ROOT, *path[1:]]),
        *((index, size, leaf, [*path[:i], flipped(path[i]), *path[i + 1:]]) for i in range(len(path))),
    ]
    for probe in wrong:
        assert not inclusion_holds(*probe, root), probe
    assert not inclusion_holds(index, size, leaf, path, EMPTY_ROOT)


@pytest.mark.parametrize(("m", "n", "proof"), CONSISTENCY)
def test_consistency_proofs_match_the_published_vectors(m, n, proof):
    proof = [bytes.fromhex(h) for h in proof]
    assert consistency_proof(VECTOR_HASHES, m, n) == proof
    vx.verify_consistency(m, n, ROOTS[m - 1], ROOTS[n - 1], proof)


def test_random_trees_give_inclusion_and_batch_proofs_that_verify():
    rng = random.Random(9162)
    for _ in range(60):
        n = rng.randint(1, 700)
        hashes = [leaf_hash(rng.randbytes(8)) for _ in range(n)]
        marked = set(rng.sample(range(n), rng.randint(1, min(n, 12))))
        builder = build(hashes, marked)
        root = builder.finish()
        assert root == reference_root(hashes)

        for i in marked:
            path = builder.inclusion_path(i)
            assert path == reference_path(i, hashes)
            assert vx.root_from_inclusion(i, n, hashes[i], path) == root
            assert vx.root_from_inclusion(i, n, leaf_hash(b"changed"), path) != root
            if path:
                assert vx.root_from_inclusion(i, n, hashes[i], [flipped(path[0]), *path[1:]]) != root

        proof = builder.batch_proof()
        nodes = {(start, size): h for start, size, h in proof}
        leaves = {i: hashes[i] for i in marked}
        # Exactly the subtrees beside the marked leaves: disjoint, none holding a marked leaf, covering the rest.
        assert all(a[0] + a[1] <= b[0] for a, b in pairwise(proof))
        assert all(not start <= i < start + size for start, size, _ in proof for i in marked)
        assert sum(size for _, size, _ in proof) + len(marked) == n
        assert vx.root_from_batch(n, leaves, nodes) == root

        changed = rng.choice(sorted(marked))
        assert vx.root_from_batch(n, {**leaves, changed: leaf_hash(b"changed")}, nodes) != root
        if proof:
            start, size, h = rng.choice(proof)
            assert vx.root_from_batch(n, leaves, {**nodes, (start, size): flipped(h)}) != root
            del nodes[(start, size)]
            with pytest.raises(VerificationError, match=f"leaves \\[{start}, {start + size}\\)"):
                vx.root_from_batch(n, leaves, nodes)


def test_a_batch_proof_cannot_vouch_for_a_marked_leaf():
    hashes = [leaf_hash(bytes([i])) for i in range(13)]
    builder = build(hashes, {3, 9})
    root = builder.finish()
    nodes = {(start, size): h for start, size, h in builder.batch_proof()}
    # The root itself, or the changed leaf's own "node", slipped into the proof, is never taken on trust.
    forged = {**nodes, (0, 13): root, (0, 8): reference_root(hashes[:8]), (3, 1): hashes[3]}
    assert vx.root_from_batch(13, {3: leaf_hash(b"changed"), 9: hashes[9]}, forged) != root
    with pytest.raises(VerificationError):
        vx.root_from_batch(13, {3: hashes[3], 13: hashes[0]}, nodes)


def test_the_builder_keeps_no_leaves_only_peaks_and_proof_nodes():
    n = 5000
    builder = TreeBuilder({17, 4000})
    for i in range(n):
        builder.append(leaf_hash(i.to_bytes(4, "big")))
        assert len(builder._peaks) <= n.bit_length()
    builder.finish()
    assert len(builder._nodes) <= 2 * 2 * n.bit_length()
    assert len(builder.inclusion_path(17)) == len(builder.inclusion_path(4000)) == 13


def test_without_paths_the_builder_keeps_only_the_batch_proof():
    """Every leaf but one of 1,000 marked: the batch proof is that one leaf, and nothing else is kept."""
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(1000)]
    builder = TreeBuilder(set(range(1000)) - {517}, paths=False)
    for h in hashes:
        builder.append(h)
    assert builder.finish() == reference_root(hashes)
    assert builder.batch_proof() == [(517, 1, hashes[517])]
    assert len(builder._nodes) == 1
    with pytest.raises(RuntimeError, match="paths=False"):
        builder.inclusion_path(3)


def test_the_builder_refuses_misuse():
    builder = TreeBuilder({1})
    with pytest.raises(ValueError, match="32-byte"):
        builder.append(b"entry, not its hash")
    builder.append(VECTOR_HASHES[0])
    builder.append(VECTOR_HASHES[1])
    with pytest.raises(RuntimeError):
        builder.inclusion_path(1)
    builder.finish()
    assert builder.inclusion_path(1) == [VECTOR_HASHES[0]]
    assert builder.batch_proof() == [(0, 1, VECTOR_HASHES[0])]
    with pytest.raises(ValueError, match="not a marked leaf"):
        builder.inclusion_path(0)
    with pytest.raises(RuntimeError):
        builder.append(VECTOR_HASHES[2])


def test_inclusion_verification_refuses_impossible_proofs():
    with pytest.raises(VerificationError, match="outside"):
        vx.root_from_inclusion(8, 8, VECTOR_HASHES[0], [])
    with pytest.raises(VerificationError, match="too short"):
        vx.root_from_inclusion(0, 8, VECTOR_HASHES[0], [VECTOR_HASHES[1]])
    with pytest.raises(VerificationError, match="too long"):
        vx.root_from_inclusion(0, 1, VECTOR_HASHES[0], [VECTOR_HASHES[1]])


def test_consistency_proofs_verify_between_every_pair_of_sizes_to_40():
    hashes = [leaf_hash(i.to_bytes(2, "big")) for i in range(40)]
    roots = [reference_root(hashes[:k]) for k in range(41)]
    for n in range(1, 41):
        assert consistency_holds(0, n, EMPTY_ROOT, roots[n], [])
        for m in range(1, n + 1):
            proof = consistency_proof(hashes, m, n)
            assert consistency_holds(m, n, roots[m], roots[n], proof), (m, n)
            assert not consistency_holds(m, n, flipped(roots[m]), roots[n], proof), (m, n)
            assert not consistency_holds(m, n, roots[m], flipped(roots[n]), proof), (m, n)
            assert not consistency_holds(m, n, roots[m], roots[n], [*proof, roots[n]]), (m, n)
            if proof:
                assert not consistency_holds(m, n, roots[m], roots[n], proof[:-1]), (m, n)
                assert not consistency_holds(m, n, roots[m], roots[n], [flipped(proof[0]), *proof[1:]]), (m, n)
    assert not consistency_holds(2, 1, roots[2], roots[1], [])
    with pytest.raises(ValueError):
        consistency_proof(hashes, 0, 5)


def signed_checkpoint(key: Ed25519PrivateKey) -> dict:
    cp = {"tree_size": 8, "root_hash": ROOTS[7].hex(), "time": "2025-03-01T12:00:00+00:00"}
    cp["key_id"] = vx.key_id(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    cp["signature"] = base64.b64encode(key.sign(vx.checkpoint_body(cp))).decode()
    return cp


def test_a_signed_checkpoint_verifies_with_its_key_in_pem_or_base64():
    key = Ed25519PrivateKey.generate()
    cp = signed_checkpoint(key)
    assert vx.checkpoint_body(cp) == (
        b"countersign audit checkpoint v1\ntree_size 8\nroot_hash " + ROOTS[7].hex().encode()
        + b"\ntime 2025-03-01T12:00:00+00:00\n"
    )
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    for text in (pem, base64.b64encode(raw).decode() + "\n"):
        vx.verify_checkpoint(cp, vx.load_public_key(text))
    assert len(cp["key_id"]) == 16


@pytest.mark.parametrize("change", [
    {"tree_size": 9},
    {"root_hash": ROOTS[6].hex()},
    {"time": "2025-03-01T12:00:01+00:00"},
    {"root_hash": ROOTS[7].hex().upper()},
    {"tree_size": "8"},
    {"time": "yesterday"},
    {"signature": "not base64!"},
    {"key_id": "0" * 16},
])
def test_a_changed_or_malformed_checkpoint_is_refused(change):
    key = Ed25519PrivateKey.generate()
    cp = {**signed_checkpoint(key), **change}
    with pytest.raises(VerificationError):
        vx.verify_checkpoint(cp, key.public_key())


def test_a_changed_signature_byte_or_another_key_is_refused():
    key = Ed25519PrivateKey.generate()
    cp = signed_checkpoint(key)
    signature = bytearray(base64.b64decode(cp["signature"]))
    signature[10] ^= 1
    with pytest.raises(VerificationError, match="does not verify"):
        vx.verify_checkpoint({**cp, "signature": base64.b64encode(signature).decode()}, key.public_key())
    with pytest.raises(VerificationError, match="signed by key"):
        vx.verify_checkpoint(cp, Ed25519PrivateKey.generate().public_key())
    without = {k: v for k, v in cp.items() if k != "signature"}
    with pytest.raises(VerificationError):
        vx.verify_checkpoint(without, key.public_key())


def test_only_ed25519_public_keys_load():
    ec_pem = generate_private_key(SECP256R1()).public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    ).decode()
    for text in (ec_pem, "-----BEGIN PUBLIC KEY-----\nnonsense\n-----END PUBLIC KEY-----", "not a key", "AAAA"):
        with pytest.raises(VerificationError):
            vx.load_public_key(text)


def test_the_auditors_verifier_imports_nothing_from_the_app():
    tree = ast.parse(Path(vx.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported and not any(name == "app" or name.startswith(("app.", "tools")) for name in imported)


@pytest.mark.parametrize("marking", ["none", "few", "most"])
@pytest.mark.parametrize("paths", [True, False])
def test_extending_by_runs_of_leaves_builds_the_tree_appending_builds(marking, paths):
    """Runs of every length, starting anywhere (so at every alignment): the same root as the reference, the
    same batch proof and the same inclusion paths as leaf by leaf, marks given as a set or as a LeafSet."""
    rng = random.Random(f"{marking}{paths}")
    n = 1000
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    chance = {"none": 0.0, "few": 0.01, "most": 0.8}[marking]
    marked = {i for i in range(n) if rng.random() < chance}
    as_bitmap = LeafSet(n)
    for index in marked:
        as_bitmap.add(index)
    one_by_one = TreeBuilder(marked, paths=paths)
    for h in hashes:
        one_by_one.append(h)
    one_by_one.finish()
    for marks in (marked, as_bitmap):
        builder, done = TreeBuilder(marks, paths=paths), 0
        while done < n:
            run = rng.choice([1, 2, 3, 7, 8, 64, 100, 257])
            builder.extend(b"".join(hashes[done:done + run]))
            done = min(done + run, n)
            assert builder.root() == reference_root(hashes[:done])
        assert builder.finish() == reference_root(hashes)
        assert builder.batch_proof() == one_by_one.batch_proof()
        if paths:
            assert all(builder.inclusion_path(i) == one_by_one.inclusion_path(i) for i in marked)


def test_extend_takes_whole_leaf_hashes():
    with pytest.raises(ValueError, match="32-byte"):
        TreeBuilder().extend(bytes(33))
