"""QA sampling: the deterministic draw and its share, which approvals are drawn (a queue's share, a
flagged reviewer), the QA page, verdicts (audited; a disagreement notifies the queue lead and never
touches the case), refusals that store nothing, and the settings (queue share, user flag) through
the service, the CLI and the admin pages."""

from __future__ import annotations

import html
import re

import pytest
from flask import g
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.cases.models import Case
from app.extensions import db
from app.notifications.models import InAppNotification
from app.oversight import qa
from app.oversight.models import QaReview
from app.review import services as review
from tests.conftest import sign_in
from tests.review_helpers import People, claim, decide, make_case

pytest_plugins = ["tests.review_fixtures"]


# --- the draw --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("share", [0.02, 0.1, 0.5])
def test_the_share_drawn_of_10000_decisions_is_the_configured_share(share):
    drawn = sum(qa.drawn(decision_id, share) for decision_id in range(1, 10_001))
    # a uniform draw: binomial(10000, share); its standard deviation is at most 50, and 150 is three of them
    assert abs(drawn - 10_000 * share) <= 150, drawn


def test_the_draw_is_deterministic_and_nested():
    first = [qa.drawn(i, 0.1) for i in range(1, 2001)]
    assert first == [qa.drawn(i, 0.1) for i in range(1, 2001)]
    # the decisions a smaller share draws are among those a larger one draws
    assert all(qa.drawn(i, 0.3) for i in range(1, 2001) if first[i - 1])
    assert not any(qa.drawn(i, 0.0) for i in range(1, 2001))
    assert all(qa.drawn(i, 1.0) for i in range(1, 2001))


def test_the_draw_is_spread_over_the_ids_not_clustered():
    """Uniform along the ids too: each block of 1,000 consecutive decisions gets its share."""
    for start in range(1, 10_001, 1000):
        drawn = sum(qa.drawn(i, 0.2) for i in range(start, start + 1000))
        assert 150 <= drawn <= 250, (start, drawn)  # 200 ± 4 standard deviations (12.6)


# --- which approvals are drawn --------------------------------------------------------------------------------


def events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def samples() -> list[QaReview]:
    db.session.expire_all()
    return list(db.session.scalars(select(QaReview).order_by(QaReview.id)))


def approved(upstream, people: People, reviewer=None) -> Case:
    reviewer = reviewer or people.reviewer
    case = claim(reviewer, make_case(upstream))
    decide(reviewer, case, "approve")
    return case


def test_a_queue_sharing_everything_draws_each_approval_and_audits_it(upstream, people, queues):
    queues["finance"].qa_share = 1.0
    db.session.commit()
    case = approved(upstream, people)
    [sample] = samples()
    assert (sample.case_id, sample.queue_id, sample.reasons, sample.verdict) == (case.id, queues["finance"].id,
                                                                                 ["share"], None)
    assert sample.decision.kind == "approve" and sample.decision.reviewer_id == people.reviewer.id
    [event] = events("qa.sampled")
    assert (event.case_id, event.actor) == (case.id, "system:qa-sampling")
    assert event.data == {"qa_review_id": sample.id, "decision_id": sample.decision_id, "queue": "finance",
                          "reasons": ["share"], "qa_share": 1.0, "flagged_reviewers": []}


def test_every_approval_of_a_flagged_reviewer_is_drawn(upstream, people, queues):
    people.reviewer.qa_all = True
    db.session.commit()
    flagged = approved(upstream, people)
    approved(upstream, people, people.reviewer2)  # not flagged, share 0: not drawn
    edited = claim(people.reviewer, make_case(upstream))
    decide(people.reviewer, edited, "edit", action="release", parameters={})  # an edit approves too
    assert [(s.case_id, s.reasons) for s in samples()] == [(flagged.id, ["reviewer"]), (edited.id, ["reviewer"])]
    assert events("qa.sampled")[0].data["flagged_reviewers"] == ["reviewer@example.com"]


def test_a_dual_approval_is_drawn_once_complete_for_its_flagged_first_approver(upstream, people, queues):
    people.reviewer.qa_all = True
    db.session.commit()
    case = claim(people.reviewer, make_case(upstream, data={"amount": "150000.00"}, recommendation=("release", {})))
    decide(people.reviewer, case, "approve")
    assert samples() == []  # waiting for the second approval: nothing approved yet
    second = decide(people.senior, case, "approve")
    [sample] = samples()
    assert (sample.decision_id, sample.reasons) == (second.id, ["reviewer"])
    assert qa.judgeable(db.session, people.senior2, [sample]) == {sample.id}
    assert qa.judgeable(db.session, people.senior, [sample]) == set()  # the second approver took part
    assert qa.judgeable(db.session, people.admin, [sample]) == set()


def test_rejections_and_a_zero_share_draw_nothing(upstream, people, queues):
    queues["finance"].qa_share = 1.0
    db.session.commit()
    decide(people.reviewer, claim(people.reviewer, make_case(upstream)), "reject")
    queues["finance"].qa_share = 0.0
    db.session.commit()
    approved(upstream, people)
    assert samples() == []


# --- the QA page and verdicts ------------------------------------------------------------------------------


def token_of(http: FlaskClient, path: str = "/oversight/qa") -> str:
    g.pop("_login_user", None)
    g.pop("csrf_token", None)
    page = http.get(path).get_data(as_text=True)
    g.pop("_login_user", None)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def give_verdict(http: FlaskClient, sample: QaReview, verdict: str | None, reason: str = ""):
    fields = {"csrf_token": token_of(http), f"qa-{sample.id}-reason": reason}
    if verdict is not None:
        fields[f"qa-{sample.id}-verdict"] = verdict
    return http.post(f"/oversight/qa/{sample.id}/verdict", data=fields)


def field_errors(response) -> list[str]:
    return [html.unescape(e) for e in re.findall(r'<p class="field-error" role="alert">([^<]*)</p>',
                                                 response.get_data(as_text=True))]


@pytest.fixture
def sampled(upstream, people, queues) -> QaReview:
    queues["finance"].qa_share = 1.0
    queues["finance"].lead = people.reviewer2
    db.session.commit()
    approved(upstream, people)
    return samples()[0]


def case_state(case_id: int) -> tuple[str, int]:
    db.session.expire_all()
    case = db.session.get(Case, case_id)
    return case.status, case.version


def test_the_qa_page_lists_the_sample_with_a_verdict_form_for_a_senior(client, people, sampled):
    sign_in(client, people.senior)
    page = client.get("/oversight/qa").get_data(as_text=True)
    assert f'<tr data-qa="{sampled.id}">' in page
    assert f'action="/oversight/qa/{sampled.id}/verdict"' in page
    assert "queue share" in page
    sign_in(client, people.admin)
    page = client.get("/oversight/qa").get_data(as_text=True)
    assert f'<tr data-qa="{sampled.id}">' in page  # admins read
    assert "/verdict" not in page  # and give no verdict


def test_an_agreeing_verdict_is_recorded_and_audited(client, people, sampled):
    before = case_state(sampled.case_id)
    sign_in(client, people.senior)
    response = give_verdict(client, sampled, "agree")
    assert response.status_code == 302
    [sample] = samples()
    assert (sample.verdict, sample.verdict_reason, sample.verdict_by_id) == ("agree", None, people.senior.id)
    [event] = events("qa.agreed")
    assert (event.case_id, event.actor) == (sampled.case_id, f"user:{people.senior.id}")
    assert event.data == {"qa_review_id": sampled.id, "decision_id": sampled.decision_id, "verdict": "agree",
                          "reason": None}
    assert case_state(sampled.case_id) == before
    assert db.session.scalar(select(func.count()).select_from(InAppNotification)
                             .where(InAppNotification.kind == "qa_disagreement")) == 0


def test_a_disagreement_notifies_the_queue_lead_and_leaves_the_case_alone(client, people, sampled):
    before = case_state(sampled.case_id)
    sign_in(client, people.senior)
    response = give_verdict(client, sampled, "disagree", "  The beneficiary was on a watch list.  ")
    assert response.status_code == 302
    [event] = events("qa.disagreed")
    assert event.data["reason"] == "The beneficiary was on a watch list."
    [note] = db.session.scalars(select(InAppNotification).where(InAppNotification.kind == "qa_disagreement"))
    assert (note.user_id, note.case_id) == (people.reviewer2.id, sampled.case_id)  # the finance lead
    assert note.message == (f"Senior disagrees with the approval of case {sampled.case_id} (QA): "
                            "The beneficiary was on a watch list.")
    assert note.read_at is None
    assert case_state(sampled.case_id) == before  # the executed action is never changed by QA
    page = client.get("/oversight/qa").get_data(as_text=True)
    assert 'class="tone-bad"' in page and "The beneficiary was on a watch list." in page
    assert "The beneficiary was on a watch list." in client.get(f"/cases/{sampled.case_id}").get_data(as_text=True)


def test_without_a_lead_a_disagreement_goes_to_the_admins(client, people, sampled, queues):
    queues["finance"].lead = None
    db.session.commit()
    sign_in(client, people.senior)
    assert give_verdict(client, sampled, "disagree", "Wrong call").status_code == 302
    recipients = db.session.scalars(select(InAppNotification.user_id)
                                    .where(InAppNotification.kind == "qa_disagreement")).all()
    assert recipients == [people.admin.id]


def nothing_stored(sample_id: int) -> None:
    [sample] = [s for s in samples() if s.id == sample_id]
    assert (sample.verdict, sample.verdict_by_id, sample.verdict_at) == (None, None, None)
    assert events("qa.agreed") == events("qa.disagreed") == []


@pytest.mark.parametrize(("verdict", "reason", "error"), [
    ("disagree", "", "Required when you disagree."),
    ("disagree", "   ", "Required when you disagree."),
    (None, "", "Agree or disagree."),
    ("shrug", "", "Agree or disagree."),
    ("agree", "x" * 5001, "At most 5000 characters."),
])
def test_a_bad_verdict_is_a_form_error_and_stores_nothing(client, people, sampled, verdict, reason, error):
    sign_in(client, people.senior)
    response = give_verdict(client, sampled, verdict, reason)
    assert response.status_code == 422
    assert field_errors(response) == [error]
    nothing_stored(sampled.id)


@pytest.mark.parametrize("who", ["reviewer", "admin", "auditor"])
def test_only_a_senior_reviewer_gives_a_verdict(client, people, sampled, who):
    sign_in(client, getattr(people, who))
    assert give_verdict(client, sampled, "agree", "fine").status_code == 403
    nothing_stored(sampled.id)


def test_a_senior_does_not_judge_an_approval_they_took_part_in(client, upstream, people, queues):
    people.senior.qa_all = True
    db.session.commit()
    approved(upstream, people, people.senior)
    [sample] = samples()
    sign_in(client, people.senior)
    assert f'action="/oversight/qa/{sample.id}/verdict"' not in client.get("/oversight/qa").get_data(as_text=True)
    assert give_verdict(client, sample, "agree").status_code == 403
    nothing_stored(sample.id)
    sign_in(client, people.senior2)
    assert give_verdict(client, sample, "agree").status_code == 302


def test_an_undone_approval_leaves_the_qa_list_and_takes_no_verdict(app, client, upstream, people, queues,
                                                                     monkeypatch):
    monkeypatch.setitem(app.config, "REVIEW_UNDO_SECONDS", 60)
    queues["finance"].qa_share = 1.0
    db.session.commit()
    case = approved(upstream, people)
    [sample] = samples()
    assert sample.case_id == case.id
    review.undo_approval(db.session, people.reviewer, sample.case_id)
    db.session.commit()
    sign_in(client, people.senior)
    assert f'<tr data-qa="{sample.id}">' not in client.get("/oversight/qa").get_data(as_text=True)
    give_verdict(client, sample, "agree")
    assert samples()[0].verdict is None and events("qa.agreed") == []


def test_a_senior_of_other_queues_does_not_see_the_sample(client, people, sampled, queues):
    people.senior2.queues = [queues["legal"]]
    db.session.commit()
    sign_in(client, people.senior2)
    assert f'data-qa="{sampled.id}"' not in client.get("/oversight/qa").get_data(as_text=True)
    assert give_verdict(client, sampled, "agree").status_code == 404
    nothing_stored(sampled.id)


def test_a_second_verdict_is_refused(client, people, sampled):
    sign_in(client, people.senior)
    assert give_verdict(client, sampled, "agree").status_code == 302
    token = token_of(client)
    response = client.post(f"/oversight/qa/{sampled.id}/verdict",
                           data={"csrf_token": token, f"qa-{sampled.id}-verdict": "disagree",
                                 f"qa-{sampled.id}-reason": "changed my mind"})
    assert response.status_code == 422
    assert samples()[0].verdict == "agree"
    assert events("qa.disagreed") == []


# --- the settings -------------------------------------------------------------------------------------------


def test_the_qa_share_through_the_cli_is_validated_and_audited(runner, queues):
    result = runner.invoke(args=["queues", "update", "finance", "--qa-share", "0.05"])
    assert result.exit_code == 0, result.output
    assert "qa_share: 0.0 -> 0.05" in result.output
    assert events("queue.updated")[-1].data["changes"] == {"qa_share": [0.0, 0.05]}
    refused = runner.invoke(args=["queues", "update", "finance", "--qa-share", "1.2"])
    assert refused.exit_code == 2
    assert "qa_share must be a number from 0 to 1 (got 1.2)" in refused.output
    db.session.expire_all()
    assert queues["finance"].qa_share == 0.05


def test_the_qa_share_on_the_admin_queue_page(client, people, queues):
    sign_in(client, people.admin)
    path = f"/admin/queues/{queues['finance'].id}/edit"
    g.pop("csrf_token", None)
    form = client.get(path).get_data(as_text=True)
    assert re.search(r'name="qa_share"[^>]*value="0"', form)
    fields = {"csrf_token": token_of(client, path), "sla_minutes": "60", "is_default": "y",
              "required_role": "reviewer", "qa_share": "0.25", "escalation_target": "finance-senior",
              "members": [u.email for u in queues["finance"].members]}
    response = client.post(path, data=fields)
    assert response.status_code == 302, field_errors(response)
    assert events("queue.updated")[-1].data["changes"] == {"qa_share": [0.0, 0.25]}
    g.pop("_login_user", None)
    listing = client.get("/admin/queues").get_data(as_text=True)
    assert re.search(r'<tr data-queue="finance".*?<td class="num" data-qa-share>25%</td>', listing, re.S)


def test_the_qa_flag_through_the_cli_and_the_admin_user_page(runner, client, people):
    result = runner.invoke(args=["users", "update", "reviewer@example.com", "--qa-all"])
    assert result.exit_code == 0, result.output
    assert "qa_all: no -> yes" in result.output
    [event] = events("user.updated")
    assert (event.data["before"]["qa_all"], event.data["after"]["qa_all"]) == (False, True)

    sign_in(client, people.admin)
    path = f"/admin/users/{people.reviewer.id}"
    g.pop("csrf_token", None)
    assert re.search(r'<input checked id="qa_all"', client.get(path).get_data(as_text=True))
    g.pop("_login_user", None)
    assert "every approval to QA" in client.get("/admin/users").get_data(as_text=True)
    response = client.post(path, data={"csrf_token": token_of(client, path), "name": "Reviewer", "role": "reviewer",
                                       "queues": [q.name for q in people.reviewer.queues]})
    assert response.status_code == 302
    db.session.expire_all()
    assert people.reviewer.qa_all is False  # the box left unticked clears the flag
    assert events("user.updated")[-1].data["after"]["qa_all"] is False
