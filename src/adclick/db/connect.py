"""psycopg connections with clear errors when the database is unreachable."""

from __future__ import annotations

from typing import Any

import psycopg

from adclick.errors import DependencyUnavailableError
from adclick.settings import Settings

Connection = psycopg.Connection[tuple[Any, ...]]


def connect(settings: Settings, *, autocommit: bool = False) -> Connection:
    """A new connection to the adclick database."""
    try:
        return psycopg.connect(
            settings.database_url, autocommit=autocommit, application_name="adclick"
        )
    except psycopg.OperationalError as exc:
        raise DependencyUnavailableError(
            f"database at {settings.database_url} is not reachable: {exc}"
        ) from exc
