"""``audit verify``: recompute the whole log and hold it against every checkpoint.

Checks, in one pass over the sealed events in order: no place in the order is missing; each
event's contents hash to its stored leaf hash; each leaf equals the one published outside the
database (AUDIT_CHECKPOINT_DIR), when there is one; the Merkle root of the first n events equals
every checkpoint of size n, stored or published, each with a valid signature; no checkpoint
covers events that are gone. Roots of all checkpoints computed over one sequence of leaves also
prove each checkpoint consistent with the ones before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from app.audit import chain, checkpoints, merkle
from tools.verify_export import VerificationError, verify_checkpoint


class Broken(Exception):
    def __init__(self, seq: int | None, reason: str) -> None:
        super().__init__(reason)
        self.seq, self.reason = seq, reason


@dataclass
class VerifyResult:
    checked: int = 0
    checkpoints: int = 0
    unsealed: int = 0
    first_bad_seq: int | None = None
    problem: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problem


@dataclass
class _Target:
    label: str
    root_hash: str


def verify(session: Session, config: Mapping[str, Any], *, progress: Callable[[int], None] | None = None,
           every: int = 100_000) -> VerifyResult:
    result = VerifyResult(unsealed=chain.unsealed_count(session))
    try:
        targets, published = _checkpoints(session, config, result)
        _walk(session, targets, published, result, progress, every)
    except Broken as broken:
        result.first_bad_seq, result.problem = broken.seq, broken.reason
    return result


def _checkpoints(session: Session, config: Mapping[str, Any],
                 result: VerifyResult) -> tuple[dict[int, list[_Target]], list[checkpoints.Published]]:
    private = checkpoints.signing_key(config)
    if private is None:
        result.warnings.append("no audit signing key configured: checkpoint signatures were not checked")
    key = private.public_key() if private else None
    try:
        published = list(checkpoints.published(config))
    except ValueError as exc:
        raise Broken(None, str(exc)) from None
    if not published:
        result.warnings.append("no checkpoint files outside the database (AUDIT_CHECKPOINT_DIR) to compare with")
    documents = [(f"checkpoint #{c.id} (database)", c.document()) for c in checkpoints.all_stored(session)]
    documents += [(f"checkpoint file {p.path.name}", p.checkpoint) for p in published]
    targets: dict[int, list[_Target]] = {}
    for label, document in documents:
        if key is not None:
            try:
                verify_checkpoint(document, key)
            except VerificationError as exc:
                raise Broken(None, f"{label} of {document.get('tree_size')} events: {exc}") from None
        targets.setdefault(int(document["tree_size"]), []).append(
            _Target(f"{label}, signed {document['time']}", document["root_hash"]))
    result.checkpoints = len(documents)
    return targets, published


def _walk(session: Session, targets: dict[int, list[_Target]], published: list[checkpoints.Published],
          result: VerifyResult, progress: Callable[[int], None] | None, every: int) -> None:
    builder = merkle.TreeBuilder()
    outside = _published_leaves(published)
    expected, last_good = 1, 0
    for seq, entry, stored in chain.iter_entries(session):
        if seq != expected:
            raise Broken(expected, f"event {expected} is missing (the next event is {seq})")
        leaf = merkle.leaf_hash(entry)
        if leaf.hex() != stored:
            raise Broken(seq, f"event {seq} was changed: its contents do not match its leaf hash")
        if outside is not None:
            published_leaf, source = outside(seq)
            if published_leaf is not None and published_leaf != stored:
                raise Broken(seq, f"event {seq} was changed: it is not the event published in {source}")
        builder.append(leaf)
        if seq in targets:
            for target in targets[seq]:
                if builder.root().hex() != target.root_hash:
                    raise Broken(last_good + 1, f"the first {seq} events do not match {target.label}: an event "
                                                f"among {last_good + 1}..{seq} was changed, removed or reordered")
            last_good = seq
        expected += 1
        if progress and seq % every == 0:
            progress(seq)
    result.checked = expected - 1
    covered = max(targets, default=0)
    if covered > result.checked:
        label = targets[covered][0].label
        raise Broken(result.checked + 1, f"events {result.checked + 1}..{covered} are missing: "
                                         f"{label} covers {covered} events")


def _published_leaves(published: list[checkpoints.Published]) -> Callable[[int], tuple[str | None, str]] | None:
    """seq → (the leaf hash published for it, the file), walking the files in step with the events;
    None when no file publishes leaves."""
    if not any(p.leaves for p in published):
        return None
    ranges: Iterator[checkpoints.Published] = iter(sorted(
        (p for p in published if p.leaves), key=lambda p: p.previous_size))
    current = next(ranges, None)

    def leaf_of(seq: int) -> tuple[str | None, str]:
        nonlocal current
        while current is not None and current.previous_size + len(current.leaves) < seq:
            current = next(ranges, None)
        if current is None or seq <= current.previous_size:
            return None, ""
        return current.leaves[seq - current.previous_size - 1], current.path.name
    return leaf_of
