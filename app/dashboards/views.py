"""The dashboards' pages (``/dashboards``): thin views over the services. Every number links to
``/dashboards/cases``, which lists the cases behind it from the same computation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.ai import shadow
from app.cases import permissions
from app.cases.models import Case
from app.cases.permissions import DECIDERS
from app.cases.types import REGISTRY
from app.dashboards import presenters
from app.dashboards.ai import ai_dashboard
from app.dashboards.filters import Filters, Selection, models_in_use, read
from app.dashboards.oversight import AGREEMENT_BY, OUTCOMES, oversight_dashboard
from app.dashboards.queues import DECISION_KINDS, queues_dashboard
from app.dashboards.stats import Cells, Count
from app.db import utcnow
from app.errors import Invalid
from app.extensions import db, login_manager
from app.oversight import calibration, diagrams
from app.users import User

bp = Blueprint("dashboards", __name__, url_prefix="/dashboards")
CASES_LISTED = 500


@dataclass(frozen=True)
class Page:
    title: str
    compute: Callable[[Selection], Any]  # the service: the dashboard's numbers
    draw: Callable[[Any], dict[str, Markup]]  # its charts


PAGES = {
    "queues": Page("Queues", lambda selection: queues_dashboard(db.session, selection, utcnow()),
                   presenters.queues_charts),
    "oversight": Page("Human oversight", lambda selection: oversight_dashboard(db.session, selection),
                      presenters.oversight_charts),
    "ai": Page("AI cost and quality", lambda selection: ai_dashboard(db.session, selection), presenters.ai_charts),
}


@bp.before_request
def _require_access() -> Response | None:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    permissions.require(current_user, "dashboards")
    return None


def _user() -> User:
    return current_user._get_current_object()


def _selection() -> tuple[Selection | None, Filters | None, dict[str, str]]:
    """The filters of the URL for the current user; or the errors by field."""
    try:
        selection = read(db.session, _user(), request.args, utcnow().date())
    except Invalid as exc:
        return None, None, exc.by_field
    return selection, selection.filters, {}


def _choices(selection: Selection | None) -> dict[str, list[tuple[str, str]]]:
    reviewers = db.session.scalars(select(User).where(User.role.in_(sorted(DECIDERS))).order_by(User.email))
    return {
        "queue": [(q.name, q.name) for q in permissions.visible_queues(db.session, _user())],
        "case_type": sorted((name, name.replace("_", " ")) for _, name in REGISTRY),
        "model": [(m, m) for m in models_in_use(db.session, selection)] if selection else [],
        "reviewer": [(str(u.id), u.email) for u in reviewers],
    }


def _page(view: str, **extra: Any) -> tuple[str, int]:
    selection, filters, errors = _selection()
    shown = PAGES[view]
    board = shown.compute(selection) if selection is not None else None

    def link(count: Count) -> str:
        return url_for("dashboards.cases", view=view, measure=count.key, **filters.query())

    return render_template(f"dashboards/{view}.html", view=view, pages=PAGES, title=shown.title, board=board,
                           selection=selection, filters=filters, errors=errors, args=request.args,
                           charts=shown.draw(board) if board is not None else {},
                           choices=_choices(selection), link=link, decision_kinds=DECISION_KINDS, outcomes=OUTCOMES,
                           agreement_by=AGREEMENT_BY, **extra), 422 if errors else 200


@bp.get("")
def queues() -> tuple[str, int]:
    return _page("queues")


@bp.get("/oversight")
def oversight() -> tuple[str, int]:
    rows = calibration.all_calibrations(db.session)
    return _page("oversight", calibrations=rows, diagrams={row.id: diagrams.diagram(row) for row in rows},
                 minimum=calibration.minimum_decisions())


@bp.get("/ai")
def ai() -> tuple[str, int]:
    selection, _, _ = _selection()
    since = selection.start if selection is not None else None
    return _page("ai", shadows=shadow.compare(db.session, since) if selection is not None else {})


@bp.get("/cases")
def cases() -> tuple[str, int]:
    """The cases behind one number: ``view`` and ``measure`` name it, the filters are the page's."""
    view = request.args.get("view", "")
    selection, filters, errors = _selection()
    if view not in PAGES:
        errors = {**errors, "view": "Name a dashboard: queues, oversight or ai."}
    found: Count | None = None
    listed: list[Case] = []
    if not errors:
        cells: Cells = PAGES[view].compute(selection).cells
        found = cells.get(request.args.get("measure", ""))  # NotFound: a 404 page
        listed = list(db.session.scalars(select(Case).where(Case.id.in_(sorted(found.case_ids)))
                                         .order_by(Case.id.desc()).limit(CASES_LISTED)))
    return render_template("dashboards/cases.html", view=view, pages=PAGES, count=found, cases=listed,
                           filters=filters, errors=errors, listed_at_most=CASES_LISTED,
                           back=url_for(f"dashboards.{view}", **filters.query()) if filters and view in PAGES
                           else url_for("dashboards.queues")), 422 if errors else 200
