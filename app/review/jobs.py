"""Periodic jobs of the reviewer workspace."""

from __future__ import annotations

from app.extensions import db
from app.jobs import job
from app.review import services


@job
def release_expired_claims() -> int:
    """Claims idle past CLAIM_IDLE_MINUTES go back to their inbox (rows locked with SKIP LOCKED,
    so schedulers running at once never release one claim twice)."""
    released = services.release_expired_claims(db.session)
    db.session.commit()
    return released
