"""Fixtures of the reviewer-workspace tests; a test module loads them with
``pytest_plugins = ["tests.review_fixtures"]``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cases.models import Queue
from app.extensions import db
from tests.review_helpers import ALL_QUEUES, People, make_user


@pytest.fixture
def senior_queue(queues: dict[str, Queue]) -> Queue:
    """finance-senior: the escalation target of the finance queue."""
    target = Queue(name="finance-senior", domain="finance", sla_minutes=30)
    db.session.add(target)
    queues["finance"].escalation_target = target
    db.session.commit()
    return target


@pytest.fixture
def people(queues: dict[str, Queue], senior_queue: Queue) -> People:
    work = [queues[name] for name in ALL_QUEUES]
    made = People(
        reviewer=make_user("reviewer", "reviewer", work),
        reviewer2=make_user("reviewer2", "reviewer", work),
        senior=make_user("senior", "senior_reviewer", work),
        senior2=make_user("senior2", "senior_reviewer", work),
        admin=make_user("admin", "admin", []),
        auditor=make_user("auditor", "auditor", []),
        outsider=make_user("outsider", "reviewer", [queues["legal"]]),
    )
    db.session.commit()
    return made


@pytest.fixture
def credentials(upstream, tmp_path) -> Path:
    """The API client's credentials as the demo writes them (instance/demo-client.json)."""
    path = tmp_path / "client.json"
    path.write_text(json.dumps({"client_id": upstream.id, "token": upstream.token,
                                "signing_secret": upstream.secret}))
    return path
