"""Agents' tool policies (``/admin/agent-tools``): admins edit them as YAML, the same document the
``agent-tools`` commands load and export; auditors read."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.access import protect
from app.admin import forms
from app.admin.access import admin_actor
from app.agents import tools
from app.cases import permissions
from app.errors import DomainError
from app.extensions import db
from app.forms import show_errors

bp = Blueprint("admin_agent_tools", __name__, url_prefix="/admin/agent-tools")
protect(bp, edit_pages={"admin_agent_tools.edit"})


@bp.get("")
def agent_tools() -> str:
    return render_template("admin/agent_tools.html", tools=[(tool, tools.policy_of(tool))
                                                           for tool in tools.all_tools(db.session)],
                           can_edit=permissions.can(current_user, "administer"))


@bp.route("/edit", methods=["GET", "POST"])
def edit() -> Response | str | tuple[str, int]:
    form = forms.AgentToolsForm(data={"document": tools.export_yaml(db.session)} if request.method == "GET" else None)
    if form.validate_on_submit():
        try:
            outcomes = tools.load(db.session, tools.parse_yaml(form.document.data or ""), admin_actor())
        except DomainError as exc:
            db.session.rollback()
            show_errors(form, exc)
        else:
            db.session.commit()
            changed = [f"{name} {outcome}" for name, outcome in outcomes.items() if outcome != "unchanged"]
            flash(f"Tool policies saved: {', '.join(changed) if changed else 'nothing changed'}.", "success")
            return redirect(url_for("admin_agent_tools.agent_tools"))
    return render_template("admin/agent_tools_edit.html", form=form), 422 if form.errors else 200
