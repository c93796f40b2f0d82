"""Ingest schema: raw clicks, rollups, consumer offsets and watermarks.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from adclick.db.sql_migration import run_sql_file

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "upgrade")


def downgrade() -> None:
    run_sql_file(__file__, "downgrade")
