"""``GET /audit/export``: the decision log and its manifest as one ZIP download, for admins and
auditors. Takes the export's filters as query parameters (the audit page's GET form links here)."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import IO

from flask import Blueprint, abort, current_app, request, send_file
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.auditor import export
from app.cases import permissions
from app.db import utcnow
from app.errors import Invalid
from app.extensions import db
from app.problems import sentence

bp = Blueprint("audit_export", __name__)

FLAGS = {"": False, "0": False, "false": False, "off": False, "no": False,
         "1": True, "true": True, "on": True, "yes": True}


@bp.get("/audit/export")
@login_required
def download() -> Response:
    permissions.require(current_user, "audit")
    fmt = request.args.get("format", "jsonl")
    name = f"decision-log-{utcnow().strftime('%Y%m%dT%H%M%SZ')}"
    try:
        filters = export.parse_filters(db.session, request.args)
        bundle = _zipped(f"{name}.{fmt}", fmt, filters, _flag("redact", request.args.get("redact", "")))
    except Invalid as exc:  # the export refuses a bad format before it signs anything
        abort(400, sentence(exc.message))
    return send_file(bundle, mimetype="application/zip", as_attachment=True, download_name=f"{name}.zip")


def _flag(name: str, value: str) -> bool:
    if value.strip().lower() not in FLAGS:
        raise Invalid(f"{name}: {value!r} is not 1 or 0")
    return FLAGS[value.strip().lower()]


def _zipped(file_name: str, fmt: str, filters: export.ExportFilters, redact: bool) -> IO[bytes]:
    """The export and its manifest in a ZIP, in an unnamed temporary file (gone once closed)."""
    bundle = tempfile.TemporaryFile()  # noqa: SIM115 (send_file closes it after the response)
    try:
        with tempfile.TemporaryDirectory(prefix="countersign-export-") as folder:
            path = Path(folder) / file_name
            export.write_export(db.session, current_app.config, path, fmt=fmt, filters=filters, redact=redact)
            with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as archive:
                for written in (path, export.manifest_path(path)):
                    archive.write(written, written.name)
    except BaseException:
        bundle.close()
        raise
    bundle.seek(0)
    return bundle
