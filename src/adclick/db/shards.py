"""Reading every shard at once (ADCLICK_SHARDS): a connection per shard, rows combined.

Each ad lives in exactly one shard (the one owning its Kafka partition), so rows of
different shards never share an ad: a rollup's rows are the union of the shards' rows,
a minute's revision the sum of its revisions in each shard (each only rises, so the sum
only rises), a top list the merge of the shards' exact top lists. Without shards the
list holds the one database and nothing here costs anything.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any, LiteralString, TypeVar

import pyarrow as pa
from psycopg import errors, sql
from psycopg_pool import ConnectionPool
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from adclick.db.connect import Connection, snapshot_transaction
from adclick.db.copy_stream import csv_reader

T = TypeVar("T")
Pools = Sequence[ConnectionPool[Connection]]

# A standby cancels a query that conflicts with recovery after max_standby_streaming_delay
# (30 s by default), so the next attempt normally runs after the conflicting WAL record
# was replayed: docs/operations.md, Read replicas.
RECOVERY_CONFLICT_ATTEMPTS = 3


@contextlib.contextmanager
def connections(pools: Pools) -> Iterator[list[Connection]]:
    """A pooled connection of every shard, given back together."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(pool.connection()) for pool in pools]


@contextlib.contextmanager
def snapshots(conns: Sequence[Connection]) -> Iterator[None]:
    """A REPEATABLE READ snapshot on every connection, for the block's statements.

    Each shard's clock is read in the snapshot of that shard's counts: what the global
    watermark (their minimum) calls complete is complete in every shard's snapshot.
    """
    with contextlib.ExitStack() as stack:
        for conn in conns:
            stack.enter_context(snapshot_transaction(conn))
        yield


def read_with_retry(pools: Pools, read: Callable[[list[Connection]], T]) -> T:
    """``read`` on a connection of every shard, again (on other connections) when a
    standby cancelled it for a conflict with recovery. ``read`` may run more than once:
    it must only read, and charge anything once (a flag it keeps)."""
    for attempt in Retrying(
        retry=retry_if_exception_type(errors.SerializationFailure),
        stop=stop_after_attempt(RECOVERY_CONFLICT_ATTEMPTS),
        wait=wait_exponential(multiplier=0.05, max=1.0),
        reraise=True,
    ):
        with attempt, connections(pools) as conns:
            return read(conns)
    raise AssertionError("unreachable: tenacity reraises the last failure")


def copied(
    conns: Sequence[Connection],
    statement: sql.Composed | sql.SQL,
    params: dict[str, Any] | None,
    columns: dict[str, pa.DataType],
) -> pa.Table:
    """The rows of a ``COPY (...) TO STDOUT (FORMAT CSV)`` on every shard, as one table."""
    tables = []
    for conn in conns:
        with conn.cursor().copy(statement, params) as copy:
            tables.append(csv_reader(copy, columns).read_all())
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def summed(
    conns: Sequence[Connection], statement: LiteralString, params: dict[str, Any]
) -> dict[int, int]:
    """(key, value) rows of every shard, the values of equal keys added."""
    total: Counter[int] = Counter()
    for conn in conns:
        for key, value in conn.execute(statement, params).fetchall():
            total[int(key)] += int(value)
    return dict(total)
