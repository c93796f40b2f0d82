"""What the admin role may do through the API: read and change retention policies."""

from __future__ import annotations

from datetime import timedelta
from enum import Enum

from psycopg_pool import ConnectionPool

from adclick.db.connect import Connection, connect
from adclick.lifecycle.policies import Policy, parse_retention, set_policy, stored_policies
from adclick.settings import Settings, shard_location


class Keep(Enum):
    """An argument left out: the value stays as it is."""

    CURRENT = "current"


KEEP = Keep.CURRENT


def _duration(value: str | Keep | None, current: timedelta | None) -> timedelta | None:
    if value is KEEP:
        return current
    return None if value is None else parse_retention(value)


class Admin:
    def __init__(self, settings: Settings, pool: ConnectionPool[Connection]) -> None:
        self.settings = settings
        self.pool = pool

    def policies(self) -> list[Policy]:
        with self.pool.connection() as conn:
            return stored_policies(conn)

    def set_retention(
        self, relation: str, hot: str | Keep | None, cold: str | Keep | None, by: str
    ) -> Policy:
        """``hot`` and ``cold`` as ISO-8601 durations; None (or "forever") is forever, KEEP
        the relation's current value (a mutation that leaves the argument out).

        What adclick.lifecycle.policies.check_policy refuses raises PolicyError
        (BAD_POLICY); the API has no --force: an operator who means it uses the CLI.
        """
        with self.pool.connection() as conn:  # autocommit: the one UPDATE commits itself
            current = {p.relation: p for p in stored_policies(conn)}.get(relation)
            hot_time = _duration(hot, current.hot if current else None)
            cold_time = _duration(cold, current.cold if current else None)
            policy = set_policy(conn, self.settings, relation, hot_time, cold_time, by)
        # Each shard keeps the policies of its own chunks: the change goes to all of them
        # (a failure surfaces, and setting the same policy again is harmless).
        if not self.settings.shards:
            return policy
        home = shard_location(self.settings.database_url)
        for database in self.settings.every_database():
            if shard_location(database.database_url) != home:
                with connect(database, autocommit=True) as conn:
                    set_policy(conn, database, relation, hot_time, cold_time, by)
        return policy
