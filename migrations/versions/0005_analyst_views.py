"""Analyst SQL: stable views in schema analyst, the read-only role adclick_analyst, and
raw clicks with keyed (HMAC-SHA256) pseudonyms for user_id, ip and click_id.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from adclick.db.sql_migration import run_sql_file

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "upgrade")


def downgrade() -> None:
    run_sql_file(__file__, "downgrade")
