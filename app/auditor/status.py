"""Where the audit log stands, cheaply: counts from the indexes, the latest checkpoint, the key.

Nothing here walks the log: the full check is ``audit verify`` (or the audit page's verify
link, for logs small enough to check while the page waits).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.audit import chain, checkpoints, verification
from app.audit.models import AuditCheckpoint
from app.errors import DomainError

# The largest log verified while a page waits: 20,000 events take about half a second.
VERIFY_ON_PAGE_MAX = 20_000


@dataclass(frozen=True)
class LogStatus:
    sealed: int
    unsealed: int
    checkpoint: AuditCheckpoint | None
    public_key: str | None
    key_problem: str  # why a configured signing key cannot be used ("" when it can, or none is set)
    checkpoint_dir: str  # where checkpoints are published outside the database ("": nowhere)

    @property
    def not_checkpointed(self) -> int:
        """Sealed events no signed checkpoint covers yet."""
        return self.sealed - (self.checkpoint.tree_size if self.checkpoint else 0)

    @property
    def verifiable_on_page(self) -> bool:
        return self.sealed <= VERIFY_ON_PAGE_MAX


def log_status(session: Session, config: Mapping[str, Any]) -> LogStatus:
    public_key, key_problem = None, ""
    try:
        public_key = checkpoints.public_key(config)
    except DomainError as exc:
        key_problem = exc.message
    return LogStatus(sealed=chain.sealed_count(session), unsealed=chain.unsealed_count(session),
                     checkpoint=checkpoints.latest(session), public_key=public_key, key_problem=key_problem,
                     checkpoint_dir=config.get("AUDIT_CHECKPOINT_DIR") or "")


def verify_small_log(session: Session, config: Mapping[str, Any]) -> verification.VerifyResult | None:
    """The full verification, when the log is small enough to check while a page waits (else None)."""
    if chain.sealed_count(session) > VERIFY_ON_PAGE_MAX:
        return None
    return verification.verify(session, config)
