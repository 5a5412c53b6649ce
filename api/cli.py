"""Flask CLI commands: ``flask --app api db upgrade`` and ``flask --app api seed``.

Alembic is driven through its Python API so the URL comes from the same
Settings as the app; the plain ``alembic`` CLI works too (see alembic.ini).
"""

from __future__ import annotations

from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import Flask, current_app
from flask.cli import AppGroup

ROOT = Path(__file__).resolve().parent.parent

db_cli = AppGroup("db", help="Database schema commands.")


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


def init_app(app: Flask) -> None:
    app.cli.add_command(db_cli)
