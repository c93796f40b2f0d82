"""Alembic migrations, run programmatically (``adclick migrate`` and ``adclick up``).

Alembic and SQLAlchemy are imported when a migration function runs, not with this
module: every ``adclick`` process loads it through the CLI, ingest workers included, and
most never migrate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adclick.db.connect import connect
from adclick.db.rollups import ensure_filtered_rollups
from adclick.resources import MIGRATIONS_DIR
from adclick.settings import Settings

if TYPE_CHECKING:
    from alembic.config import Config


def alembic_config(settings: Settings) -> Config:
    """Alembic's configuration pointing at the repository's migrations and our database."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", settings.sqlalchemy_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings) -> None:
    """Apply every pending migration, then create the configured filtered rollups."""
    from alembic import command

    command.upgrade(alembic_config(settings), "head")
    with connect(settings) as conn:
        ensure_filtered_rollups(conn, settings)


def current_revision(settings: Settings) -> str | None:
    """The revision the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(settings.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision(settings: Settings) -> str | None:
    """The newest revision in the repository."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(settings)).get_current_head()
