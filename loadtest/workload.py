"""The random streams the personas draw from: Zipf-popular product ids, and the write share's pacing.

Nothing here imports Locust, so the distributions can be tested and reused on their own. Every
stream comes from a ``random.Random`` seeded from the run's seed and the user's name, so the same
seed replays the same requests in every arm. Popularity follows a bounded Zipf law over the catalog
(rank r is drawn with weight 1 / r**s); which product holds which rank is a seeded shuffle, so the hot
products are scattered over the id range rather than being ids 1, 2, 3.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from pathlib import Path

SORTS = ("name", "price", "-price", "rating", "-rating", "newest")
"""Every sort ``GET /v1/products`` accepts."""


def catalog_ids(catalog_size: int, ids_file: str | None = None) -> list[int]:
    """The product ids to read: the runner's file of active ids when given, else 1..catalog_size.

    The seeded catalog has some inactive products (a 404 on reads), so the runner exports the active
    ids from the database; without that file every id up to the catalog size is taken as readable.
    """
    if ids_file:
        ids = [int(line) for line in Path(ids_file).read_text().split()]
        return [product_id for product_id in ids if product_id <= catalog_size] or ids
    return list(range(1, catalog_size + 1))


class Zipf:
    """Draws items with Zipf-distributed popularity: the item of rank r with weight 1 / r**exponent."""

    def __init__(self, items: Sequence[int], exponent: float, seed: int):
        if not items:
            raise ValueError("Zipf needs at least one item")
        self.items = list(items)
        random.Random(f"{seed}:popularity").shuffle(self.items)
        weights = ((rank + 1) ** -exponent for rank in range(len(self.items)))
        self.cumulative = list(itertools.accumulate(weights))

    def draw(self, rng: random.Random) -> int:
        point = rng.random() * self.cumulative[-1]
        return self.items[min(bisect.bisect_right(self.cumulative, point), len(self.items) - 1)]

    def share_of_top(self, count: int) -> float:
        """The probability mass of the ``count`` most popular items (to describe the skew)."""
        count = max(1, min(count, len(self.cumulative)))
        return self.cumulative[count - 1] / self.cumulative[-1]


def user_rng(seed: int, persona: str, index: int) -> random.Random:
    """The random stream of one simulated user, the same for the same seed, persona and index."""
    return random.Random(f"{seed}:{persona}:{index}")


class WritePacer:
    """Keeps writes at a fixed share of all requests: a write is due once per 1/share requests sent."""

    def __init__(self, share: float):
        self.share = share
        self.requests = 0
        self.writes = 0

    def count(self, is_write: bool) -> None:
        self.requests += 1
        self.writes += is_write

    def write_due(self) -> bool:
        return self.share > 0 and self.writes < self.share * (self.requests + 1)
