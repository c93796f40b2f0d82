"""The API's in-memory window index: recent complete minutes as per-ad count arrays.

Ranking 2 million ads over an hour by SQL means hashing tens of millions of rollup rows
on every query (seconds; docs/benchmarks.md). Here each complete minute of the last
``api_cache_minutes`` is held as parallel arrays (ad code, clicks) and, per filtered
rollup, (ad code, dimension value codes, clicks); a window's per-ad sums are one
``bincount`` over its minutes, and the top lists are cached per window until one of its
minutes changes.

Exactness: the index mirrors committed rollups. Every ingest transaction raises the
revision of the minutes it changed (table rollup_changes); a refresh reads the revisions
and reloads exactly the minutes whose revision moved, in one REPEATABLE READ snapshot,
so a minute's arrays always equal its rollup rows at the snapshot. Late events are
changes like any other. The minute stream time is in changes with every batch and is
never held; windows that reach into it (or past the cached range) are answered by SQL.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from adclick.db.connect import Connection
from adclick.db.rollups import FilteredRollup
from adclick.db.shards import snapshots, summed
from adclick.query.filters import Filter, Plan, Source
from adclick.query.minute_loader import load_rollups, runs
from adclick.query.ranking import RankedAd, Sums, top_n
from adclick.query.vocabulary import Codes, Vocabulary
from adclick.query.window import MINUTE_MS, StreamClock, Window, from_ms
from adclick.resources import load_sql

log = logging.getLogger(__name__)

Clicks = npt.NDArray[np.int64]
_EMPTY_CODES: Codes = np.empty(0, dtype=np.int32)
_EMPTY_CLICKS: Clicks = np.empty(0, dtype=np.int64)
_RANKINGS_KEPT = 256


@dataclass(frozen=True)
class FilteredRows:
    """A minute (or hour) of a filtered rollup: row i is ads[i] with values[d][i], clicks[i].

    Rows are sorted by values[0], so the rows of one first-dimension value are a slice.
    """

    ads: Codes
    values: tuple[Codes, ...]
    clicks: Clicks | npt.NDArray[np.int32]  # int32 in the hour index: 12 bytes a row


@dataclass(frozen=True)
class MinuteCounts:
    """One complete minute: clicks per ad, and the rows of every filtered rollup."""

    revision: int
    ads: Codes = field(default_factory=lambda: _EMPTY_CODES)
    clicks: Clicks = field(default_factory=lambda: _EMPTY_CLICKS)
    filtered: Mapping[str, FilteredRows] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return len(self.ads) + sum(len(f.ads) for f in self.filtered.values())


@dataclass(frozen=True)
class Snapshot:
    """The index as of one database snapshot: the minutes [start_ms, end_ms)."""

    clock: StreamClock
    start_ms: int
    end_ms: int
    minutes: Mapping[int, MinuteCounts]

    def covers(self, window: Window) -> bool:
        return self.start_ms <= window.start_ms and window.end_ms <= self.end_ms

    def revisions(self, window: Window) -> tuple[int, ...]:
        return tuple(self.minutes[m].revision for m in window.minute_starts())


@dataclass(frozen=True)
class RefreshReport:
    """What one refresh did (logged, and shown by the benchmark)."""

    minutes_loaded: int
    rows_loaded: int
    start_ms: int
    end_ms: int


class WindowIndex:
    """Recent complete minutes in memory; refreshed by one thread, read by many."""

    def __init__(
        self, rollups: Sequence[FilteredRollup], cache_minutes: int, max_limit: int
    ) -> None:
        self.rollups = list(rollups)
        self.cache_minutes = cache_minutes
        self.max_limit = max_limit
        self.ads = Vocabulary()
        self.values = Vocabulary()
        self._snapshot: Snapshot | None = None
        # Counts the snapshots made: what an answer from memory was made of is named by
        # it (api/response_cache.py keeps answers while it stays the same).
        self.generation = 0
        self._rankings: OrderedDict[tuple[Any, ...], tuple[tuple[int, ...], list[RankedAd]]]
        self._rankings = OrderedDict()
        self._rankings_lock = threading.Lock()

    @property
    def snapshot(self) -> Snapshot | None:
        """The newest snapshot, None before the first refresh."""
        return self._snapshot

    def refresh(
        self,
        conns: Sequence[Connection],
        topic: str,
        idle_timeout: timedelta,
        primaries: Sequence[Connection] = (),
    ) -> RefreshReport:
        """Bring the index up to the databases' (every shard's) committed state
        (``primaries``: see ``read_stream_clock``)."""
        previous = self._snapshot.minutes if self._snapshot else {}
        with snapshots(conns):
            clock = read_stream_clock(conns, topic, idle_timeout, primaries)
            end_ms = clock.current_minute_ms
            start_ms = end_ms - self.cache_minutes * MINUTE_MS
            revisions = summed(
                conns,
                load_sql("query/minute_revisions"),
                {"start": from_ms(start_ms), "end": from_ms(end_ms)},
            )
            minutes: dict[int, MinuteCounts] = {}
            stale = []
            for minute_ms in range(start_ms, end_ms, MINUTE_MS):
                revision = int(revisions.get(minute_ms, 0))
                known = previous.get(minute_ms)
                if known is not None and known.revision == revision:
                    minutes[minute_ms] = known
                elif revision == 0:
                    minutes[minute_ms] = MinuteCounts(0)
                else:
                    stale.append(minute_ms)
            rows = 0
            for run_start, run_end in runs(stale):
                unfiltered, filtered = load_rollups(
                    conns, self.rollups, run_start, run_end, self.ads, self.values
                )
                for minute_ms in range(run_start, run_end, MINUTE_MS):
                    counts = MinuteCounts(
                        int(revisions[minute_ms]),
                        unfiltered[minute_ms].ads,
                        unfiltered[minute_ms].clicks,
                        {
                            table: FilteredRows(by[minute_ms].ads, by[minute_ms].values,
                                                  by[minute_ms].clicks)
                            for table, by in filtered.items()
                        },
                    )  # fmt: skip
                    minutes[minute_ms] = counts
                    rows += counts.rows
        self._snapshot = Snapshot(clock, start_ms, end_ms, minutes)
        self.generation += 1  # after the snapshot it names is in place
        return RefreshReport(len(stale), rows, start_ms, end_ms)

    def sums(self, snapshot: Snapshot, window: Window, plan: Plan, query_filter: Filter) -> Sums:
        """Clicks per ad code over the window (which the snapshot must cover)."""
        minutes = [snapshot.minutes[m] for m in window.minute_starts()]
        if plan.source is Source.ROLLUP:
            ads = np.concatenate([m.ads for m in minutes] or [_EMPTY_CODES])
            clicks = np.concatenate([m.clicks for m in minutes] or [_EMPTY_CLICKS])
            # bincount sums in float64, exact for integers below 2**53 (9e15 clicks per ad).
            return np.bincount(ads, weights=clicks, minlength=len(self.ads)).astype(np.int64)
        assert plan.rollup is not None
        parts = [m.filtered[plan.rollup.table] for m in minutes if m.filtered]
        return self.filtered_sums(parts, plan, query_filter)

    def filtered_sums(
        self, parts: Sequence[FilteredRows], plan: Plan, query_filter: Filter
    ) -> Sums:
        """Clicks per ad code over rows of the plan's filtered rollup that pass the filter."""
        assert plan.rollup is not None
        wanted = {
            dim: [c for v in values if (c := self.values.code(v)) is not None]
            for dim, values in query_filter.conditions
        }
        parts = [sliced for part in parts for sliced in _slices(part, plan.rollup, wanted)]
        ads = np.concatenate([p.ads for p in parts] or [_EMPTY_CODES])
        clicks = np.concatenate([p.clicks for p in parts] or [_EMPTY_CLICKS])
        keep = np.ones(len(ads), dtype=bool)
        for position, dim in enumerate(plan.rollup.dimensions[1:], start=1):
            if dim in wanted:
                values = np.concatenate([p.values[position] for p in parts] or [_EMPTY_CODES])
                keep &= np.isin(values, np.array(wanted[dim], dtype=np.int32))
        if not keep.all():
            ads, clicks = ads[keep], clicks[keep]
        return np.bincount(ads, weights=clicks, minlength=len(self.ads)).astype(np.int64)

    def top(
        self, snapshot: Snapshot, window: Window, plan: Plan, query_filter: Filter, limit: int
    ) -> list[RankedAd]:
        """The window's top ``limit``; the full list (max_limit) is cached until it changes."""
        key = (window.start_ms, window.end_ms, query_filter)
        revisions = snapshot.revisions(window)
        ranking = self.cached_ranking(key, revisions)
        if ranking is None:
            sums = self.sums(snapshot, window, plan, query_filter)
            ranking = top_n(sums, self.ads.names, self.max_limit)
            self.remember_ranking(key, revisions, ranking)
        return ranking[:limit]

    def cached_ranking(
        self, key: tuple[Any, ...], revisions: tuple[int, ...]
    ) -> list[RankedAd] | None:
        """A ranking remembered under ``key``, if what it was ranked from is unchanged."""
        with self._rankings_lock:
            cached = self._rankings.get(key)
            if cached is None or cached[0] != revisions:
                return None
            self._rankings.move_to_end(key)
            return cached[1]

    def remember_ranking(
        self, key: tuple[Any, ...], revisions: tuple[int, ...], ranking: list[RankedAd]
    ) -> None:
        """Keep a full ranking (max_limit ads) until ``revisions`` move; the newest few."""
        with self._rankings_lock:
            self._rankings[key] = (revisions, ranking)
            self._rankings.move_to_end(key)
            while len(self._rankings) > _RANKINGS_KEPT:
                self._rankings.popitem(last=False)


def _slices(
    part: FilteredRows, rollup: FilteredRollup, wanted: dict[str, list[int]]
) -> list[FilteredRows]:
    """The rows of ``part`` whose first dimension has a wanted value (all if unfiltered)."""
    first = rollup.dimensions[0]
    if first not in wanted:
        return [part]
    sliced = []
    for code in sorted(wanted[first]):
        lo, hi = np.searchsorted(part.values[0], [code, code + 1])
        if hi > lo:
            sliced.append(
                FilteredRows(
                    part.ads[lo:hi], tuple(v[lo:hi] for v in part.values), part.clicks[lo:hi]
                )
            )
    return sliced


def read_stream_clock(
    conns: Sequence[Connection],
    topic: str,
    idle_timeout: timedelta,
    primaries: Sequence[Connection] = (),
) -> StreamClock:
    """The stream's clock as committed, over every shard's partitions: the newest event
    time, and the global watermark, the minimum of the partitions' watermarks over those
    that are not idle (``stream_clock_of``).

    ``primaries``: when ``conns`` read standbys, a connection to each one's primary (any
    order), which say which partitions are idle: a standby that lags shows every
    partition of its shard as long without a batch, and judged by its rows alone they
    would stop holding the watermark back while their clicks are still on the way."""
    rows = [row for conn in conns for row in _partition_clocks(conn, topic)]
    primary_rows = [row for conn in primaries for row in _partition_clocks(conn, topic)]
    wall = conns[0].execute("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint")
    wall_ms = int((wall.fetchone() or (0,))[0])
    return stream_clock_of(rows, wall_ms, idle_timeout, primary_rows if primaries else None)


def _partition_clocks(conn: Connection, topic: str) -> list[PartitionClock]:
    return [
        PartitionClock(*row)
        for row in conn.execute(load_sql("query/partition_clocks"), {"topic": topic}).fetchall()
    ]


class PartitionClock(NamedTuple):
    """A partition's clock as ingest committed it (sql/query/partition_clocks.sql)."""

    partition: int
    newest_ms: int | None
    watermark_ms: int | None
    updated_ms: int


def stream_clock_of(
    rows: Sequence[PartitionClock],
    wall_ms: int,
    idle_timeout: timedelta,
    primary_rows: Sequence[PartitionClock] | None = None,
) -> StreamClock:
    """The stream clock of the partitions' clocks ``rows`` as read (every shard's).

    A partition is idle when its last batch is older (wall clock) than the newest batch
    of any partition by more than the idle timeout; it then no longer holds the
    watermark back. With ``primary_rows`` (``rows`` were read from standbys), that is
    judged on the primaries' rows, and a partition is idle only if the standby has its
    last batch too: a partition whose batches the standby has not all replayed holds the
    watermark back at what the standby has, as a busy one does, whatever its lag."""
    if not rows:
        return StreamClock(newest_ms=None, watermark_ms=None, wall_ms=wall_ms)
    judged = rows if primary_rows is None else primary_rows
    idle = _idle_partitions(judged, idle_timeout)
    if primary_rows is not None:
        replayed = {(r.partition, r.updated_ms) for r in rows}  # the very same batch
        idle = {p.partition for p in primary_rows if (p.partition, p.updated_ms) in replayed} & idle
    busy = [r.watermark_ms for r in rows if r.watermark_ms is not None and r.partition not in idle]
    if primary_rows is not None and {p.partition for p in primary_rows} - {
        r.partition for r in rows
    }:
        # A partition the primary has a clock for and the standby none yet: none of its
        # clicks are there, so no minute is complete.
        busy.append(0)
    newest = [r.newest_ms for r in rows if r.newest_ms is not None]
    return StreamClock(
        newest_ms=max(newest) if newest else None,
        watermark_ms=min(busy) if busy else None,
        wall_ms=wall_ms,
    )


def _idle_partitions(rows: Sequence[PartitionClock], idle_timeout: timedelta) -> set[int]:
    newest_batch_ms = max(r.updated_ms for r in rows)
    idle_ms = idle_timeout.total_seconds() * 1000
    return {r.partition for r in rows if r.updated_ms < newest_batch_ms - idle_ms}
