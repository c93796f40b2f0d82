"""What the admin role may do through the API: read and change retention policies."""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from adclick.db.connect import Connection, connect
from adclick.lifecycle.policies import Policy, parse_retention, set_policy, stored_policies
from adclick.settings import Settings, shard_location


class Admin:
    def __init__(self, settings: Settings, pool: ConnectionPool[Connection]) -> None:
        self.settings = settings
        self.pool = pool

    def policies(self) -> list[Policy]:
        with self.pool.connection() as conn:
            return stored_policies(conn)

    def set_retention(self, relation: str, hot: str | None, cold: str | None, by: str) -> Policy:
        """``hot`` and ``cold`` as ISO-8601 durations; None (or "forever") is forever.

        What adclick.lifecycle.policies.check_policy refuses raises PolicyError
        (BAD_POLICY); the API has no --force: an operator who means it uses the CLI.
        """
        hot_time = None if hot is None else parse_retention(hot)
        cold_time = None if cold is None else parse_retention(cold)
        with self.pool.connection() as conn:  # autocommit: the one UPDATE commits itself
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
