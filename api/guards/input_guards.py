"""Hostile input stopped at the door: JSON bodies and query strings the views and PostgreSQL can't take.

``request_guards`` bounds a body's size and type; this module bounds what a
well-formed JSON body may hold, and runs on every write before webargs parses
it. Python's json module has no depth limit (a deep body raises RecursionError,
a 500), accepts ``NaN``, ``Infinity`` and ``1e309`` (not numbers PostgreSQL or
orjson can store), parses integers of thousands of digits, keeps the last of
duplicated keys (two parsers may disagree about which one counts), and lets
NUL characters and unpaired surrogates through, which PostgreSQL rejects in
every text and JSON column. Each is a 422 problem naming the field (400 for a
body that is not JSON at all), before any view runs, so every current and
future text field is covered without a rule per schema. Only bodies a view
would parse are checked: a write without a valid token stays a 401 (and costs
no parsing), an unknown path a 404. Query strings get the NUL check too (a
400): werkzeug already replaces undecodable bytes there.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate

from flask import Flask, current_app, request

from catalog.config import Settings

from ..errors import problem
from . import request_guards
from .auth import client_for
from .request_guards import BODY_METHODS

MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects a body may have; Shelf's own schemas need 3."""

MAX_INTEGER = 2**63 - 1
"""Integers must fit in signed 64 bits: PostgreSQL's bigint, and what orjson writes back out."""

MAX_REPORTED_ERRORS = 10
MAX_FIELD_CHARS = 100

STRING_LITERAL = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
UNPAIRED_SURROGATE = re.compile("[\ud800-\udfff]")


class Unrepresentable:
    """A parsed number Shelf cannot store, kept in place so the walk can name its field."""

    def __init__(self, message: str):
        self.message = message


class JsonObject(dict):
    """A parsed object that remembers which keys the body repeated."""

    duplicates: tuple[str, ...] = ()


def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in ``body``, counted without parsing it."""
    brackets = STRING_LITERAL.sub(b"", body).translate(None, NOT_BRACKETS)
    steps = (1 if char in b"[{" else -1 for char in brackets)
    return max(accumulate(steps), default=0)


def parse_int(text: str) -> int | Unrepresentable:
    # Checked on the digits first: int() of a 5,000-digit string raises (Python's 4,300-digit cap).
    if len(text.lstrip("-")) > len(str(MAX_INTEGER)) or not -MAX_INTEGER - 1 <= int(text) <= MAX_INTEGER:
        return Unrepresentable("Integers must fit in 64 bits.")
    return int(text)


def parse_float(text: str) -> float | Unrepresentable:
    number = float(text)
    return number if math.isfinite(number) else Unrepresentable("Number out of range.")


def reject_constant(name: str):
    raise ValueError(f"{name} is not JSON.")


def object_with_duplicates(pairs: list[tuple[str, object]]) -> JsonObject:
    obj = JsonObject(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        repeated: set[str] = set()
        for key, _value in pairs:
            (repeated if key in seen else seen).add(key)
        obj.duplicates = tuple(repeated)
    return obj


def parse_body(body: bytes):
    return json.loads(
        body.decode("utf-8"),  # RFC 8259: JSON is UTF-8, whatever charset the Content-Type claims
        parse_int=parse_int,
        parse_float=parse_float,
        parse_constant=reject_constant,
        object_pairs_hook=object_with_duplicates,
    )


def text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "Must not contain NUL characters."
    if UNPAIRED_SURROGATE.search(text):
        return "Must not contain unpaired surrogates."
    return None


def join(path: str, key: object) -> str:
    name = f"{path}.{key}" if path else str(key)
    return name[:MAX_FIELD_CHARS]


def find_problems(document) -> list[tuple[str, str]]:
    """``(field, message)`` for every value in ``document`` Shelf cannot store, walked without recursion."""
    found: list[tuple[str, str]] = []
    stack = [(document, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            found += [(join(path, key), "Give this field once.") for key in getattr(value, "duplicates", ())]
            for key, child in value.items():
                if message := text_problem(key):
                    found.append((join(path, key), "Field names: " + message))
                stack.append((child, join(path, key)))
        elif isinstance(value, list):
            stack += [(child, join(path, index)) for index, child in enumerate(value)]
        elif isinstance(value, str) and (message := text_problem(value)):
            found.append((path, message))
        elif isinstance(value, Unrepresentable):
            found.append((path, value.message))
    return found


def invalid(status: int, location: str, problems: list[tuple[str, str]]):
    errors = [
        {"field": field.replace("\x00", "\\0") or "_", "in": location, "message": message}
        for field, message in sorted(problems)[:MAX_REPORTED_ERRORS]
    ]
    names = ", ".join(sorted({error["field"] for error in errors}))
    return problem(status, f"invalid input: {names}", errors=errors)


def body_will_be_parsed() -> bool:
    """A routed write with a valid token: the rest (404, 405, 401) is answered without reading the body."""
    if request.method not in BODY_METHODS or not request.is_json or request.url_rule is None:
        return False
    return (
        client_for(request.headers.get("Authorization"), current_app.config["SHELF"].api_tokens) is not None
    )


def check_json_body() -> None:
    if not body_will_be_parsed():
        return
    body = request.get_data(cache=True)
    if not body:
        return
    if request_guards.cut_at_the_limit(body):
        raise request_guards.too_large()
    if json_depth(body) > MAX_JSON_DEPTH:
        raise invalid(422, "json", [("_", f"Nested deeper than {MAX_JSON_DEPTH} levels.")])
    try:
        document = parse_body(body)
    except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
        message = str(exc) if str(exc).endswith("is not JSON.") else "Invalid JSON body."
        raise invalid(400, "json", [("_", message)]) from None
    if problems := find_problems(document):
        raise invalid(422, "json", problems)


def check_url() -> None:
    if "\x00" in request.path:
        raise invalid(400, "path", [("_", "Must not contain NUL characters.")])
    problems = [
        (key, "Must not contain NUL characters.")
        for key, values in request.args.lists()
        if any("\x00" in text for text in (key, *values))
    ]
    if problems:
        raise invalid(400, "query", problems)


def init_app(app: Flask, _settings: Settings) -> None:
    app.before_request(check_url)
    app.before_request(check_json_body)
