"""Data lifecycle: retention policies and the catalog of cold (Parquet) files.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from adclick.db.sql_migration import run_sql_file

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "upgrade")


def downgrade() -> None:
    run_sql_file(__file__, "downgrade")
