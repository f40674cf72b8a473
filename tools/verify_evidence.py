"""Check a Countersign evidence package (``case-N-evidence.json``), for outside auditors.

    python -m tools.verify_evidence case-12-evidence.json --public-key KEY

KEY is the installation's Ed25519 public key (base64 of its 32 bytes, or a file holding it or a PEM
block), obtained from its operator, not from the package. Checks the checkpoint's signature, then
for every audit event of the package: that its entry hashes to its leaf hash, that the entry is
that event of that case, and that its inclusion path leads to the checkpoint's root. Exit 0 when
everything holds, 1 naming the first thing that does not.

Like tools/verify_export.py, which it builds on, it needs Python and ``cryptography``, nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

try:  # python -m tools.verify_evidence, from the repository
    from tools.verify_export import (
        VerificationError,
        leaf_hash,
        load_public_key,
        root_from_inclusion,
        verify_checkpoint,
    )
except ImportError:  # python verify_evidence.py, beside verify_export.py (what an auditor is handed)
    from verify_export import (  # type: ignore[no-redef]
        VerificationError,
        leaf_hash,
        load_public_key,
        root_from_inclusion,
        verify_checkpoint,
    )


def verify_package(package: Mapping[str, Any], public_key: Ed25519PublicKey) -> list[int]:
    """The seqs of the package's events, each proven in the signed checkpoint; VerificationError
    at the first that is not (or when the package has no checkpoint)."""
    try:
        checkpoint = package["audit"]["checkpoint"]
        if not checkpoint:
            raise VerificationError("the package has no signed checkpoint: none of its events is proven")
        verify_checkpoint(checkpoint, public_key)
        root, size = bytes.fromhex(checkpoint["root_hash"]), checkpoint["tree_size"]
        return [_verify_event(event, package["case"]["id"], root, size) for event in package["audit"]["events"]]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise VerificationError(f"not a readable evidence package ({type(exc).__name__}: {exc})") from None


def _verify_event(event: Mapping[str, Any], case_id: int, root: bytes, size: int) -> int:
    seq, entry = event["seq"], event["entry"].encode()
    leaf = leaf_hash(entry)
    if leaf.hex() != event["leaf_hash"]:
        raise VerificationError(f"event {seq}: its entry does not hash to its leaf hash")
    fields = json.loads(entry)
    if fields.get("seq") != seq or event["leaf_index"] != seq - 1 or fields.get("case_id") != case_id:
        raise VerificationError(f"event {seq}: its entry is not event {seq} of case {case_id}")
    path = [bytes.fromhex(node) for node in event["inclusion_path"]]
    if root_from_inclusion(event["leaf_index"], size, leaf, path) != root:
        raise VerificationError(f"event {seq}: its inclusion path does not lead to the checkpoint's root")
    return seq


def _key_text(given: str | None, package: Mapping[str, Any]) -> str:
    if given is None:
        print("warning: no --public-key given, using the package's own key: compare it with the key the "
              "operator gave you", file=sys.stderr)
        audit = package.get("audit")
        return str(audit.get("public_key") or "") if isinstance(audit, dict) else ""
    path = Path(given)
    return path.read_text(encoding="utf-8") if path.is_file() else given


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.verify_evidence", description=__doc__.split("\n\n")[0])
    parser.add_argument("package", type=Path, help="the evidence package (JSON)")
    parser.add_argument("--public-key", help="base64 of the 32-byte Ed25519 key, or a file holding it or a PEM block")
    args = parser.parse_args(argv)
    try:
        package = json.loads(args.package.read_text(encoding="utf-8"))
        if not isinstance(package, dict):
            raise VerificationError("not an evidence package: a JSON object was expected")
        key = load_public_key(_key_text(args.public_key, package))
        proven = verify_package(package, key)
    except (OSError, ValueError, VerificationError) as exc:
        print(f"NOT VERIFIED: {exc}", file=sys.stderr)
        return 1
    checkpoint = package["audit"]["checkpoint"]
    print(f"checkpoint of {checkpoint['tree_size']} events, signed {checkpoint['time']} by key "
          f"{checkpoint['key_id']}: signature valid")
    print(f"case {package['case']['id']}: {len(proven)} audit events proven in it")
    waiting = package["audit"].get("not_yet_provable") or []
    if waiting:
        print(f"{len(waiting)} events of the case are not under the checkpoint and were not checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
