"""The one database transaction per batch that makes ingest exactly-once.

Raw insert with dedup, every rollup, the revisions of the minutes it changed, the next
offset of every partition in the batch and the partitions' watermarks commit together or
not at all. A crash before the commit loses the whole batch (it is read again from the
stored offsets); a crash after keeps all of it, offsets included.

Raw clicks go in on one of two paths. The fast path COPYs the batch straight into
raw_clicks: the worker has already dropped the duplicates it can see, and if one it could
not see remains, the unique key (ts, click_id) refuses the COPY. Then, inside the same
transaction, the careful path stages the batch and inserts with ON CONFLICT DO NOTHING,
whose RETURNING names the rows that were new. Either way only new clicks reach the
rollups, as deltas the worker aggregated.

Rollup rows follow the same pattern: the deltas whose (minute, ad) the writer knows to be
new are plainly inserted (adclick.ingest.new_keys); if one is not, the unique key refuses
the statement, and it runs again inside the same transaction as a plain upsert.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from adclick.db.array_literal import bool_array_literal, int_array_literal, text_array_literal
from adclick.db.connect import Connection
from adclick.db.rollups import FilteredRollup, ensure_filtered_rollups, filtered_rollups
from adclick.events.dead_letter import DeadLetterReason
from adclick.ingest.aggregate import DeltaColumns, aggregate, delta_dimensions
from adclick.ingest.batch import (
    OFFSET,
    PARTITION,
    TS_MS,
    Batch,
    DeadLetter,
    StagingRow,
)
from adclick.ingest.clock import PartitionClocks
from adclick.ingest.copy_types import register_staging_dumpers
from adclick.ingest.new_keys import MinuteAdKeys, NewKeyTracker
from adclick.resources import load_sql
from adclick.settings import Settings

log = logging.getLogger(__name__)

_COLUMNS = "ts, click_id, ad_id, user_id, ip, country, attributes, kafka_partition, kafka_offset"
_COPY_RAW = f"COPY raw_clicks ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_COPY_STAGING = f"COPY ingest_staging ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_COLUMN_TYPES = ["timestamptz", "text", "text", "text", "inet", "text", "jsonb", "int4", "int8"]
# Errors that mean "the database refuses these rows, and always will", as opposed to "it
# is unavailable" (which re-reading the batch later cures): data exceptions (SQLSTATE 22),
# integrity violations (23) and program limits (54, e.g. an index entry over the B-tree's
# 2,704 bytes). psycopg makes the last an OperationalError, the worker's "unavailable":
# classed by the error, not its Python type, or one click re-read the batch forever. A
# duplicate key is not one of them: the careful paths handle it.
_REFUSED = (psycopg.DataError, psycopg.IntegrityError, psycopg.errors.ProgramLimitExceeded)


def compose_rollup_upsert(rollups: list[FilteredRollup]) -> sql.Composed:
    """The one statement that adds a batch's deltas to clicks_1m, clicks_1h and ``rollups``.

    The deltas' dimension columns are :func:`delta_dimensions` of ``rollups``, in that
    order; each is one text[] parameter ``d0``, ``d1``, ...
    """
    dimensions = delta_dimensions(rollups)
    aliases = [sql.Identifier(f"d{i}") for i in range(len(dimensions))]
    filtered = sql.SQL(load_sql("ingest/upsert_filtered_rollup"))
    return sql.SQL(load_sql("ingest/upsert_rollups")).format(
        dimension_columns=sql.SQL("").join(
            sql.SQL(', t.{} COLLATE "C" AS {}').format(alias, sql.Identifier(dimension))
            for alias, dimension in zip(aliases, dimensions, strict=True)
        ),
        dimension_arrays=sql.SQL("").join(
            sql.SQL(", {}::text[]").format(sql.Placeholder(f"d{i}")) for i in range(len(dimensions))
        ),
        dimension_aliases=sql.SQL("").join(sql.SQL(", {}").format(a) for a in aliases),
        filtered_upserts=sql.SQL("").join(
            sql.SQL(",\n\n")
            + filtered.format(
                name=sql.Identifier(f"filtered_{i}"),
                name_new=sql.Identifier(f"filtered_{i}_new"),
                table=sql.Identifier(rollup.table),
                dimensions=sql.SQL(", ").join(sql.Identifier(d) for d in rollup.dimensions),
            )
            for i, rollup in enumerate(rollups)
        ),
    )


def rollup_parameters(columns: DeltaColumns, new: Sequence[bool] | None = None) -> dict[str, str]:
    """The parameters of :func:`compose_rollup_upsert` for the deltas, as array literals.

    ``new[i]``: delta i's (minute, ad) is in no per-minute rollup yet (all False if None).
    """
    parameters = {
        "minutes": int_array_literal(columns.minutes),
        "ads": text_array_literal(columns.ads),
        "clicks": int_array_literal(columns.clicks),
        "new": bool_array_literal([False] * len(columns.ads) if new is None else new),
    }
    for i, values in enumerate(columns.dimensions):
        parameters[f"d{i}"] = text_array_literal(values)
    return parameters


def _copy(
    cur: psycopg.Cursor[Any], statement: str, rows: list[StagingRow], indexes: list[int]
) -> None:
    with cur.copy(statement) as copy:
        copy.set_types(_COLUMN_TYPES)
        for i in indexes:
            copy.write_row(rows[i])


@dataclass(frozen=True)
class Position:
    """Where a partition resumes and its newest event time, as stored."""

    next_offset: int | None
    newest_ms: int | None


@dataclass(frozen=True)
class WriteResult:
    """What a committed batch did."""

    inserted: int
    rejected: list[DeadLetter]
    careful_path: bool


class BatchWriter:
    """Writes batches on one connection; owns the per-connection staging table."""

    def __init__(self, conn: Connection, settings: Settings) -> None:
        self.conn = conn
        self.settings = settings
        ensure_filtered_rollups(conn, settings)
        rollups = filtered_rollups(settings)
        self._dimensions = delta_dimensions(rollups)
        self._upsert = compose_rollup_upsert(rollups)
        # Claims nothing until the worker resets it from its partitions' stored positions.
        self.new_keys = NewKeyTracker()
        register_staging_dumpers(conn)
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
    ) -> WriteResult:
        """Commit one batch.

        Dead letters, the batch's own and rows the database refused, are handed to
        ``publish_dead_letters`` just before the commit, so a batch never commits with
        its rejects unpublished. Valid rows neither inserted nor refused were duplicates.
        """
        # The batch's one transaction: committed when the block ends, rolled back if
        # anything in it raises. Every inner transaction() is a savepoint.
        with self.conn.transaction():
            indexes, rejected = self._above_floor(batch)
            try:
                new, careful, minutes = self._write_rows(batch, indexes)
            except _REFUSED:
                # Validation should make this impossible, but a limit it does not know
                # (a constraint an operator added, an index entry too large) may not: find
                # the refused rows by bisection and dead-letter them rather than lose or
                # block the batch.
                new, careful, minutes, refused = self._write_isolating(batch, indexes)
                rejected += refused
            if minutes:
                self._mark_changed_minutes(sorted(minutes), batch)
            self._store_positions(batch, clocks)
            publish_dead_letters(batch.dead_letters + rejected)
        return WriteResult(len(new), rejected, careful)

    def _write_rows(self, batch: Batch, indexes: list[int]) -> tuple[list[int], bool, set[int]]:
        """Insert the rows at ``indexes`` and add the new ones to every rollup, in a
        savepoint: if the database refuses any of it, none of it stays.

        Returns the positions of the new rows, whether the careful path ran, and the
        minutes (epoch ms) whose rollup rows changed.
        """
        with self.conn.transaction():
            new, careful = self._insert_raw(batch.rows, indexes)
            deltas = aggregate(
                [batch.rows[i] for i in new], [batch.attributes[i] for i in new], self._dimensions
            )
            if not deltas.clicks:
                return new, careful, set()
            columns = deltas.columns()
            self._add_to_rollups(columns)
            return new, careful, set(columns.minutes)

    def _above_floor(self, batch: Batch) -> tuple[list[int], list[DeadLetter]]:
        """The rows at or above the ingest floor, and dead letters for those below it.

        The floor is share-locked until the batch commits (sql/ingest/lock_floor.sql), so
        maintenance cannot tier a range this batch writes into.
        """
        row = self.conn.execute(load_sql("ingest/lock_floor")).fetchone()
        floor_ms = row[0] if row is not None else float("-inf")
        if floor_ms == float("-inf"):  # nothing tiered yet: no row to look at
            return list(range(len(batch.rows))), []
        above: list[int] = []
        below: list[int] = []
        for i, staged in enumerate(batch.rows):
            (below if staged[TS_MS] < floor_ms else above).append(i)
        if not below:
            return above, []
        floor = datetime.fromtimestamp(floor_ms / 1000, UTC).isoformat()
        return above, batch.dead_letters_at(
            below,
            DeadLetterReason.ALREADY_TIERED,
            f"event time before {floor}, up to which raw clicks are in cold storage: "
            "it can no longer be deduplicated",
        )

    def _insert_raw(self, rows: list[StagingRow], indexes: list[int]) -> tuple[list[int], bool]:
        """Insert ``rows`` (positions ``indexes`` of the batch).

        Returns the positions of the rows that were new, and whether the careful path ran.
        """
        if not indexes:
            return [], False
        try:
            # A savepoint (write() holds the transaction): a refused COPY is undone alone.
            with self.conn.transaction(), self.conn.cursor() as cur:
                _copy(cur, _COPY_RAW, rows, indexes)
            return indexes, False
        except psycopg.errors.UniqueViolation:
            pass
        with self.conn.transaction(), self.conn.cursor() as cur:
            _copy(cur, _COPY_STAGING, rows, indexes)
            cur.execute(load_sql("ingest/insert_staged"))
            inserted = set(cur.fetchall())
            cur.execute("TRUNCATE ingest_staging")
        return [i for i in indexes if (rows[i][PARTITION], rows[i][OFFSET]) in inserted], True

    def _add_to_rollups(self, columns: DeltaColumns) -> None:
        keys = MinuteAdKeys.of(columns.minutes, columns.ads)
        new = self.new_keys.new_mask(keys)
        try:
            # A savepoint: a refused claim undoes this statement alone.
            with self.conn.transaction():
                self.conn.execute(self._upsert, rollup_parameters(columns, new.tolist()))
        except psycopg.errors.UniqueViolation as exc:
            log.warning(
                "a rollup row this writer took for new exists (%s); adding the batch as "
                "upserts and claiming no new rows for a while",
                str(exc).splitlines()[0],
            )
            self.new_keys.refused(keys)
            self.conn.execute(self._upsert, rollup_parameters(columns))
        self.new_keys.remember(keys)

    def _write_isolating(
        self, batch: Batch, indexes: list[int]
    ) -> tuple[list[int], bool, set[int], list[DeadLetter]]:
        try:
            new, careful, minutes = self._write_rows(batch, indexes)
            return new, careful, minutes, []
        except _REFUSED as exc:
            if len(indexes) == 1:
                reason = DeadLetterReason.REJECTED_BY_DATABASE
                return [], False, set(), batch.dead_letters_at(indexes, reason, str(exc))
            middle = len(indexes) // 2
            first = self._write_isolating(batch, indexes[:middle])
            second = self._write_isolating(batch, indexes[middle:])
            return (
                first[0] + second[0],
                first[1] or second[1],
                first[2] | second[2],
                first[3] + second[3],
            )

    def _mark_changed_minutes(self, minutes: list[int], batch: Batch) -> None:
        # The query side's window index reloads the minutes whose revision moved.
        self.conn.execute(
            load_sql("ingest/mark_changed_minutes"),
            {
                "minutes": sorted(set(minutes)),
                "partitions": sorted(batch.next_offsets),
            },
        )

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
