"""Least privilege: one group role per process kind (adclick_ingest, adclick_closer,
adclick_api, adclick_maintain), each granted only the tables and rights it uses, and
adclick_drop_chunk(), through which maintenance drops chunks without owning the tables.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from adclick.db.sql_migration import run_sql_file

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "upgrade")


def downgrade() -> None:
    run_sql_file(__file__, "downgrade")
