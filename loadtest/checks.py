"""Response checks for the personas: the status every request must get, and body checks on a sample.

Every response is held to its expected statuses (a 404 for a product id taken from the catalog is a
failure like any other). One response in ``every`` per user also has its body parsed and compared
with what was asked for (the product id, the category slug); parsing every body would make the load
generator, which shares the machine with the server, the bottleneck. A failed check marks the
request failed in Locust's statistics.
"""

from __future__ import annotations

import random
from collections.abc import Callable

BodyCheck = Callable[[object], str | None]
"""Takes the parsed JSON body, returns what is wrong with it or None."""


class Sampler:
    """Says which responses get their body checked: about one in ``every``, from the user's own stream."""

    def __init__(self, rng: random.Random, every: int):
        self.rng = rng
        self.every = max(1, every)

    def due(self) -> bool:
        return self.every == 1 or self.rng.randrange(self.every) == 0


def verify(response, statuses: tuple[int, ...], body_check: BodyCheck | None = None) -> None:
    """Mark a Locust ``catch_response`` response as a success or a failure."""
    if response.status_code not in statuses:
        expected = "/".join(map(str, statuses))
        response.failure(f"status {response.status_code}, expected {expected}")
        return
    if body_check is not None and response.status_code != 304:
        problem = _body_problem(response, body_check)
        if problem:
            response.failure(problem)
            return
    response.success()


def _body_problem(response, body_check: BodyCheck) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return "body is not JSON"
    return body_check(body)


def has_id(expected: int) -> BodyCheck:
    def check(body) -> str | None:
        found = body.get("id") if isinstance(body, dict) else None
        return None if found == expected else f"asked for product {expected}, got {found!r}"

    return check


def has_fields(**expected) -> BodyCheck:
    def check(body) -> str | None:
        if not isinstance(body, dict):
            return "body is not an object"
        for name, value in expected.items():
            if body.get(name) != value:
                return f"{name} is {body.get(name)!r}, expected {value!r}"
        return None

    return check


def is_page(item_check: Callable[[dict], str | None] | None = None) -> BodyCheck:
    """A ``{items, next_cursor}`` page whose items all pass ``item_check``."""

    def check(body) -> str | None:
        if not isinstance(body, dict) or not isinstance(body.get("items"), list) or "next_cursor" not in body:
            return "not a page: expected {items: [...], next_cursor}"
        for item in body["items"] if item_check else ():
            problem = item_check(item)
            if problem:
                return problem
        return None

    return check


def review_of(product_id: int) -> Callable[[dict], str | None]:
    def check(item: dict) -> str | None:
        found = item.get("product_id")
        return None if found == product_id else f"review of product {found!r} on product {product_id}'s page"

    return check
