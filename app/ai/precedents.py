"""Similar past decided cases: a small, dependency-free TF-IDF ranking over texts that represent cases."""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

_WORD = re.compile(r"\w+")  # unicode words; "country_lt" stays one token
_STOP_WORDS = frozenset({
    "an", "and", "any", "are", "as", "at", "be", "been", "but", "by", "each", "for", "from", "had", "has",
    "have", "if", "in", "into", "is", "it", "its", "no", "not", "of", "on", "or", "our", "per", "shall", "so",
    "such", "than", "that", "the", "their", "then", "there", "these", "this", "those", "to", "was", "were",
    "which", "will", "with", "within", "would", "you", "your",
})
# Where the money goes or a party lives drives a case's risk more than any single word of its text.
_COUNTRY_WEIGHT = 2
_ID_MIN_LENGTH = 7  # longer words holding a digit are identifiers, account numbers or dates
_MONEY_KEY = re.compile(r"amount|limit|value|income|debt")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_AMOUNT_BUCKETS = (
    (Decimal(1_000), "under_1k"),
    (Decimal(10_000), "1k_10k"),
    (Decimal(100_000), "10k_100k"),
    (Decimal(1_000_000), "100k_1m"),
    (Decimal(10_000_000), "1m_10m"),
)


def tokenize(text: str) -> list[str]:
    """Lower-cased words of two characters or more, without English stop words."""
    return [word for word in _WORD.findall(text.lower()) if len(word) > 1 and word not in _STOP_WORDS]


def case_text(data: dict[str, Any]) -> str:
    """The text a case's payload is compared by: its free text without identifiers, one-word values
    qualified by their key ("channel_swift"; every country field as "country_ir", said twice), flags
    ("is_new_true"), non-empty lists by their key ("sanctions_hits") and amounts as coarse buckets
    ("amount_bucket_10k_100k")."""
    return " ".join(_terms(data, ""))


def _terms(value: Any, key: str) -> Iterator[str]:
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _terms(item, name)
    elif isinstance(value, list):
        if value:
            yield key
        for item in value:
            yield from _terms(item, key)
    elif isinstance(value, bool):
        yield f"{key}_{str(value).lower()}"
    elif _MONEY_KEY.search(key) and isinstance(value, int | float | str) and _NUMBER.fullmatch(str(value)):
        yield f"{key}_bucket_{_bucket(abs(Decimal(str(value))))}"
    elif isinstance(value, str):
        yield from _string_terms(key, value)


def _string_terms(key: str, text: str) -> Iterator[str]:
    words = [word for word in text.split() if not _is_identifier(word)]
    if len(words) == 1 and words[0].isalpha():  # a code or enum value: "LT", "sepa", "high", "passport"
        if key.endswith("country") or key == "nationality":
            yield from [f"country_{words[0].lower()}"] * _COUNTRY_WEIGHT
        else:
            yield f"{key}_{words[0].lower()}"
    else:
        yield from words


def _is_identifier(word: str) -> bool:
    return len(word) >= _ID_MIN_LENGTH and any(char.isdigit() for char in word)


def _bucket(amount: Decimal) -> str:
    return next((label for bound, label in _AMOUNT_BUCKETS if amount < bound), "10m_plus")


def terms(text: str) -> Counter[str]:
    """How often each token occurs in ``text``: what `rank` compares (callers may keep it)."""
    return Counter(tokenize(text))


def rank(
    query: str, candidates: Sequence[tuple[int, str]], k: int = 3, min_score: float = 0.05
) -> list[tuple[int, float]]:
    """The k candidates most similar to the query as (id, cosine of TF-IDF vectors rounded to 4 places),
    best first, equal scores by higher (more recent) id first; none scoring below min_score."""
    return rank_terms(terms(query), [(candidate_id, terms(text)) for candidate_id, text in candidates], k, min_score)


def rank_terms(
    query_terms: Counter[str], candidates: Sequence[tuple[int, Counter[str]]], k: int = 3, min_score: float = 0.05
) -> list[tuple[int, float]]:
    """`rank`, on texts already counted by `terms`."""
    documents = [counted for _, counted in candidates]
    frequencies: Counter[str] = Counter()
    for terms in (*documents, query_terms):
        frequencies.update(terms.keys())
    count = len(documents) + 1
    idf = {term: math.log((1 + count) / (1 + frequency)) + 1 for term, frequency in frequencies.items()}
    # Sublinear term frequency: a word said ten times is not ten times as telling.
    query_vector = {term: (1 + math.log(frequency)) * idf[term] for term, frequency in query_terms.items()}
    query_norm = math.sqrt(sum(weight * weight for weight in query_vector.values()))
    scored = []
    for (candidate_id, _), terms in zip(candidates, documents, strict=True):
        squares = dot = 0.0
        for term, frequency in terms.items():  # one pass: the hot loop of the ranking
            weight = (1 + math.log(frequency)) * idf[term]
            squares += weight * weight
            dot += weight * query_vector.get(term, 0.0)
        norm = query_norm * math.sqrt(squares)
        score = round(dot / norm, 4) if norm else 0.0
        if score >= min_score:
            scored.append((candidate_id, score))
    return heapq.nsmallest(k, scored, key=lambda item: (-item[1], -item[0]))

