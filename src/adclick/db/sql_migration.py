"""Migrations keep their SQL in ``<revision file>.upgrade.sql`` / ``.downgrade.sql``."""

from __future__ import annotations

from pathlib import Path

from alembic import op


def run_sql_file(migration_file: str, direction: str) -> None:
    """Execute the SQL file that sits beside the migration module for this direction."""
    path = Path(migration_file).with_suffix(f".{direction}.sql")
    dbapi_connection = op.get_bind().connection.dbapi_connection
    assert dbapi_connection is not None
    # Straight to psycopg without parameters, so '%' in the SQL is not a placeholder.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(path.read_text())
    finally:
        cursor.close()
