"""Reading clauses and notes the way a lawyer or an analyst would: a phrase only counts when it is
affirmed. "does not renew automatically" does not renew automatically; "not without limit" is limited;
"except for fraud" names an exception, not the rule.

Every analyzer rule that looks for a phrase in free text asks `affirms` (or `affirmed`) instead of
searching the raw text, so negation and exceptions are handled in this one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words that negate what follows them in the same clause. Two of them cancel ("not without").
NEGATOR = re.compile(
    r"\b(?:not|no|never|neither|nor|without|cannot|nothing|none|non)\b|n['\u2019]t\b",
    re.IGNORECASE,
)
# Where a clause ends: a negation before it does not reach past it ("shall not be unlimited and is capped").
CLAUSE_BREAK = re.compile(
    r"[,;:.()]|\b(?:and|but|unless|except|save\s+(?:for|as|that)|provided\s+that|other\s+than|excluding|however"
    r"|whereas)\b",
    re.IGNORECASE,
)
# What opens an exception: the words after it, up to the end of the clause, are the exception.
EXCEPTION = re.compile(
    r"\b(?:except(?:\s+(?:for|as|that|where|in))?|save\s+(?:for|as|that)|other\s+than|excluding|unless)\b",
    re.IGNORECASE,
)
CLAUSE_END = re.compile(r"[,;:.()]")
SENTENCE = re.compile(r"(?<=[.;!?])\s+")


@dataclass(frozen=True)
class Reading:
    """One occurrence of a phrase and how its sentence holds it."""

    match: re.Match[str]
    negated: bool  # an odd number of negations before it in its clause
    excepted: bool  # it sits inside an exception ("except for ...", "unless ...")

    @property
    def affirmed(self) -> bool:
        return not self.negated and not self.excepted


def sentences(text: str) -> list[str]:
    return [part for part in SENTENCE.split(text) if part]


def _clause_start(sentence: str, position: int) -> int:
    """Where the clause holding `position` starts: just after the last clause break before it."""
    return max((found.end() for found in CLAUSE_BREAK.finditer(sentence, 0, position)), default=0)


def _in_exception(sentence: str, position: int) -> bool:
    """Whether `position` lies between an exception word and the end of that exception's clause."""
    for found in EXCEPTION.finditer(sentence, 0, position):
        end = CLAUSE_END.search(sentence, found.end())
        if end is None or end.start() >= position:
            return True
    return False


def readings(pattern: re.Pattern[str], text: str) -> list[Reading]:
    """Every occurrence of `pattern` in `text`, sentence by sentence, with its negation and exception."""
    found = []
    for sentence in sentences(text):
        for match in pattern.finditer(sentence):
            before = sentence[_clause_start(sentence, match.start()):match.start()]
            negations = len(NEGATOR.findall(before))
            found.append(Reading(match, negations % 2 == 1, _in_exception(sentence, match.start())))
    return found


def affirmed(pattern: re.Pattern[str], text: str, *, with_exceptions: bool = False) -> list[re.Match[str]]:
    """The occurrences of `pattern` that `text` affirms: not negated and, unless `with_exceptions`
    (an exception that says it still says it: "payable within 30 days, unless ... within 120 days"),
    not inside an exception."""
    return [
        reading.match for reading in readings(pattern, text)
        if not reading.negated and (with_exceptions or not reading.excepted)
    ]


def affirms(pattern: re.Pattern[str], text: str) -> bool:
    """Whether `text` affirms `pattern` at least once."""
    return bool(affirmed(pattern, text))


def denies(pattern: re.Pattern[str], text: str) -> bool:
    """Whether `text` mentions `pattern` yet affirms it nowhere: each mention negated or an exception
    ("neither party may terminate for convenience", "may terminate on notice, other than for convenience")."""
    found = readings(pattern, text)
    return bool(found) and not any(reading.affirmed for reading in found)


def without_negated(pattern: re.Pattern[str], text: str) -> str:
    """`text` with the clause of every negated occurrence of `pattern` cut out: what is left is what
    the text says ("not governed by the laws of X but by the laws of Y" leaves "but by the laws of Y")."""
    kept = []
    for sentence in sentences(text):
        cuts = []
        for reading in readings(pattern, sentence):
            if reading.negated:
                start = _clause_start(sentence, reading.match.start())
                end = CLAUSE_BREAK.search(sentence, reading.match.end())
                cuts.append((start, end.start() if end else len(sentence)))
        for start, end in reversed(cuts):
            sentence = sentence[:start] + sentence[end:]
        kept.append(sentence)
    return " ".join(kept)
