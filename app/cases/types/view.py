"""Building blocks of the case types' presenters: how the case page lays out a case's data.

Each case type's ``presenter.py`` turns the stored payload (JSON: amounts are strings) into a
``CaseView``: headline items and labelled sections (fields, tables, text blocks) that the
shared macros render. Presenters build plain strings; the templates escape them. Every
displayed value carries its payload path (``beneficiary.country``) so the review page can
highlight what a recommendation cites.

Nothing here imports Flask or the review package: a case type's folder depends only on
``app.cases.types``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from app.cases.types.signals import loc

# --- display building blocks ---------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One labelled value; ``tone`` is "", "good", "warn" or "bad"."""

    label: str
    value: str
    path: str = ""
    tone: str = ""
    long: bool = False  # free text: shown as a paragraph


@dataclass(frozen=True)
class Row:
    path: str
    cells: tuple[str, ...]
    tone: str = ""


@dataclass(frozen=True)
class Column:
    label: str
    numeric: bool = False
    wrap: bool = False  # free text may wrap; codes, dates and amounts stay on one line


@dataclass(frozen=True)
class Block:
    """A titled passage of text, e.g. a contract clause."""

    label: str
    heading: str
    body: str
    path: str


@dataclass(frozen=True)
class Section:
    title: str
    items: tuple[Item, ...] = ()
    columns: tuple[Column, ...] = ()
    rows: tuple[Row, ...] = ()
    blocks: tuple[Block, ...] = ()
    empty: str = "Nothing recorded."
    wide: bool = False

    @property
    def kind(self) -> str:
        return "table" if self.columns else "blocks" if self.blocks else "items"


@dataclass(frozen=True)
class CaseView:
    summary: tuple[Item, ...]  # the headline facts, shown above the sections
    sections: tuple[Section, ...]


Presenter = Callable[[dict[str, Any]], CaseView]


# --- formatting ------------------------------------------------------------------------------------

ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND",
                          "VUV", "XAF", "XOF", "XPF"})
THREE_DECIMAL = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
DASH = "—"


def decimal_of(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None and value != "" else None
    except InvalidOperation:
        return None


def money(value: Any, currency: str | None) -> str:
    """``money("48250", "EUR") == "EUR 48,250.00"``, with the currency's minor units."""
    amount = decimal_of(value)
    if amount is None:
        return DASH if value in (None, "") else str(value)
    places = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
    text = f"{amount:,.{places}f}"
    return f"{currency} {text}" if currency else text


def percent(value: Any) -> str:
    return DASH if value is None else f"{float(value) * 100:.0f}%"


def score(value: Any) -> str:
    return DASH if value is None else f"{float(value):.2f}"


def yes_no(value: Any) -> str:
    return DASH if value is None else "Yes" if value else "No"


def text(value: Any) -> str:
    if value is None or value == "":
        return DASH
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or DASH
    return str(value)


ACRONYMS = frozenset({"ai", "aml", "bic", "id", "kyc", "pep", "sar", "sla", "ubo"})


def humanize(code: str | None) -> str:
    """``file_sar`` → "File SAR", ``case.info_requested`` → "Case · info requested"."""
    if not code:
        return DASH
    words = code.replace(".", " · ").replace("_", " ").split(" ")
    words = [w.upper() if w in ACRONYMS else w for w in words]
    text_ = " ".join(words)
    return text_[:1].upper() + text_[1:]


def years_since(iso_day: str | None, today: date | None = None) -> str:
    try:
        start = date.fromisoformat(str(iso_day))
    except ValueError:
        return ""
    days = ((today or date.today()) - start).days
    return f"{days // 365} years" if days >= 365 else f"{max(days, 0) // 30} months"


def score_tone(value: Any, bad: float = 0.9, warn: float = 0.6) -> str:
    number = float(value) if value is not None else 0.0
    return "bad" if number >= bad else "warn" if number >= warn else ""


# --- fields, tables and the shared screening tables ------------------------------------------------

Formatter = Callable[[Any], str]


def items_of(data: dict[str, Any], prefix: str, *spec: tuple[str, str, Formatter]) -> list[Item]:
    """An item per ``(key, label, formatter)`` present in ``data``, the object found at ``prefix``."""
    return [Item(label, fmt(data.get(key)), loc(prefix, key) if prefix else key)
            for key, label, fmt in spec if key in data]


def table(title: str, prefix: str, entries: list[dict[str, Any]], columns: tuple[Column, ...],
          cells: Callable[[dict[str, Any]], tuple[str, ...]], *, empty: str,
          tone: Callable[[dict[str, Any]], str] = lambda _: "", wide: bool = True) -> Section:
    """A row per entry of the list at ``prefix``; each row carries its path (``prefix[i]``)."""
    rows = tuple(Row(loc(prefix, i), cells(entry), tone(entry)) for i, entry in enumerate(entries))
    return Section(title, columns=columns, rows=rows, empty=empty, wide=wide)


def sanctions_table(prefix: str, hits: list[dict[str, Any]], *, with_dob: bool = False) -> Section:
    # The list name wraps so the score column stays in the (half-width) card.
    columns = (Column("List", wrap=True), Column("Matched name", wrap=True),
               *([Column("Date of birth")] if with_dob else []),
               Column("Score", numeric=True))

    def cells(hit: dict[str, Any]) -> tuple[str, ...]:
        dob = (text(hit.get("date_of_birth")),) if with_dob else ()
        return (text(hit.get("list")), text(hit.get("matched_name")), *dob, score(hit.get("score")))

    return table("Sanctions screening", prefix, hits, columns, cells, empty="No sanctions hits.",
                 tone=lambda hit: score_tone(hit.get("score")), wide=False)


def pep_table(prefix: str, hits: list[dict[str, Any]]) -> Section:
    columns = (Column("Matched name", wrap=True), Column("Position", wrap=True), Column("Score", numeric=True))
    return table("PEP screening", prefix, hits, columns,
                 lambda hit: (text(hit.get("matched_name")), text(hit.get("position")), score(hit.get("score"))),
                 empty="No PEP hits.", tone=lambda hit: score_tone(hit.get("score"), 0.8, 0.5), wide=False)


def present_generic(data: dict[str, Any]) -> CaseView:
    """Fallback for a case type that is not registered (any more): the top-level fields as text."""
    items = tuple(Item(humanize(key), "(see the raw JSON)" if isinstance(value, dict | list) else text(value), key)
                  for key, value in data.items())
    return CaseView((), (Section("Data", items),))
