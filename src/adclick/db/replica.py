"""Reading from a streaming standby (read replica): its lag, and recovery conflicts.

A standby replays the primary's WAL. When what it replays conflicts with a query running
on it (a chunk dropped by retention while the query reads it, rows vacuumed that its
snapshot still sees), PostgreSQL cancels the query after ``max_standby_streaming_delay``
with SQLSTATE 40001 ("canceling statement due to conflict with recovery"), or ends an
idle-in-transaction session with the same code. The query was valid and asking again
answers it: ``read_with_retry`` does that, so readers never see the conflict. On a
primary the API's reads (autocommit, or read-only REPEATABLE READ snapshots) cannot fail
with 40001, so the retry costs nothing there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from psycopg_pool import ConnectionPool

from adclick.db.connect import Connection, connect
from adclick.db.shards import read_with_retry as read_shards_with_retry
from adclick.errors import DependencyUnavailableError
from adclick.resources import load_sql
from adclick.settings import Settings

T = TypeVar("T")


def read_with_retry(pool: ConnectionPool[Connection], read: Callable[[Connection], T]) -> T:
    """``read(conn)`` on a pooled connection, again (on another connection) when a
    standby cancelled it for a conflict with recovery. ``read`` may run more than once:
    it must only read, and charge anything once (a flag it keeps)."""
    return read_shards_with_retry([pool], lambda conns: read(conns[0]))


@dataclass(frozen=True)
class ReplicaState:
    """What a database says of its own replication."""

    standby: bool
    streaming: bool
    lag_s: float

    def problem(self, max_lag_s: float) -> str | None:
        """Why reads from it are not to be trusted now (None: they are)."""
        if not self.standby:
            return None  # a primary (an operator may point the read URL at one)
        if not self.streaming:
            return f"the replica does not stream from its primary ({self.lag_s:.1f} s behind)"
        if self.lag_s > max_lag_s:
            return (  # measured against the primary's WAL end (replica_state)
                f"the replica's replay is {self.lag_s:.1f} s behind its primary, more than "
                f"{max_lag_s:g} s (ADCLICK_API_MAX_REPLICA_LAG_S)"
            )
        return None


def primary_wal_lsn(conn: Connection) -> str:
    """Where the primary's WAL ends now: what a standby of it must have replayed to be
    current."""
    row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


def replica_state(conn: Connection, primary_lsn: str) -> ReplicaState:
    """The database's replication state, its lag measured against its primary's WAL
    end ``primary_lsn`` (``primary_wal_lsn``, read just before); a primary: not a
    standby, no lag."""
    row = conn.execute(load_sql("query/replica_state"), {"primary_lsn": primary_lsn}).fetchone()
    assert row is not None
    return ReplicaState(standby=bool(row[0]), streaming=bool(row[1]), lag_s=float(row[2]))


def lag_problem(reads: Connection, primary: Settings, max_lag_s: float) -> str | None:
    """Why reads from ``reads`` (a standby of ``primary``'s database) are not to be
    trusted now, their lag measured against the primary itself (None: they are)."""
    try:
        with connect(primary, autocommit=True, timeout_s=2) as conn:
            lsn = primary_wal_lsn(conn)
    except DependencyUnavailableError as exc:
        return f"the replica's lag cannot be measured: its primary is not reachable ({exc})"
    return replica_state(reads, lsn).problem(max_lag_s)
