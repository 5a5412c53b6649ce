"""Flask CLI commands: ``flask --app api db upgrade``, ``seed``, ``cache ...``, ``jobs ...``.

Alembic is driven through its Python API so the URL comes from the same
Settings as the app; the plain ``alembic`` CLI works too (see alembic.ini).
The seed command loads the generated demo catalog of ``catalog.seed``.

Every command runs against the servers it was told about: ``DATABASE_URL`` /
``REDIS_URL``, or those of a running ``make run`` (``api.local_servers``); with
neither it refuses rather than fall back to a default server that may be someone
else's. Commands that delete (``seed --reset``, ``cache purge``) print what they
would delete, and where, and ask first; ``--yes`` skips the question.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from marshmallow import ValidationError
from sqlalchemy import create_engine

from catalog.config import Settings
from catalog.seed import PHASES, CatalogNotEmpty, Progress, seed_catalog
from catalog.services.errors import DomainError
from jobs import warming as warm_jobs
from jobs.status import job_status

from . import background, local_servers
from .db import session
from .schemas import (
    CACHE_RESOURCES,
    RECOMPUTE_SCOPES,
    WARM_SCOPES,
    RecomputeRequestSchema,
    WarmRequestSchema,
)

ROOT = Path(__file__).resolve().parent.parent

db_cli = AppGroup("db", help="Database schema commands.")
cache_cli = AppGroup("cache", help="Cache operations.")
aggregates_cli = AppGroup("aggregates", help="Rating summaries and category stats.")
jobs_cli = AppGroup("jobs", help="Background jobs (rq).")

DEFAULT_URLS = {"DATABASE_URL": Settings.database_url, "REDIS_URL": Settings.redis_url}
YES = click.option("--yes", "-y", is_flag=True, help="Do not ask before deleting.")


def named_servers(command: Callable) -> Callable:
    """Refuse to run when a URL would fall back to a default nobody named (see the module docstring)."""

    @functools.wraps(command)
    def checked(*args, **kwargs):
        reason = local_servers.refusal(current_app.extensions.get("shelf.targets") or [], DEFAULT_URLS)
        if reason:
            raise click.ClickException(reason)
        return command(*args, **kwargs)

    return checked


def target(var: str) -> str:
    """How the CLI names the server behind ``var``: its URL (no password) and where it came from."""
    settings = current_app.config["SHELF"]
    url = settings.database_url if var == "DATABASE_URL" else settings.redis_url
    found = [t for t in current_app.extensions.get("shelf.targets") or [] if t.var == var]
    source = found[0].source if found else "as configured"
    return f"{local_servers.redacted(url)} ({source})"


def confirm(what: str, var: str, yes: bool) -> None:
    """Say what is about to be deleted and where; ask unless ``yes`` (no answer, as in a script: no)."""
    click.echo(f"This deletes {what} in {target(var)}.", err=True)
    if not yes:
        click.confirm("Go on?", abort=True, err=True)


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    return config


def upgrade_database(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


@db_cli.command("upgrade")
@click.argument("revision", default="head")
@named_servers
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
@YES
@with_appcontext
@named_servers
def seed(
    products: int | None, reviews: int | None, seed_value: int, reset: bool, if_empty: bool, yes: bool
) -> None:
    """Fill the catalog with a generated demo catalog (categories, products, reviews)."""
    if reset and if_empty:
        raise click.UsageError("--reset and --if-empty contradict each other")
    if reset:
        confirm("every category, product and review", "DATABASE_URL", yes)
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
@YES
@named_servers
def purge(resource: str | None, yes: bool) -> None:
    """Delete cached entries (all of Shelf's unless --resource)."""
    confirm(f"the cached {resource} entries" if resource else "every cached entry of Shelf", "REDIS_URL", yes)
    deleted = current_app.extensions["shelf.region"].purge(resource)
    click.echo(f"deleted {deleted} entries")


@cache_cli.command("drain")
@named_servers
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
@click.option("--wait/--no-wait", default=False, show_default=True, help="With --queue: follow the job.")
@named_servers
def warm(
    scope: str, limit: int | None, category: str | None, ids: str | None, sync: bool, wait: bool
) -> None:
    """Fill the cache ahead of reads (the same fill path, keys and leases as reads)."""
    request = _load(
        WarmRequestSchema(), {"scope": scope, "limit": limit, "category": category, "ids": _ids(ids)}
    )
    db = session()
    if not sync:
        job = _checked(background.trigger_warm, db, **request)
        click.echo(f"queued {job.id}: follow it at /v1/jobs/{job.id}")
        if wait:
            follow(job.id)
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
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Follow the job until it ends (Ctrl-C stops following).",
)
@named_servers
def recompute(scope: str, product_id: int | None, category: str | None, wait: bool) -> None:
    """Queue a recompute of rating summaries and category stats (the rq worker of `make run` runs it)."""
    request = _load(
        RecomputeRequestSchema(), {"scope": scope, "product_id": product_id, "category": category}
    )
    job = _checked(background.trigger_recompute, session(), **request)
    click.echo(f"queued {job.id}: follow it at /v1/jobs/{job.id}")
    if wait:
        follow(job.id)


FOLLOW_POLL_SECONDS = 0.25
NO_WORKER_HINT_SECONDS = 5.0
"""A job still queued this long gets a hint: no rq worker may be running (``make run`` starts one)."""


def follow(job_id: str, poll: float = FOLLOW_POLL_SECONDS) -> dict:
    """Show a queued job's state and progress on stderr until it ends; its last status.

    A failed job is an error (exit 1) naming the job's own error line."""
    started, hinted, shown = time.monotonic(), False, ""
    while True:
        status = job_status(background.connection(), job_id)
        if status["status"] in ("finished", "failed", "stopped", "canceled"):
            break
        line = _status_line(status, time.monotonic() - started)
        if line != shown:
            click.echo(f"\r{line}", nl=False, err=True)
            shown = line
        waiting = status["status"] in ("queued", "scheduled", "deferred")
        if waiting and not hinted and time.monotonic() - started > NO_WORKER_HINT_SECONDS:
            click.echo("\n(still queued: is an rq worker running? `make run` starts one)", err=True)
            hinted = True
        time.sleep(poll)
    click.echo(f"\r{_status_line(status, time.monotonic() - started)}", err=True)
    if status["status"] != "finished":
        raise click.ClickException(
            f"job {job_id} {status['status']}: {status['error'] or 'no error recorded'}"
        )
    click.echo(f"finished: {status['result']}")
    return status


def _status_line(status: dict, elapsed: float) -> str:
    progress = status.get("progress") or {}
    done = f" {progress['done']}/{progress['total']}" if progress.get("total") else ""
    return f"{status['kind']}: {status['status']}{done} ({elapsed:.0f}s)"


@jobs_cli.command("failed")
@named_servers
def failed() -> None:
    """List failed jobs, newest first, with their error."""
    rows = background.failed_jobs()
    for job in rows:
        click.echo(f"{job['id']}  {job['kind']:<22} {job['ended_at']}  {job['error']}")
    click.echo(f"{len(rows)} failed jobs")


@jobs_cli.command("requeue")
@click.argument("job_ids", nargs=-1)
@click.option("--all", "requeue_all", is_flag=True, help="Requeue every failed job.")
@named_servers
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
