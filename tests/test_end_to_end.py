"""The product in one flow, over the real APIs: signed intake → AI worker → reviewer API
decision → execute worker → signed callback on a real local receiver."""

from __future__ import annotations

import pytest
from rq import SimpleWorker

from app.auth.services import create_api_token
from app.cases.models import Case, Status
from app.extensions import db
from tests.conftest import case_body

pytest_plugins = ["tests.review_fixtures"]


@pytest.fixture
def config_overrides():
    return {"INSECURE_CALLBACK_HOSTS": frozenset({"127.0.0.1"}), "CALLBACK_TIMEOUT_SECONDS": 5}


def drain(redis_conn, queue: str) -> None:
    SimpleWorker([queue], connection=redis_conn).work(burst=True)


def bearer(user) -> dict[str, str]:
    _, raw = create_api_token(db.session, user, "e2e")
    db.session.commit()
    return {"Authorization": f"Bearer {raw}"}


def test_approved_payment_reaches_upstream_exactly_once(client, upstream, people, receiver, redis_conn):
    case_id = upstream.post_case(case_body("credit_limit_change", callback_url=f"{receiver.url}/hooks")
                                 ).get_json()["id"]
    drain(redis_conn, "ai")
    auth = bearer(people.reviewer)
    claimed = client.post(f"/api/v1/cases/{case_id}/claim", headers=auth)
    assert claimed.status_code == 200, claimed.get_json()
    version = db.session.get(Case, case_id).version
    answer = client.post(f"/api/v1/cases/{case_id}/decisions", headers=auth,
                         json={"kind": "approve", "case_version": version})
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["case"]["status"] == Status.APPROVED

    drain(redis_conn, "execute")
    drain(redis_conn, "execute")  # a duplicate run sends nothing more
    db.session.expire_all()
    assert db.session.get(Case, case_id).status == Status.EXECUTED
    assert len(receiver.processed) == 1
    document = next(iter(receiver.processed.values()))
    rec = db.session.get(Case, case_id).recommendation
    assert document["type"] == "case.approved"
    assert document["action"] == {"name": rec.action, "parameters": rec.parameters}
    assert document["approved_by"] == [people.reviewer.email]
    assert upstream.get_case(case_id).get_json()["execution"]["status"] == "delivered"


def test_rejection_is_told_upstream_and_never_executed(client, upstream, people, receiver, redis_conn):
    case_id = upstream.post_case(case_body("payment_release", callback_url=f"{receiver.url}/hooks")
                                 ).get_json()["id"]
    drain(redis_conn, "ai")
    auth = bearer(people.reviewer)
    client.post(f"/api/v1/cases/{case_id}/claim", headers=auth)
    version = db.session.get(Case, case_id).version
    answer = client.post(f"/api/v1/cases/{case_id}/decisions", headers=auth, json={
        "kind": "reject", "case_version": version, "reason_code": "sanctions_concern",
        "reason": "Beneficiary resembles a listed entity."})
    assert answer.status_code == 201, answer.get_json()
    drain(redis_conn, "execute")
    db.session.expire_all()
    assert db.session.get(Case, case_id).status == Status.REJECTED
    [document] = receiver.processed.values()
    assert document["type"] == "case.decided"
    assert upstream.get_case(case_id).get_json()["execution"] is None
