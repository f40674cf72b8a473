"""Periodic work of the audit log: the sealer, and signing checkpoints."""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask, current_app
from sqlalchemy.exc import SQLAlchemyError

from app.audit import chain, checkpoints
from app.extensions import db
from app.jobs import job

log = logging.getLogger(__name__)


def run_sealer(app: Flask, stop: threading.Event) -> None:
    """Seal what is committed every AUDIT_SEAL_SECONDS until ``stop`` is set. The scheduler process
    runs it in a thread: sealing needs neither Redis nor a free worker, so neither an outage nor a
    backlog of other jobs delays it. Several schedulers are harmless (sealers wait for each other)."""
    while not stop.wait(app.config["AUDIT_SEAL_SECONDS"]):
        with app.app_context():
            try:
                sealed = chain.seal(db.session)
                if sealed:
                    log.debug("sealed %d audit events", sealed)
            except SQLAlchemyError as exc:
                db.session.rollback()
                log.warning("sealing failed (%s): trying again in %s s", exc.__class__.__name__,
                            app.config["AUDIT_SEAL_SECONDS"])
            finally:
                db.session.remove()


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
