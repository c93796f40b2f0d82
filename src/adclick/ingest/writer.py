"""The one database transaction per batch that makes ingest exactly-once.

Raw insert with dedup, every rollup, the next offset of every partition in the batch and
the partitions' watermarks commit together or not at all. A crash before the commit
loses the whole batch (it is read again from the stored offsets); a crash after keeps
all of it, offsets included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from psycopg import sql

from adclick.db.connect import Connection
from adclick.db.rollups import FilteredRollup, ensure_filtered_rollups, filtered_rollups
from adclick.ingest.batch import DATABASE_REJECTED, Batch, DeadLetter, StagingRow
from adclick.ingest.clock import PartitionClocks
from adclick.resources import load_sql
from adclick.settings import Settings

# Errors that mean "the database refuses these rows", as opposed to "it is unavailable".
_REFUSED = (psycopg.DataError, psycopg.IntegrityError)
_STAGING_COPY = "COPY ingest_staging FROM STDIN (FORMAT BINARY)"
_STAGING_TYPES = ["int8", "text", "text", "text", "text", "text", "text", "int4", "int8"]


def compose_write_statement(rollups: list[FilteredRollup]) -> sql.Composed:
    """The write_batch statement with one CTE per filtered rollup."""
    template = load_sql("ingest/upsert_filtered_rollup")
    parts = []
    for index, rollup in enumerate(rollups):
        dims = rollup.dimensions
        parts.append(
            sql.SQL(template).format(
                cte=sql.Identifier(f"filtered_{index}"),
                table=sql.Identifier(rollup.table),
                dimensions=sql.SQL(", ").join(sql.Identifier(d) for d in dims),
                dimension_values=sql.SQL(", ").join(rollup.value_expression(d) for d in dims),
                group_by=sql.SQL(", ").join(sql.Literal(i) for i in range(1, len(dims) + 3)),
            )
        )
    return sql.SQL(load_sql("ingest/write_batch")).format(filtered_rollups=sql.SQL("").join(parts))


@dataclass(frozen=True)
class Position:
    """Where a partition resumes and its newest event time, as stored."""

    next_offset: int | None
    newest_ms: int | None


class BatchWriter:
    """Writes batches on one connection; owns the per-connection staging table."""

    def __init__(self, conn: Connection, settings: Settings) -> None:
        self.conn = conn
        self.settings = settings
        ensure_filtered_rollups(conn, settings)
        self._write = compose_write_statement(filtered_rollups(settings))
        conn.execute(load_sql("ingest/create_staging"))
        conn.commit()

    def load_positions(self, partitions: list[int]) -> dict[int, Position]:
        """Stored next offsets and newest event times of the given partitions."""
        rows = self.conn.execute(
            load_sql("ingest/load_positions"),
            {
                "partitions": partitions,
                "group": self.settings.consumer_group,
                "topic": self.settings.clicks_topic,
            },
        ).fetchall()
        self.conn.commit()
        return {int(p): Position(offset, newest) for p, offset, newest in rows}

    def write(
        self,
        batch: Batch,
        clocks: PartitionClocks,
        publish_dead_letters: Callable[[list[DeadLetter]], None],
    ) -> tuple[int, list[DeadLetter]]:
        """Commit one batch; returns how many clicks were new, and the rows the database
        refused (dead-lettered too). Valid rows neither new nor refused were duplicates.

        Dead letters are handed to ``publish_dead_letters`` just before the commit, so a
        batch never commits with its rejects unpublished.
        """
        try:
            inserted = self._insert(batch.rows)
            rejected: list[DeadLetter] = []
        except _REFUSED:
            # Validation should make this impossible, but a constraint an operator added
            # may not: find the refused rows by bisection and dead-letter them rather
            # than lose or block the batch.
            self.conn.rollback()
            inserted, rejected = self._insert_isolating(batch, batch.rows)
        self._store_positions(batch, clocks)
        publish_dead_letters(batch.dead_letters + rejected)
        self.conn.commit()
        return inserted, rejected

    def _insert(self, rows: list[StagingRow]) -> int:
        if not rows:
            return 0
        with self.conn.cursor() as cur:
            with cur.copy(_STAGING_COPY) as copy:
                copy.set_types(_STAGING_TYPES)
                for row in rows:
                    copy.write_row(row)
            cur.execute(self._write)
            result = cur.fetchone()
            cur.execute("TRUNCATE ingest_staging")
        return int(result[0]) if result else 0

    def _insert_isolating(
        self, batch: Batch, rows: list[StagingRow]
    ) -> tuple[int, list[DeadLetter]]:
        try:
            with self.conn.transaction():  # a savepoint inside the batch's transaction
                return self._insert(rows), []
        except _REFUSED as exc:
            if len(rows) == 1:
                return 0, [batch.dead_letter_for(rows[0], DATABASE_REJECTED, str(exc))]
            middle = len(rows) // 2
            first, first_rejected = self._insert_isolating(batch, rows[:middle])
            second, second_rejected = self._insert_isolating(batch, rows[middle:])
            return first + second, first_rejected + second_rejected

    def _store_positions(self, batch: Batch, clocks: PartitionClocks) -> None:
        partitions = sorted(batch.next_offsets)
        with self.conn.cursor() as cur:
            cur.execute(
                load_sql("ingest/store_offsets"),
                {
                    "group": self.settings.consumer_group,
                    "topic": self.settings.clicks_topic,
                    "partitions": partitions,
                    "offsets": [batch.next_offsets[p] for p in partitions],
                },
            )
            seen = [p for p in partitions if p in clocks.newest_ms]
            if seen:
                cur.execute(
                    load_sql("ingest/store_watermarks"),
                    {
                        "topic": self.settings.clicks_topic,
                        "partitions": seen,
                        "newest_ms": [clocks.newest_ms[p] for p in seen],
                        "lateness": timedelta(milliseconds=clocks.lateness_ms),
                    },
                )
