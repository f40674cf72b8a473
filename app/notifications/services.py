"""Notifications: in-app rows (the bell) and, after the commit, email and a signed webhook.

``notify`` adds one ``Notification`` per recipient and flushes. The email (when ``SMTP_HOST``
is set) and the webhook (when ``NOTIFY_WEBHOOK_URL`` is set) are sent by RQ jobs that are
enqueued only once the transaction has committed: a rolled-back change tells nobody.
"""

from __future__ import annotations

import logging
import smtplib
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from itertools import groupby
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, has_app_context
from rq import Retry
from sqlalchemy import Select, event, select, update
from sqlalchemy.orm import Session

from app.auth.models import Notification, User
from app.cases.models import Case
from app.db import canonical_json, utcnow
from app.intake import signatures
from app.jobs import enqueue_once

log = logging.getLogger(__name__)

KINDS = ("assignment", "escalation", "sla_warning", "sla_breach", "second_approval_request", "rule")
TITLES = {"assignment": "Case assigned to you", "escalation": "Case escalated", "sla_warning": "SLA warning",
          "sla_breach": "SLA breached", "second_approval_request": "Second approval requested",
          "rule": "Escalation rule"}
MAX_MESSAGE = 500
UNREAD_CAP = 100
_PENDING = "countersign.notifications.pending"  # session.info key: ids to deliver after the commit


def notify(session: Session, users: Iterable[User | None], kind: str, case: Case | None,
           message: str) -> list[Notification]:
    """One in-app notification per active recipient (None and duplicates skipped)."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}; one of {', '.join(KINDS)}")
    recipients = {user.id: user for user in users if user is not None and user.active}
    rows = [Notification(user_id=user_id, kind=kind, case_id=case.id if case else None, message=message[:MAX_MESSAGE])
            for user_id in sorted(recipients)]
    if not rows:
        return []
    session.add_all(rows)
    session.flush()
    if channels(current_app.config):
        session.info.setdefault(_PENDING, []).extend(row.id for row in rows)
    return rows


def channels(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The outbound channels configured: ``email`` and/or ``webhook``."""
    return tuple(name for name, key in (("email", "SMTP_HOST"), ("webhook", "NOTIFY_WEBHOOK_URL")) if config.get(key))


@event.listens_for(Session, "after_commit")
def _deliver_after_commit(session: Session) -> None:
    ids = session.info.pop(_PENDING, None)
    if not ids:
        return
    if not has_app_context():
        log.warning("notifications %s committed outside an app context: not delivered", ids)
        return
    _enqueue_delivery(ids)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def _enqueue_delivery(notification_ids: list[int]) -> None:
    config = current_app.config
    intervals = list(config["NOTIFY_RETRY_INTERVALS"])
    retry = Retry(max=len(intervals), interval=intervals) if intervals else None
    ids = sorted(notification_ids)
    for channel in channels(config):
        enqueue_once("default", f"app.notifications.jobs.deliver_{channel}",
                     f"notify-{channel}-{ids[0]}-{ids[-1]}-{len(ids)}", ids, retry=retry)


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
        select(Notification.id, Notification.kind, Notification.message, User.email, Notification.case_id,
               Case.title, Notification.created_at)
        .join(User, User.id == Notification.user_id)
        .outerjoin(Case, Case.id == Notification.case_id)
        .where(Notification.id.in_(notification_ids))
        .order_by(Notification.id)
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
        headers = {"Content-Type": "application/json",
                   **signatures.headers(config["NOTIFY_WEBHOOK_SECRET"], body["id"], raw)}
        request = urllib.request.Request(url, data=raw, headers=headers, method="POST")  # noqa: S310 (http(s) only)
        with urllib.request.urlopen(request, timeout=config["NOTIFY_TIMEOUT_SECONDS"]):  # noqa: S310
            pass
    return len(events)


# --- the bell -----------------------------------------------------------------------------------------


def unread_count(session: Session, user: User) -> int:
    """Unread notifications of the user, counted up to UNREAD_CAP (the bell shows "99+")."""
    return len(session.scalars(select(Notification.id).where(Notification.user_id == user.id,
                                                              Notification.read_at.is_(None)).limit(UNREAD_CAP)).all())


def mark_all_read(session: Session, user: User) -> int:
    return session.execute(update(Notification).where(Notification.user_id == user.id, Notification.read_at.is_(None))
                           .values(read_at=utcnow())).rowcount


def inbox_query(user: User) -> Select[tuple[Notification]]:
    return (select(Notification).where(Notification.user_id == user.id)
            .order_by(Notification.created_at.desc(), Notification.id.desc()))
