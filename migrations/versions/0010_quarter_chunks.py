"""Quarter-hour chunks for the per-minute rollups: ingest's upserts stay in a quarter's index.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from adclick.db.sql_migration import run_sql_file

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "upgrade")


def downgrade() -> None:
    run_sql_file(__file__, "downgrade")
