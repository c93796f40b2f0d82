"""Top lists: the minute closer's stored top-N per (window, filter, minute), with revisions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from adclick.db.sql_migration import run_sql_file

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "upgrade")


def downgrade() -> None:
    run_sql_file(__file__, "downgrade")
