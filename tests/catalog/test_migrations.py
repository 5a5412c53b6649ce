"""Migrations build the models' schema from an empty database."""

import secrets

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from api.cli import upgrade_database
from catalog.models import Base
from tests.conftest import _with_path


def test_upgrade_empty_database_to_head_matches_models(database_url):
    name = "shelf_mig_" + secrets.token_hex(4)
    admin = create_engine(_with_path(database_url, "/postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = _with_path(database_url, "/" + name)
        upgrade_database(url)
        engine = create_engine(url)
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) >= set(Base.metadata.tables)
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == []
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
