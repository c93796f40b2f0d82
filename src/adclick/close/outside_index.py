"""Ranking the lists whose window the closer's window index does not hold, by SQL.

The index holds the minutes before stream time, the newest event time of the fastest
partition; the closer closes up to the global watermark, the slowest partition. While a
partition lags by more than the index's span, or after the closer was down for hours,
the minutes to close are older than the index: they are ranked here, exactly, from the
same rollups (``sql_source.top_ads``, what the API answers windows beyond its index
with), and each list's input revision is read in the same snapshot as its counts, so
revisions treat it like any other list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from adclick.db.connect import Connection
from adclick.db.shards import snapshots, summed
from adclick.query.filters import Filter, Plan
from adclick.query.ranking import RankedAd
from adclick.query.sql_source import top_ads
from adclick.query.window import Window, from_ms
from adclick.resources import load_sql


@dataclass(frozen=True)
class Ranked:
    """A window's top ads and the sum of its minutes' revisions, from one snapshot."""

    ads: list[RankedAd]
    input_revision: int


def minute_revisions(conns: Sequence[Connection], start_ms: int, end_ms: int) -> dict[int, int]:
    """The revision of every minute in [start_ms, end_ms) with rollups, over every shard."""
    return summed(
        conns,
        load_sql("query/minute_revisions"),
        {"start": from_ms(start_ms), "end": from_ms(end_ms)},
    )


def input_revision(revisions: dict[int, int], window: Window) -> int:
    """What the window index would sum for the window: minutes without rollups are 0."""
    return sum(revisions.get(minute, 0) for minute in window.minute_starts())


def rank_by_sql(
    conns: Sequence[Connection],
    wanted: Sequence[tuple[Window, Plan, Filter]],
    limit: int,
) -> list[Ranked | None]:
    """Each wanted window's top ``limit``, all read in one snapshot of every shard; None
    for a window that starts below the ingest floor (its rollups may be tiered: a list
    ranked from what is left could be short, so it is not ranked)."""
    if not wanted:
        return []
    start = min(window.start_ms for window, _plan, _filter in wanted)
    end = max(window.end_ms for window, _plan, _filter in wanted)
    with snapshots(conns):
        floor_ms = _rollup_floor_ms(conns)
        revisions = minute_revisions(conns, start, end)
        return [
            None
            if floor_ms is not None and window.start_ms < floor_ms
            else Ranked(
                top_ads(conns, window, plan, query_filter, limit),
                input_revision(revisions, window),
            )
            for window, plan, query_filter in wanted
        ]


def first_minute_with_data(conns: Sequence[Connection], since_ms: int) -> int | None:
    """The first minute at or after ``since_ms`` that has rollups in any shard."""
    with snapshots(conns):
        firsts = [
            row[0]
            for conn in conns
            for row in conn.execute(
                load_sql("close/first_changed_minute"), {"since": from_ms(since_ms)}
            ).fetchall()
            if row[0] is not None
        ]
    return min(firsts) if firsts else None


def _rollup_floor_ms(conns: Sequence[Connection]) -> int | None:
    """The highest ingest floor of the shards. Maintenance raises a shard's floor to a
    chunk's end before it tiers the chunk, so every rollup row at or after the floor read
    in this snapshot is still in the database."""
    floors = [
        row[0]
        for conn in conns
        for row in conn.execute(load_sql("close/ingest_floor")).fetchall()
        if row[0] is not None
    ]
    return max(floors) if floors else None
