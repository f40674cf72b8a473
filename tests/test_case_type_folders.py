"""A case type is one folder, registered in one line: every registered type is complete, and a new
type (a throwaway folder, as README's "Adding a case type" shows) is accepted by intake, analysed,
prompted and shown on the case page once it is registered, without touching anything else."""

from __future__ import annotations

import ast
import json
import sys
import textwrap
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

import app.cases.types as types_package
from app.ai.jobs import analyze_case
from app.ai.runtime import TEMPLATE_VERSION, CaseSnapshot, render_prompt, warm_templates
from app.auth.services import create_user
from app.cases.models import Case, Queue, Status
from app.cases.types import CASE_TYPES, REGISTRY, CaseType, examples, get_case_type, load, named
from app.extensions import db
from app.review import presenters
from tests.conftest import sign_in

TYPES_DIR = Path(types_package.__file__).parent
PARTS = ("__init__.py", "schema.py", "analyzer.py", "presenter.py", "example.json")


def snapshot_of(case_type: CaseType[Any], data: dict[str, Any]) -> CaseSnapshot:
    return CaseSnapshot(case_id=1, version=1, client_id=1, domain=case_type.domain, case_type=case_type.name,
                        title="A test case", data=data, confidential=False)


# --- every registered type is one complete folder -----------------------------------------------------------


def test_every_folder_is_registered_once() -> None:
    folders = sorted(path.parent.name for path in TYPES_DIR.glob("*/__init__.py"))
    assert sorted(CASE_TYPES) == folders
    assert list(dict.fromkeys(name for _, name in REGISTRY)) == list(CASE_TYPES)


def test_a_type_of_every_domain_is_registered_in_each_domain() -> None:
    assert sorted(domain for domain, name in REGISTRY if name == "agent_action") == ["compliance", "finance", "legal"]
    assert get_case_type("legal", "agent_action").domain == "legal"


@pytest.mark.parametrize("name", CASE_TYPES)
def test_every_case_type_has_schema_analyzer_presenter_prompt_and_example(name: str) -> None:
    case_type, folder, package = named(name), TYPES_DIR / name, f"app.cases.types.{name}"
    assert case_type.folder == folder
    assert all((folder / part).is_file() for part in PARTS)
    assert case_type.data_schema.__module__ == f"{package}.schema"
    assert {model.__module__ for model in case_type.actions.values()} <= {f"{package}.schema", "app.cases.types.base"}
    assert case_type.analyzer.__module__ == f"{package}.analyzer"
    assert case_type.present.__module__ == f"{package}.presenter"
    assert case_type.prompt_path(TEMPLATE_VERSION) == folder / f"prompt.{TEMPLATE_VERSION}.md"
    assert case_type.prompt(TEMPLATE_VERSION) == case_type.prompt_path(TEMPLATE_VERSION).read_text()
    assert case_type.prompt(TEMPLATE_VERSION).strip()
    assert case_type.example == json.loads((folder / "example.json").read_text()) == examples()[name]
    case_type.validate_data(case_type.example)


@pytest.mark.parametrize("name", CASE_TYPES)
def test_the_runtime_prompts_with_the_types_own_prompt_file(name: str) -> None:
    case_type = named(name)
    data = case_type.example
    prompt = render_prompt(snapshot_of(case_type, data), case_type, data,
                           case_type.analyze(case_type.validate_data(data)), [])
    assert case_type.prompt_path(TEMPLATE_VERSION).read_text().strip() in prompt


@pytest.mark.parametrize("name", CASE_TYPES)
def test_the_case_page_uses_the_types_presenter(name: str) -> None:
    case_type = named(name)
    case = Case(domain=case_type.domain, case_type=name, payload=case_type.example)
    assert presenters.present_case(case) == case_type.present(case_type.example)
    assert presenters.present_case(case).summary  # a type's own view has headline facts; the generic one has none


def test_an_unregistered_type_gets_the_generic_view() -> None:
    view = presenters.present_case(Case(domain="finance", case_type="retired_type", payload={"ref": "R-1"}))
    assert view.summary == () and [item.value for item in view.sections[0].items] == ["R-1"]


def test_the_example_is_a_fresh_copy_each_time() -> None:
    first = named("payment_release").example
    first["beneficiary"]["name"] = "Changed"
    assert named("payment_release").example["beneficiary"]["name"] != "Changed"


def test_a_missing_prompt_version_names_the_file() -> None:
    with pytest.raises(LookupError, match=r"payment_release/prompt\.v999\.md"):
        named("payment_release").prompt("v999")


def test_case_type_folders_import_neither_flask_nor_the_web_layer() -> None:
    """The types (and the shared view building blocks) depend only on app.cases.types and libraries."""
    for path in TYPES_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text())
        nodes = list(ast.walk(tree))
        modules = [alias.name for node in nodes if isinstance(node, ast.Import) for alias in node.names]
        modules += [node.module or "" for node in nodes if isinstance(node, ast.ImportFrom) and node.level == 0]
        for module in modules:
            assert not module.startswith(("flask", "app.review", "app.ai", "app.intake")), (path, module)


# --- a new case type: one folder, one registry line ----------------------------------------------------------

NEW_TYPE = {
    "__init__.py": '''
        """finance / expense_claim: an employee's expense claim."""

        from app.cases.types.base import CaseType

        from .analyzer import analyze
        from .presenter import present
        from .schema import ACTIONS, ExpenseClaim, amount

        CASE_TYPE = CaseType.in_folder(
            __file__, domain="finance", name="expense_claim", data_schema=ExpenseClaim,
            actions=ACTIONS, amount=amount, analyze=analyze, present=present,
        )
    ''',
    "schema.py": '''
        from decimal import Decimal

        from app.cases.types.base import Count, Currency, LongText, NonEmptyStr, NoParams, PositiveMoney, Reason
        from app.cases.types.base import ShortText, Strict


        class ExpenseClaim(Strict):
            claim_id: NonEmptyStr
            employee: ShortText
            amount: PositiveMoney
            currency: Currency
            receipts: Count
            description: LongText


        def amount(data: ExpenseClaim) -> tuple[Decimal, str]:
            return data.amount, data.currency


        ACTIONS = {"reimburse": NoParams, "refuse": Reason}
    ''',
    "analyzer.py": '''
        from app.cases.types.base import Analysis, NoParams, Reason
        from app.cases.types.signals import Signal, conclude

        from .schema import ExpenseClaim


        def analyze(data: ExpenseClaim) -> Analysis:
            if data.receipts == 0:
                missing = Signal("missing_receipt", 0.6, "no receipt attached", ("receipts",))
                return conclude("refuse", Reason(reason="No receipt attached."), "Refuse: no receipt.", [missing],
                                confidence=0.9, paths=["receipts"])
            return conclude("reimburse", NoParams(), "Reimburse: receipts attached.", [], confidence=0.8,
                            paths=["amount", "receipts"])
    ''',
    "presenter.py": '''
        from typing import Any

        from app.cases.types.view import CaseView, Item, Section, items_of, money, text


        def present(data: dict[str, Any]) -> CaseView:
            claimed = money(data.get("amount"), data.get("currency"))
            return CaseView(
                (Item("Employee", text(data.get("employee")), "employee"), Item("Claimed", claimed, "amount")),
                (Section("Expense claim", (*items_of(data, "", ("claim_id", "Claim reference", text),
                                                     ("receipts", "Receipts attached", text)),
                                           Item("Description", text(data.get("description")), "description",
                                                long=True))),),
            )
    ''',
    f"prompt.{TEMPLATE_VERSION}.md": '''
        Decide whether this expense claim is reimbursed (EXPENSE-GUIDANCE). reimburse: receipts cover
        the amount. refuse (with a reason): no receipt, or the expense is not business related.
    ''',
    "example.json": '''
        {"claim_id": "EXP-2026-0042", "employee": "Jonas Lindqvist", "amount": "1234.50", "currency": "SEK",
         "receipts": 0, "description": "Train to the Uppsala customer workshop"}
    ''',
}


@pytest.fixture
def expense_claim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CaseType[Any]]:
    """The throwaway type's folder, written outside the source tree and registered as its one line
    in CASE_TYPES would register it (``load`` of the folder, added to the REGISTRY)."""
    folder = tmp_path / "expense_claim"
    folder.mkdir()
    for name, content in NEW_TYPE.items():
        (folder / name).write_text(textwrap.dedent(content).lstrip())
    monkeypatch.setattr(types_package, "__path__", [*types_package.__path__, str(tmp_path)])
    case_type = load("expense_claim")
    monkeypatch.setitem(REGISTRY, (case_type.domain, case_type.name), case_type)
    yield case_type
    for module in [m for m in sys.modules if m.startswith("app.cases.types.expense_claim")]:
        del sys.modules[module]
    vars(types_package).pop("expense_claim", None)


def test_an_unregistered_type_is_refused_by_intake(upstream) -> None:
    body = {"external_id": "EXP-1", "domain": "finance", "case_type": "expense_claim", "title": "Claim",
            "data": json.loads(NEW_TYPE["example.json"])}
    response = upstream.post_case(body)
    assert response.status_code == 422
    assert "expense_claim" in json.dumps(response.get_json())


def test_a_registered_folder_is_accepted_analysed_prompted_and_shown(
    expense_claim: CaseType[Any], app, upstream, queues: dict[str, Queue]
) -> None:
    assert expense_claim.folder.name == "expense_claim" and expense_claim.example["claim_id"] == "EXP-2026-0042"
    warm_templates()  # the runtime finds a prompt of its template version for every registered type
    body = {"external_id": "EXP-2026-0042", "domain": "finance", "case_type": "expense_claim",
            "title": "Reimburse SEK 1,234.50 to Jonas Lindqvist", "data": expense_claim.example}

    # intake validates the data against the new schema and takes the amount from it
    assert upstream.post_case({**body, "data": {**body["data"], "receipts": -1}}).status_code == 422
    response = upstream.post_case(body)
    assert response.status_code == 202, response.get_json()
    case = db.session.get(Case, response.get_json()["id"])
    assert (case.amount, case.currency) == (Decimal("1234.50"), "SEK")

    # the local provider is the new analyzer; the prompt carries the new guidance
    assert analyze_case(case.id) == "stored"
    db.session.expire_all()
    case = db.session.get(Case, case.id)
    assert case.status == Status.PENDING_REVIEW.value
    rec = case.recommendation
    assert (rec.action, rec.parameters, rec.template_version) == ("refuse", {"reason": "No receipt attached."}, "v1")
    assert "missing_receipt" in rec.flags and rec.citations == ["receipts"]
    data = expense_claim.validate_data(case.payload)
    prompt = render_prompt(snapshot_of(expense_claim, case.payload), expense_claim, case.payload,
                           expense_claim.analyze(data), [])
    assert "(EXPENSE-GUIDANCE)" in prompt and "Allowed actions: reimburse, refuse" in prompt

    # the case page shows it through the new presenter
    reviewer = create_user(db.session, "erik.reviewer@example.com", "correct-horse-battery", "reviewer",
                           queues=["finance"])
    db.session.commit()
    http: FlaskClient = app.test_client()
    sign_in(http, reviewer)
    page = http.get(f"/cases/{case.id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for shown in ("Jonas Lindqvist", "SEK 1,234.50", "Claim reference", "EXP-2026-0042", "Receipts attached",
                  "Train to the Uppsala customer workshop", "No receipt attached."):
        assert shown in text, shown
