"""The dependency audit's own logic, against a local stand-in for PyPI's per-project JSON: what
pip-audit could not look up is checked from the project's latest release when the pin is that
release, named as not checked otherwise; a finding fails the audit unless a line justifies it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devtools import dependency_audit as audit

# What the stand-in PyPI knows: each project's latest release and that release's advisories.
PROJECTS = {
    "flask": {"info": {"version": "3.1.3"}, "vulnerabilities": []},
    "leaky": {"info": {"version": "2.0"}, "vulnerabilities": [
        {"id": "PYSEC-2026-1", "fixed_in": [], "withdrawn": None},
        {"id": "GHSA-old", "fixed_in": ["1.0"], "withdrawn": "2026-01-01T00:00:00Z"}]},
    "typing-extensions": {"info": {"version": "4.16.0"}, "vulnerabilities": []},
    "behind": {"info": {"version": "9.0"}, "vulnerabilities": []},
}
CONSTRAINTS = "# a lock\nFlask==3.1.3\nleaky==2.0\ntyping_extensions==4.16.0\nbehind==1.0\nchecked==5.5\n"


class _PyPI(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # /pypi/<name>/json
        name = self.path.split("/")[2]
        body = json.dumps(PROJECTS[name]).encode() if name in PROJECTS else b'{"message": "Not Found"}'
        self.send_response(200 if name in PROJECTS else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def pypi() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PyPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/pypi/{{name}}/json"
    server.shutdown()


def pip_audit_that_reached_one(constraints: Path) -> list[dict]:
    """pip-audit as it answers where only one package's own advisories were reachable."""
    skipped = [{"name": name, "skip_reason": "Dependency not found on PyPI and could not be audited"}
               for name in ("flask", "leaky", "typing-extensions", "behind")]
    return [*skipped, {"name": "checked", "version": "5.5", "vulns": [{"id": "GHSA-xyz", "fix_versions": ["5.6"]}]}]


@pytest.fixture
def report(tmp_path: Path, pypi: str) -> audit.Report:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(CONSTRAINTS)
    return audit.audit(constraints, project_json=pypi, pip_audit=pip_audit_that_reached_one)


def test_pins_at_their_latest_release_are_checked_from_the_project_and_the_others_named(report):
    assert sorted(report.checked) == ["checked==5.5", "flask==3.1.3", "leaky==2.0", "typing-extensions==4.16.0"]
    assert list(report.unchecked) == ["behind==1.0"]
    assert "not the latest release (9.0)" in report.unchecked["behind==1.0"]


def test_findings_of_both_sources_withdrawn_advisories_aside(report):
    assert sorted((f.package, f.vulnerability, f.fixed_in) for f in report.findings) == [
        ("checked", "GHSA-xyz", ("5.6",)), ("leaky", "PYSEC-2026-1", ())]


def test_a_finding_fails_the_audit_until_a_line_justifies_it(report, tmp_path):
    assert [f.vulnerability for f in audit.affected(report, {})] == ["GHSA-xyz", "PYSEC-2026-1"]
    exceptions = tmp_path / "audit_exceptions.txt"
    exceptions.write_text("# why each does not apply\nGHSA-xyz  we never parse untrusted input with it\n")
    justified = audit.exceptions(exceptions)
    assert [f.vulnerability for f in audit.affected(report, justified)] == ["PYSEC-2026-1"]
    lines = list(audit.render(report, justified))
    assert lines[0] == "dependency audit: 4 pinned packages checked, 1 not checked"
    assert "  checked==5.5: GHSA-xyz, fixed in 5.6: justified: we never parse untrusted input with it" in lines
    assert "  leaky==2.0: PYSEC-2026-1: AFFECTED" in lines


def test_an_exception_without_a_justification_is_refused(tmp_path):
    exceptions = tmp_path / "audit_exceptions.txt"
    exceptions.write_text("GHSA-xyz\n")
    with pytest.raises(SystemExit, match="GHSA-xyz has no justification"):
        audit.exceptions(exceptions)


def test_the_exceptions_file_of_the_repository_reads():
    assert all(why for why in audit.exceptions().values())


def test_pypi_out_of_reach_leaves_the_pins_unchecked_not_passed(tmp_path):
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(CONSTRAINTS)
    report = audit.audit(constraints, project_json="http://127.0.0.1:9/pypi/{name}/json",
                         pip_audit=pip_audit_that_reached_one)
    assert report.checked == ["checked==5.5"]
    assert set(report.unchecked) == {"flask==3.1.3", "leaky==2.0", "typing-extensions==4.16.0", "behind==1.0"}
    assert all(why.startswith("PyPI unreachable") for why in report.unchecked.values())
