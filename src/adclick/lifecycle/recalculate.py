"""``adclick recalculate``: rebuild rollups from raw clicks, hot and cold.

One day at a time, one rollup at a time, in one transaction each. The expected rows are
recomputed from raw clicks (hot and cold) and compared with the rollup's before anything
is locked: that is the long part (tens of seconds for an hour at the design scale), and
ingest must not wait for it. Then the rollup is locked against ingest's upserts and the
minutes' revisions (rollup_changes, raised by every ingest batch that changes a minute)
are read again: unchanged, nothing was written to those minutes since, and only the rows
that differ are replaced; changed (late clicks came in), the rows are recomputed once
more under the lock. The changed minutes' revisions then move so that the API reloads
them and the minute closer revises its lists over them, within its revision horizon
(older published lists stay as published). Readers see the old rows until the commit,
then the new ones.
Recalculating correct rollups changes nothing and holds the lock for milliseconds.

Maintenance and recalculation take turns on a database (``MAINTENANCE_LOCK``): a row
repaired between maintain's export of its chunk and the chunk's drop was lost (the cold
file kept the old count). A rollup's range already in cold files is refused: rows written
there would bring its chunk back over a catalogued file, which maintain then keeps, pass
after pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import LiteralString

from psycopg import sql

from adclick.db.connect import Connection, connect
from adclick.lifecycle.recompute import (
    RangeError,
    Rollup,
    check_range,
    differences,
    key_columns,
    rollups,
    stage_expected,
)
from adclick.lifecycle.tiering import MAINTENANCE_LOCK
from adclick.resources import load_sql
from adclick.settings import Settings

DAY = timedelta(days=1)


@dataclass
class RecalculationReport:
    rows_changed: int = 0
    rows_written: int = 0


def recalculate(
    settings: Settings,
    start: datetime,
    end: datetime,
    only: str | None = None,
    on_step: Callable[[Rollup, datetime], None] | None = None,
) -> RecalculationReport:
    report = RecalculationReport()
    with connect(settings) as conn:
        start, end = check_range(conn, settings, start, end)
        # Held by the session until it closes; waits for a maintain pass in progress.
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (MAINTENANCE_LOCK,))
        conn.commit()
        for rollup in rollups(settings, only):
            first, last = rollup.aligned(start, end)
            _refuse_cold(conn, rollup, first, last)
            day = first
            while day < last:
                step_end = min(day + DAY, last)
                if on_step is not None:
                    on_step(rollup, day)
                with conn.transaction():
                    changed, written = _recalculate_step(conn, settings, rollup, day, step_end)
                report.rows_changed += changed
                report.rows_written += written
                day = step_end
    return report


def _refuse_cold(conn: Connection, rollup: Rollup, start: datetime, end: datetime) -> None:
    """RangeError if part of [start, end) of the rollup is in catalogued cold files."""
    row = conn.execute(
        "SELECT min(range_start), max(range_end) FROM cold_files"
        " WHERE relation = %s AND range_start < %s AND range_end > %s",
        (rollup.table, end, start),
    ).fetchone()
    conn.commit()
    if row is not None and row[0] is not None:
        raise RangeError(
            f"{rollup.table} from {row[0]:%Y-%m-%d %H:%M} to {row[1]:%Y-%m-%d %H:%M} UTC is in "
            "cold storage: its rows there cannot be rewritten; recalculate a range after it"
        )


def _recalculate_step(
    conn: Connection, settings: Settings, rollup: Rollup, start: datetime, end: datetime
) -> tuple[int, int]:
    """One rollup over [start, end), inside the caller's transaction: (rows that
    differed, rows written)."""
    params = {"start": start, "end": end}
    seen = _revisions(conn, params)
    stage_expected(conn, settings, rollup, start, end)  # unlocked: ingest goes on
    _stage_changes(conn, rollup, params)
    table = sql.Identifier(rollup.table)
    conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(table))
    if _revisions(conn, params) != seen:  # ingest wrote to these minutes meanwhile
        stage_expected(conn, settings, rollup, start, end)
        _stage_changes(conn, rollup, params)
    changed = _count(conn, "SELECT count(*) FROM changes")
    if not changed:
        return 0, 0
    keys = ["t", "ad_id", *rollup.dimensions]  # the columns of ``changes`` (key_columns)
    columns = rollup.key
    match = sql.SQL(" AND ").join(
        sql.SQL("r.{} = c.{}").format(sql.Identifier(column), sql.Identifier(key))
        for column, key in zip(columns, keys, strict=True)
    )
    # Every differing key's row goes (a stored row may hold 0 clicks: a corruption too),
    # then the expected rows with clicks come in.
    conn.execute(sql.SQL("DELETE FROM {} AS r USING changes AS c WHERE {}").format(table, match))
    written = conn.execute(
        sql.SQL(
            "INSERT INTO {} ({}, clicks) SELECT {}, expected FROM changes WHERE expected > 0"
        ).format(
            table,
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(map(sql.Identifier, keys)),
        )
    ).rowcount
    conn.execute(load_sql("lifecycle/raise_minute_revisions"), params)
    return changed, written


def _stage_changes(conn: Connection, rollup: Rollup, params: dict[str, datetime]) -> None:
    """Temporary table ``changes``: the rows where ``expected`` and the rollup differ."""
    conn.execute("DROP TABLE IF EXISTS changes")
    conn.execute(
        sql.SQL("CREATE TEMP TABLE changes ({}, expected bigint, stored bigint)").format(
            key_columns(rollup)
        )
    )
    conn.execute(sql.SQL("INSERT INTO changes {}").format(differences(rollup)), params)


def _revisions(conn: Connection, params: dict[str, datetime]) -> list[tuple[object, ...]]:
    """Every (minute, partition, revision) of the range: what ingest has changed."""
    return conn.execute(load_sql("lifecycle/range_revisions"), params).fetchall()


def _count(conn: Connection, statement: LiteralString) -> int:
    row = conn.execute(statement).fetchone()
    return 0 if row is None else int(row[0])
