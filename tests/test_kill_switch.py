"""The kill switch: pausing AI analysis or executions (everywhere or for one queue) from the CLI and
the admin page; paused work waits in place, the sweeps leave it alone, resuming runs it once; every
toggle audited, shown on every page, and reported by /readyz and /metrics."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from rq import Queue as RQQueue
from rq import SimpleWorker
from sqlalchemy import func, select

from app.actors import Actor
from app.ai.jobs import analyze_case, requeue_stuck_cases
from app.audit.models import AuditEvent
from app.cases.models import Case, Status
from app.controls.models import Pause
from app.errors import Conflict, Invalid, NotFound
from app.execution.jobs import execute_case, retry_due_executions
from app.extensions import db
from app.kill_switch import services
from tests.conftest import audit_log_intact, case_body, sign_in
from tests.review_helpers import claim, decide, make_case

pytest_plugins = ["tests.review_fixtures"]

ADMIN = Actor.system("cli")


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    # STUCK_CASE_SECONDS 0: the sweeps would take every waiting case at once, were it not paused
    return {"INSECURE_CALLBACK_HOSTS": frozenset({"127.0.0.1"}), "CALLBACK_TIMEOUT_SECONDS": 5.0,
            "STUCK_CASE_SECONDS": 0}


def drain(redis_conn, *queues: str) -> None:
    SimpleWorker(list(queues), connection=redis_conn).work(burst=True)


def status_of(case_id: int) -> str:
    db.session.expire_all()
    return db.session.get_one(Case, case_id).status


def count(action: str, case_id: int | None = None) -> int:
    query = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
    if case_id is not None:
        query = query.where(AuditEvent.case_id == case_id)
    return db.session.scalar(query)


def toggles() -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action.like("control.%"))
                                   .order_by(AuditEvent.id)))


def post(upstream, case_type: str = "payment_release", **body: Any) -> int:
    answer = upstream.post_case(case_body(case_type, **body))
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["id"]


def approved(upstream, people, receiver, case_type: str = "credit_limit_change") -> int:
    """A case a reviewer approved through the review services (its execute job enqueued on commit)."""
    case = make_case(upstream, case_type, callback_url=f"{receiver.url}/hooks")
    decide(people.reviewer, claim(people.reviewer, case), "approve")
    return case.id


# --- the command line ---------------------------------------------------------------------------------------


def test_cli_pauses_reports_and_resumes(runner, queues):
    assert runner.invoke(args=["control", "status"]).output == (
        "nothing is paused: AI analysis and executions run for every queue\n")

    paused = runner.invoke(args=["control", "pause", "--what", "ai", "--reason", "Model drift on payments"])
    assert paused.exit_code == 0, paused.output
    assert paused.output.startswith("AI analysis paused for every queue since ")
    assert paused.output.endswith(" UTC by cli: Model drift on payments\n")
    queued = runner.invoke(args=["control", "pause", "--what", "executions", "--queue", "legal", "--reason", "Audit"])
    assert queued.exit_code == 0, queued.output

    status = runner.invoke(args=["control", "status"]).output.splitlines()
    assert len(status) == 2
    assert status[0].startswith("AI analysis paused for every queue since ")
    assert status[1].startswith("Executions paused for queue legal since ")
    assert status[1].endswith("by cli: Audit")
    described = runner.invoke(args=["control", "status", "--json"])
    assert [(p["what"], p["queue"], p["paused_by"], p["reason"]) for p in json.loads(described.output)] \
        == [("ai", None, "cli", "Model drift on payments"), ("executions", "legal", "cli", "Audit")]

    resumed = runner.invoke(args=["control", "resume", "--what", "ai", "--reason", "Fixed"])
    assert resumed.exit_code == 0, resumed.output
    assert resumed.output == "AI analysis resumed for every queue: the work that waited is enqueued\n"
    assert runner.invoke(args=["control", "resume", "--what", "executions", "--queue", "legal"]).exit_code == 0
    assert runner.invoke(args=["control", "status"]).output.startswith("nothing is paused")

    events = [(e.action, e.actor, e.data["what"], e.data["queue"], e.data["by"], e.data["reason"], e.data["paused"])
              for e in toggles()]
    assert events == [
        ("control.paused", "system:cli", "ai", None, "cli", "Model drift on payments", [False, True]),
        ("control.paused", "system:cli", "executions", "legal", "cli", "Audit", [False, True]),
        ("control.resumed", "system:cli", "ai", None, "cli", "Fixed", [True, False]),
        ("control.resumed", "system:cli", "executions", "legal", "cli", None, [True, False]),
    ]
    assert toggles()[2].data["paused_reason"] == "Model drift on payments"
    assert audit_log_intact()


@pytest.mark.parametrize(("args", "message"), [
    (["pause", "--what", "ai", "--queue", "nowhere", "--reason", "x"], "no queue named 'nowhere'"),
    (["pause", "--what", "ai", "--reason", "   "], "say why: a pause needs a reason"),
    (["resume", "--what", "executions"], "Executions is not paused for every queue"),
    (["resume", "--what", "ai", "--queue", "finance"], "AI analysis is not paused for queue finance"),
])
def test_cli_refusals_change_nothing(runner, queues, args, message):
    result = runner.invoke(args=["control", *args])
    assert result.exit_code == 2
    assert f"Error: {message}" in result.output
    assert db.session.scalar(select(func.count()).select_from(Pause)) == 0
    assert toggles() == []


def test_pausing_what_is_paused_is_refused_and_a_queue_pause_outlives_the_global_one(runner, queues):
    assert runner.invoke(args=["control", "pause", "--what", "ai", "--reason", "first"]).exit_code == 0
    again = runner.invoke(args=["control", "pause", "--what", "ai", "--reason", "second"])
    assert again.exit_code == 2
    assert "AI analysis is already paused for every queue, since " in again.output
    assert runner.invoke(args=["control", "pause", "--what", "ai", "--queue", "finance", "--reason", "own"]
                         ).exit_code == 0
    resumed = runner.invoke(args=["control", "resume", "--what", "ai"])
    assert "still in force: AI analysis paused for queue finance" in resumed.output
    assert len(toggles()) == 3


# --- paused work waits in place; resuming runs it once ---------------------------------------------------


def test_paused_analysis_leaves_the_case_received_and_resuming_analyses_it_once(upstream, redis_conn):
    pause_id = services.pause(db.session, "ai", None, "Provider incident", ADMIN).id
    db.session.commit()
    case_id = post(upstream)
    assert analyze_case(case_id) == "paused"
    drain(redis_conn, "ai")  # the intake's job: paused too
    assert status_of(case_id) == Status.RECEIVED
    assert requeue_stuck_cases() == 0  # the sweep leaves paused cases alone
    assert RQQueue("ai", connection=redis_conn).count == 0
    assert count("case.analysis_started", case_id) == 0

    services.resume(db.session, "ai", None, ADMIN)
    db.session.commit()
    assert RQQueue("default", connection=redis_conn).job_ids == [f"release-ai-{pause_id}"]
    drain(redis_conn, "default", "ai")
    assert status_of(case_id) == Status.PENDING_REVIEW
    assert requeue_stuck_cases() == 0
    drain(redis_conn, "default", "ai")
    assert (count("case.analysis_started", case_id), count("case.recommendation_stored", case_id)) == (1, 1)


def test_a_queue_pause_stops_only_that_queues_analyses(upstream, redis_conn):
    services.pause(db.session, "ai", "finance", "Finance model under review", ADMIN)
    db.session.commit()
    finance, legal = post(upstream, "payment_release"), post(upstream, "contract_review")
    drain(redis_conn, "ai")
    assert (status_of(finance), status_of(legal)) == (Status.RECEIVED, Status.PENDING_REVIEW)

    services.resume(db.session, "ai", "finance", ADMIN)
    db.session.commit()
    drain(redis_conn, "default", "ai")
    assert status_of(finance) == Status.PENDING_REVIEW
    assert count("case.analysis_started") == 2


def test_resuming_one_queue_leaves_a_global_pause_in_force(upstream, redis_conn):
    services.pause(db.session, "ai", None, "Everything", ADMIN)
    services.pause(db.session, "ai", "finance", "Finance too", ADMIN)
    db.session.commit()
    case_id = post(upstream)
    services.resume(db.session, "ai", "finance", ADMIN)
    db.session.commit()
    drain(redis_conn, "default", "ai")
    assert status_of(case_id) == Status.RECEIVED


def test_the_sweep_is_the_safety_net_when_the_resume_could_not_enqueue(upstream, redis_conn):
    services.pause(db.session, "ai", None, "Incident", ADMIN)
    db.session.commit()
    case_id = post(upstream)
    drain(redis_conn, "ai")
    services.resume(db.session, "ai", None, ADMIN)
    db.session.commit()
    redis_conn.flushdb()  # Redis lost the release job
    assert requeue_stuck_cases() == 1
    drain(redis_conn, "ai")
    assert status_of(case_id) == Status.PENDING_REVIEW


def test_paused_executions_leave_the_case_approved_and_resuming_delivers_once(upstream, people, receiver,
                                                                              redis_conn):
    services.pause(db.session, "executions", "finance", "Upstream ledger migration", ADMIN)
    db.session.commit()
    finance = approved(upstream, people, receiver)
    legal = approved(upstream, people, receiver, "contract_review")
    assert execute_case(finance) == "paused"
    drain(redis_conn, "execute")
    assert (status_of(finance), status_of(legal)) == (Status.APPROVED, Status.EXECUTED)
    assert retry_due_executions() == 0
    assert [d["case"]["id"] for d in receiver.processed.values()] == [legal]

    services.resume(db.session, "executions", "finance", ADMIN)
    db.session.commit()
    drain(redis_conn, "default", "execute")
    assert status_of(finance) == Status.EXECUTED
    assert retry_due_executions() == 0
    drain(redis_conn, "default", "execute")
    assert sorted(d["case"]["id"] for d in receiver.processed.values()) == sorted([finance, legal])
    assert len(receiver.deliveries) == 2
    assert (count("case.execution_started", finance), count("case.executed", finance)) == (1, 1)


# --- services refuse bad input before changing anything ----------------------------------------------------


@pytest.mark.parametrize(("what", "queue", "reason", "error", "field"), [
    ("ai", None, "", Invalid, "reason"),
    ("models", None, "why", Invalid, "what"),
    ("executions", "nowhere", "why", NotFound, "queue"),
])
def test_service_refusals_name_the_field(queues, what, queue, reason, error, field):
    with pytest.raises(error) as refused:
        services.pause(db.session, what, queue, reason, ADMIN)
    assert field in refused.value.by_field
    assert db.session.scalar(select(func.count()).select_from(Pause)) == 0


@pytest.mark.parametrize(("queue", "where"), [(None, "every queue"), ("finance", "queue finance")])
def test_two_admins_pausing_the_same_at_once_make_one_pause(queues, monkeypatch, queue, where):
    services.pause(db.session, "ai", queue, "First", ADMIN)
    db.session.commit()
    monkeypatch.setattr(services, "_pause_of", lambda *args: None)  # the second read before the first committed
    with pytest.raises(Conflict, match=f"AI analysis was paused for {where} meanwhile"):
        services.pause(db.session, "ai", queue, "Second", ADMIN)
    db.session.commit()
    assert [p.reason for p in db.session.scalars(select(Pause))] == ["First"]
    assert len(toggles()) == 1


def test_resuming_what_is_not_paused_is_a_conflict(queues):
    with pytest.raises(Conflict):
        services.resume(db.session, "ai", None, ADMIN)


# --- the page, the banner, readiness and metrics ---------------------------------------------------------------


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def test_admin_pauses_and_resumes_from_the_page_and_every_page_shows_the_banner(client, people):
    sign_in(client, people.admin)
    page = client.get("/admin/controls").get_data(as_text=True)
    assert 'id="switch-ai"' in page and "running" in page
    answer = client.post("/admin/controls/pause", data={"csrf_token": csrf(page), "what": "executions",
                                                         "queue": "finance", "reason": "Ledger <migration>"})
    assert answer.status_code == 302

    for user, path in ((people.reviewer, "/queues"), (people.auditor, "/audit"), (people.admin, "/admin")):
        sign_in(client, user)
        shown = client.get(path).get_data(as_text=True)
        banner = re.search(r'<section class="kill-banner".*?</section>', shown, re.S).group(0)
        assert "Executions paused</strong> for queue finance by admin@example.com" in banner
        assert "<q>Ledger &lt;migration&gt;</q>" in banner
        assert re.search(r"since \d{4}-\d\d-\d\d \d\d:\d\d UTC", banner)
        assert ("/admin/controls" in banner) == (user is not people.reviewer)
    sign_in(client, None)
    assert "kill-banner" not in client.get("/login").get_data(as_text=True)

    sign_in(client, people.admin)
    page = client.get("/admin/controls").get_data(as_text=True)
    answer = client.post("/admin/controls/resume", data={"csrf_token": csrf(page), "what": "executions",
                                                          "queue": "finance", "reason": "Done"})
    assert answer.status_code == 302
    page = client.get("/admin/controls").get_data(as_text=True)
    assert "kill-banner" not in page
    assert "Executions resumed for queue finance" in page
    history = re.search(r'<table class="data compact" id="history">.*?</table>', page, re.S).group(0)
    rows = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
            for row in re.findall(r"<tr>.*?</tr>", history, re.S)[1:]]
    assert [row.split(" UTC ", 1)[1] for row in rows] == [
        "Executions resumed queue finance admin@example.com Done",
        "Executions paused queue finance admin@example.com Ledger &lt;migration&gt;"]
    assert [(e.action, e.actor, e.data["by"]) for e in toggles()] == [
        ("control.paused", f"user:{people.admin.id}", "admin@example.com"),
        ("control.resumed", f"user:{people.admin.id}", "admin@example.com")]


@pytest.mark.parametrize(("form", "status", "message"), [
    ({"what": "ai", "queue": "", "reason": ""}, 422, "This field is required."),
    ({"what": "ai", "queue": "", "reason": "   "}, 422, "required"),
    ({"what": "ai", "queue": "nowhere", "reason": "why"}, 422, "Not a valid choice."),
    ({"what": "everything", "queue": "", "reason": "why"}, 422, "Not a valid choice."),
])
def test_a_refused_pause_form_says_why_and_changes_nothing(client, people, form, status, message):
    sign_in(client, people.admin)
    page = client.get("/admin/controls").get_data(as_text=True)
    answer = client.post("/admin/controls/pause", data={"csrf_token": csrf(page), **form})
    assert answer.status_code == status
    assert f'<p class="field-error" role="alert">{message}</p>' in answer.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Pause)) == 0
    assert toggles() == []


def test_pausing_twice_from_the_page_is_a_conflict_shown_on_the_page(client, people):
    services.pause(db.session, "ai", None, "Already", ADMIN)
    db.session.commit()
    sign_in(client, people.admin)
    page = client.get("/admin/controls").get_data(as_text=True)
    answer = client.post("/admin/controls/pause", data={"csrf_token": csrf(page), "what": "ai", "queue": "",
                                                         "reason": "Again"})
    assert answer.status_code == 409
    assert "AI analysis is already paused for every queue" in answer.get_data(as_text=True)
    assert len(toggles()) == 1


def test_resuming_what_is_not_paused_from_the_page_is_a_message(client, people):
    sign_in(client, people.admin)
    page = client.get("/admin/controls").get_data(as_text=True)
    answer = client.post("/admin/controls/resume", data={"csrf_token": csrf(page), "what": "ai", "queue": ""},
                         follow_redirects=True)
    assert "AI analysis is not paused for every queue." in answer.get_data(as_text=True)
    assert toggles() == []


def test_readers_see_the_switch_without_its_forms(client, people):
    services.pause(db.session, "ai", "legal", "Contract model retraining", ADMIN)
    db.session.commit()
    for reader in (people.auditor, people.senior):
        sign_in(client, reader)
        page = client.get("/admin/controls").get_data(as_text=True)
        assert "Contract model retraining" in page
        assert "/admin/controls/pause" not in page and "/admin/controls/resume" not in page
        assert "only admins pause and resume" in page


def test_readyz_lists_the_pauses_and_stays_ready(client, queues, people, redis_conn):
    worker = SimpleWorker(["ai"], connection=redis_conn)
    worker.register_birth()
    try:
        assert client.get("/readyz").get_json()["paused"] == []
        services.pause(db.session, "executions", "legal", "Audit", ADMIN)
        db.session.commit()
        response = client.get("/readyz")
    finally:
        worker.register_death()
    assert response.status_code == 200
    [paused] = response.get_json()["paused"]
    assert (paused["what"], paused["queue"], paused["paused_by"], paused["reason"]) == (
        "executions", "legal", "cli", "Audit")
    assert response.get_json()["ready"] is True


def test_metrics_show_the_paused_state(client, queues):
    services.pause(db.session, "ai", None, "All", ADMIN)
    services.pause(db.session, "executions", "legal", "Legal", ADMIN)
    db.session.commit()
    text = client.get("/metrics").get_data(as_text=True)
    assert 'countersign_paused{queue="",what="ai"} 1.0' in text
    assert 'countersign_paused{queue="finance",what="ai"} 0.0' in text
    assert 'countersign_paused{queue="",what="executions"} 0.0' in text
    assert 'countersign_paused{queue="legal",what="executions"} 1.0' in text
