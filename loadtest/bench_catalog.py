"""The benchmark catalog: its own database, migrated and seeded once, and the ids the personas read.

``prepare`` runs what a developer would (``scripts/dev_services.py ensure-db``, ``flask --app api db
upgrade``, ``flask --app api seed ... --if-empty``) against the benchmark database and says whether
seeding ran and how long it took. ``export_active_ids`` writes the ids of active products for
``--ids-file``: the seeded catalog deactivates a few percent of its products, whose reads are 404s.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from catalog.config import normalize_database_url

from .server import ROOT, flask

SEEDED = re.compile(r"seeded (\d+) categories, (\d+) products and (\d+) reviews in ([0-9.]+)s")


@dataclass
class Catalog:
    seeded_now: bool
    seed_seconds: float | None
    seed_command: str
    products: int
    active_products: int
    reviews: int
    categories: int

    def as_dict(self) -> dict:
        return asdict(self)


def seed_args(products: int, reviews: int, seed: int) -> list[str]:
    return ["seed", "--products", str(products), "--reviews", str(reviews), "--seed", str(seed), "--if-empty"]


def prepare(env: dict[str, str], products: int, reviews: int, seed: int) -> Catalog:
    """Create, migrate and (when empty) seed the database ``env["DATABASE_URL"]`` names."""
    ensure = [sys.executable, "scripts/dev_services.py", "ensure-db"]
    subprocess.run(ensure, cwd=ROOT, env=env, check=True, capture_output=True, text=True)  # noqa: S603
    flask(["db", "upgrade"], env)
    output = flask(seed_args(products, reviews, seed), env).stdout
    match = SEEDED.search(output)  # the command's own timing of the load, as the README quotes it
    counts = count_rows(env["DATABASE_URL"])
    return Catalog(
        seeded_now=bool(match),
        seed_seconds=float(match.group(4)) if match else None,
        seed_command="flask --app api " + " ".join(seed_args(products, reviews, seed)),
        **counts,
    )


def count_rows(database_url: str) -> dict[str, int]:
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as conn:
            return {
                "products": conn.execute(text("SELECT count(*) FROM products")).scalar_one(),
                "active_products": conn.execute(
                    text("SELECT count(*) FROM products WHERE is_active")
                ).scalar_one(),
                "reviews": conn.execute(text("SELECT count(*) FROM reviews")).scalar_one(),
                "categories": conn.execute(text("SELECT count(*) FROM categories")).scalar_one(),
            }
    finally:
        engine.dispose()


def export_active_ids(database_url: str, path: Path) -> int:
    """Write the active products' ids, one a line; returns the largest id (the catalog size)."""
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as conn:
            ids = conn.execute(text("SELECT id FROM products WHERE is_active ORDER BY id")).scalars().all()
    finally:
        engine.dispose()
    path.write_text("".join(f"{product_id}\n" for product_id in ids))
    return ids[-1] if ids else 0
