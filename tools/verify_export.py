"""Verify Countersign's audit log proofs, signed checkpoints and decision-log exports, for outside auditors.

Stands alone on purpose: it needs Python and the ``cryptography`` package, nothing from Countersign itself, so an
auditor can read all of what they run. Trees, proofs and hashes follow RFC 9162 (Certificate Transparency v2).

    python verify_export.py FILE [--public-key KEY_OR_FILE]

checks a decision-log export FILE against its manifest FILE.manifest.json: exit 0 saying what was checked, 1 naming
what failed.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import re
import sys
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from hashlib import sha256
from pathlib import Path
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


# --- decision-log exports -------------------------------------------------------------------------------------

EXPORT_FORMAT = "countersign-decision-log/v1"


@dataclass
class Report:
    """What a verification checked, one sentence each, and what the auditor should know besides."""

    checked: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def verify_export(path: str | Path, public_key_text: str | None = None) -> Report:
    """Check an export against its manifest (``path``.manifest.json): the file's SHA-256, the checkpoint's signature
    (under ``public_key_text``, else the key the manifest carries), and that every audit event a row lists is in
    the signed tree. Raises VerificationError naming the first thing that fails."""
    path, report = Path(path), Report()
    manifest = _manifest(path)
    _check_file_hash(path, manifest, report)
    _check_signature(manifest, public_key_text, report)
    leaves = _listed_leaves(path, manifest)
    _check_root(manifest, leaves, report)
    return report


def _manifest(path: Path) -> dict[str, Any]:
    manifest_path = path.with_name(path.name + ".manifest.json")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VerificationError(f"the manifest {manifest_path.name} cannot be read: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
        raise VerificationError(f"{manifest_path.name} is not a {EXPORT_FORMAT} manifest")
    return manifest


def _check_file_hash(path: Path, manifest: Mapping[str, Any], report: Report) -> None:
    digest = sha256()
    with path.open("rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != manifest.get("file_sha256"):
        raise VerificationError(f"{path.name} is not the file the manifest describes: its SHA-256 differs")
    report.checked.append(f"{path.name}: SHA-256 {digest.hexdigest()}, as in the manifest")


def _check_signature(manifest: Mapping[str, Any], public_key_text: str | None, report: Report) -> None:
    checkpoint = manifest.get("checkpoint") or {}
    if public_key_text:
        key, source = load_public_key(public_key_text), "the public key given"
    elif manifest.get("public_key"):
        key, source = load_public_key(manifest["public_key"]), "the public key in the manifest"
        report.warnings.append("the public key was taken from the manifest itself: that shows the export is intact "
                               "and consistent, not that Countersign made it; pass the key your Countersign "
                               "installation published (--public-key) to check where it came from")
    else:
        raise VerificationError("no public key: the manifest carries none, so pass --public-key")
    verify_checkpoint(checkpoint, key)
    report.checked.append(f"checkpoint of {checkpoint['tree_size']} events signed {checkpoint['time']}: the "
                          f"signature is valid under {source} (key id {checkpoint['key_id']})")


def _listed_leaves(path: Path, manifest: Mapping[str, Any]) -> dict[int, bytes]:
    """Leaf index → leaf hash of every event the rows list (hashed here from its entry, or given when redacted)."""
    leaves: dict[int, bytes] = {}
    rows = 0
    for rows, (case_id, events) in enumerate(_rows(path, manifest.get("file_format")), start=1):
        try:
            for event in events:
                index, leaf = _leaf(event, case_id, bool(manifest.get("redacted")))
                if leaves.setdefault(index, leaf) != leaf:
                    raise VerificationError(f"event {index} differs from the same event in an earlier row")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise VerificationError(f"row {rows}: an audit event cannot be read ({exc!r})") from None
        except VerificationError as exc:
            raise VerificationError(f"row {rows}: {exc}") from None
    if rows != manifest.get("rows"):
        raise VerificationError(f"the file holds {rows} rows, the manifest says {manifest.get('rows')}")
    return leaves


def _rows(path: Path, file_format: Any) -> Iterator[tuple[Any, list[Any]]]:
    """(case id, audit events) of each row."""
    with path.open(encoding="utf-8", newline="") as text:
        if file_format == "jsonl":
            for number, line in enumerate(text, start=1):
                row = _parsed(line, number)
                if not isinstance(row, dict):
                    raise VerificationError(f"row {number} is not a JSON object")
                yield row.get("case_id"), row.get("audit_events")
        elif file_format == "csv":
            csv.field_size_limit(2**31 - 1)  # a long-lived case lists many events in one cell
            for number, row in enumerate(csv.DictReader(text), start=1):
                yield _parsed(row.get("case_id") or "", number), _parsed(row.get("audit_events") or "", number)
        else:
            raise VerificationError(f"unknown file_format {file_format!r} in the manifest")


def _parsed(text: str, number: int) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise VerificationError(f"row {number} is not valid JSON") from None


def _leaf(event: Mapping[str, Any], case_id: Any, redacted: bool) -> tuple[int, bytes]:
    index = event["leaf_index"]
    if type(index) is not int:
        raise VerificationError(f"leaf_index {index!r} is not a whole number")
    if "entry" in event:
        fields = json.loads(event["entry"])
        if fields["seq"] != index + 1 or fields["case_id"] != case_id:
            raise VerificationError(f"the event at leaf {index} is not event {index + 1} of case {case_id}")
        return index, leaf_hash(event["entry"].encode())
    if not redacted:
        raise VerificationError(f"event {index} gives no entry, yet the export is not redacted")
    if not _HEX64.fullmatch(event["leaf_hash"]):
        raise VerificationError(f"the leaf hash of event {index} is not 64 lowercase hex digits")
    return index, bytes.fromhex(event["leaf_hash"])


def _check_root(manifest: Mapping[str, Any], leaves: Mapping[int, bytes], report: Report) -> None:
    checkpoint, proof = manifest["checkpoint"], manifest.get("proof") or {}
    if proof.get("tree_size") != checkpoint["tree_size"]:
        raise VerificationError(f"the proof is for a tree of {proof.get('tree_size')} events, the checkpoint's "
                                f"has {checkpoint['tree_size']}")
    if not leaves:
        report.checked.append("no audit events listed: nothing to prove against the checkpoint")
        return
    try:
        nodes = {(start, size): bytes.fromhex(node) for start, size, node in proof["nodes"]}
    except (KeyError, TypeError, ValueError):
        raise VerificationError("the proof's nodes cannot be read") from None
    if root_from_batch(checkpoint["tree_size"], leaves, nodes).hex() != checkpoint["root_hash"]:
        raise VerificationError("the events listed and the proof do not give the checkpoint's root hash: an event "
                                "or a proof node was changed")
    how = "leaf hashes given (redacted)" if manifest.get("redacted") else "entries hashed here"
    report.checked.append(f"{manifest['rows']} rows list {len(leaves)} audit events, all in the signed log: the "
                          f"root hash was recomputed from their {how} and {len(nodes)} proof nodes")


def _key_argument(value: str | None) -> str | None:
    """--public-key: the key itself, or a file holding it."""
    if value and Path(value).is_file():
        return Path(value).read_text(encoding="utf-8")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="verify_export.py", description="Verify a Countersign decision-log "
                                     "export against its manifest (FILE.manifest.json) and a signed checkpoint.")
    parser.add_argument("file", help="the exported file (JSON Lines or CSV)")
    parser.add_argument("--public-key", metavar="KEY_OR_FILE", help="Countersign's checkpoint public key (base64 "
                        "or PEM), or a file holding it; default: the key in the manifest (integrity only)")
    args = parser.parse_args(argv)
    try:
        report = verify_export(args.file, _key_argument(args.public_key))
    except (VerificationError, OSError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    for line in report.checked:
        print(f"ok: {line}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    print(f"{args.file}: verified")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
