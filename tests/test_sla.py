"""The SLA engine: business time (weekends, holidays, time zones, daylight saving), the pause,
the 50 / 75 / 100 % steps on a controllable clock, breach escalation, and sweeps racing."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app import jobs as app_jobs
from app.actors import Actor
from app.audit.models import AuditEvent
from app.cases.models import Case, Priority, Status
from app.escalation import jobs, sla
from app.escalation.sla import BusinessHours, Outcome, add_business, business_minutes
from app.extensions import db
from tests.conftest import case_body
from tests.escalation_helpers import T0, add_rule, events, fresh, minutes, notes, on_clock
from tests.review_helpers import claim, decide, make_case

pytest_plugins = ["tests.escalation_fixtures"]

LONDON = BusinessHours(timezone="Europe/London", days=frozenset({0, 1, 2, 3, 4}), start="09:00", end="17:00",
                       holidays=frozenset({"2026-04-06"}))  # Easter Monday
NEW_YORK = BusinessHours(timezone="America/New_York", days=frozenset({0, 1, 2, 3, 4}), start="09:00", end="17:00")


def local(zone: str, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def sweep(now: datetime, session: Session | None = None) -> sla.SweepReport:
    session = session or db.session
    return sla.sweep(session, now, session.commit)


# --- business time ------------------------------------------------------------------------------------


BUSINESS_TIME = [
    # (hours, start, minutes, due): Friday afternoon runs over the weekend
    (LONDON, local("Europe/London", 2026, 3, 13, 16), 120, local("Europe/London", 2026, 3, 16, 10)),
    # before opening: the clock starts at 09:00
    (LONDON, local("Europe/London", 2026, 3, 16, 6), 30, local("Europe/London", 2026, 3, 16, 9, 30)),
    # a holiday is skipped: Friday 3 April 16:30, then the weekend and Easter Monday → Tuesday 7 April
    (LONDON, local("Europe/London", 2026, 4, 3, 16, 30), 60, local("Europe/London", 2026, 4, 7, 9, 30)),
    # over the change to summer time (29 March 2026): 09:00 London is 09:00 UTC, then 08:00 UTC
    (LONDON, local("Europe/London", 2026, 3, 27, 16), 120, datetime(2026, 3, 30, 9, 0, tzinfo=UTC)),
    # another time zone: 16:00 UTC is 12:00 in New York (summer time)
    (NEW_YORK, datetime(2026, 6, 1, 16, 0, tzinfo=UTC), 420, local("America/New_York", 2026, 6, 2, 11)),
    # round the clock
    (None, T0, 90, T0 + timedelta(minutes=90)),
]


@pytest.mark.parametrize(("hours", "start", "span", "due"), BUSINESS_TIME)
def test_due_times_are_counted_in_business_time(hours, start, span, due):
    assert add_business(start, span, hours) == due
    assert business_minutes(start, due, hours) == pytest.approx(span)


def test_time_outside_business_hours_does_not_count():
    saturday = local("Europe/London", 2026, 3, 14, 12)
    assert business_minutes(saturday, saturday + timedelta(hours=20), LONDON) == 0
    assert sla.remaining(saturday, saturday + timedelta(days=2), LONDON) == -180  # overdue by Monday 09:00-12:00


@pytest.mark.parametrize(("raw", "message"), [
    ({"timezone": "Mars/Olympus", "days": [0], "start": "09:00", "end": "17:00"}, "unknown time zone 'Mars/Olympus'"),
    ({"timezone": "UTC", "days": [], "start": "09:00", "end": "17:00"}, "at least 1 item"),
    ({"timezone": "UTC", "days": [7], "start": "09:00", "end": "17:00"}, "less than or equal to 6"),
    ({"timezone": "UTC", "days": [0], "start": "17:00", "end": "09:00"}, "end must be after start"),
    ({"timezone": "UTC", "days": [0], "start": "09:00", "end": "17:00", "lunch": "12:00"}, "Extra inputs"),
])
def test_invalid_business_hours_are_refused(raw, message):
    with pytest.raises(ValidationError, match=message):
        BusinessHours.model_validate(raw)


def test_misconfigured_hours_run_the_clock_round_the_clock(queues):
    queues["finance"].business_hours = {"timezone": "UTC", "days": [], "start": "09:00", "end": "17:00"}
    assert sla.hours_of(queues["finance"]) is None


def test_intake_starts_the_clock_in_the_queues_business_time(upstream, queues):
    queues["finance"].business_hours = LONDON.model_dump(mode="json")
    db.session.commit()
    case = db.session.get(Case, upstream.post_case(case_body()).get_json()["id"])
    assert case.sla_due_at == add_business(case.created_at, 60, LONDON)
    assert case.sla_window_minutes == 60
    assert case.sla_next_at == sla.step_at(case.sla_due_at, 60, 50, LONDON)


# --- the pause ----------------------------------------------------------------------------------------


def test_the_clock_stops_while_information_is_awaited(upstream, people, leads):
    case = claim(people.reviewer, on_clock(make_case(upstream), created=T0, due=minutes(60)))
    decide(people.reviewer, case, "request_info")
    assert fresh(case).sla_paused_at is not None and fresh(case).sla_next_at is None  # the pause stops the steps
    case = on_clock(fresh(case), created=T0, due=minutes(60), sla_paused_at=minutes(20))
    assert case.sla_next_at is None
    assert sweep(minutes(500)) == sla.SweepReport()  # paused: no step, however late
    sla.resume_sla(case, minutes(200))
    assert case.sla_paused_at is None and case.sla_due_at == minutes(240)  # the 40 minutes left are left again


def test_a_pause_counts_only_business_time(queues):
    queues["finance"].business_hours = LONDON.model_dump(mode="json")
    case = Case(queue=queues["finance"], sla_paused_at=local("Europe/London", 2026, 3, 13, 16, 30),
                sla_due_at=local("Europe/London", 2026, 3, 16, 9, 30))  # 60 business minutes left on Friday
    sla.resume_sla(case, local("Europe/London", 2026, 3, 17, 9))
    assert case.sla_due_at == local("Europe/London", 2026, 3, 17, 10)


def test_an_overdue_case_resumes_overdue(queues):
    case = Case(queue=queues["finance"], sla_paused_at=minutes(90), sla_due_at=minutes(60))
    sla.resume_sla(case, minutes(300))
    assert case.sla_due_at == minutes(300)


# --- the steps ----------------------------------------------------------------------------------------


@pytest.fixture
def claimed(upstream, people, leads) -> Case:
    """A finance case (SLA 60 min) claimed by the reviewer, created at T0 and due at T0 + 60 min."""
    return claim(people.reviewer, on_clock(make_case(upstream), created=T0, due=minutes(60)))


def test_the_assignee_then_the_lead_are_warned_then_the_case_is_escalated(claimed, people, leads, senior_queue):
    assert sweep(minutes(29)) == sla.SweepReport()
    assert sweep(minutes(30)).warned == 1
    assert [n.user_id for n in notes(kind="sla_warning")] == [people.reviewer.id]
    assert fresh(claimed).sla_notified_pct == 50
    assert sweep(minutes(40)) == sla.SweepReport()
    assert sweep(minutes(45)).warned == 1
    assert {n.user_id for n in notes(kind="sla_warning")[1:]} == {people.reviewer.id, leads.finance.id}
    assert [e.data["step"] for e in events(claimed, "case.sla_warning")] == [50, 75]

    assert sweep(minutes(60)).breached == 1
    case = fresh(claimed)
    assert (case.queue_id, case.status, case.assignee_id) == (senior_queue.id, Status.PENDING_REVIEW, None)
    assert case.priority == Priority.HIGH
    assert (case.sla_due_at, case.sla_notified_pct) == (minutes(90), 0)  # finance-senior's 30 minutes, from now
    assert {n.user_id for n in notes(kind="sla_breach")} == {people.reviewer.id, leads.finance.id}
    assert [n.user_id for n in notes(kind="escalation")] == [leads.senior.id]
    [escalated] = events(case, "case.escalated")
    assert escalated.actor == "system:sla" and escalated.data["to_queue"] == "finance-senior"
    [breached] = events(case, "case.sla_breached")
    assert breached.data[sla.WINDOW_KEY] == 30 and breached.data["priority"] == "high"
    assert sweep(minutes(61)) == sla.SweepReport()


def test_the_sweep_says_in_words_when_it_escalates_a_case(claimed, senior_queue, caplog):
    caplog.set_level("INFO", logger="app.escalation.sla")
    sweep(minutes(45))
    assert "SLA:" not in caplog.text  # warnings are notifications, not log lines
    sweep(minutes(60))
    assert (f"SLA: case {claimed.id} breached its 1 h 00 min SLA in queue finance; escalated to finance-senior, "
            "priority high") in caplog.messages


def test_the_sweep_says_when_a_breached_case_has_nowhere_to_go(upstream, people, queues, caplog):
    caplog.set_level("INFO", logger="app.escalation.sla")
    case = on_clock(make_case(upstream, "contract_review"), created=T0, due=minutes(60))  # legal: no target
    sweep(minutes(61))
    assert (f"SLA: case {case.id} breached its 1 h 00 min SLA in queue legal; it stays in legal, priority high"
            in caplog.messages)


def test_a_late_sweep_sends_only_the_highest_warning(claimed):
    assert sweep(minutes(50)).warned == 1
    assert [e.data["step"] for e in events(claimed, "case.sla_warning")] == [75]


def test_without_an_escalation_target_the_case_stays_and_is_raised(upstream, people, queues):
    case = on_clock(make_case(upstream, "contract_review"), created=T0, due=minutes(60))  # legal: no target
    assert sweep(minutes(61)).breached == 1
    case = fresh(case)
    assert (case.queue_id, case.priority, case.sla_notified_pct) == (queues["legal"].id, Priority.HIGH, 100)
    assert events(case, "case.escalated") == []
    assert sweep(minutes(120)) == sla.SweepReport()


def test_a_case_awaiting_its_second_approval_is_not_moved(claimed, people, senior_queue):
    db.session.execute(update(Case).where(Case.id == claimed.id).values(requires_dual_approval=True))
    db.session.commit()
    decide(people.reviewer, fresh(claimed), "approve")
    assert fresh(claimed).status == Status.AWAITING_SECOND_APPROVAL
    assert sweep(minutes(61)).breached == 1
    assert fresh(claimed).queue_id != senior_queue.id and fresh(claimed).priority == Priority.HIGH


def test_an_ai_failed_case_is_escalated_without_a_recommendation(upstream, people, senior_queue):
    case = on_clock(make_case(upstream, recommendation=None), created=T0, due=minutes(60))
    sweep(minutes(60))
    assert (fresh(case).status, fresh(case).queue_id) == (Status.AI_FAILED, senior_queue.id)


def test_a_rule_given_window_sets_the_pace_of_the_warnings(upstream, people, leads):
    case = on_clock(make_case(upstream), created=T0, due=minutes(60))
    add_rule("slower", {"domain": "finance"}, [{"set_sla": {"minutes": 240}}])
    from app.escalation import services

    services.apply_rules(db.session, case, "sweep", now=T0)
    db.session.commit()
    assert fresh(case).sla_due_at == minutes(240)
    assert sweep(minutes(119)) == sla.SweepReport()  # 50 % of the queue's 60 minutes means nothing here
    assert sweep(minutes(120)).warned == 1
    assert sweep(minutes(180)).warned == 1
    assert [e.data["step"] for e in events(case, "case.sla_warning")] == [50, 75]


def test_a_sweep_reads_only_the_cases_whose_next_step_is_due(claimed, upstream, monkeypatch):
    later = on_clock(make_case(upstream), created=T0, due=minutes(600))  # 50 % of its 60 minutes at 570
    assert (fresh(claimed).sla_next_at, later.sla_next_at) == (minutes(30), minutes(570))
    settled: list[int] = []
    real = sla._settle

    def spy(session, case, now, commit, report):
        settled.append(case.id)
        return real(session, case, now, commit, report)

    monkeypatch.setattr(sla, "_settle", spy)
    assert sweep(minutes(29)) == sla.SweepReport() and settled == []
    assert sweep(minutes(30)).warned == 1 and settled == [claimed.id]
    assert fresh(claimed).sla_next_at == minutes(45)  # then 75 %
    settled.clear()
    assert sweep(minutes(40)) == sla.SweepReport() and settled == []


def test_the_next_step_is_kept_by_every_writer(claimed, people, senior_queue):
    assert (claimed.sla_window_minutes, claimed.sla_next_at) == (60, minutes(30))
    sweep(minutes(30))
    assert fresh(claimed).sla_next_at == minutes(45)
    sweep(minutes(45))
    assert fresh(claimed).sla_next_at == minutes(60)  # the breach
    sweep(minutes(60))
    case = fresh(claimed)  # escalated: finance-senior's 30 minutes, from now
    assert (case.queue_id, case.sla_window_minutes, case.sla_next_at) == (senior_queue.id, 30, minutes(75))
    claim(people.senior, case)
    decide(people.senior, fresh(case), "reject")
    assert fresh(case).sla_next_at is None  # decided: the clock stopped with the move


def test_a_business_hours_step_is_due_when_the_clock_reaches_it(upstream, people, queues):
    queues["finance"].business_hours = LONDON.model_dump(mode="json")
    db.session.commit()
    friday = local("Europe/London", 2026, 3, 13, 16)
    case = on_clock(make_case(upstream), created=friday, due=add_business(friday, 120, LONDON),
                    sla_window_minutes=120)
    assert case.sla_due_at == local("Europe/London", 2026, 3, 16, 10)
    # 60 business minutes are left from Friday's close on: the weekend costs nothing
    assert case.sla_next_at == local("Europe/London", 2026, 3, 13, 17)
    assert sweep(case.sla_next_at - timedelta(seconds=1)) == sla.SweepReport()
    assert sweep(case.sla_next_at).warned == 1
    assert fresh(case).sla_next_at == local("Europe/London", 2026, 3, 16, 9, 30)  # 75 %: 30 minutes left
    assert sweep(local("Europe/London", 2026, 3, 14, 12)) == sla.SweepReport()  # Saturday
    assert sweep(local("Europe/London", 2026, 3, 16, 9, 30)).warned == 1
    assert fresh(case).sla_next_at == case.sla_due_at


def test_a_rule_edit_cannot_make_the_warnings_of_a_given_window_be_missed(upstream, people, leads):
    """The window a rule gave a case is the case's own: editing (or disabling) the rule afterwards
    changes nothing for the case, whose 50 / 75 % warnings come at its own pace."""
    case = claim(people.reviewer, on_clock(make_case(upstream), created=T0, due=minutes(60)))
    rule = add_rule("slower", {"domain": "finance"}, [{"set_sla": {"minutes": 240}}])
    from app.escalation import rules, services

    services.apply_rules(db.session, case, "sweep", now=T0)
    db.session.commit()
    assert (fresh(case).sla_window_minutes, fresh(case).sla_due_at) == (240, minutes(240))
    edited = rules.validate(services.document_of(rule) | {"conditions": {"domain": "legal"},
                                                          "actions": [{"set_sla": {"minutes": 480}}]})
    assert services.update_rule(db.session, rule, edited, Actor.system("test"))  # no rule gives 240 any more
    db.session.commit()
    assert sweep(minutes(119)) == sla.SweepReport()
    assert sweep(minutes(120)).warned == 1
    assert sweep(minutes(180)).warned == 1
    assert [e.data["step"] for e in events(case, "case.sla_warning")] == [50, 75]
    assert sweep(minutes(240)).breached == 1


def test_a_stale_next_step_is_repaired_by_the_sweep(claimed):
    # A write that bypassed the lifecycle: the case is decided, its sla_next_at still due.
    db.session.execute(update(Case).where(Case.id == claimed.id).values(status=Status.REJECTED.value))
    db.session.commit()
    assert fresh(claimed).sla_next_at == minutes(30)
    assert sweep(minutes(30)) == sla.SweepReport()
    assert fresh(claimed).sla_next_at is None and notes(kind="sla_warning") == []


# --- racing sweeps ------------------------------------------------------------------------------------


def test_a_step_taken_meanwhile_by_another_session_is_not_taken_again(claimed, app):
    mine = db.session.get(Case, claimed.id)
    with Session(db.engine) as other:
        assert sla.check_case(other, other.get(Case, claimed.id), minutes(30)) is Outcome.WARNED
        other.commit()
    assert sla.check_case(db.session, mine, minutes(30)) is Outcome.CONTENDED  # compare-and-set refused
    db.session.rollback()
    assert sla.check_case(db.session, fresh(claimed), minutes(30)) is Outcome.NONE
    assert len(notes(kind="sla_warning")) == 1


def test_two_sweeps_at_once_never_notify_or_escalate_twice(app, upstream, people, leads):
    warned = [claim(people.reviewer, on_clock(make_case(upstream), created=T0, due=minutes(90))) for _ in range(6)]
    breached = [on_clock(make_case(upstream), created=T0, due=minutes(60)) for _ in range(6)]
    barrier, errors, reports = threading.Barrier(2), [], []

    def run() -> None:
        with app.app_context(), Session(db.engine) as session:
            barrier.wait()
            try:
                reports.append(sweep(minutes(60), session=session))
            except Exception as exc:  # reported below
                errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    [t.start() for t in threads]
    [t.join(120) for t in threads]
    assert errors == []
    assert sum(r.warned for r in reports) == len(warned) and sum(r.breached for r in reports) == len(breached)
    count = db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "case.escalated"))
    assert count == len(breached)
    assert len(notes(kind="escalation")) == len(breached)
    assert len(notes(kind="sla_warning")) == len(warned)  # 50 %, to the assignee, once each


# --- the periodic job ---------------------------------------------------------------------------------


def test_the_job_reads_what_is_due_from_the_database_and_skips_while_another_run_holds_the_lock(claimed,
                                                                                               redis_conn):
    report = jobs.sla_sweep()
    assert report == {"warned": 0, "breached": 1, "left_for_next_run": 0}  # T0 is long past
    assert not redis_conn.exists(f"{jobs.KEY_PREFIX}:marks:sla-sweep")  # no marks: sla_next_at says what is due
    assert jobs.sla_sweep() == {"warned": 0, "breached": 0, "left_for_next_run": 0}
    lock = redis_conn.lock(f"{app_jobs.SWEEP_LOCK_PREFIX}:sla-sweep", timeout=30)
    assert lock.acquire(blocking=False)
    try:
        assert jobs.sla_sweep() == {"skipped": "another run holds the lock"}
        assert jobs.rules_sweep() == {"evaluated": 0, "fired": 0}  # another lock
    finally:
        lock.release()


@dataclass
class _Done:
    done: bool = True


def test_a_sweep_keeps_its_lock_while_it_runs_however_short_the_lock_lives(app, redis_conn):
    """The lock lives SWEEP_LOCK_SECONDS, so a worker killed mid-sweep holds the next runs off that
    long at most; a live sweep renews it, so no second run starts beside a long one."""
    app.config["SWEEP_LOCK_SECONDS"] = 1
    beside: list[dict] = []

    def long_sweep(_redis):
        time.sleep(2.5)  # the lock would have expired twice over
        beside.append(app_jobs.run_exclusive("long-sweep", lambda _: pytest.fail("a second run started")))
        return _Done()

    assert app_jobs.run_exclusive("long-sweep", long_sweep) == {"done": True}
    assert beside == [{"skipped": "another run holds the lock"}]
    assert not redis_conn.exists(f"{app_jobs.SWEEP_LOCK_PREFIX}:long-sweep")  # released at the end
