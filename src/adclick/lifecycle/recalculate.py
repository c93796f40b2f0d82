"""``adclick recalculate``: rebuild rollups from raw clicks, hot and cold.

One day at a time, one rollup at a time, in one transaction each: the rollup is locked
against ingest's upserts (which wait, briefly), its rows are recomputed from raw clicks
and replace the old ones, and the minutes' revisions move so that the API and the
minute closer reload them. Readers see the old rows until the commit, then the new ones.
Recalculating correct rollups changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import sql

from adclick.db.connect import connect
from adclick.lifecycle.recompute import Rollup, check_range, differences, rollups, stage_expected
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
        check_range(conn, settings, start, end)
        for rollup in rollups(settings, only):
            first, last = rollup.aligned(start, end)
            day = first
            while day < last:
                step_end = min(day + DAY, last)
                if on_step is not None:
                    on_step(rollup, day)
                with conn.transaction():
                    table = sql.Identifier(rollup.table)
                    conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(table))
                    stage_expected(conn, settings, rollup, day, step_end)
                    params = {"start": day, "end": step_end}
                    report.rows_changed += len(conn.execute(differences(rollup), params).fetchall())
                    time = sql.Identifier(rollup.time_column)
                    conn.execute(
                        sql.SQL("DELETE FROM {} WHERE {} >= %(start)s AND {} < %(end)s").format(
                            table, time, time
                        ),
                        params,
                    )
                    columns = sql.SQL(", ").join(sql.Identifier(c) for c in rollup.key)
                    written = conn.execute(
                        sql.SQL("INSERT INTO {} ({}, clicks) SELECT * FROM expected").format(
                            table, columns
                        )
                    )
                    report.rows_written += written.rowcount
                    conn.execute(load_sql("lifecycle/raise_minute_revisions"), params)
                day = step_end
    return report
