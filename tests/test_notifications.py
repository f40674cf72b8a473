"""Notifications: in-app rows, email through a local SMTP server and a signed webhook to a local
receiver (both sent by RQ jobs after the commit), and the bell with its pages."""

from __future__ import annotations

import json
import re

import pytest
from rq import Queue as RqQueue
from rq import SimpleWorker

from app import webhooks
from app.extensions import db
from app.notifications import services
from app.notifications.models import InAppNotification as Notification
from app.notifications.services import notify
from tests.escalation_helpers import notes
from tests.mail_and_hooks import smtp_server, webhook_receiver
from tests.review_helpers import make_case
from tests.test_auth import csrf_of, login

pytest_plugins = ["tests.escalation_fixtures"]

SECRET = webhooks.new_secret()


@pytest.fixture
def mailbox():
    with smtp_server() as box:
        yield box


@pytest.fixture
def hooks():
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def config_overrides(request):
    if "mailbox" not in request.fixturenames:
        return {}
    box, receiver = request.getfixturevalue("mailbox"), request.getfixturevalue("hooks")
    return {"SMTP_HOST": box.host, "SMTP_PORT": box.port, "SMTP_FROM": "countersign@bank.example",
            "NOTIFY_WEBHOOK_URL": receiver.url, "NOTIFY_WEBHOOK_SECRET": SECRET, "NOTIFY_RETRY_INTERVALS": []}


def deliver(redis_conn) -> None:
    SimpleWorker(["default"], connection=redis_conn).work(burst=True)


def test_notify_writes_one_row_per_active_recipient(upstream, people):
    people.reviewer2.active = False
    case = make_case(upstream)
    rows = notify(db.session, [people.reviewer, None, people.reviewer, people.reviewer2, people.senior], "escalation",
                  case, "x" * 600)
    assert [r.user_id for r in rows] == sorted([people.reviewer.id, people.senior.id])
    assert all(r.case_id == case.id and r.kind == "escalation" and len(r.message) == 500 for r in rows)
    with pytest.raises(ValueError, match="unknown notification kind 'gossip'"):
        notify(db.session, [people.reviewer], "gossip", case, "x")


def test_email_and_webhook_are_sent_after_the_commit(upstream, people, mailbox, hooks, redis_conn):
    case = make_case(upstream)
    notify(db.session, [people.reviewer, people.senior], "sla_breach", case, "Case breached its SLA.")
    assert len(RqQueue("default", connection=redis_conn)) == 0  # nothing leaves before the commit
    db.session.commit()
    assert len(RqQueue("default", connection=redis_conn)) == 2  # one email job, one webhook job
    deliver(redis_conn)

    assert sorted(m.recipients[0] for m in mailbox.messages) == ["reviewer@example.com", "senior@example.com"]
    mail = mailbox.messages[0].message
    assert mail["From"] == "countersign@bank.example"
    assert mail["Subject"] == f"[Countersign] SLA breached: case {case.id}"
    assert "Case breached its SLA." in mail.get_payload()

    [delivery] = hooks.deliveries
    webhooks.verify([SECRET], delivery.headers["webhook-id"], delivery.headers["webhook-timestamp"],
                      delivery.headers["webhook-signature"], delivery.body)
    event = json.loads(delivery.body)
    assert event["type"] == "notification.sla_breach" and event["id"] == delivery.headers["webhook-id"]
    assert event["data"] | {"recipients": None} == {"kind": "sla_breach", "case_id": case.id, "case_title": case.title,
                                                   "message": "Case breached its SLA.", "recipients": None}
    assert event["data"]["recipients"] == ["reviewer@example.com", "senior@example.com"]


def test_a_rolled_back_notification_is_never_sent(upstream, people, mailbox, hooks, redis_conn):
    case = make_case(upstream)
    notify(db.session, [people.reviewer], "assignment", case, "yours")
    db.session.rollback()
    db.session.commit()
    assert len(RqQueue("default", connection=redis_conn)) == 0
    assert notes() == []


def test_a_failing_webhook_raises_for_rq_to_retry(upstream, people, mailbox, hooks, redis_conn):
    hooks.status = 503
    case = make_case(upstream)
    notify(db.session, [people.reviewer], "rule", case, "look")
    db.session.commit()
    deliver(redis_conn)
    failed = RqQueue("default", connection=redis_conn).failed_job_registry
    assert [job_id.split("-")[1] for job_id in failed.get_job_ids()] == ["webhook"]
    assert len(mailbox.messages) == 1


def test_without_smtp_or_webhook_only_the_bell_rings(upstream, people, redis_conn):
    notify(db.session, [people.reviewer], "assignment", make_case(upstream), "yours")
    db.session.commit()
    assert len(RqQueue("default", connection=redis_conn)) == 0
    assert len(notes(people.reviewer)) == 1


# --- the bell -----------------------------------------------------------------------------------------


def bell(page: str) -> int:
    found = re.search(r'class="bell" data-unread="(\d+)"', page)
    assert found, "no bell on the page"
    return int(found.group(1))


def test_the_bell_counts_unread_and_the_page_lists_newest_first(client, upstream, people):
    case = make_case(upstream)
    for i in range(30):
        notify(db.session, [people.reviewer], "sla_warning", case, f"warning {i}")
    notify(db.session, [people.senior], "escalation", case, "not yours")
    db.session.commit()
    login(client, people.reviewer.email)

    page = client.get("/notifications").get_data(as_text=True)
    assert bell(page) == 30
    assert re.findall(r"warning (\d+)", page)[:3] == ["29", "28", "27"] and "not yours" not in page
    assert len(re.findall(r"data-notification=", page)) == 25
    older = client.get("/notifications?page=2").get_data(as_text=True)
    assert re.findall(r"warning (\d+)", older) == ["4", "3", "2", "1", "0"]

    assert client.post("/notifications/read").status_code == 400  # CSRF
    answer = client.post("/notifications/read", data={"csrf_token": csrf_of(client, "/notifications")})
    assert answer.status_code == 302
    assert bell(client.get("/notifications").get_data(as_text=True)) == 0
    assert len(notes(people.senior)) == 1 and notes(people.senior)[0].read_at is None


def test_the_bell_is_on_every_page_and_caps_its_badge(client, upstream, people):
    case = make_case(upstream)
    db.session.add_all(Notification(user_id=people.reviewer.id, kind="rule", case_id=case.id, message="m")
                       for _ in range(120))
    db.session.commit()
    login(client, people.reviewer.email)
    page = client.get("/queues").get_data(as_text=True)
    assert bell(page) == services.UNREAD_CAP and ">99+</span>" in page


def test_notifications_need_a_login(client):
    answer = client.get("/notifications")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]


def test_every_way_out_of_a_second_approval_wait_settles_the_case():
    """The bell drops second-approval requests when their case settles: that covers every way a case
    can stop waiting for a second approval only if each of them settles it."""
    from app.cases.lifecycle import TRANSITIONS
    from app.cases.models import Status
    from app.notifications.services import SETTLED

    targets = {move.target for move in TRANSITIONS.values() if Status.AWAITING_SECOND_APPROVAL in move.sources}
    assert targets == {Status.APPROVED, Status.REJECTED, Status.WITHDRAWN, Status.EXPIRED}
    assert targets <= SETTLED
