"""Alembic environment: plain SQL migrations, no ORM metadata to autogenerate from."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from adclick.settings import get_settings

url = context.config.get_main_option("sqlalchemy.url") or get_settings().sqlalchemy_url
# The password file of adclick.db.migrate.alembic_config (adclick.db.connect).
connect_args = context.config.attributes.get("connect_args", {})


def run_migrations_offline() -> None:
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(url, connect_args=connect_args)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
