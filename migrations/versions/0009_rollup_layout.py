"""The rollups' layout for a design-scale day: hour chunks per minute, clicks_1h hour first.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from adclick.db.sql_migration import run_sql_file

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "upgrade")


def downgrade() -> None:
    run_sql_file(__file__, "downgrade")
