"""Fixtures of the escalation tests (``pytest_plugins = ["tests.escalation_fixtures"]``)."""

from __future__ import annotations

from typing import Any

import pytest

from app.cases.models import Queue
from app.extensions import db
from tests.escalation_helpers import Leads
from tests.review_helpers import make_user

pytest_plugins = ["tests.review_fixtures"]


@pytest.fixture
def leads(queues: dict[str, Queue], senior_queue: Queue, people: Any) -> Leads:
    """Leads of the finance queue and of its escalation target, finance-senior."""
    made = Leads(make_user("finance-lead", "senior_reviewer", [queues["finance"]]),
                 make_user("senior-lead", "senior_reviewer", [senior_queue]))
    db.session.flush()
    queues["finance"].lead, senior_queue.lead = made.finance, made.senior
    db.session.commit()
    return made
