"""RQ jobs delivering notifications by email and webhook. They read what to send, close the
database session, then talk to the network; a failure raises, and RQ retries with backoff."""

from __future__ import annotations

from flask import current_app

from app.extensions import db
from app.jobs import job
from app.notifications import services


@job
def deliver_email(notification_ids: list[int]) -> int:
    items = services.outgoing(db.session, notification_ids)
    db.session.rollback()
    return services.send_email(items, current_app.config)


@job
def deliver_webhook(notification_ids: list[int]) -> int:
    items = services.outgoing(db.session, notification_ids)
    db.session.rollback()
    return services.send_webhook(items, current_app.config)
