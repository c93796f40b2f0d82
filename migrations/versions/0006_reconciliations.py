"""Reconciliation runs: the result of each `adclick reconcile`, for the metric and audits.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from adclick.db.sql_migration import run_sql_file

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "upgrade")


def downgrade() -> None:
    run_sql_file(__file__, "downgrade")
