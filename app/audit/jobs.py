"""Periodic jobs of the audit log: sealing new events, and signing checkpoints."""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app

from app.audit import chain, checkpoints
from app.extensions import db
from app.jobs import job

log = logging.getLogger(__name__)


@job
def seal_audit_log() -> dict[str, Any]:
    """Give every committed event its place in the log (sealers wait for each other)."""
    return {"sealed": chain.seal(db.session)}


@job
def checkpoint_audit_log() -> dict[str, Any]:
    """Sign a checkpoint when the log grew since the last one (none without a signing key)."""
    if checkpoints.signing_key(current_app.config) is None:
        log.warning("no audit signing key configured: no checkpoint signed (see `audit keygen`)")
        return {"skipped": "no signing key"}
    chain.seal(db.session)
    last = checkpoints.latest(db.session)
    if last is not None and last.tree_size == chain.sealed_count(db.session):
        return {"skipped": "nothing new since the last checkpoint", "tree_size": last.tree_size}
    checkpoint = checkpoints.create(db.session, current_app.config)
    return {"tree_size": checkpoint.tree_size, "root_hash": checkpoint.root_hash}
