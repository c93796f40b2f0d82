"""Query schema: per-minute change revisions and minute indexes on the rollups.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from adclick.db.sql_migration import run_sql_file

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "upgrade")


def downgrade() -> None:
    run_sql_file(__file__, "downgrade")
