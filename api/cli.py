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
from marshmallow import ValidationError
from sqlalchemy import create_engine

from jobs import warming as warm_jobs

from . import background
from .db import session
from .schemas import CACHE_RESOURCES, RECOMPUTE_SCOPES, WARM_SCOPES, RecomputeRequestSchema, WarmRequestSchema
from .seed import PHASES, CatalogNotEmpty, Progress, seed_catalog
from .services.errors import DomainError

ROOT = Path(__file__).resolve().parent.parent

db_cli = AppGroup("db", help="Database schema commands.")
cache_cli = AppGroup("cache", help="Cache operations.")
aggregates_cli = AppGroup("aggregates", help="Rating summaries and category stats.")
jobs_cli = AppGroup("jobs", help="Background jobs (rq).")


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


@cache_cli.command("warm")
@click.option("--scope", type=click.Choice(WARM_SCOPES), default="popular", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many products.")
@click.option("--category", help="Category slug, with --scope category.")
@click.option("--ids", help="Comma-separated product ids, with --scope ids.")
@click.option(
    "--sync/--queue", default=True, show_default=True, help="Run here with a progress bar, or queue it."
)
def warm(scope: str, limit: int | None, category: str | None, ids: str | None, sync: bool) -> None:
    """Fill the cache ahead of reads (the same fill path, keys and leases as reads)."""
    request = _load(
        WarmRequestSchema(), {"scope": scope, "limit": limit, "category": category, "ids": _ids(ids)}
    )
    db = session()
    if not sync:
        job = _checked(background.trigger_warm, db, **request)
        click.echo(f"queued {job.id}: follow it at /v1/jobs/{job.id}")
        return
    _checked(background.trigger_warm_checks, db, request["scope"], request["category"], request["ids"])
    with click.progressbar(length=1, label=f"warming {scope}", file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        summary = warm_jobs.warm(**request, progress=progress)
    click.echo(
        f"stored {summary['stored']} of {summary['products']} products, {summary['list_pages']} list pages"
    )
    if summary.get("note"):
        click.echo(f"({summary['note']})")


@aggregates_cli.command("recompute")
@click.option("--scope", type=click.Choice(RECOMPUTE_SCOPES), default="all", show_default=True)
@click.option("--product-id", type=int)
@click.option("--category")
def recompute(scope: str, product_id: int | None, category: str | None) -> None:
    """Queue a recompute of rating summaries and category stats."""
    request = _load(
        RecomputeRequestSchema(), {"scope": scope, "product_id": product_id, "category": category}
    )
    job = _checked(background.trigger_recompute, session(), **request)
    click.echo(f"queued {job.id}: follow it at /v1/jobs/{job.id}")


@jobs_cli.command("failed")
def failed() -> None:
    """List failed jobs, newest first, with their error."""
    rows = background.failed_jobs()
    for job in rows:
        click.echo(f"{job['id']}  {job['kind']:<22} {job['ended_at']}  {job['error']}")
    click.echo(f"{len(rows)} failed jobs")


@jobs_cli.command("requeue")
@click.argument("job_ids", nargs=-1)
@click.option("--all", "requeue_all", is_flag=True, help="Requeue every failed job.")
def requeue(job_ids: tuple[str, ...], requeue_all: bool) -> None:
    """Put failed jobs back on their queue."""
    if not job_ids and not requeue_all:
        raise click.UsageError("name job ids or pass --all")
    count = background.requeue_failed(None if requeue_all else list(job_ids))
    click.echo(f"requeued {count} jobs")


def _ids(raw: str | None) -> list[int] | None:
    if not raw:
        return None
    try:
        return [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter("comma-separated integers", param_hint="--ids") from None


def _checked(trigger, *args, **kwargs):
    try:
        return trigger(*args, **kwargs)
    except DomainError as exc:
        raise click.UsageError(str(exc)) from None


def _load(schema, values: dict) -> dict:
    try:
        return schema.load({key: value for key, value in values.items() if value is not None})
    except ValidationError as exc:
        raise click.UsageError(str(exc.messages)) from None


def init_app(app: Flask) -> None:
    app.cli.add_command(db_cli)
    app.cli.add_command(cache_cli)
    app.cli.add_command(aggregates_cli)
    app.cli.add_command(jobs_cli)
    app.cli.add_command(seed)
