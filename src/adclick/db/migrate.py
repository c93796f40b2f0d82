"""Alembic migrations, run programmatically (``adclick migrate`` and ``adclick up``)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from adclick.db.connect import connect
from adclick.db.rollups import ensure_filtered_rollups
from adclick.resources import MIGRATIONS_DIR
from adclick.settings import Settings


def alembic_config(settings: Settings) -> Config:
    """Alembic's configuration pointing at the repository's migrations and our database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", settings.sqlalchemy_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings) -> None:
    """Apply every pending migration, then create the configured filtered rollups."""
    command.upgrade(alembic_config(settings), "head")
    with connect(settings) as conn:
        ensure_filtered_rollups(conn, settings)


def current_revision(settings: Settings) -> str | None:
    """The revision the database is at (None for an empty database)."""
    engine = create_engine(settings.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision(settings: Settings) -> str | None:
    """The newest revision in the repository."""
    return ScriptDirectory.from_config(alembic_config(settings)).get_current_head()
