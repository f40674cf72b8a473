"""Proofs over the sealed log, against a signed checkpoint: that an event is in it (inclusion),
that a later tree only appended to an earlier one (consistency). Leaf index = seq - 1."""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import chain, checkpoints, merkle
from app.audit.models import AuditCheckpoint, AuditEvent
from app.errors import Conflict, NotFound


def covering_checkpoint(session: Session) -> AuditCheckpoint:
    latest = checkpoints.latest(session)
    if latest is None:
        raise Conflict("no signed checkpoint yet: run `flask --app wsgi audit checkpoint`")
    return latest


def tree_over(session: Session, tree_size: int, marked: Container[int] = (), *,
              paths: bool = True) -> merkle.TreeBuilder:
    """The finished tree of the first ``tree_size`` events, remembering the proof nodes of the
    ``marked`` leaf indexes: one pass over the leaf hashes, memory O(marked · log n). With
    ``paths=False``, only what a batch proof needs (see merkle.TreeBuilder)."""
    builder = merkle.TreeBuilder(marked, paths=paths)
    for _first, leaves in chain.leaf_hash_pages(session, tree_size):
        builder.extend(leaves)
    if builder.size != tree_size:
        raise Conflict(f"the log holds {builder.size} sealed events, fewer than {tree_size}: "
                       "run `flask --app wsgi audit verify`")
    builder.finish()
    return builder


def inclusion(session: Session, seq: int) -> dict[str, Any]:
    checkpoint = covering_checkpoint(session)
    event = session.execute(select(*chain.ENTRY_COLUMNS).where(AuditEvent.seq == seq)).first()
    if event is None:
        raise NotFound(f"there is no sealed audit event {seq}")
    if seq > checkpoint.tree_size:
        raise Conflict(f"event {seq} is newer than the latest checkpoint ({checkpoint.tree_size} events): "
                       "run `flask --app wsgi audit checkpoint`")
    tree = tree_over(session, checkpoint.tree_size, {seq - 1})
    return {"checkpoint": checkpoint.document(), "leaf_index": seq - 1, "entry": chain.entry_of(event).decode(),
            "leaf_hash": event.hash, "audit_path": [node.hex() for node in tree.inclusion_path(seq - 1)]}


def consistency(session: Session, from_size: int, to_size: int | None = None) -> dict[str, Any]:
    checkpoint = covering_checkpoint(session)
    to_size = checkpoint.tree_size if to_size is None else to_size
    sealed = chain.sealed_count(session)
    if not from_size <= to_size <= sealed:
        raise Conflict(f"a consistency proof needs 1 <= from ({from_size}) <= to ({to_size}) <= "
                       f"the sealed events ({sealed})")
    leaves = [page[i:i + 32] for _first, page in chain.leaf_hash_pages(session, to_size)
              for i in range(0, len(page), 32)]
    return {"from": {"tree_size": from_size, "root_hash": merkle.subtree_hash(leaves, 0, from_size).hex()},
            "to": {"tree_size": to_size, "root_hash": merkle.subtree_hash(leaves, 0, to_size).hex()},
            "checkpoint": checkpoint.document(),
            "proof": [node.hex() for node in merkle.consistency_proof(leaves, from_size, to_size)]}
