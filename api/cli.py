"""Flask CLI commands: ``flask --app api db upgrade`` and ``flask --app api seed``.

Alembic is driven through its Python API so the URL comes from the same
Settings as the app; the plain ``alembic`` CLI works too (see alembic.ini).
The seed command loads the generated demo catalog of ``api.seed``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import create_engine

from .schemas import CACHE_RESOURCES
from .seed import PHASES, CatalogNotEmpty, Progress, seed_catalog

ROOT = Path(__file__).resolve().parent.parent

db_cli = AppGroup("db", help="Database schema commands.")
cache_cli = AppGroup("cache", help="Cache operations.")


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    return config


def upgrade_database(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Migrate the database to REVISION (default: head)."""
    upgrade_database(current_app.config["SHELF"].database_url, revision)
    click.echo(f"database at {revision}")


@click.command("seed")
@click.option(
    "--products", type=click.IntRange(min=0), help="Products to generate  [default: SHELF_DEMO_PRODUCTS]"
)
@click.option("--reviews", type=click.IntRange(min=0), help="Reviews to generate  [default: 10 per product]")
@click.option("--seed", "seed_value", type=int, default=42, show_default=True, help="Same seed, same data.")
@click.option("--reset", is_flag=True, help="Delete the existing catalog first.")
@click.option("--if-empty", is_flag=True, help="Exit quietly (status 0) when the catalog already has data.")
@with_appcontext
def seed(products: int | None, reviews: int | None, seed_value: int, reset: bool, if_empty: bool) -> None:
    """Fill the catalog with a generated demo catalog (categories, products, reviews)."""
    if reset and if_empty:
        raise click.UsageError("--reset and --if-empty contradict each other")
    settings = current_app.config["SHELF"]
    products = settings.demo_products if products is None else products
    reviews = 10 * products if reviews is None else reviews
    if reviews and not products:
        raise click.UsageError("--reviews needs at least one product")
    # A fresh engine: the app's applies the request statement timeout, and the seed runs longer.
    engine = create_engine(settings.database_url)
    started = time.perf_counter()
    try:
        with _progress_bar(products + reviews) as progress:
            result = seed_catalog(
                engine, products=products, reviews=reviews, seed=seed_value, reset=reset, progress=progress
            )
    except CatalogNotEmpty:
        if if_empty:
            click.echo("the catalog already has data; not seeding")
            return
        raise click.ClickException(
            "the catalog already has data; rerun with --reset to delete it and seed anew"
        ) from None
    finally:
        engine.dispose()
    click.echo(
        f"seeded {result.categories} categories, {result.products} products and {result.reviews} reviews "
        f"in {time.perf_counter() - started:.1f}s"
    )


@contextmanager
def _progress_bar(total_rows: int) -> Iterator[Progress]:
    """A progress callback drawing a bar on stderr, from its first report on.

    Opening the bar lazily keeps a refused or ``--if-empty`` run free of an empty bar.
    """
    width = max(len(phase) for phase in PHASES)
    with ExitStack() as stack:
        bars: list = []

        def report(phase: str, rows: int) -> None:
            label = phase.ljust(width)
            if not bars:
                bar = click.progressbar(length=total_rows, label=label, file=sys.stderr)
                bars.append(stack.enter_context(bar))
            if bars[0].label != label:
                bars[0].label = label
                bars[0].render_progress()  # update(0) would not redraw, and later phases add no rows
            bars[0].update(rows)

        yield report


@cache_cli.command("purge")
@click.option("--resource", type=click.Choice(CACHE_RESOURCES), help="Only this resource's entries.")
def purge(resource: str | None) -> None:
    """Delete cached entries (all of Shelf's unless --resource)."""
    deleted = current_app.extensions["shelf.region"].purge(resource)
    click.echo(f"deleted {deleted} entries")


@cache_cli.command("drain")
def drain() -> None:
    """Apply cache invalidations left in the outbox (after a Redis outage or a crash)."""
    applied = current_app.extensions["shelf.outbox"].drain()
    click.echo(f"applied {applied} pending invalidations")


def init_app(app: Flask) -> None:
    app.cli.add_command(db_cli)
    app.cli.add_command(cache_cli)
    app.cli.add_command(seed)
