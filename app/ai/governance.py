"""Governance around a model call, as pure functions: PII redaction (and its inverse) before the call,
and the check that every cited payload path exists (prompt-injection screening: app.ai.screening)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

# --- PII redaction ---------------------------------------------------------------------------

PERSON, ACCOUNT, EMAIL, PHONE, NATIONAL_ID = "person", "account", "email", "phone", "national_id"
ADDRESS, DATE_OF_BIRTH = "address", "date_of_birth"

# A string leaf is PII as a whole when its shape (".key" per object level, "[]" per list level)
# ends with one of these; the same value is then also replaced wherever it appears in other text.
_FIELD_KINDS: dict[str, str] = {
    ".name": PERSON,
    ".matched_name": PERSON,
    ".name_on_document": PERSON,
    ".counterparty": PERSON,
    ".known_beneficiary_names[]": PERSON,
    ".account": ACCOUNT,
    ".documents[].number": NATIONAL_ID,
    ".address.line1": ADDRESS,
    ".address.postcode": ADDRESS,
    ".date_of_birth": DATE_OF_BIRTH,
    ".date_of_birth_on_document": DATE_OF_BIRTH,
}
# Names that are no one's: an AI agent's and its tool's (agent_action).
_NOT_PERSONAL = frozenset({".agent.name", ".tool.name"})
# A one-character field value is still replaced in its own field, but not searched for in other text.
_MIN_PROPAGATED_LENGTH = 2
_PLACEHOLDER = re.compile(r"\[[A-Z_]+_\d+\]")

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
_PHONE = re.compile(
    r"""(?<![\w+/.-])
    (?: \+\d{1,3}[ .-]?(?:\(\d{1,5}\)[ .-]?)?\d{1,5}(?:[ .-]?\d{1,5}){0,5}   # +44 (0)20 7946 0958
      | \(\d{2,5}\)[ .-]?\d{2,5}(?:[ .-]\d{2,5}){0,4}                      # (555) 123-4567
      | \d{2,5}(?:[ .-]\d{2,8}){1,4}                                       # 020 7946 0958
    )
    (?![\w:-]|[.,]\d)""",
    re.VERBOSE,
)
_GROUPED_NUMBER = re.compile(r"\d{1,3}([ .])\d{3}(?:\1\d{3})*")  # 100 000 000 is an amount, not a phone
_UK_NI_NUMBER = re.compile(
    r"(?<![A-Za-z0-9])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])"
)
_US_SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])")
_IBAN_CANDIDATE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])")

Span = tuple[int, int, str]  # start, end, kind
Finder = Callable[[str], Iterator[Span]]


@dataclass(frozen=True)
class Redaction:
    data: dict[str, Any]  # a deep copy of the payload with PII replaced by placeholders such as "[PERSON_1]"
    mapping: dict[str, str]  # placeholder -> the real value it stands for
    applied: dict[str, int]  # kind ("person", "account", "email", "phone", "national_id") -> replacements made


def redact(data: dict[str, Any]) -> Redaction:
    """Replace the PII of a JSON payload by stable placeholders: one real value, one placeholder."""
    field_values: dict[str, str] = {}  # real value -> kind, for values that are PII by their position
    taken: set[str] = set()  # placeholder-shaped text already in the payload, never handed out

    def survey(shape: str, text: str) -> str:
        kind = _field_kind(shape, text)
        if kind:
            field_values.setdefault(text, kind)
        taken.update(_PLACEHOLDER.findall(text))
        return text

    _map_strings(data, survey)
    placeholders = _Placeholders(taken)
    finders = [_known_values_finder(field_values), *_PATTERN_FINDERS]

    def replace(shape: str, text: str) -> str:
        kind = _field_kind(shape, text)
        return placeholders.get(text, kind) if kind else _substitute(text, finders, placeholders)

    redacted = _map_strings(data, replace)
    return Redaction(redacted, placeholders.mapping, dict(placeholders.applied))


def unredact(value: Any, mapping: dict[str, str]) -> Any:
    """Put the real values back for every known placeholder in the strings of a nested JSON value."""
    return _map_strings(value, lambda _shape, text: _PLACEHOLDER.sub(lambda m: mapping.get(m[0], m[0]), text))


def _map_strings(value: Any, fn: Callable[[str, str], str], shape: str = "") -> Any:
    """A copy of a JSON value with every string leaf replaced by fn(shape, string)."""
    if isinstance(value, dict):
        return {key: _map_strings(item, fn, f"{shape}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_map_strings(item, fn, f"{shape}[]") for item in value]
    return fn(shape, value) if isinstance(value, str) else value


def _field_kind(shape: str, text: str) -> str | None:
    if not text.strip() or shape in _NOT_PERSONAL:
        return None
    return next((kind for suffix, kind in _FIELD_KINDS.items() if shape.endswith(suffix)), None)


class _Placeholders:
    """Hands out one placeholder per distinct real value, numbered per kind in order of appearance."""

    def __init__(self, taken: set[str]) -> None:
        self.mapping: dict[str, str] = {}
        self.applied: Counter[str] = Counter()
        self._taken = taken
        self._by_value: dict[str, tuple[str, str]] = {}
        self._last_number: Counter[str] = Counter()

    def get(self, value: str, kind: str) -> str:
        if value not in self._by_value:
            placeholder = self._next(kind)
            self._by_value[value] = placeholder, kind
            self.mapping[placeholder] = value
        placeholder, first_kind = self._by_value[value]
        self.applied[first_kind] += 1
        return placeholder

    def _next(self, kind: str) -> str:
        while True:
            self._last_number[kind] += 1
            placeholder = f"[{kind.upper()}_{self._last_number[kind]}]"
            if placeholder not in self._taken:
                return placeholder


def _substitute(text: str, finders: Iterable[Finder], placeholders: _Placeholders) -> str:
    """Replace the PII found in free text; where findings overlap, the earliest, then longest, wins."""
    spans = sorted((span for find in finders for span in find(text)), key=lambda span: (span[0], -span[1]))
    parts: list[str] = []
    position = 0
    for start, end, kind in spans:
        if start >= position:
            parts += [text[position:start], placeholders.get(text[start:end], kind)]
            position = end
    parts.append(text[position:])
    return "".join(parts)


def _known_values_finder(values: dict[str, str]) -> Finder:
    """Find the values already known as PII by their field (names, accounts, document numbers) in any text."""
    searchable = sorted((value for value in values if len(value) >= _MIN_PROPAGATED_LENGTH), key=len, reverse=True)
    pattern = re.compile(rf"(?<!\w)(?:{'|'.join(map(re.escape, searchable))})(?!\w)") if searchable else None

    def find(text: str) -> Iterator[Span]:
        for match in pattern.finditer(text) if pattern else ():
            yield match.start(), match.end(), values[match[0]]

    return find


def _regex_finder(kind: str, pattern: re.Pattern[str], accept: Callable[[str], bool] = bool) -> Finder:
    def find(text: str) -> Iterator[Span]:
        for match in pattern.finditer(text):
            if accept(match[0]):
                yield match.start(), match.end(), kind

    return find


def _is_phone(candidate: str) -> bool:
    digits = sum(char.isdigit() for char in candidate)
    return 9 <= digits <= 15 and not _GROUPED_NUMBER.fullmatch(candidate)


def _is_iban(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    return int("".join(str(int(char, 36)) for char in compact[4:] + compact[:4])) % 97 == 1


def _find_ibans(text: str) -> Iterator[Span]:
    """IBANs, compact or in groups of four, with a valid mod-97 check digit; a candidate that swallowed
    a following capitalised word ("... 1000 FROM") is cut back at a space until the check passes."""
    for match in _IBAN_CANDIDATE.finditer(text):
        candidate = match[0]
        cuts = [len(candidate), *(i for i in range(len(candidate) - 1, 0, -1) if candidate[i] == " ")]
        end = next((cut for cut in cuts if _is_iban(candidate[:cut])), None)
        if end is not None:
            yield match.start(), match.start() + end, ACCOUNT


# In priority order: on an identical span the first finder wins (an SSN is also shaped like a phone number).
_PATTERN_FINDERS: tuple[Finder, ...] = (
    _find_ibans,
    _regex_finder(EMAIL, _EMAIL),
    _regex_finder(NATIONAL_ID, _UK_NI_NUMBER),
    _regex_finder(NATIONAL_ID, _US_SSN),
    _regex_finder(PHONE, _PHONE, _is_phone),
)


# --- citation check --------------------------------------------------------------------------

_CITATION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])*(?:\.[A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])*)*")
_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")
_DATA_PREFIX = "data."


@dataclass(frozen=True)
class CitationCheck:
    valid: list[str]
    invalid: list[str]  # unparsable or not in the payload: a possible hallucination


def check_citations(citations: list[str], data: dict[str, Any]) -> CitationCheck:
    """Split cited payload paths ("beneficiary.country", "data.clauses[2].text") by whether they exist."""
    valid: list[str] = []
    invalid: list[str] = []
    for citation in citations:
        (valid if _cites(citation.strip(), data) else invalid).append(citation)
    return CitationCheck(valid, invalid)


def _cites(citation: str, data: dict[str, Any]) -> bool:
    paths = [citation, citation.removeprefix(_DATA_PREFIX)] if citation.startswith(_DATA_PREFIX) else [citation]
    return any(_resolves(path, data) for path in paths)


def _resolves(path: str, data: dict[str, Any]) -> bool:
    if not _CITATION.fullmatch(path):
        return False
    node: Any = data
    for key, index in _STEP.findall(path):
        if key:
            if not isinstance(node, dict) or key not in node:
                return False
            node = node[key]
        else:
            if not isinstance(node, list) or int(index) >= len(node):
                return False
            node = node[int(index)]
    return True
