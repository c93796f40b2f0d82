"""Rollups recomputed from raw clicks, hot (SQL) and cold (DuckDB over Parquet).

The expected rows of a rollup over a range go to a temporary table ``expected`` that
recalculation swaps in and reconciliation compares with. A minute's raw clicks are in
one place at a time: in its chunk while hot, in its catalogued file once the chunk is
dropped (a file whose chunk still exists is not read, so nothing counts twice in the
moment between cataloguing and dropping).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from psycopg import sql

from adclick.db.connect import Connection
from adclick.db.rollups import COLUMN_DIMENSIONS, filtered_rollups, raw_dimension
from adclick.errors import AdclickError
from adclick.events.parse import EARLIEST_TS_MS, LATEST_TS_MS
from adclick.lifecycle.cold import cold_storage_url, duckdb_connection
from adclick.lifecycle.policies import load_policies
from adclick.lifecycle.tiering import stream_time
from adclick.resources import load_sql
from adclick.settings import Settings

HOUR = timedelta(hours=1)


class RangeError(AdclickError):
    """A range recalculation or reconciliation cannot cover."""


@dataclass(frozen=True)
class Rollup:
    """A rollup table: its time column and bucket, and its dimensions."""

    table: str
    time_column: str
    bucket: str
    dimensions: tuple[str, ...] = ()

    def aligned(self, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        """The range (in UTC, as ``check_range`` gives it) widened to whole buckets (hours
        for clicks_1h)."""
        if self.bucket != "hour":
            return start, end
        floor = start.replace(minute=0, second=0, microsecond=0)
        ceil = end.replace(minute=0, second=0, microsecond=0)
        return floor, ceil if ceil == end else ceil + HOUR

    @property
    def key(self) -> list[str]:
        return [self.time_column, "ad_id", *self.dimensions]


def rollups(settings: Settings, only: str | None = None) -> list[Rollup]:
    """Every rollup (or the one named ``only``)."""
    every = [Rollup("clicks_1m", "minute", "minute"), Rollup("clicks_1h", "hour", "hour")]
    every += [Rollup(r.table, "minute", "minute", r.dimensions) for r in filtered_rollups(settings)]
    if only is None:
        return every
    chosen = [r for r in every if r.table == only]
    if not chosen:
        raise RangeError(f"no rollup {only!r}; rollups: {', '.join(r.table for r in every)}")
    return chosen


def check_range(
    conn: Connection, settings: Settings, start: datetime, end: datetime
) -> tuple[datetime, datetime]:
    """The range in UTC (:func:`utc_range`); RangeError also if its raw clicks have expired."""
    start, end = utc_range(start, end)
    raw = {p.relation: p for p in load_policies(conn)}["raw_clicks"]
    if raw.hot is not None and raw.cold is not None:
        oldest = stream_time(conn, settings) - raw.hot - raw.cold
        if start < oldest:
            raise RangeError(
                f"raw clicks before {oldest.isoformat()} have expired (retention of "
                "raw_clicks): rollups before that can be neither recalculated nor reconciled"
            )
    conn.commit()
    return start, end


def utc_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The range in UTC; RangeError if it is not whole UTC minutes or lies outside the
    times a click may have. A bound without an offset is UTC.

    In UTC before anything else: the rollups' buckets are UTC minutes and hours, and a
    bound in an offset of half an hour (or with seconds) aligned in its own offset made
    recalculate write an hour's row from half of its clicks.
    """
    try:
        start, end = (
            moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
            for moment in (start, end)
        )
    except OverflowError:  # year 1 or 9999 moved by its offset
        raise RangeError("--from and --to must lie in 2000..2100, as every click") from None
    for name, moment in (("--from", start), ("--to", end)):
        if moment.second or moment.microsecond:
            raise RangeError(f"{name} must be a whole minute in UTC, got {moment.isoformat()}")
        if not EARLIEST_TS_MS <= moment.timestamp() * 1000 <= LATEST_TS_MS:
            raise RangeError(f"{name} must lie in 2000..2100, as every click, got {moment:%Y}")
    if end <= start:
        raise RangeError("--to must be after --from")
    return start, end


def key_columns(rollup: Rollup) -> sql.Composed:
    """A rollup's key as the temporary tables' columns: t, ad_id and its dimensions."""
    return sql.SQL(", ").join(
        [sql.SQL('t timestamptz, ad_id text COLLATE "C"')]
        + [sql.SQL('{} text COLLATE "C"').format(sql.Identifier(d)) for d in rollup.dimensions]
    )


def stage_expected(
    conn: Connection, settings: Settings, rollup: Rollup, start: datetime, end: datetime
) -> None:
    """Fill temporary table ``expected`` with the rollup's rows recomputed for [start, end)."""
    dims = rollup.dimensions
    conn.execute("DROP TABLE IF EXISTS expected")
    conn.execute(
        sql.SQL("CREATE TEMP TABLE expected ({}, clicks bigint)").format(key_columns(rollup))
    )
    values = [raw_dimension(d) for d in dims]
    group = sql.SQL(", ").join(sql.Literal(i) for i in range(1, len(dims) + 3))
    conn.execute(
        sql.SQL(
            "INSERT INTO expected SELECT date_trunc({bucket}, ts, 'UTC'), ad_id{values}, count(*)"
            " FROM raw_clicks WHERE ts >= %(start)s AND ts < %(end)s GROUP BY {group}"
        ).format(
            bucket=sql.Literal(rollup.bucket),
            values=sql.Composed([sql.SQL(", {}").format(v) for v in values]),
            group=group,
        ),
        {"start": start, "end": end},
    )
    urls = [
        url
        for (url,) in conn.execute(
            load_sql("lifecycle/cold_raw_files"), {"start": start, "end": end}
        ).fetchall()
    ]
    if urls:
        _stage_cold(conn, settings, rollup, urls, start, end)


def _stage_cold(
    conn: Connection,
    settings: Settings,
    rollup: Rollup,
    urls: list[str],
    start: datetime,
    end: datetime,
) -> None:
    dims = [
        f'"{d}"' if d in COLUMN_DIMENSIONS
        else f"coalesce(json_extract_string(attributes, '$.\"{d}\"'), '')"
        for d in rollup.dimensions
    ]  # fmt: skip
    selected = ", ".join([f"epoch_us(date_trunc('{rollup.bucket}', ts))", "ad_id", *dims])
    with duckdb_connection(cold_storage_url(settings)) as duck:
        duck.execute("SET TimeZone = 'UTC'")
        rows = duck.execute(
            f"SELECT {selected}, count(*) FROM read_parquet(?) "  # noqa: S608 - our own columns
            "WHERE ts >= ? AND ts < ? GROUP BY ALL",
            [urls, start, end],
        ).fetchall()
    with conn.cursor().copy("COPY expected FROM STDIN") as copy:
        for t_us, *rest in rows:
            copy.write_row([datetime.fromtimestamp(t_us / 1e6, tz=start.tzinfo), *rest])


def stored(rollup: Rollup) -> sql.Composed:
    """The rollup's rows in [%(start)s, %(end)s), in the columns of ``expected``."""
    return sql.SQL(
        "SELECT {time} AS t, ad_id{dims}, clicks FROM {table}"
        " WHERE {time} >= %(start)s AND {time} < %(end)s"
    ).format(
        time=sql.Identifier(rollup.time_column),
        dims=sql.Composed([sql.SQL(", {}").format(sql.Identifier(d)) for d in rollup.dimensions]),
        table=sql.Identifier(rollup.table),
    )


def differences(rollup: Rollup) -> sql.Composed:
    """Rows where ``expected`` and the rollup disagree: key, expected, stored."""
    keys = ["t", "ad_id", *rollup.dimensions]
    return sql.SQL(
        "SELECT {keys}, coalesce(e.clicks, 0) AS expected, coalesce(s.clicks, 0) AS stored"
        " FROM expected AS e FULL JOIN ({stored}) AS s USING ({using})"
        " WHERE coalesce(e.clicks, 0) <> coalesce(s.clicks, 0) ORDER BY {keys}"
    ).format(
        keys=sql.SQL(", ").join(sql.Identifier(k) for k in keys),
        stored=stored(rollup),
        using=sql.SQL(", ").join(sql.Identifier(k) for k in keys),
    )
