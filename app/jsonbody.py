"""Reading JSON request bodies safely: every way a body can fail becomes a domain error, never a 500.

- Not JSON, not UTF-8, or nested deeper than ``MAX_DEPTH``: `Malformed` (very deep documents
  exhaust the decoder's recursion limit; merely deep ones would exhaust later code's).
- An object that repeats a key: `Malformed` (the decoder would silently keep the last one).
- A string containing the NUL character (valid JSON, but PostgreSQL cannot store it in text or
  JSONB): `Invalid`, naming the field.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from app.errors import Invalid, Malformed

MAX_DEPTH = 64  # far deeper than any case type's data


class _DuplicateKey(Exception):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = value
    return found


def document(raw: bytes) -> Any:
    """The decoded JSON value of ``raw``: numbers with a fraction are read exactly, as Decimals."""
    try:
        value = json.loads(raw, object_pairs_hook=_object, parse_float=Decimal)
    except _DuplicateKey as exc:
        raise _malformed(f"the body repeats the key {exc.args[0]!r} in one object: which one is meant?") from None
    except RecursionError:
        raise _malformed(f"the body nests arrays and objects more than {MAX_DEPTH} deep") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _malformed(f"the body is not valid JSON: {exc}") from None
    where = _nul_at(value)
    if where is not None:
        raise Invalid("1 invalid field(s)", [{"field": where, "message": "must not contain the NUL character",
                                              "code": "nul_character"}], slug="validation-error",
                      title="The request body is invalid")
    return value


def json_object(raw: bytes) -> dict[str, Any]:
    value = document(raw)
    if not isinstance(value, dict):
        raise _malformed("the body must be a JSON object")
    return value


def _malformed(detail: str) -> Malformed:
    return Malformed(detail, slug="malformed-json", title="Malformed JSON")



def _nul_at(value: Any) -> str | None:
    """The dotted path of the first key or string holding a NUL character, else None; `Malformed`
    when arrays and objects nest deeper than ``MAX_DEPTH``."""
    stack: list[tuple[str, Any, int]] = [("", value, 0)]
    while stack:
        path, item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _malformed(f"the body nests arrays and objects more than {MAX_DEPTH} deep")
        if isinstance(item, str):
            if "\x00" in item:
                return path or "(body)"
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    return f"{path}.{key!r}" if path else repr(key)
                stack.append((f"{path}.{key}" if path else key, child, depth + 1))
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", child, depth + 1) for index, child in enumerate(item))
    return None
