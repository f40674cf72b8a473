"""Prompt-injection screening of every string a case carries: the envelope's (title, ids, callback
address) and the case data's, values and keys alike, at any depth.

Each string is matched in a *skeleton*: Unicode NFKC, zero-width, soft-hyphen and bidi-control
characters removed, accents dropped, look-alike letters folded to their Latin letter (Unicode's
confusables table, as the ``confusable_homoglyphs`` package ships it), lower case, common leetspeak
undone (0→o, 1→i, 3→e, 4→a, 5→s, 7→t, @→a, $→s). Every skeleton character remembers the original
character it came from, so a finding names the exact span of the ORIGINAL string.

A skeleton cannot tell ``1`` from ``i`` from ``l`` (nor a capital I from a small l in most fonts):
every i or l written in a phrase below matches either.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from confusable_homoglyphs.confusables import confusables_data

MAX_FINDINGS_PER_STRING = 20
CONTEXT = 40  # characters of the original string kept on each side of a finding, for the reviewer

# Removed before matching: soft hyphen, zero-width space / non-joiner / joiner, word joiner, byte-order
# mark, bidi embeddings, overrides and isolates, and Unicode tags (invisible "ASCII smuggling").
REMOVED = frozenset(
    "\u00ad\u200b\u200c\u200d\u2060\ufeff\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
) | frozenset(map(chr, range(0xE0000, 0xE0080)))
# Of those, the ones flagged on their own: they hide or reorder text. The soft hyphen and the joiners
# are left out: word processors, Persian, Indic scripts and emoji put them in ordinary text.
HIDDEN = REMOVED - frozenset("\u00ad\u200c\u200d")
LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}


@cache
def _latin_skeleton() -> dict[str, str]:
    """Non-ASCII character → the ASCII letter or digit it is confusable with (Unicode confusables.txt)."""
    found = {}
    for char, homoglyphs in confusables_data.items():
        if char.isascii():
            continue
        latin = [h["c"] for h in homoglyphs if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isalnum()]
        if latin:
            found[char] = latin[0]
    return found


@dataclass(frozen=True)
class Skeleton:
    text: str
    origin: tuple[int, ...]  # for each character of text, the index of the original character it came from

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original string's span that skeleton[start:end] came from."""
        return self.origin[start], self.origin[end - 1] + 1


def skeleton(original: str) -> Skeleton:
    """The matching form of ``original``, each character mapped back to where it came from."""
    return _ascii_skeleton(original) if original.isascii() else _unicode_skeleton(original)


# What `_unicode_skeleton` makes of each ASCII character (no normalisation, accent or confusable
# applies to one): lower case, leetspeak undone, "_" a space.
_ASCII_FOLD = str.maketrans({chr(code): " " if chr(code) == "_" else LEET.get(chr(code).lower(), chr(code).lower())
                             for code in range(128)})
_CAMEL_CASE = re.compile(r"(?<=[a-z])(?=[A-Z])")


def _ascii_skeleton(original: str) -> Skeleton:
    """`_unicode_skeleton` of an ASCII string (most strings a case carries), without its per-character
    Unicode work: one translation, and a space at each camelCase boundary."""
    text = original.translate(_ASCII_FOLD)
    cuts = [boundary.start() for boundary in _CAMEL_CASE.finditer(original)]
    if not cuts:
        return Skeleton(text, tuple(range(len(original))))
    pieces, origin, last = [], [], 0
    for cut in cuts:
        pieces += [text[last:cut], " "]
        origin += [*range(last, cut), cut]
        last = cut
    pieces.append(text[last:])
    origin += range(last, len(original))
    return Skeleton("".join(pieces), tuple(origin))


def _unicode_skeleton(original: str) -> Skeleton:
    latin = _latin_skeleton()
    chars: list[str] = []
    origin: list[int] = []
    previous_lower = False
    for index, char in enumerate(original):
        if char in REMOVED:
            continue
        if char.isupper() and previous_lower:  # camelCase keys and ids: "ignorePrevious" → "ignore previous"
            chars.append(" ")
            origin.append(index)
        previous_lower = char.islower()
        for folded in unicodedata.normalize("NFKC", char):
            for base in unicodedata.normalize("NFD", folded):
                if unicodedata.combining(base):
                    continue
                base = latin.get(base, base).lower()
                chars.append(" " if base == "_" else LEET.get(base, base))
                origin.append(index)
    return Skeleton("".join(chars), tuple(origin))


# --- the phrases ---------------------------------------------------------------------------------


def _ambiguous_il(pattern: str) -> str:
    """Every literal i or l of a pattern (outside escapes and character classes) matches either."""
    out, in_class, escaped = [], False, False
    for char in pattern:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            out.append(char)
            escaped = True
        elif char == "[" and not in_class:
            in_class = True
            out.append(char)
        elif char == "]" and in_class:
            in_class = False
            out.append(char)
        elif char in "il" and not in_class:
            out.append("[il]")
        else:
            out.append(char)
    return "".join(out)


def _phrase(pattern: str) -> re.Pattern[str]:
    """A phrase over the skeleton: each literal space stands for any run of separators."""
    return re.compile(_ambiguous_il(pattern.replace(" ", r"\W+")))


_MODEL = r"(?:ai|assistant|chatbot|bot|llm|gpt|(?:large )?language model)"
_QUALIFIER = r"(?:all|your|previous|prior|above|earlier|preceding|foregoing|system|original)"
_RECOMMENDED = r"(?:release|approve|approved|approve onboarding|close false positive|counter offer)"
PHRASES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ignore_instructions", _phrase(
        r"\b(?:ignore|disregard|forget|override|bypass) (?:(?:any|every|of|the|these|those) )*"
        rf"{_QUALIFIER}(?: (?:the|your|previous|prior|above|earlier|preceding|system|original))* "
        r"(?:instructions?|prompts?|rules|guidelines|directions|directives|messages?)\b"
        r"|\b(?:ignore|disregard|forget) (?:everything|anything) (?:above|before|prior|previously|you were told)\b"
    )),
    ("you_are_now", _phrase(
        rf"\byou are now (?:(?:a|an|the|in|my|no longer) )?(?:[a-z-]+ ){{0,2}}?(?:{_MODEL}|model|dan|mode)\b"
    )),
    ("act_as", _phrase(
        rf"\b(?:(?:act|behave|function|roleplay) as|pretend (?:to be|you are)) (?:(?:a|an|the|my|your) )?"
        rf"(?:[a-z-]+ ){{0,2}}?(?:{_MODEL}|model)\b"
    )),
    ("system_prompt", _phrase(r"\b(?:system|hidden|developer) prompt\b")),
    ("new_instructions", _phrase(
        r"\bnew instructions?(?: for (?:the |you )?(?:ai|assistant|model))?\s*:"
        r"|\b(?:your|these|following) new instructions\b"
    )),
    ("as_an_ai", _phrase(
        rf"\bas an? {_MODEL}(?: (?:language model|model|assistant|system))?(?:\s*,|,? (?:you|your|it is|i)\b)"
    )),
    ("respond_with", _phrase(
        r"\b(?:respond|reply|answer|output) (?:only )?with (?:only )?"
        r"(?:[\"'`{]|json\b|the (?:word|action|json)\b|(?:approve|approved|release|yes|no|true)\b)"
        r"|\b(?:respond|reply|answer|output) only\s*[:\"']"
    )),
    ("approve_without_review", _phrase(
        r"\bapprove (?:this|the) (?:payment|case|transaction|transfer|contract|application|alert|request)"
        r" (?:immediately|right away|now|without (?:any )?(?:further )?(?:review|checks?|verification|escalation))"
        r"|\b(?:release|clear|close) (?:this|the) (?:payment|case|transaction|transfer|contract|application|alert)"
        r" without (?:any )?(?:further )?(?:review|checks?|verification|escalation)"
    )),
    ("dictated_answer", _phrase(
        rf"[\"']?\baction\b[\"']?\s*[:=]\s*[\"']?{_RECOMMENDED}\b"
        rf"|\b(?:answer|respond|reply|output|return) {_RECOMMENDED}\b"
        r"|\b(?:risk flags|flags)\b[\"']?\s*[:=]\s*\[\s*\]"
    )),
    ("do_not_flag", _phrase(r"\b(?:do not|don['\u2019]t|never) (?:flag|escalate)\b")),
    ("role_marker", re.compile(r"(?<![a-z]\s)\b(?:system|assistant)\s*:")),
    ("chat_template", re.compile(r"<\|[a-z ]+\|>|\[/?inst\]|<</?sys>>|###\s*(?:instruction|system|response)s?\b")),
)
# 40+ base64 characters mixing upper case, lower case and digits: checked for encoded text.
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/])(?=[A-Za-z0-9+/]*[a-z])(?=[A-Za-z0-9+/]*[A-Z])(?=[A-Za-z0-9+/]*\d)"
                     r"[A-Za-z0-9+/]{40,}={0,2}")


@dataclass(frozen=True)
class Finding:
    path: str  # where in the envelope: "title", "external_id", "data.purpose", "data.clauses[2].text"
    part: str  # "value", or "key" when the string is an object's key (path then ends with that key)
    pattern: str  # e.g. "ignore_instructions", "hidden_characters", "encoded_text"
    start: int  # the span in the ORIGINAL string
    end: int
    text: str  # original[start:end]
    before: str  # up to CONTEXT characters of the original string before the span
    after: str  # and after it

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def screen_string(original: str, path: str, part: str = "value") -> list[Finding]:
    """The injection findings of one string, in order of their start."""
    spans = [(name, start, end) for name, start, end in _matches(original)]
    spans.sort(key=lambda span: (span[1], span[2], span[0]))
    return [_finding(original, path, part, name, start, end) for name, start, end in spans[:MAX_FINDINGS_PER_STRING]]


def _matches(original: str) -> Iterator[tuple[str, int, int]]:
    shape = skeleton(original)
    for name, pattern in PHRASES:
        for match in pattern.finditer(shape.text):
            if match.end() > match.start():
                yield (name, *shape.span(match.start(), match.end()))
    for run in re.finditer(f"[{''.join(sorted(HIDDEN))}]+", original):
        yield "hidden_characters", run.start(), run.end()
    for blob in _BASE64.finditer(original):
        if _is_encoded_text(blob[0]):
            yield "encoded_text", blob.start(), blob.end()


def _is_encoded_text(candidate: str) -> bool:
    """Whether base64 decodes to readable text (words and spaces): an encoded message, not an id or a hash."""
    try:
        decoded = base64.b64decode(candidate + "=" * (-len(candidate) % 4), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    printable = sum(char.isprintable() for char in decoded)
    return " " in decoded and printable >= 0.9 * len(decoded)


def _finding(original: str, path: str, part: str, pattern: str, start: int, end: int) -> Finding:
    return Finding(path, part, pattern, start, end, original[start:end],
                   original[max(0, start - CONTEXT):start], original[end:end + CONTEXT])


def screen_value(value: Any, path: str) -> list[Finding]:
    """Every string in a JSON value, keys included, at any depth."""
    if isinstance(value, str):
        return screen_string(value, path)
    findings: list[Finding] = []
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            findings += screen_string(str(key), child, "key")
            findings += screen_value(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            findings += screen_value(item, f"{path}[{index}]")
    return findings


def screen_case(envelope: dict[str, Any], data: dict[str, Any]) -> list[Finding]:
    """Every string of a case: the envelope's fields (``title``, ``external_id``, ...) and its ``data``."""
    return [*screen_value(envelope, ""), *screen_value(data, "data")]


__all__ = ["Finding", "Skeleton", "screen_case", "screen_string", "screen_value", "skeleton"]
