"""The one navigation of every page.

Each entry names the intent that shows it; `app.cases.permissions.can` answers per user, so no
role list lives here. base.html draws the entries the signed-in user may use and marks the one
the current page belongs to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask, request, url_for
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError

from app import units
from app.cases import permissions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    label: str
    endpoint: str
    intent: str
    blueprints: tuple[str, ...]  # the areas whose pages mark this entry as the current one


ENTRIES = (
    Entry("Queues", "review.queues", "view", ("review",)),
    Entry("Notifications", "notifications.index", "view", ("notifications",)),
    Entry("Dashboards", "dashboards.queues", "dashboards", ("dashboards",)),
    Entry("Quality", "oversight.qa_page", "view_quality", ("oversight",)),
    Entry("Executions", "execution.failures", "retry_execution", ("execution",)),
    Entry("Audit", "auditor.audit_log", "audit", ("auditor", "audit_export")),
    Entry("Rules", "escalation.rules", "oversee", ("escalation",)),
    Entry("Admin", "admin.index", "oversee", ("admin", "admin_users", "admin_clients", "admin_reason_codes",
                                               "admin_queues", "controls")),
)


@dataclass(frozen=True)
class Link:
    label: str
    url: str
    current: bool


def main_nav() -> list[Link]:
    """The entries the signed-in user may open (none when signed out)."""
    if not current_user.is_authenticated:
        return []
    try:
        allowed = [entry for entry in ENTRIES if permissions.can(current_user, entry.intent)]
    except SQLAlchemyError:  # an error page after a failed transaction still renders, without the menu
        log.warning("could not read the signed-in user's role", exc_info=True)
        return []
    return [Link(entry.label, url_for(entry.endpoint), request.blueprint in entry.blueprints) for entry in allowed]


def init_navigation(app: Flask) -> None:
    @app.context_processor
    def _navigation() -> dict[str, Any]:
        return {"main_nav": main_nav()}

    app.add_template_filter(units.duration, "duration")
    app.add_template_filter(units.minutes, "minutes")
