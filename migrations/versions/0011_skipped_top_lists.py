"""Lists the minute closer could not make, recorded instead of skipped silently.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from adclick.db.sql_migration import run_sql_file

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "upgrade")


def downgrade() -> None:
    run_sql_file(__file__, "downgrade")
