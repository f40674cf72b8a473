"""The rules of the reviewer workspace: every decision path and every refusal."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.cases import permissions, policy
from app.cases.models import Case, Decision, Priority, Queue, Status
from app.db import utcnow
from app.errors import ConfirmationRequired, Conflict, Forbidden, Invalid, NotFound
from app.extensions import db
from app.notifications.models import InAppNotification as Notification
from app.review import reason_codes, services
from app.review.jobs import release_expired_claims as release_expired_claims_job
from tests.review_helpers import claim, command, decide, last_event, make_case

pytest_plugins = ["tests.review_fixtures"]

BIG_PAYMENT = {"amount": "150000.00"}


def decisions_of(case: Case) -> list[Decision]:
    return policy.decisions_of(db.session, case)


def refused(user, case, kind, error, match, **fields):
    with pytest.raises(error, match=match):
        services.decide(db.session, user, case.id, command(case, kind, **fields))
    db.session.rollback()


# --- seeing ----------------------------------------------------------------------------------------


def test_visible_queues_follow_the_role(people, queues, senior_queue):
    def names(user):
        return [q.name for q in permissions.visible_queues(db.session, user)]

    assert names(people.reviewer) == ["compliance", "finance", "legal"]
    assert names(people.senior) == ["compliance", "finance", "finance-senior", "legal"]
    assert names(people.outsider) == ["legal"]
    assert names(people.admin) == names(people.auditor) == ["compliance", "finance", "finance-senior", "legal"]


def test_queue_lead_sees_the_queue_they_lead(people, queues):
    queues["finance"].lead_id = people.outsider.id
    db.session.commit()
    assert "finance" in [q.name for q in permissions.visible_queues(db.session, people.outsider)]


def test_reviewer_typing_another_queues_case_gets_not_found(upstream, people):
    case = make_case(upstream)
    for intent in permissions.INTENTS:
        with pytest.raises(NotFound, match=f"case {case.id} not found"):
            permissions.get_case_for(db.session, people.outsider, case.id, intent)
    with pytest.raises(NotFound):
        permissions.get_case_for(db.session, people.reviewer, 999_999, "view")


@pytest.mark.parametrize(("role", "intent", "allowed"), [
    ("reviewer", "view", True), ("reviewer", "claim", True), ("reviewer", "decide", True),
    ("reviewer", "assign", False), ("reviewer", "retry_analysis", True),
    ("senior_reviewer", "assign", True), ("senior_reviewer", "decide", True),
    ("admin", "view", True), ("admin", "claim", False), ("admin", "decide", False), ("admin", "assign", True),
    ("admin", "retry_analysis", True),
    ("auditor", "view", True), ("auditor", "claim", False), ("auditor", "decide", False),
    ("auditor", "assign", False), ("auditor", "retry_analysis", False),
    ("auditor", "audit", True), ("admin", "audit", True), ("reviewer", "audit", False),
    ("senior_reviewer", "audit", False),
])
def test_get_case_for_checks_the_role_for_each_intent(upstream, people, role, intent, allowed):
    case = make_case(upstream)
    user = people.by_role(role)
    if allowed:
        assert permissions.get_case_for(db.session, user, case.id, intent) is case
    else:
        with pytest.raises(Forbidden, match=f"role {role} may not "):
            permissions.get_case_for(db.session, user, case.id, intent)


def test_unknown_intent_is_a_programming_error(upstream, people):
    case = make_case(upstream)
    with pytest.raises(ValueError, match="unknown intent 'steal'"):
        permissions.get_case_for(db.session, people.reviewer, case.id, "steal")


# --- claiming ----------------------------------------------------------------------------------------


def test_claim_and_release_are_audited(upstream, people):
    case = make_case(upstream)
    version = case.version
    claim(people.reviewer, case)
    assert case.version == version + 1  # one versioned UPDATE per move
    assert (case.status, case.assignee_id) == (Status.IN_REVIEW, people.reviewer.id)
    assert case.claim_expires_at > utcnow() + timedelta(minutes=29)
    assert last_event(case).action == "case.claimed"
    assert claim(people.reviewer, case) is case  # claiming your own claim again changes nothing
    services.release(db.session, people.reviewer, case.id)
    db.session.commit()
    assert (case.status, case.assignee_id, case.claim_expires_at) == (Status.PENDING_REVIEW, None, None)
    event = last_event(case)
    assert (event.action, event.data["assignee_id"]) == ("case.released", people.reviewer.id)


def test_a_claimed_case_cannot_be_claimed_or_released_by_another_reviewer(upstream, people):
    case = make_case(upstream)
    claim(people.reviewer, case)
    with pytest.raises(Conflict, match="already claimed by Reviewer") as caught:
        services.claim(db.session, people.reviewer2, case.id)
    assert caught.value.slug == "already-claimed"
    with pytest.raises(Forbidden, match="only the reviewer who claimed"):
        services.release(db.session, people.reviewer2, case.id)
    services.release(db.session, people.senior, case.id)  # a senior frees a stuck claim
    db.session.commit()
    assert case.status == Status.PENDING_REVIEW


def test_decided_case_cannot_be_claimed(upstream, people):
    case = make_case(upstream)
    claim(people.reviewer, case)
    decide(people.reviewer, case, "approve")
    with pytest.raises(Conflict, match="this case is approved: it cannot be claimed"):
        services.claim(db.session, people.reviewer2, case.id)


def test_claim_next_takes_priority_then_sla_then_age(upstream, people, queues):
    low = make_case(upstream, priority="low")
    normal_late = make_case(upstream)
    normal_soon = make_case(upstream)
    urgent = make_case(upstream, priority="urgent")
    normal_same = make_case(upstream)
    normal_soon.sla_due_at = utcnow() + timedelta(minutes=5)
    normal_same.sla_due_at = normal_late.sla_due_at = utcnow() + timedelta(hours=2)
    db.session.commit()
    order = []
    while (case := services.claim_next(db.session, people.reviewer, queues["finance"].id)) is not None:
        db.session.commit()
        order.append(case.id)
    assert order == [urgent.id, normal_soon.id, normal_late.id, normal_same.id, low.id]
    assert Priority(urgent.priority) == Priority.URGENT
    assert last_event().action == "case.claimed" and last_event().data["next_in_queue"] == "finance"


def test_claim_next_skips_claimed_cases_and_other_queues(upstream, people, queues):
    taken = make_case(upstream, priority="urgent")
    claim(people.reviewer2, taken)
    make_case(upstream, "contract_review")  # legal queue
    waiting = make_case(upstream)
    assert services.claim_next(db.session, people.reviewer, queues["finance"].id) is waiting
    db.session.commit()
    assert services.claim_next(db.session, people.reviewer, queues["finance"].id) is None


def test_claim_next_needs_a_visible_queue_and_a_deciding_role(upstream, people, queues):
    with pytest.raises(NotFound):
        services.claim_next(db.session, people.outsider, queues["finance"].id)
    with pytest.raises(Forbidden):
        services.claim_next(db.session, people.auditor, queues["finance"].id)


def test_expired_claims_go_back_to_the_inbox(upstream, people):
    idle = make_case(upstream)
    fresh = make_case(upstream)
    failed = make_case(upstream, recommendation=None)
    for case in (idle, fresh, failed):
        claim(people.reviewer, case)
    assert services.release_expired_claims(db.session, utcnow() + timedelta(minutes=10)) == 0
    idle.claim_expires_at = failed.claim_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert services.release_expired_claims(db.session) == 2
    db.session.commit()
    assert (idle.status, idle.assignee_id) == (Status.PENDING_REVIEW, None)
    assert failed.status == Status.AI_FAILED
    assert fresh.status == Status.IN_REVIEW
    event = last_event(idle)
    assert (event.action, event.actor, event.data["reason"]) == ("case.released", "system:scheduler", "claim expired")


@pytest.mark.parametrize("config_overrides", [{"CLAIM_IDLE_MINUTES": 5}])
def test_claim_idle_minutes_is_configurable(upstream, people, config_overrides):
    case = claim(people.reviewer, make_case(upstream))
    assert case.claim_expires_at < utcnow() + timedelta(minutes=5, seconds=1)
    assert services.release_expired_claims(db.session, utcnow() + timedelta(minutes=6)) == 1


def test_senior_assigns_with_a_recorded_reason(upstream, people):
    case = make_case(upstream)
    version = case.version
    services.assign(db.session, people.senior, case.id, people.reviewer2.id, "  Speaks Lithuanian  ")
    db.session.commit()
    assert (case.status, case.assignee_id, case.version) == (Status.IN_REVIEW, people.reviewer2.id, version + 1)
    event = last_event(case)
    assert event.action == "case.assigned"
    assert (event.data["reason"], event.data["assignee_id"]) == ("Speaks Lithuanian", people.reviewer2.id)
    note = db.session.scalars(select(Notification).where(Notification.user_id == people.reviewer2.id)).one()
    assert note.kind == "assignment" and "Speaks Lithuanian" in note.message
    services.assign(db.session, people.admin, case.id, people.reviewer.id, "Rebalancing")  # reassignment
    db.session.commit()
    assert last_event(case).data["previous_assignee_id"] == people.reviewer2.id


def test_assign_refusals(upstream, people):
    case = make_case(upstream)
    with pytest.raises(Forbidden):
        services.assign(db.session, people.reviewer, case.id, people.reviewer2.id, "because")
    with pytest.raises(Invalid) as caught:
        services.assign(db.session, people.senior, case.id, people.reviewer2.id, "   ")
    assert caught.value.by_field == {"reason": "required"}
    for assignee in (people.outsider, people.auditor, people.admin):
        with pytest.raises(Invalid) as caught:
            services.assign(db.session, people.senior, case.id, assignee.id, "please")
        assert "assignee" in caught.value.by_field


def test_retry_analysis_moves_ai_failed_back_to_analyzing(upstream, people):
    case = make_case(upstream, recommendation=None)
    services.retry_analysis(db.session, people.reviewer, case.id)
    db.session.commit()
    assert case.status == Status.ANALYZING
    assert last_event(case).action == "case.analysis_retried"
    with pytest.raises(Conflict, match="cannot apply 'analysis_retried'"):
        services.retry_analysis(db.session, people.reviewer, make_case(upstream).id)
    with pytest.raises(Forbidden):
        services.retry_analysis(db.session, people.auditor, case.id)


# --- approving and editing ---------------------------------------------------------------------------


def test_approve_as_recommended_stores_an_immutable_record(upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    seen_version = case.version
    decision = decide(people.reviewer, case, "approve")
    assert (case.status, case.assignee_id, case.version) == (Status.APPROVED, None, seen_version + 1)
    assert (decision.kind, decision.action) == ("approve", "hold")
    assert decision.parameters == {"reason": "Possible sanctions match on the beneficiary"}
    assert decision.diff == {}
    assert decision.action_hash == policy.action_hash("hold", decision.parameters)
    assert (decision.recommendation_id, decision.case_version) == (case.recommendation_id, seen_version)
    event = last_event(case)
    assert event.action == "case.approved"
    assert (event.data["kind"], event.data["action_hash"]) == ("approve", decision.action_hash)


def test_stale_version_is_a_conflict(upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    stale = command(case, "approve", case_version=case.version - 1)
    with pytest.raises(Conflict, match="the case changed while you were looking at it: reload") as caught:
        services.decide(db.session, people.reviewer, case.id, stale)
    assert caught.value.slug == "stale-version"
    assert decisions_of(case) == []


def test_view_hash_mismatch_is_a_conflict(upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    refused(people.reviewer, case, "approve", Conflict, "reload", view_hash="0" * 64)
    refused(people.reviewer, case, "approve", Invalid, "view_hash is required", view_hash=None)
    # The hash binds the final action too: a hash of the recommendation does not approve an edit.
    refused(people.reviewer, case, "edit", Conflict, "reload", action="release", parameters={},
            view_hash=policy.view_hash(case, "hold", case.recommendation.parameters))
    assert case.status == Status.IN_REVIEW and decisions_of(case) == []


def test_only_the_assignee_decides(upstream, people):
    case = make_case(upstream)
    refused(people.reviewer, case, "approve", Conflict, "claim it first")
    claim(people.reviewer, case)
    for kind in ("approve", "reject", "escalate", "request_info"):
        refused(people.reviewer2, case, kind, Forbidden, "only the reviewer who claimed", target_queue="finance-senior")
    refused(people.reviewer2, case, "edit", Forbidden, "only the reviewer who claimed", action="release")


@pytest.mark.parametrize("role", ["auditor", "admin"])
def test_auditors_and_admins_never_decide(upstream, people, role):
    case = claim(people.reviewer, make_case(upstream))
    refused(people.by_role(role), case, "approve", Forbidden, f"{role} may not decide")


def test_approve_refuses_an_own_action(upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    refused(people.reviewer, case, "approve", Invalid, "use edit", action="release")


def test_edit_records_the_diff_and_the_reason(upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    decision = decide(people.reviewer, case, "edit", action="reject",
                      parameters={"reason": "Beneficiary account changed by e-mail"},
                      reason_code="customer_risk", reason="  Classic invoice fraud pattern.  ")
    assert case.status == Status.APPROVED
    assert decision.kind == "edit"
    assert (decision.action, decision.parameters) == ("reject", {"reason": "Beneficiary account changed by e-mail"})
    assert decision.diff == {
        "action": ["hold", "reject"],
        "parameters": {"reason": ["Possible sanctions match on the beneficiary",
                                  "Beneficiary account changed by e-mail"]},
    }
    assert (decision.reason_code, decision.reason) == ("customer_risk", "Classic invoice fraud pattern.")
    assert last_event(case).data["diff"] == decision.diff


def test_edit_normalises_parameters_through_the_schema(upstream, people):
    case = claim(people.reviewer, make_case(upstream, "credit_limit_change"))
    decision = decide(people.reviewer, case, "edit", action="counter_offer", parameters={"limit": "9000.00"})
    assert decision.diff == {"action": ["approve", "counter_offer"], "parameters": {"limit": ["12000.00", "9000.00"]}}


def test_edit_that_changes_nothing_is_refused(upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    refused(people.reviewer, case, "edit", Invalid, "changes nothing", action="hold",
            parameters={"reason": "Possible sanctions match on the beneficiary"})


def test_invalid_edited_parameters_give_field_errors(upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    with pytest.raises(Invalid, match="parameters of hold are invalid") as caught:
        services.decide(db.session, people.reviewer, case.id,
                        command(case, "edit", action="hold", parameters={"reason": "", "extra": 1}))
    assert set(caught.value.by_field) == {"parameters.reason", "parameters.extra"}
    with pytest.raises(Invalid) as caught:
        services.decide(db.session, people.reviewer, case.id, command(case, "edit", action="hold", parameters={}))
    assert caught.value.by_field == {"parameters.reason": "Field required"}


def test_unknown_or_missing_action_is_invalid(upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    with pytest.raises(Invalid, match="unknown action 'wire_it'") as caught:
        services.decide(db.session, people.reviewer, case.id, command(case, "edit", action="wire_it"))
    assert "release, hold, reject" in caught.value.by_field["action"]
    refused(people.reviewer, case, "edit", Invalid, "choose an action", action=None)


@pytest.mark.parametrize("kind", ["edit", "reject", "escalate", "request_info"])
@pytest.mark.parametrize(("reason_code", "reason", "missing"), [
    (None, "Explained.", {"reason_code"}),
    ("made_up", "Explained.", {"reason_code"}),
    ("other", "   ", {"reason"}),
    (None, None, {"reason_code", "reason"}),
])
def test_reason_code_and_text_are_required(upstream, people, kind, reason_code, reason, missing):
    case = claim(people.reviewer, make_case(upstream))
    with pytest.raises(Invalid, match="reason code and an explanation") as caught:
        services.decide(db.session, people.reviewer, case.id, command(
            case, kind, reason_code=reason_code, reason=reason, action="release", target_queue="finance-senior"))
    assert set(caught.value.by_field) == missing
    assert case.status == Status.IN_REVIEW


def test_approve_takes_an_optional_known_reason_code(upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    refused(people.reviewer, case, "approve", Invalid, "reason code", reason_code="made_up")
    assert decide(people.reviewer, case, "approve", reason_code="other", reason="Fine.").reason == "Fine."


def test_ai_failed_case_cannot_be_approved_but_can_be_edited(upstream, people):
    case = claim(people.reviewer, make_case(upstream, recommendation=None))
    assert case.recommendation is None
    refused(people.reviewer, case, "approve", Invalid, "no AI recommendation to approve")
    decision = decide(people.reviewer, case, "edit", action="release", parameters={})
    assert case.status == Status.APPROVED
    assert decision.recommendation_id is None
    assert decision.diff == {"action": [None, "release"]}


# --- reject, escalate, request information ------------------------------------------------------------


def test_reject_is_terminal(upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    decision = decide(people.reviewer, case, "reject", reason_code="policy_breach", reason="Sanctioned party.")
    assert case.status == Status.REJECTED
    assert (decision.kind, decision.action, decision.diff, decision.action_hash) == ("reject", None, {}, None)
    assert last_event(case).data["reason"] == "Sanctioned party."


def test_escalate_moves_the_case_to_the_target_queue(upstream, people, senior_queue):
    case = claim(people.reviewer, make_case(upstream))
    version = case.version
    decision = decide(people.reviewer, case, "escalate", target_queue="finance-senior",
                      reason_code="sanctions_concern", reason="Needs a senior eye.")
    assert (case.status, case.queue_id, case.assignee_id) == (Status.PENDING_REVIEW, senior_queue.id, None)
    assert case.version == version + 1
    assert decision.kind == "escalate"
    event = last_event(case)
    assert (event.action, event.data["from_queue"], event.data["to_queue"]) == ("case.escalated", "finance",
                                                                                "finance-senior")
    with pytest.raises(NotFound):  # the reviewer does not work the senior queue
        permissions.get_case_for(db.session, people.reviewer, case.id, "view")
    assert services.claim(db.session, people.senior, case.id).assignee_id == people.senior.id


@pytest.mark.parametrize(("target", "message"), [
    ("nowhere", "no queue named 'nowhere'"),
    (None, "required"),
    ("  ", "required"),
    ("finance", "the case's own queue"),
    ("legal", "not a finance queue"),
])
def test_escalate_needs_a_known_queue_of_the_domain(upstream, people, target, message):
    case = claim(people.reviewer, make_case(upstream))
    with pytest.raises(Invalid) as caught:
        services.decide(db.session, people.reviewer, case.id, command(case, "escalate", target_queue=target))
    assert caught.value.by_field == {"target_queue": message}


def test_request_info_pauses_the_sla_clock(upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    decision = decide(people.reviewer, case, "request_info", reason_code="needs_more_information",
                      reason="Send the invoice.")
    assert (case.status, case.assignee_id) == (Status.NEEDS_INFO, None)
    assert case.sla_paused_at is not None and case.sla_paused_at <= utcnow()
    assert decision.kind == "request_info"
    assert last_event(case).action == "case.info_requested"


# --- dual approval -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("case_type", "data", "action", "parameters", "required"), [
    ("payment_release", {"amount": "99999.99"}, "release", {}, False),
    ("payment_release", {"amount": "100000.00"}, "release", {}, True),
    ("payment_release", {"amount": "100000.00", "currency": "USD"}, "hold", {"reason": "x"}, True),
    ("payment_release", {"amount": "84999.00", "currency": "GBP"}, "release", {}, False),
    ("payment_release", {"amount": "85000.00", "currency": "GBP"}, "release", {}, True),
    ("payment_release", {"amount": "99000.00", "currency": "CHF"}, "release", {}, False),
    ("payment_release", {"amount": "100000.00", "currency": "CHF"}, "release", {}, True),
    ("credit_limit_change", {}, "approve", {"limit": "12000.00"}, False),
    ("credit_limit_change", {}, "approve", {"limit": "90000.00"}, True),  # an edit raising the limit
    ("aml_alert", {}, "file_sar", {"narrative": "x"}, True),
    ("aml_alert", {}, "open_investigation", {}, False),
    ("kyc_review", {}, "reject_onboarding", {"reason": "x"}, True),
    ("kyc_review", {}, "approve_onboarding", {}, False),
    ("contract_review", {}, "approve", {}, False),
])
def test_dual_approval_policy(upstream, people, case_type, data, action, parameters, required):
    case = make_case(upstream, case_type, data=data)
    expected = (True, "senior_reviewer") if required else (False, None)
    assert policy.dual_approval_required(case, action, parameters) == expected


def test_a_rule_can_demand_dual_approval_with_its_own_role(upstream, people):
    case = make_case(upstream)
    case.requires_dual_approval = True
    assert policy.dual_approval_required(case, "release") == (True, "senior_reviewer")
    case.second_approval_role = "auditor"
    assert policy.dual_approval_required(case, "release") == (True, "auditor")


def test_dual_approval_by_threshold(upstream, people):
    case = claim(people.reviewer, make_case(upstream, data=BIG_PAYMENT, recommendation=("release", {})))
    first = decide(people.reviewer, case, "approve")
    assert (case.status, case.assignee_id) == (Status.AWAITING_SECOND_APPROVAL, None)
    assert last_event(case).action == "case.first_approval"
    assert last_event(case).data["second_approval_role"] == "senior_reviewer"
    notified = set(db.session.scalars(
        select(Notification.user_id).where(Notification.kind == "second_approval_request")))
    assert notified == {people.senior.id, people.senior2.id}
    assert policy.pending_approval(db.session, case) is first
    second = decide(people.senior, case, "approve")
    assert case.status == Status.APPROVED
    assert second.kind == "second_approval"
    assert (second.action, second.action_hash) == (first.action, first.action_hash)
    event = last_event(case)
    assert (event.action, event.data["first_decision_id"]) == ("case.second_approval", first.id)


def test_dual_approval_by_sar_filing_after_an_edit(upstream, people):
    case = claim(people.reviewer, make_case(upstream, "aml_alert", recommendation=("open_investigation", {})))
    first = decide(people.reviewer, case, "edit", action="file_sar", parameters={"narrative": "Layering via AE."})
    assert case.status == Status.AWAITING_SECOND_APPROVAL
    # the second approver is shown, and approves, the edited action
    assert policy.proposed_action(db.session, case) == ("file_sar", {"narrative": "Layering via AE."})
    second = decide(people.senior, case, "approve")
    assert case.status == Status.APPROVED
    assert second.action_hash == first.action_hash
    assert second.diff == first.diff == {"action": ["open_investigation", "file_sar"],
                                         "parameters": {"narrative": [None, "Layering via AE."]}}


@pytest.fixture
def awaiting(upstream, people) -> Case:
    """A big payment the senior approved: awaiting a second approval."""
    case = claim(people.senior, make_case(upstream, data=BIG_PAYMENT, recommendation=("release", {})))
    decide(people.senior, case, "approve")
    return case


def test_the_first_approver_cannot_give_the_second_approval(awaiting, people):
    refused(people.senior, awaiting, "approve", Conflict, "separation of duties: the first approver")
    assert awaiting.status == Status.AWAITING_SECOND_APPROVAL


def test_the_editor_cannot_give_the_second_approval(upstream, people):
    case = claim(people.senior, make_case(upstream, data=BIG_PAYMENT))
    decide(people.senior, case, "edit", action="release", parameters={})
    refused(people.senior, case, "approve", Conflict, "separation of duties: whoever edited the action")


@pytest.mark.parametrize(("role", "match"), [("admin", "admin may not decide"),
                                             ("reviewer", "this needs a senior reviewer's second approval"),
                                             ("auditor", "auditor may not decide")])
def test_second_approval_needs_the_required_role(awaiting, people, role, match):
    refused(people.by_role(role), awaiting, "approve", Forbidden, match)


def test_second_approval_refuses_a_changed_action(awaiting, people):
    refused(people.senior2, awaiting, "edit", Conflict, "reject it to change it", action="hold",
            parameters={"reason": "x"})
    refused(people.senior2, awaiting, "approve", Invalid, "use edit", action="hold")
    stale_view = policy.view_hash(awaiting, "hold", {"reason": "x"})
    refused(people.senior2, awaiting, "approve", Conflict, "reload", view_hash=stale_view)


def test_a_qualified_second_reviewer_may_reject(awaiting, people):
    refused(people.senior, awaiting, "reject", Conflict, "separation of duties")
    refused(people.reviewer, awaiting, "reject", Forbidden, "needs a senior reviewer's second approval")
    decision = decide(people.senior2, awaiting, "reject", reason_code="customer_risk", reason="Not convinced.")
    assert awaiting.status == Status.REJECTED and decision.kind == "reject"


def test_two_step_approval_is_bound_to_the_version_seen(awaiting, people):
    old = command(awaiting, "approve")
    awaiting.priority = Priority.HIGH  # anything that bumps the version
    db.session.commit()
    with pytest.raises(Conflict, match="reload"):
        services.decide(db.session, people.senior2, awaiting.id, old)


# --- blind review ----------------------------------------------------------------------------------------


def test_blind_review_flow(upstream, people, queues):
    queues["finance"].blind_review = True
    db.session.commit()
    case = make_case(upstream)
    assert services.recommendation_hidden(db.session, people.reviewer, case)
    assert not services.recommendation_hidden(db.session, people.auditor, case)
    claim(people.reviewer, case)
    refused(people.reviewer, case, "approve", Conflict, "record your own assessment")
    refused(people.reviewer, case, "edit", Conflict, "record your own assessment", action="release")
    refused(people.reviewer, case, "blind", Invalid, "unknown action", action="pay_it")
    version = case.version
    blind = services.decide(db.session, people.reviewer, case.id, command(case, "blind", action="release"))
    db.session.commit()
    assert (blind.kind, blind.action, blind.diff) == ("blind_assessment", "release",
                                                      {"action": ["hold", "release"],
                                                       "parameters": {"reason": [
                                                           "Possible sanctions match on the beneficiary", None]}})
    assert (case.status, case.version) == (Status.IN_REVIEW, version)  # the case itself did not change
    assert last_event(case).action == "case.blind_assessment"
    assert services.has_blind_assessment(db.session, people.reviewer, case)
    assert not services.recommendation_hidden(db.session, people.reviewer, case)
    assert services.recommendation_hidden(db.session, people.reviewer2, case)
    refused(people.reviewer, case, "blind", Conflict, "already recorded", action="hold", parameters={"reason": "x"})
    assert decide(people.reviewer, case, "approve").kind == "approve"
    assert case.status == Status.APPROVED


def test_blind_assessment_only_on_blind_queues(upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    refused(people.reviewer, case, "blind", Conflict, "no hidden recommendation", action="release")


# --- helpers -------------------------------------------------------------------------------------------


def test_decision_diff():
    assert services.decision_diff(("hold", {"reason": "a"}), ("hold", {"reason": "a"})) == {}
    assert services.decision_diff(("approve", {"limit": "5"}), ("approve", {"limit": "4"})) == {
        "parameters": {"limit": ["5", "4"]}}
    assert services.decision_diff((None, {}), ("release", {})) == {"action": [None, "release"]}
    assert services.decision_diff(("hold", {"reason": "a"}), ("release", {})) == {
        "action": ["hold", "release"], "parameters": {"reason": ["a", None]}}


def test_view_hash_covers_version_recommendation_and_final_action(upstream, people):
    case = make_case(upstream)
    base = policy.view_hash(case, "release", {})
    assert base == policy.view_hash(case, "release", {})
    assert base != policy.view_hash(case, "hold", {})
    assert base != policy.view_hash(case, "release", {"x": 1})
    claim(people.reviewer, case)
    assert base != policy.view_hash(case, "release", {})


def test_a_fresh_install_offers_the_reason_codes_the_configuration_held_for_every_kind(app):
    expected = [("customer_risk", "Customer risk"), ("data_quality", "Data quality"),
                ("incorrect_ai_parameters", "Incorrect AI parameters"),
                ("insufficient_evidence", "Insufficient evidence"),
                ("needs_more_information", "Needs more information"), ("other", "Other"),
                ("policy_breach", "Policy breach"), ("sanctions_concern", "Sanctions concern")]
    for kind in ("approve", "edit", "reject", "escalate", "request_info", "blind"):
        assert reason_codes.offered(db.session, kind) == expected


def test_every_decision_kind_is_audited(upstream, people, senior_queue):
    before = db.session.scalar(select(func.count()).select_from(Decision))
    cases = [claim(people.reviewer, make_case(upstream)) for _ in range(5)]
    decide(people.reviewer, cases[0], "approve")
    decide(people.reviewer, cases[1], "edit", action="release", parameters={})
    decide(people.reviewer, cases[2], "reject")
    decide(people.reviewer, cases[3], "escalate", target_queue="finance-senior")
    decide(people.reviewer, cases[4], "request_info")
    actions = [last_event(case).action for case in cases]
    assert actions == ["case.approved", "case.approved", "case.rejected", "case.escalated", "case.info_requested"]
    assert [last_event(c).data["kind"] for c in cases] == ["approve", "edit", "reject", "escalate", "request_info"]
    assert db.session.scalar(select(func.count()).select_from(Decision)) == before + 5


def test_queue_for_finds_visible_queues_by_id_or_name(people, queues):
    assert permissions.queue_for(db.session, people.reviewer, "finance") is queues["finance"]
    assert permissions.queue_for(db.session, people.reviewer, queues["legal"].id) is queues["legal"]
    with pytest.raises(NotFound):
        permissions.queue_for(db.session, people.reviewer, "finance-senior")
    assert isinstance(permissions.queue_for(db.session, people.senior, "finance-senior"), Queue)


def test_amounts_are_decimals(upstream, people):
    case = make_case(upstream, data={"amount": "100000.0001"})
    assert case.amount == Decimal("100000.0001")
    assert policy.dual_approval_required(case, "release")[0]



def test_expired_claims_job_releases_and_commits(upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    case.claim_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert release_expired_claims_job() == 1
    db.session.expire_all()
    assert (case.status, case.assignee_id) == (Status.PENDING_REVIEW, None)
    assert release_expired_claims_job() == 0


# --- safe speed: a risky approval is made only once confirmed ---------------------------------------


@pytest.fixture
def confirm_rule(app, monkeypatch):
    monkeypatch.setitem(app.config, "REVIEW_CONFIRM_AMOUNT", Decimal("10000"))
    monkeypatch.setitem(app.config, "REVIEW_CONFIRM_CONFIDENCE", 0.7)


def test_a_large_payment_is_approved_only_once_confirmed(upstream, people, confirm_rule):
    case = claim(people.reviewer, make_case(upstream, recommendation=("release", {})))  # EUR 48,250.00
    with pytest.raises(ConfirmationRequired) as asked:
        services.decide(db.session, people.reviewer, case.id, command(case, "approve", confirmed=False))
    db.session.rollback()
    assert asked.value.reasons == ["it moves EUR 48,250.00"]
    db.session.expire_all()
    assert case.status == Status.IN_REVIEW and decisions_of(case) == []
    decide(people.reviewer, case, "approve", confirmed=True)
    assert case.status == Status.APPROVED


def test_low_confidence_and_hard_flags_ask_for_confirmation_a_small_sure_payment_does_not(upstream, people,
                                                                                          confirm_rule):
    case = claim(people.reviewer, make_case(upstream, data={"amount": "900.00"}, recommendation=("release", {})))
    assert services.confirmation_reasons(case, ("release", {})) == []  # confidence 0.8, no hard flags
    case.recommendation.confidence = 0.55
    case.recommendation.hard_flags = ["sanctioned_country"]
    assert services.confirmation_reasons(case, ("release", {})) == [
        "the AI is only 55% confident", "the pre-screen raised hard flags: sanctioned country involved"]
    db.session.rollback()
    decide(people.reviewer, db.session.get(Case, case.id), "approve", confirmed=False)  # as stored: no step
    assert db.session.get(Case, case.id).status == Status.APPROVED


def test_an_edit_is_confirmed_on_the_amount_it_sets(upstream, people, confirm_rule):
    case = claim(people.reviewer, make_case(upstream, "credit_limit_change", data={"requested_limit": "5000.00",
                                                                                   "current_limit": "1000.00"}))
    with pytest.raises(ConfirmationRequired, match=r"it moves GBP 250,000\.00"):
        services.decide(db.session, people.reviewer, case.id, command(
            case, "edit", action="counter_offer", parameters={"limit": "250000.00"}, confirmed=False))
    db.session.rollback()
    assert decisions_of(case) == []
