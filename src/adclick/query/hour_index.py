"""Whole hours before the window index, as dense per-ad arrays read from clicks_1h.

The window index holds the last few hours minute by minute; a topAds window of up to a
day reaches further back. Summing 24 hours of clicks_1h in SQL hashes tens of millions
of rows (seconds at the design scale). Here each of those hours is one int32 array
indexed by ad code (8 MB per hour for 2 million ads), so a day is two dozen vector
additions. Hours at a window's edges that are only partly inside it bound their ads'
clicks from above; long_windows.py turns the bounds into an exact ranking.

Exactness: an hour is loaded with its revision (the sum of its minutes' revisions in
rollup_changes, which every ingest transaction raises). Answers check the revisions
again in the transaction that reads the edge minutes, so an hour changed since its load
(a late event) is never used; the refresher reloads it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from adclick.db.connect import Connection
from adclick.db.copy_stream import csv_reader
from adclick.query.vocabulary import Vocabulary
from adclick.query.window import HOUR_MS, from_ms
from adclick.resources import load_sql

log = logging.getLogger(__name__)

HourClicks = npt.NDArray[np.int32]

# Hours loaded per refresh pass: one is ~1.5 M rows at the design scale (seconds), and
# the minutes' refresh must not wait for a whole day of them at start-up.
LOADS_PER_REFRESH = 2


def floor_hour(ms: int) -> int:
    return ms - ms % HOUR_MS


@dataclass(frozen=True)
class HourCounts:
    """Clicks per ad code over one hour; codes past the array's end had none."""

    revision: int
    clicks: HourClicks


def hour_revisions(conn: Connection, start_ms: int, end_ms: int) -> dict[int, int]:
    """The revision of every hour in [start_ms, end_ms) that has rollups (others: 0)."""
    rows = conn.execute(
        load_sql("query/hour_revisions"), {"start": from_ms(start_ms), "end": from_ms(end_ms)}
    ).fetchall()
    return {int(hour): int(revision) for hour, revision in rows}


class HourIndex:
    """The hours of the last ``hours`` hours that start before the window index's first
    minute. Refreshed by the window index's thread, read by queries."""

    def __init__(self, hours: int, ads: Vocabulary) -> None:
        self.hours = hours
        self.ads = ads
        self._loaded: Mapping[int, HourCounts] = {}
        self._wanted = range(0)

    def refresh(self, conn: Connection, minutes_start_ms: int, end_ms: int) -> int:
        """Load the changed or missing hours (a few per call); returns how many.

        The hours kept are those overlapping [end_ms - hours, minutes_start_ms): the
        part of a day-long window that the minutes do not hold.
        """
        wanted = range(floor_hour(end_ms - self.hours * HOUR_MS), minutes_start_ms, HOUR_MS)
        # Whole hours' revisions, also of the one the minutes start in.
        revisions = hour_revisions(conn, wanted.start, wanted[-1] + HOUR_MS) if wanted else {}
        loaded = {h: c for h, c in self._loaded.items() if h in wanted}
        stale = [h for h in wanted if h not in loaded or loaded[h].revision != revisions.get(h, 0)]
        # Newest first: a "last N minutes" window needs the hours next to the minutes.
        for hour in sorted(stale, reverse=True)[:LOADS_PER_REFRESH]:
            revision = revisions.get(hour, 0)
            loaded[hour] = HourCounts(revision, self._load(conn, hour) if revision else _NONE)
        self._loaded = loaded
        self._wanted = wanted
        return min(len(stale), LOADS_PER_REFRESH)

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

    def _load(self, conn: Connection, hour_ms: int) -> HourClicks:
        statement = load_sql("query/hour_clicks")
        columns = {"ad_id": pa.string(), "clicks": pa.int64()}
        with conn.cursor().copy(statement, {"hour": from_ms(hour_ms)}) as copy:
            data = csv_reader(copy, columns).read_all()
        codes = self.ads.encode(data.column("ad_id"))
        dense = np.zeros(len(self.ads), dtype=np.int32)
        # One row per (ad, hour): the primary key of clicks_1h.
        dense[codes] = np.asarray(data.column("clicks").to_numpy(), dtype=np.int32)
        return dense


_NONE: HourClicks = np.zeros(0, dtype=np.int32)
