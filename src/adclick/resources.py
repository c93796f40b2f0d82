"""Where the SQL files, the Alembic migrations and the frontend's operations live.

All are folders of the repository (``sql/``, ``migrations/``, ``graphql/``) so that
reviewers and analysts read them as SQL; the package finds them beside itself.
The Docker image copies the repository, so the same layout holds there.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from adclick.errors import ConfigurationError

REPO_ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = REPO_ROOT / "sql"
MIGRATIONS_DIR = REPO_ROOT / "migrations"
# The frontend's GraphQL operations: the API's trusted documents (api/trusted_documents.py).
OPERATIONS_DIR = REPO_ROOT / "graphql" / "operations"
# The ad manager's build (web/: `npm ci && npm run build`), served by the API at /.
WEB_DIST = REPO_ROOT / "web" / "dist"


@cache
def load_sql(name: str) -> str:
    """The text of ``sql/<name>.sql``, e.g. ``load_sql("ingest/insert_raw")``."""
    path = SQL_DIR / f"{name}.sql"
    try:
        return path.read_text()
    except FileNotFoundError:
        raise ConfigurationError(
            f"SQL file {path} is missing: is the repository complete?"
        ) from None
