"""Alembic migrations, run programmatically (``adclick migrate`` and ``adclick up``).

Alembic and SQLAlchemy are imported when a migration function runs, not with this
module: every ``adclick`` process loads it through the CLI, ingest workers included, and
most never migrate.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from adclick.db.connect import connect, connection_options, unreachable
from adclick.db.rollups import ensure_filtered_rollups
from adclick.errors import ConfigurationError
from adclick.redact import mask_secrets
from adclick.resources import MIGRATIONS_DIR
from adclick.settings import Settings

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Engine


def alembic_config(settings: Settings) -> Config:
    """Alembic's configuration pointing at the repository's migrations and our database."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", settings.sqlalchemy_url.replace("%", "%%"))
    # migrations/env.py connects with them (the password file).
    config.attributes["connect_args"] = connection_options(settings)
    return config


def create_engine(settings: Settings) -> Engine:
    """A SQLAlchemy engine on the settings' database, with adclick's connection options."""
    import sqlalchemy

    return sqlalchemy.create_engine(
        settings.sqlalchemy_url, connect_args=connection_options(settings)
    )


@contextmanager
def _database_errors(settings: Settings) -> Iterator[None]:
    """SQLAlchemy's connection failures and URL errors as adclick's, passwords masked."""
    from sqlalchemy.exc import ArgumentError, OperationalError

    try:
        yield
    except OperationalError as exc:
        raise unreachable(settings, exc.orig or exc) from None
    except (ArgumentError, ValueError) as exc:  # ValueError: a URL's port is no number
        raise ConfigurationError(
            mask_secrets(f"ADCLICK_DATABASE_URL: {settings.database_url} is no valid URL: {exc}")
        ) from None


def upgrade(settings: Settings) -> None:
    """Apply every pending migration, then create the configured filtered rollups."""
    from alembic import command

    with _database_errors(settings):
        command.upgrade(alembic_config(settings), "head")
    with connect(settings) as conn:
        ensure_filtered_rollups(conn, settings)


def current_revision(settings: Settings) -> str | None:
    """The revision the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with _database_errors(settings):
        engine = create_engine(settings)
        try:
            with engine.connect() as conn:
                return MigrationContext.configure(conn).get_current_revision()
        finally:
            engine.dispose()


def head_revision(settings: Settings) -> str | None:
    """The newest revision in the repository."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(settings)).get_current_head()
