"""Whole hours before the window index: per-ad arrays from clicks_1h, and the filtered
rollups summed per hour.

The window index holds the last few hours minute by minute; a topAds window of up to a
day reaches further back. Summing 24 hours of rollups in SQL hashes tens of millions of
rows (seconds at the design scale). Here each of those hours is one int32 array indexed
by ad code (8 MB per hour for 2 million ads), so a day is two dozen vector additions;
and per filtered rollup, the hour's rows summed by (ad, dimension values) by the
database, held like a minute of the window index (sorted by the first dimension). Hours
at a window's edges that are only partly inside it bound their ads' clicks from above;
long_windows.py turns the bounds into an exact ranking.

Exactness: an hour is loaded with its revision (the sum of its minutes' revisions in
rollup_changes, which every ingest transaction raises). Answers check the revisions
again in the transaction that reads the edge minutes, so an hour changed since its load
(a late event) is never used; the refresher reloads it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from adclick.db.connect import Connection
from adclick.db.copy_stream import csv_reader
from adclick.db.rollups import FilteredRollup
from adclick.query.minute_loader import load_table
from adclick.query.vocabulary import Vocabulary
from adclick.query.window import HOUR_MS, from_ms
from adclick.query.window_index import FilteredRows
from adclick.resources import load_sql

log = logging.getLogger(__name__)

HourClicks = npt.NDArray[np.int32]


def floor_hour(ms: int) -> int:
    return ms - ms % HOUR_MS


@dataclass(frozen=True)
class HourCounts:
    """One hour: clicks per ad code (codes past the array's end had none), and the rows
    of every filtered rollup summed over the hour."""

    revision: int
    clicks: HourClicks
    filtered: Mapping[str, FilteredRows] = field(default_factory=dict)


def hour_revisions(conn: Connection, start_ms: int, end_ms: int) -> dict[int, int]:
    """The revision of every hour in [start_ms, end_ms) that has rollups (others: 0)."""
    rows = conn.execute(
        load_sql("query/hour_revisions"), {"start": from_ms(start_ms), "end": from_ms(end_ms)}
    ).fetchall()
    return {int(hour): int(revision) for hour, revision in rows}


class HourIndex:
    """The hours of the last ``hours`` hours that start before the window index's first
    minute. Refreshed by a thread of its own (an hour of a filtered rollup takes the
    database seconds to sum at the design scale), read by queries."""

    def __init__(
        self, hours: int, rollups: Sequence[FilteredRollup], ads: Vocabulary, values: Vocabulary
    ) -> None:
        self.hours = hours
        self.rollups = list(rollups)
        self.ads = ads
        self.values = values
        self._loaded: Mapping[int, HourCounts] = {}
        self._wanted = range(0)
        self.refreshed = False

    def refresh(self, conn: Connection, minutes_start_ms: int, end_ms: int) -> int:
        """Load the newest changed or missing hour, if any; returns how many (0 or 1).

        The hours kept are those overlapping [end_ms - hours, minutes_start_ms): the
        part of a day-long window that the minutes do not hold.
        """
        wanted = range(floor_hour(end_ms - self.hours * HOUR_MS), minutes_start_ms, HOUR_MS)
        # Whole hours' revisions, also of the one the minutes start in.
        revisions = hour_revisions(conn, wanted.start, wanted[-1] + HOUR_MS) if wanted else {}
        loaded = {h: c for h, c in self._loaded.items() if h in wanted}
        stale = [h for h in wanted if h not in loaded or loaded[h].revision != revisions.get(h, 0)]
        # Newest first: a "last N minutes" window needs the hours next to the minutes.
        for hour in sorted(stale, reverse=True)[:1]:
            # The revision was read before the rows: a change in between leaves it
            # stale, and the next refresh loads the hour again (never the reverse).
            revision = revisions.get(hour, 0)
            loaded[hour] = self._load(conn, hour, revision) if revision else HourCounts(0, _NONE)
        self._loaded = loaded
        self._wanted = wanted
        self.refreshed = True
        return min(len(stale), 1)

    def hours_for(self, start_ms: int, end_ms: int) -> dict[int, HourCounts] | None:
        """Every hour overlapping [start_ms, end_ms), or None if one is not loaded."""
        loaded = self._loaded
        needed = range(floor_hour(start_ms), end_ms, HOUR_MS)
        if not needed or any(h not in loaded for h in needed):
            return None
        return {h: loaded[h] for h in needed}

    @property
    def held(self) -> int:
        """Hours in memory (at their revision as of their load)."""
        return len(self._loaded)

    @property
    def wanted(self) -> int:
        """Hours the last refresh wanted in memory."""
        return len(self._wanted)

    @property
    def complete(self) -> bool:
        """Whether every hour wanted at the last refresh is loaded."""
        return all(h in self._loaded for h in self._wanted)

    def _load(self, conn: Connection, hour_ms: int, revision: int) -> HourCounts:
        statement = load_sql("query/hour_clicks")
        columns = {"ad_id": pa.string(), "clicks": pa.int64()}
        with conn.cursor().copy(statement, {"hour": from_ms(hour_ms)}) as copy:
            data = csv_reader(copy, columns).read_all()
        codes = self.ads.encode(data.column("ad_id"))
        dense = np.zeros(len(self.ads), dtype=np.int32)
        # One row per (ad, hour): the primary key of clicks_1h.
        dense[codes] = np.asarray(data.column("clicks").to_numpy(), dtype=np.int32)
        filtered = {}
        for rollup in self.rollups:
            by_hour = load_table(
                conn, rollup.table, rollup.dimensions, hour_ms, hour_ms + HOUR_MS,
                self.ads, self.values, bucket_ms=HOUR_MS,
            )  # fmt: skip
            rows = by_hour[hour_ms]
            # An (ad, values) pair of one hour has far fewer than 2**31 clicks.
            clicks = rows.clicks.astype(np.int32)
            filtered[rollup.table] = FilteredRows(rows.ads, rows.values, clicks)
        return HourCounts(revision, dense, filtered)


_NONE: HourClicks = np.zeros(0, dtype=np.int32)
