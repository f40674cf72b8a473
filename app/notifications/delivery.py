"""Delivering notifications by email and by a signed webhook: the RQ jobs and what they send.

The jobs read what to send, close the database session, then talk to the network; a failure
raises, and RQ retries with backoff.
"""

from __future__ import annotations

import smtplib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from itertools import groupby
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from rq import Retry
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import webhooks
from app.cases.models import Case
from app.db import canonical_json
from app.extensions import db
from app.jobs import Work, job
from app.notifications.models import TITLES, InAppNotification
from app.users import User


def channels(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The outbound channels configured: ``email`` and/or ``webhook``."""
    return tuple(name for name, key in (("email", "SMTP_HOST"), ("webhook", "NOTIFY_WEBHOOK_URL")) if config.get(key))


def deliveries(notification_ids: list[int]) -> list[Work]:
    """One delivery job per configured channel for these notifications, retried with backoff."""
    config = current_app.config
    intervals = list(config["NOTIFY_RETRY_INTERVALS"])
    retry = Retry(max=len(intervals), interval=intervals) if intervals else None
    ids = sorted(notification_ids)
    senders = {"email": deliver_email, "webhook": deliver_webhook}
    return [Work(senders[channel], f"notify-{channel}-{ids[0]}-{ids[-1]}-{len(ids)}", (ids,), "default",
                 {"retry": retry}) for channel in channels(config)]


# --- delivery (run by the jobs, with the database session closed) ------------------------------------


@dataclass(frozen=True)
class Outgoing:
    id: int
    kind: str
    message: str
    email: str
    case_id: int | None
    case_title: str | None
    created_at: datetime


def outgoing(session: Session, notification_ids: list[int]) -> list[Outgoing]:
    rows = session.execute(
        select(InAppNotification.id, InAppNotification.kind, InAppNotification.message, User.email,
               InAppNotification.case_id, Case.title, InAppNotification.created_at)
        .join(User, User.id == InAppNotification.user_id)
        .outerjoin(Case, Case.id == InAppNotification.case_id)
        .where(InAppNotification.id.in_(notification_ids))
        .order_by(InAppNotification.id)
    ).all()
    return [Outgoing(*row) for row in rows]


def _email(item: Outgoing, sender: str) -> EmailMessage:
    mail = EmailMessage()
    about = f": case {item.case_id}" if item.case_id else ""
    mail["Subject"] = f"[Countersign] {TITLES[item.kind]}{about}"
    mail["From"] = sender
    mail["To"] = item.email
    mail.set_content(item.message + (f"\n\nCase {item.case_id}: {item.case_title}\n" if item.case_id else "\n"))
    return mail


def send_email(items: list[Outgoing], config: Mapping[str, Any]) -> int:
    """One message per notification, over one SMTP connection; returns how many were sent."""
    if not items:
        return 0
    with smtplib.SMTP(config["SMTP_HOST"], int(config["SMTP_PORT"]), timeout=config["NOTIFY_TIMEOUT_SECONDS"]) as smtp:
        if config["SMTP_STARTTLS"]:
            smtp.starttls()
        if config["SMTP_USERNAME"]:
            smtp.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"])
        for item in items:
            smtp.send_message(_email(item, config["SMTP_FROM"]))
    return len(items)


def webhook_events(items: list[Outgoing]) -> list[dict[str, Any]]:
    """One event per notify() call: the rows sharing kind, case and message, with their recipients."""
    def key(item: Outgoing) -> tuple[str, int, str]:
        return item.kind, item.case_id or 0, item.message

    events = []
    for (kind, _, message), group in groupby(sorted(items, key=key), key=key):
        same = list(group)
        first = same[0]
        events.append({
            "id": f"ntf_{first.id}", "type": f"notification.{kind}", "timestamp": first.created_at.isoformat(),
            "data": {"kind": kind, "case_id": first.case_id, "case_title": first.case_title, "message": message,
                     "recipients": sorted(item.email for item in same)},
        })
    return events


def send_webhook(items: list[Outgoing], config: Mapping[str, Any]) -> int:
    """POST each event, signed like the case callbacks (Standard Webhooks); a failure raises
    so that RQ retries, and the receiver deduplicates on ``webhook-id``."""
    url = config["NOTIFY_WEBHOOK_URL"]
    if urlsplit(url).scheme not in ("https", "http"):
        raise ValueError(f"NOTIFY_WEBHOOK_URL must be an http(s) URL, not {url!r}")
    events = webhook_events(items)
    for body in events:
        raw = canonical_json(body).encode()
        signed = webhooks.headers(config["NOTIFY_WEBHOOK_SECRET"], body["id"], raw)
        result = webhooks.post(url, raw, signed, config["NOTIFY_TIMEOUT_SECONDS"])
        if result.outcome != "delivered":
            raise DeliveryFailed(f"notification webhook {body['id']}: {result.error}")
    return len(events)


class DeliveryFailed(Exception):
    """The notification webhook did not take a delivery; RQ retries the job."""


@job
def deliver_email(notification_ids: list[int]) -> int:
    items = outgoing(db.session, notification_ids)
    db.session.rollback()
    return send_email(items, current_app.config)


@job
def deliver_webhook(notification_ids: list[int]) -> int:
    items = outgoing(db.session, notification_ids)
    db.session.rollback()
    return send_webhook(items, current_app.config)
