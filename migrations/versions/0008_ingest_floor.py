"""The ingest floor: event time below which ingest writes nothing, raised by tiering.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from adclick.db.sql_migration import run_sql_file

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "upgrade")


def downgrade() -> None:
    run_sql_file(__file__, "downgrade")
