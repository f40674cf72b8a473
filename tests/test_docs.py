"""The documentation stays true: its generated parts are fresh, every environment variable the code
reads is in the README's configuration table, and no Markdown link leaves the repository or points
at nothing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from config import Settings
from devtools import docs

ROOT = Path(__file__).resolve().parent.parent
# Read from the environment by the code itself (config.py's Settings aside): app/, workers/, wsgi.py.
ENV_READERS = [*sorted((ROOT / "app").rglob("*.py")), *sorted((ROOT / "workers").rglob("*.py")), ROOT / "wsgi.py",
               ROOT / "gunicorn.conf.py"]
# os.environ.get("X"), os.environ["X"], os.getenv("X"), "X" in os.environ, and the same on a copy of
# the environment called env (workers/demo.py hands its children one); not a WSGI request's
# wsgi_environ, whose keys are the request's, not variables.
ENV_READ = re.compile(
    r"""\b(?:environ|env)(?:\.get\(|\.setdefault\()\s*["']([A-Z][A-Z0-9_]*)["']"""
    r"""|\b(?:environ|env)\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\](?!\s*=[^=])"""  # a read, not an assignment
    r"""|getenv\(\s*["']([A-Z][A-Z0-9_]*)["']"""
    r"""|["']([A-Z][A-Z0-9_]*)["']\s+(?:not\s+)?in\s+(?:os\.environ|env)\b""")
# Files other branches write (see docs/README.md); they exist once those branches are merged.
MARKDOWN_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


# --- generated parts ------------------------------------------------------------------------------


def test_the_generated_documents_are_fresh():
    assert docs.stale() == [], "run `make docs` and commit the result"


def test_the_check_command_reports_a_stale_file_and_writes_nothing(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "case-types.md"
    stale.write_text("# Case types\n\nout of date\n")
    monkeypatch.setattr(docs, "CASE_TYPES_DOC", stale)
    assert docs.stale() == [stale]
    assert docs.main(["--check"]) == 1
    assert capsys.readouterr().err == f"{stale} is stale: run `make docs`\n"
    assert stale.read_text() == "# Case types\n\nout of date\n"


def test_the_check_command_passes_on_the_committed_files():
    checked = subprocess.run([sys.executable, "-m", "devtools.docs", "--check"], cwd=ROOT, capture_output=True,
                             text=True, check=False)
    assert (checked.returncode, checked.stderr) == (0, "")


def test_the_case_type_reference_says_what_the_schemas_say():
    text = (ROOT / "docs" / "case-types.md").read_text()
    assert "| `beneficiary.country` | string | yes | matches `^[A-Z]{2}$` |" in text
    assert "| `credit_score` | integer | yes | ≥ 300; ≤ 850 |" in text
    assert "| `clauses` | list of object | yes | at least 1 item; unique clause ids |" in text
    assert "| `applicant.type` | string | yes | one of `individual`, `business` |" in text
    assert "#### `file_sar`" in text and "#### `release`\n\nNo parameters: `{}`." in text


def test_the_lifecycle_table_lists_every_move_once():
    table = docs.lifecycle_table()
    assert "| `second_approval` | `awaiting_second_approval` | `approved` | `senior_reviewer` |" in table
    assert ("| `released` | `in_review` | `pending_review` (with a recommendation) or `ai_failed` (without) | "
            "the system, `admin`, `reviewer`, `senior_reviewer` |") in table
    assert "| `approval_undone` | `approved` | `in_review` | `reviewer`, `senior_reviewer` |" in table
    assert len(table.splitlines()) == 2 + 22


# --- the configuration table ---------------------------------------------------------------------------


def variables_read_by_the_code() -> set[str]:
    settings = {str(field.validation_alias or name) for name, field in Settings.model_fields.items()}
    read = {name for path in ENV_READERS for match in ENV_READ.finditer(path.read_text())
            for name in match.groups() if name}
    return settings | read


def variables_in_the_readme_table() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split(" | ")[0])}


def test_the_code_reads_the_variables_we_expect():
    read = variables_read_by_the_code()
    assert {"PORT", "DEMO_CALLBACK_URL", "RECEIVER_SECRET", "NO_COLOR", "DATABASE_URL", "COUNTERSIGN_ENV",
            "MAX_BODY_BYTES", "SMTP_PASSWORD"} <= read
    assert "SQLALCHEMY_DATABASE_URI" not in read  # the field's variable is DATABASE_URL


def test_every_variable_the_code_reads_is_in_the_readme_configuration_table():
    missing = variables_read_by_the_code() - variables_in_the_readme_table()
    assert not missing, f"add to the README's configuration table: {sorted(missing)}"


def test_the_readme_table_names_no_variable_the_code_does_not_read():
    unknown = variables_in_the_readme_table() - variables_read_by_the_code()
    assert not unknown, f"not read by the code: {sorted(unknown)}"


# --- the command line ------------------------------------------------------------------------------


def commands_of(app) -> set[str]:
    """``users create``, ``setup``, … : every command the app adds (Flask-Migrate's ``db`` is documented by
    its own project; only ``db upgrade`` is an operator's step)."""
    group = app.cli
    context = click.Context(group)
    found = set()
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if name == "db":
            continue
        if isinstance(command, click.Group):
            found |= {f"{name} {sub}" for sub in command.commands}
        else:
            found.add(name)
    return found


def test_the_operator_guide_lists_every_command(app):
    guide = (ROOT / "docs" / "operator-guide.md").read_text()
    rows = [line for line in guide.split("\n## The command line\n", 1)[1].split("\n## ", 1)[0].splitlines()
            if line.startswith("| `")]
    listed = {re.sub(r"\s+(-|\[|[A-Z]).*", "", usage).strip()
              for row in rows for usage in re.findall(r"`([a-z][a-z -]*[a-z](?: [^`]*)?)`", row.split(" | ")[0])}
    missing = commands_of(app) - listed
    assert not missing, f"add to the command table of docs/operator-guide.md: {sorted(missing)}"
    assert {"setup", "users deactivate", "control pause", "queues archive"} <= commands_of(app)


# --- links ---------------------------------------------------------------------------------------------


def markdown_files() -> list[Path]:
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / name for name in tracked]


def links(path: Path) -> list[str]:
    return MARKDOWN_LINK.findall(FENCE.sub("", path.read_text()))


def test_the_documentation_index_lists_every_document():
    index = (ROOT / "docs" / "README.md").read_text()
    unlisted = [path.name for path in sorted((ROOT / "docs").glob("*.md"))
                if path.name != "README.md" and f"({path.name}" not in index]
    assert not unlisted, f"add to docs/README.md: {unlisted}"


def test_there_is_markdown_to_check():
    names = {path.relative_to(ROOT).as_posix() for path in markdown_files()}
    assert {"README.md", "docs/README.md", "docs/architecture.md", "docs/case-types.md"} <= names


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_link_stays_inside_the_repository_and_finds_its_target(path):
    for target in links(path):
        assert not re.match(r"[a-z][a-z0-9+.-]*:|//", target, re.IGNORECASE), f"{target}: links outside"
        file_part = target.split("#", 1)[0]
        if not file_part:
            continue  # an anchor in the same file
        resolved = (path.parent / file_part).resolve()
        assert resolved.is_relative_to(ROOT), f"{target}: leaves the repository"
        assert resolved.exists(), f"{target}: no such file"
        assert resolved.name not in {"DESIGN.md", "CASE_TYPES.md", "STYLE.md"}


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_anchor_names_a_heading(path):
    for target in links(path):
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if anchor and resolved.suffix == ".md" and resolved.exists():
            assert anchor in anchors(resolved), f"{target}: no heading makes that anchor"


def anchors(path: Path) -> set[str]:
    """The anchors GitHub makes of a file's headings: lower case, punctuation but - and _ dropped,
    spaces made hyphens."""
    headings = re.findall(r"^#+\s+(.*)$", FENCE.sub("", path.read_text()), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_the_link_check_catches_what_it_must(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](../../DESIGN.md) [b](https://example.com) [c](docs/x.md#y) ![img](pic.png)\n"
                    "```\n[not a link](nowhere.md)\n```\n")
    assert links(page) == ["../../DESIGN.md", "https://example.com", "docs/x.md#y"]
    page.write_text("# The AI runtime\n## `POST /api/v1/cases`\n### payment_release\n")
    assert anchors(page) == {"the-ai-runtime", "post-apiv1cases", "payment_release"}
