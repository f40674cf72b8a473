"""Signed checkpoints of the audit log: (tree size, Merkle root, time), signed with Ed25519.

The private key comes from the environment (``AUDIT_SIGNING_KEY``) or a file
(``AUDIT_SIGNING_KEY_FILE``), never from the database. Each checkpoint is stored in the database
and written as a file to ``AUDIT_CHECKPOINT_DIR`` together with the leaf hashes it added: kept on
write-once storage, those files let ``audit verify`` name the exact event a rewritten history
changed, even when every hash in the database was recomputed.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import chain, merkle
from app.audit.models import AuditCheckpoint
from app.db import utcnow
from app.errors import Conflict, Unavailable
from tools.verify_export import checkpoint_body, key_id

FILE_PREFIX = "checkpoint-"


# --- keys ---------------------------------------------------------------------------------------------


def generate_key() -> tuple[bytes, str]:
    """A new key pair: the private key as PEM (PKCS #8), the public key as base64 of its 32 bytes."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return pem, public_key_text(private.public_key())


def public_key_text(public: Ed25519PublicKey) -> str:
    return base64.b64encode(_raw(public)).decode()


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def signing_key(config: Mapping[str, Any]) -> Ed25519PrivateKey | None:
    """The configured private key, or None when none is configured. A configured key that cannot
    be read raises Unavailable naming the setting, never showing the key."""
    text, source = config.get("AUDIT_SIGNING_KEY") or "", "AUDIT_SIGNING_KEY"
    if not text and config.get("AUDIT_SIGNING_KEY_FILE"):
        source = "AUDIT_SIGNING_KEY_FILE"
        try:
            text = Path(config["AUDIT_SIGNING_KEY_FILE"]).read_text()
        except OSError as exc:
            raise Unavailable(f"{source}: the key file cannot be read ({exc.strerror})") from None
    if not text:
        return None
    return _parse_private_key(text.strip(), source)


def _parse_private_key(text: str, source: str) -> Ed25519PrivateKey:
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except ValueError:
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise Unavailable(f"{source} is not an Ed25519 private key (PEM, or base64 of its 32 bytes)")
    return key


def public_key(config: Mapping[str, Any]) -> str | None:
    """The public key that checks this installation's checkpoints, as base64 (None without a key)."""
    private = signing_key(config)
    return public_key_text(private.public_key()) if private else None


# --- making checkpoints ---------------------------------------------------------------------------------


def latest(session: Session) -> AuditCheckpoint | None:
    return session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1)).first()


def all_stored(session: Session) -> list[AuditCheckpoint]:
    return list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size, AuditCheckpoint.id)))


def create(session: Session, config: Mapping[str, Any]) -> AuditCheckpoint:
    """Seal what can be sealed, then sign, store and publish a checkpoint of the whole log.

    Refuses (Conflict) when the log no longer extends the last checkpoint: a history that was
    changed is never signed over."""
    key = signing_key(config)
    if key is None:
        raise Unavailable("no audit signing key: create one with `flask --app wsgi audit keygen` "
                          "and set AUDIT_SIGNING_KEY_FILE (or AUDIT_SIGNING_KEY)")
    chain.seal(session)
    previous = latest(session)
    size = chain.sealed_count(session)
    directory = _directory(config)
    published = _last_published_size(directory) if directory else None
    root, added = _root_and_new_leaves(session, size, previous, published or 0)
    document = {"tree_size": size, "root_hash": root.hex(), "time": utcnow().isoformat(),
                "key_id": key_id(_raw(key.public_key()))}
    document["signature"] = base64.b64encode(key.sign(checkpoint_body(document))).decode()
    if directory:
        _publish(directory, document, published or 0, added)
    checkpoint = AuditCheckpoint(tree_size=size, root_hash=document["root_hash"],
                                 time=datetime.fromisoformat(document["time"]), key_id=document["key_id"],
                                 signature=document["signature"])
    session.add(checkpoint)
    session.commit()
    return checkpoint


def _root_and_new_leaves(session: Session, size: int, previous: AuditCheckpoint | None,
                         published: int) -> tuple[bytes, list[str]]:
    if previous and previous.tree_size > size:
        raise Conflict(f"the audit log holds {size} events, fewer than the {previous.tree_size} of its last "
                       "checkpoint: run `flask --app wsgi audit verify`")
    builder, added = merkle.TreeBuilder(), []
    checked = previous.tree_size if previous else 0
    for first, page in chain.leaf_hash_pages(session, size):
        cut = 32 * min(max(checked - first + 1, 0), len(page) // 32)  # the leaves up to the last checkpoint's end
        for part in (page[:cut], page[cut:]):
            builder.extend(part)
            if previous and builder.size == checked and builder.root().hex() != previous.root_hash:
                raise Conflict(f"the first {checked} events no longer match the last checkpoint: "
                               "run `flask --app wsgi audit verify`")
        added += [page[i:i + 32].hex() for i in range(32 * max(published - first + 1, 0), len(page), 32)]
    return builder.root(), added


# --- the copies outside the database ---------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """One checkpoint file: the checkpoint and the leaf hashes of events previous_size+1..tree_size."""

    path: Path
    checkpoint: dict[str, Any]
    previous_size: int
    leaves: list[str]


def _directory(config: Mapping[str, Any]) -> Path | None:
    value = config.get("AUDIT_CHECKPOINT_DIR") or ""
    return Path(value) if value else None


def _file_name(document: Mapping[str, Any]) -> str:
    stamp = datetime.fromisoformat(document["time"]).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{FILE_PREFIX}{document['tree_size']:012d}-{stamp}.json"


def _publish(directory: Path, document: dict[str, Any], previous_size: int, leaves: list[str]) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # "x": a checkpoint file is written once and never replaced
        with open(directory / _file_name(document), "x", encoding="utf-8") as out:
            json.dump({"checkpoint": document, "previous_tree_size": previous_size, "leaves": leaves}, out)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        raise Unavailable(f"AUDIT_CHECKPOINT_DIR: the checkpoint cannot be written ({exc.strerror})") from None


def _files(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"{FILE_PREFIX}*.json")) if directory.is_dir() else []


def _last_published_size(directory: Path) -> int:
    files = _files(directory)
    return int(files[-1].name.removeprefix(FILE_PREFIX).split("-")[0]) if files else 0


def published(config: Mapping[str, Any]) -> Iterator[Published]:
    """The checkpoint files, oldest first. A file that cannot be read raises ValueError naming it."""
    directory = _directory(config)
    for path in _files(directory) if directory else []:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            yield Published(path, dict(raw["checkpoint"]), int(raw["previous_tree_size"]), list(raw["leaves"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"checkpoint file {path.name} cannot be read: {exc}") from None
