"""A deterministic, realistic demo catalog and its bulk loader (``flask --app api seed``).

The generator builds ~60 categories in two levels, ~150 brands, products with category-typical
names, prices, stock and attributes, and reviews whose counts per product are Zipf-skewed and whose
ratings follow the J-shaped distribution real stores show, tilted per product by a hidden quality.
Everything comes from one ``random.Random(seed)`` drawn in a fixed order and all timestamps are
relative to a fixed base date, so the same seed (on the same Python version) writes identical rows.
Rows are streamed to PostgreSQL with COPY as they are generated (the server ingests one chunk while
Python builds the next), with explicit ids, in one transaction that also fixes the id sequences,
refreshes every aggregate and ANALYZEs: a failure leaves the catalog as it was.
"""

from __future__ import annotations

import bisect
import json
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine

from .seed_data import (
    BRAND_HEADS,
    BRAND_TAILS,
    DEPARTMENTS,
    DESCRIPTION_CLOSERS,
    DESCRIPTION_OPENERS,
    FIRST_NAMES,
    INITIALS,
    REVIEW_CLOSERS,
    REVIEW_DETAILS,
    REVIEW_OPENERS,
    REVIEW_TITLES,
    Department,
    Leaf,
)
from .services.aggregates import recompute_all
from .services.slugs import slugify

BASE_DATE = datetime(2026, 1, 1, tzinfo=UTC)
"""Every generated timestamp lies in the two years before this instant."""

WINDOW_START = BASE_DATE.replace(year=BASE_DATE.year - 2)
WINDOW_SECONDS = int((BASE_DATE - WINDOW_START).total_seconds())

CATALOG_TABLES = ("categories", "products", "reviews", "product_rating_summaries", "category_stats")
"""Everything the seed writes; what ``reset`` truncates and what must be empty otherwise."""

PHASES = ("categories", "products", "reviews", "aggregates", "analyze")
"""The steps reported to ``progress``, in order."""

Progress = Callable[[str, int], None]
"""``progress(phase, rows)``: ``rows`` more rows of ``phase`` go to the server (0 when it starts)."""

BATCH_ROWS = 2000
"""Rows per COPY chunk: large enough to amortise a call, small enough to keep progress smooth."""


class CatalogNotEmpty(RuntimeError):
    """The catalog tables already hold rows and ``reset`` was not asked for."""


@dataclass(frozen=True)
class SeedResult:
    categories: int
    products: int
    reviews: int


BRAND_COUNT = 150
"""Brands generated from the vocabulary's heads and tails (``catalog.seed_data``)."""

# Real review ratings are J-shaped: mostly fives, a bump of ones from unhappy buyers, few twos.
RATING_BASE = (0.09, 0.05, 0.08, 0.20, 0.58)
QUALITY_TILT = 0.45
"""How strongly a product's hidden quality (a standard normal) shifts its ratings up or down."""

NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _field(value: str) -> str:
    """A text value as a COPY text-format field."""
    return value.translate(_COPY_ESCAPES)


def _timestamp(seconds: int) -> str:
    """``seconds`` after WINDOW_START as a timestamptz literal."""
    return (WINDOW_START + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S+00")


def _price(amount: float, ending: str) -> str:
    """Shelf-style price near ``amount``: 7.99, 24.49, and whole fives under 5 past 100 (124.99)."""
    dollars = int(amount)
    if amount >= 100:
        dollars = max(5 * round(amount / 5) - 1, 99)
    return f"{dollars}.{ending}"


# --- Generation -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Category:
    id: int
    slug: str
    name: str
    parent_id: int | None
    department: Department | None
    leaf: Leaf | None


@dataclass(frozen=True)
class _Product:
    """What review generation needs to know about a product."""

    created: int
    noun: str
    quality: float


class CatalogGenerator:
    """Draws the whole catalog from one seeded Random, in a fixed order, one table at a time.

    ``category_rows``, ``product_rows`` and ``review_rows`` must be consumed in that order: products
    need the categories and brands, reviews need the products.
    """

    def __init__(self, seed: int, products: int, reviews: int):
        if products < 0 or reviews < 0:
            raise ValueError("products and reviews must not be negative")
        if reviews and not products:
            raise ValueError("reviews need at least one product")
        self.rng = random.Random(seed)
        self.product_count = products
        self.review_count = reviews
        self.categories = self._categories()
        self.brands = self._brands()
        self.products: list[_Product] = []
        self._texts: dict[str, _ReviewTexts] = {}

    def _categories(self) -> list[_Category]:
        categories: list[_Category] = []
        for department in DEPARTMENTS:
            parent_id = len(categories) + 1
            categories.append(
                _Category(parent_id, slugify(department.name), department.name, None, department, None)
            )
            for leaf in department.leaves:
                category_id = len(categories) + 1
                categories.append(
                    _Category(category_id, slugify(leaf.name), leaf.name, parent_id, department, leaf)
                )
        return categories

    def _brands(self) -> dict[str, list[str]]:
        """Brands per department; each has its own brands and a few shares one with a neighbour."""
        rng = self.rng
        names = [head + tail for head in BRAND_HEADS for tail in BRAND_TAILS]
        chosen = rng.sample(names, BRAND_COUNT)
        by_department: dict[str, list[str]] = {d.name: [] for d in DEPARTMENTS}
        for index, brand in enumerate(chosen):
            home = DEPARTMENTS[index % len(DEPARTMENTS)]
            by_department[home.name].append(brand)
            if rng.random() < 0.1:
                by_department[DEPARTMENTS[(index + 1) % len(DEPARTMENTS)].name].append(brand)
        return by_department

    def category_rows(self) -> Iterator[list[str]]:
        created = _timestamp(0)
        yield [
            f"{c.id}\t{c.slug}\t{_field(c.name)}\t{c.parent_id or NULL}\t{created}\t{created}\n"
            for c in self.categories
        ]

    def product_rows(self) -> Iterator[list[str]]:
        rng = self.rng
        leaves = [c for c in self.categories if c.leaf is not None]
        # Uneven category sizes: some leaves hold several times as many products as others.
        leaf_weights = list(_cumulative(rng.uniform(0.3, 1.7) for _ in leaves))
        brand_weights = {
            name: list(_cumulative((rank + 1) ** -0.9 for rank in range(len(brands))))
            for name, brands in self.brands.items()
        }
        last_created = WINDOW_SECONDS - 86400  # a day before the base date, so reviews have room
        batch: list[str] = []
        for product_id in range(1, self.product_count + 1):
            category = leaves[bisect.bisect(leaf_weights, rng.random() * leaf_weights[-1])]
            department, leaf = category.department, category.leaf
            brands = self.brands[department.name]
            weights = brand_weights[department.name]
            brand = brands[bisect.bisect(weights, rng.random() * weights[-1])]
            noun = _pick(rng, leaf.nouns)
            adjective = _pick(rng, department.adjectives)
            model = _pick(rng, department.models)
            name = f"{brand} {adjective} {noun} {model}".rstrip()
            sku = f"SHL-{product_id:07d}"
            attributes = {key: _pick(rng, values) for key, values in department.attributes.items()}
            description = self._description(brand, adjective, noun, department, attributes)
            amount = leaf.median_price * math.exp(rng.gauss(0, 0.55))
            price = _price(amount, "99" if rng.random() < 0.8 else "49")
            stock = 0 if rng.random() < 0.08 else min(int(rng.lognormvariate(3.2, 1.0)) + 1, 5000)
            active = "f" if rng.random() < 0.03 else "t"
            # sqrt skews creation toward the base date: the catalog grew over the two years.
            created = int(last_created * math.sqrt(rng.random()))
            updated = created + int((WINDOW_SECONDS - created) * rng.random() ** 3)
            self.products.append(_Product(created, noun, rng.gauss(0, 1)))
            batch.append(
                f"{product_id}\t{sku}\t{_field(name)}\t{slugify(name)}-{sku.lower()}\t{_field(description)}\t"
                f"{_field(brand)}\t{price}\tUSD\t{stock}\t{_field(json.dumps(attributes))}\t{category.id}\t"
                f"{active}\t1\t{_timestamp(created)}\t{_timestamp(updated)}\n"
            )
            if len(batch) == BATCH_ROWS:
                yield batch
                batch = []
        if batch:
            yield batch

    def _description(
        self, brand: str, adjective: str, noun: str, department: Department, attributes: dict
    ) -> str:
        rng = self.rng
        opener = _pick(rng, DESCRIPTION_OPENERS).format(
            brand=brand, adjective=adjective.lower(), noun=noun.lower()
        )
        features = rng.sample(department.features, 2)
        closer = _pick(rng, DESCRIPTION_CLOSERS).format(brand=brand)
        sentences = [opener, *(f.format(**attributes) for f in features), closer]
        return " ".join(s for s in sentences if s)

    def review_rows(self) -> Iterator[list[str]]:
        rng = self.rng
        counts = review_counts(rng, len(self.products), self.review_count)
        review_id = 0
        batch: list[str] = []
        for product_id, (product, count) in enumerate(zip(self.products, counts, strict=True), start=1):
            if not count:
                continue
            tilts = (math.exp(QUALITY_TILT * product.quality * (rating - 3)) for rating in range(1, 6))
            ratings = list(_cumulative(base * tilt for base, tilt in zip(RATING_BASE, tilts, strict=True)))
            texts = self._review_texts(product.noun)
            span = WINDOW_SECONDS - product.created - 60
            # Reviews come after the product exists; ids of one product's reviews follow their dates.
            times = sorted(product.created + 60 + int(span * rng.random()) for _ in range(count))
            for created in times:
                review_id += 1
                rating = bisect.bisect(ratings, rng.random() * ratings[-1]) + 1
                title, body = texts.draw(rng, rating)
                author = f"{_pick(rng, FIRST_NAMES)} {_pick(rng, INITIALS)}."
                batch.append(
                    f"{review_id}\t{product_id}\t{rating}\t{title}\t{body}\t{author}\t{_timestamp(created)}\n"
                )
                if len(batch) == BATCH_ROWS:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def _review_texts(self, noun: str) -> _ReviewTexts:
        if noun not in self._texts:
            self._texts[noun] = _ReviewTexts.for_noun(noun)
        return self._texts[noun]


@dataclass(frozen=True)
class _ReviewTexts:
    """The review templates with one noun filled in and COPY-escaped, built once per noun."""

    titles: dict[int, tuple[str, ...]]
    openers: dict[int, tuple[str, ...]]
    details: tuple[str, ...]
    closers: dict[int, tuple[str, ...]]

    @classmethod
    def for_noun(cls, noun: str) -> _ReviewTexts:
        def fill(templates: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(_field(t.format(noun=noun.lower())) for t in templates)

        return cls(
            titles={rating: fill(t) for rating, t in REVIEW_TITLES.items()},
            openers={rating: fill(t) for rating, t in REVIEW_OPENERS.items()},
            details=fill(REVIEW_DETAILS),
            closers={rating: fill(t) for rating, t in REVIEW_CLOSERS.items()},
        )

    def draw(self, rng: random.Random, rating: int) -> tuple[str, str]:
        """A title and a body of zero to three sentences in the tone of ``rating``."""
        title = _pick(rng, self.titles[rating])
        length = rng.random()
        if length < 0.08:
            return title, ""
        opener = _pick(rng, self.openers[rating])
        if length < 0.4:
            return title, opener
        if length < 0.75:
            return title, f"{opener} {_pick(rng, self.details)}"
        return title, f"{opener} {_pick(rng, self.details)} {_pick(rng, self.closers[rating])}"


def review_counts(rng: random.Random, products: int, reviews: int) -> list[int]:
    """Per-product review counts summing to ``reviews``: Zipf-like over a random 60% of products.

    A few products get a large share (thousands at a million reviews), the tail gets a handful, and
    the products left out get none. Largest-remainder rounding makes the total exact.
    """
    counts = [0] * products
    if not reviews:
        return counts
    order = list(range(products))
    rng.shuffle(order)
    reviewed = order[: max(1, round(products * 0.6))]
    weights = [(rank + 1) ** -0.7 * rng.lognormvariate(0, 0.25) for rank in range(len(reviewed))]
    scale = reviews / sum(weights)
    quotas = [w * scale for w in weights]
    for index, quota in zip(reviewed, quotas, strict=True):
        counts[index] = int(quota)
    short = reviews - sum(counts)
    by_remainder = sorted(range(len(reviewed)), key=lambda i: (quotas[i] - int(quotas[i]), -i), reverse=True)
    for i in by_remainder[:short]:
        counts[reviewed[i]] += 1
    return counts


def _pick(rng: random.Random, options: tuple):
    # Indexing by random() is several times faster than rng.choice, and this runs millions of times.
    return options[int(rng.random() * len(options))]


def _cumulative(weights: Iterable[float]) -> Iterator[float]:
    total = 0.0
    for weight in weights:
        total += weight
        yield total


# --- Loading ----------------------------------------------------------------------------------------

_COLUMNS = {
    "categories": "id, slug, name, parent_id, created_at, updated_at",
    "products": "id, sku, name, slug, description, brand, price, currency, stock, attributes, category_id, "
    "is_active, version, created_at, updated_at",
    "reviews": "id, product_id, rating, title, body, author, created_at",
}


_HAS_ROWS = text(
    "SELECT EXISTS (SELECT 1 FROM categories) OR EXISTS (SELECT 1 FROM products)"
    " OR EXISTS (SELECT 1 FROM reviews) OR EXISTS (SELECT 1 FROM product_rating_summaries)"
    " OR EXISTS (SELECT 1 FROM category_stats)"
)
# COPY wrote explicit ids; move each id sequence past them so the next insert gets a fresh id.
_FIX_SEQUENCES = text(
    """
    SELECT setval(pg_get_serial_sequence('categories', 'id'), coalesce(max(id), 0) + 1, false)
    FROM categories
    UNION ALL
    SELECT setval(pg_get_serial_sequence('products', 'id'), coalesce(max(id), 0) + 1, false) FROM products
    UNION ALL
    SELECT setval(pg_get_serial_sequence('reviews', 'id'), coalesce(max(id), 0) + 1, false) FROM reviews
    """
)


class _BatchReader:
    """A read()-only file over batches of COPY lines, for psycopg2's ``copy_expert``.

    Each read() builds the next batch, so generation and the server's ingestion overlap.
    """

    def __init__(self, batches: Iterator[list[str]], on_batch: Callable[[int], None]):
        self._batches = batches
        self._on_batch = on_batch

    def read(self, _size: int = -1) -> bytes:
        batch = next(self._batches, None)
        if batch is None:
            return b""
        self._on_batch(len(batch))
        return "".join(batch).encode()


def seed_catalog(
    engine: Engine,
    *,
    products: int,
    reviews: int,
    seed: int,
    reset: bool = False,
    progress: Progress | None = None,
) -> SeedResult:
    """Generate and load a catalog of ``products`` products and ``reviews`` reviews in one transaction.

    Raises :class:`CatalogNotEmpty` if any catalog table has rows, unless ``reset``, which first
    empties them (TRUNCATE ... RESTART IDENTITY CASCADE, so rows elsewhere that reference them go too).
    """
    report = progress or _ignore
    generator = CatalogGenerator(seed, products, reviews)
    with engine.begin() as conn:
        _prepare(conn, reset)
        cursor = conn.connection.cursor()
        for table, rows in (
            ("categories", generator.category_rows()),
            ("products", generator.product_rows()),
            ("reviews", generator.review_rows()),
        ):
            report(table, 0)
            reader = _BatchReader(rows, lambda n, table=table: report(table, n))
            cursor.copy_expert(f"COPY {table} ({_COLUMNS[table]}) FROM STDIN", reader, size=1 << 20)
        conn.execute(_FIX_SEQUENCES)
        report("aggregates", 0)
        recompute_all(conn)
        report("analyze", 0)
        conn.execute(text(f"ANALYZE {', '.join(CATALOG_TABLES)}"))
    return SeedResult(len(generator.categories), products, reviews)


def _prepare(conn: Connection, reset: bool) -> None:
    """Lift the app's statement timeout, take the tables, and empty them or check that they are empty."""
    conn.execute(text("SET LOCAL statement_timeout = 0"))
    # The full refresh groups every product at once: room for an in-memory hash, not a disk spill.
    conn.execute(text("SET LOCAL work_mem = '64MB'"))
    tables = ", ".join(CATALOG_TABLES)
    if reset:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        return
    # EXCLUSIVE blocks writers (and a concurrent seed) between the check and the load; reads go on.
    conn.execute(text(f"LOCK TABLE {tables} IN EXCLUSIVE MODE"))
    if conn.execute(_HAS_ROWS).scalar():
        raise CatalogNotEmpty("the catalog already has data; pass reset=True (--reset) to replace it")


def _ignore(_phase: str, _rows: int) -> None:
    pass
