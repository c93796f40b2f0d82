"""Whole hours before the window index: per-ad arrays, and the filtered rollups summed
per hour, each with its quarter hours.

The window index holds the last few hours minute by minute; a topAds window of up to a
day reaches further back. Summing 24 hours of rollups in SQL hashes tens of millions of
rows (seconds at the design scale). Here each of those hours is one int32 array indexed
by ad code (8 MB per hour for 2 million ads), so a day is two dozen vector additions;
and per filtered rollup, the hour's rows summed by (ad, dimension values) by the
database, held like a minute of the window index (sorted by the first dimension).

Hours at a window's edges that are only partly inside it are known to the quarter hour:
beside the hour's clicks, each ad (and filtered row) keeps the clicks of each quarter,
as uint8 capped at 255 (4 bytes per ad, 8 MB per hour for 2 million ads). The quarters
wholly inside the edge are exact, the one or two it cuts bound the rest from above (a
capped quarter: the hour's total bounds it); long_windows.py turns the bounds into an
exact ranking. With every ad about equally popular, an hour's total bounds an edge too
loosely to prune (docs/benchmarks.md, Uniform popularity); a quarter hour does.

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
from psycopg import sql

from adclick.db.connect import Connection
from adclick.db.rollups import FilteredRollup
from adclick.db.shards import copied, summed
from adclick.query.ranking import Sums
from adclick.query.vocabulary import Codes, Vocabulary
from adclick.query.window import HOUR_MS, MINUTE_MS, Window, from_ms
from adclick.query.window_index import FilteredRows
from adclick.resources import load_sql

log = logging.getLogger(__name__)

HourClicks = npt.NDArray[np.int32]
Blocks = npt.NDArray[np.uint8]  # (BLOCKS, ads or rows): clicks per quarter hour, capped

BLOCK_MS = 15 * MINUTE_MS
BLOCKS = HOUR_MS // BLOCK_MS  # the quarter columns of sql/query/hour_blocks.sql
# A quarter holding this many clicks or more is not known; the hour's total bounds it.
# Few ads reach it (at Zipf 1.1 the top ~1,300 of 2 million), and they are candidates.
BLOCK_CAP = int(np.iinfo(np.uint8).max)


def floor_hour(ms: int) -> int:
    return ms - ms % HOUR_MS


@dataclass(frozen=True)
class HourCounts:
    """One hour: clicks per ad code (codes past the array's end had none), and the rows
    of every filtered rollup summed over the hour; each with its quarter hours (``blocks``
    per ad code, ``filtered_blocks`` per row)."""

    revision: int
    clicks: HourClicks
    blocks: Blocks = field(default_factory=lambda: _NO_BLOCKS)
    filtered: Mapping[str, FilteredRows] = field(default_factory=dict)
    filtered_blocks: Mapping[str, Blocks] = field(default_factory=dict)


def edge_bounds(
    blocks: Blocks, totals: HourClicks | Sums, hour_ms: int, edge: Window
) -> tuple[Sums, Sums, npt.NDArray[np.bool_]]:
    """Per ad (or row) of an hour, its clicks in ``edge`` (a part of that hour): those
    known exactly (whole quarters inside the edge) and an upper bound of the rest (the
    quarters the edge cuts; the hour's total where a quarter involved is capped), so that
    known <= clicks in the edge <= known + rest; and where a quarter the edge involves is
    capped (``capped``: nothing of the edge is known there, known is 0, and all of the
    edge must be read)."""
    inside, cut = _quarters(hour_ms, edge)
    known = blocks[inside].sum(axis=0, dtype=np.int64)
    rest = blocks[cut].sum(axis=0, dtype=np.int64)
    capped = np.asarray((blocks[inside + cut] == BLOCK_CAP).any(axis=0), dtype=np.bool_)
    known[capped] = 0
    rest[capped] = totals[: len(capped)][capped]
    return known, rest, capped


def unknown_parts(hour_ms: int, edge: Window) -> list[Window]:
    """The parts of ``edge`` (a part of the hour) outside its whole quarters: the minutes
    to read, where nothing is capped, to add to the known clicks and make them exact."""
    inside, _ = _quarters(hour_ms, edge)
    if not inside:
        return [edge]
    first, last = hour_ms + inside[0] * BLOCK_MS, hour_ms + (inside[-1] + 1) * BLOCK_MS
    parts = [Window(edge.start_ms, first), Window(last, edge.end_ms)]
    return [part for part in parts if part.minutes]


def _quarters(hour_ms: int, edge: Window) -> tuple[list[int], list[int]]:
    """The quarters of the hour wholly inside the edge (consecutive), and those it cuts."""
    starts = [hour_ms + j * BLOCK_MS for j in range(BLOCKS)]
    inside = [j for j, s in enumerate(starts) if edge.start_ms <= s and s + BLOCK_MS <= edge.end_ms]
    cut = [
        j
        for j, s in enumerate(starts)
        if j not in inside and s < edge.end_ms and edge.start_ms < s + BLOCK_MS
    ]
    return inside, cut


def hour_revisions(conns: Sequence[Connection], start_ms: int, end_ms: int) -> dict[int, int]:
    """The revision of every hour in [start_ms, end_ms) that has rollups (others: 0), the
    sum of its revisions in every shard."""
    return summed(
        conns,
        load_sql("query/hour_revisions"),
        {"start": from_ms(start_ms), "end": from_ms(end_ms)},
    )


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
        self.generation = 0  # counts the changes of the hours held (as WindowIndex's)

    def refresh(self, conns: Sequence[Connection], minutes_start_ms: int, end_ms: int) -> int:
        """Load the newest changed or missing hour, if any; returns how many (0 or 1).

        The hours kept are those overlapping [end_ms - hours, minutes_start_ms): the
        part of a day-long window that the minutes do not hold.
        """
        wanted = range(floor_hour(end_ms - self.hours * HOUR_MS), minutes_start_ms, HOUR_MS)
        # Whole hours' revisions, also of the one the minutes start in.
        revisions = hour_revisions(conns, wanted.start, wanted[-1] + HOUR_MS) if wanted else {}
        loaded = {h: c for h, c in self._loaded.items() if h in wanted}
        stale = [h for h in wanted if h not in loaded or loaded[h].revision != revisions.get(h, 0)]
        # Newest first: a "last N minutes" window needs the hours next to the minutes.
        for hour in sorted(stale, reverse=True)[:1]:
            # The revision was read before the rows: a change in between leaves it
            # stale, and the next refresh loads the hour again (never the reverse).
            revision = revisions.get(hour, 0)
            loaded[hour] = self._load(conns, hour, revision) if revision else HourCounts(0, _NONE)
        changed = loaded.keys() != self._loaded.keys() or bool(stale)
        self._loaded = loaded
        if changed:  # after the hours it names are in place (ClickQueries.memory_state)
            self.generation += 1
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

    def _load(self, conns: Sequence[Connection], hour_ms: int, revision: int) -> HourCounts:
        codes, _values, quarters = load_hour(conns, "clicks_1m", (), hour_ms, self.ads, self.values)
        clicks = np.zeros(len(self.ads), dtype=np.int32)
        blocks = np.zeros((BLOCKS, len(self.ads)), dtype=np.uint8)
        # One row per ad: grouped by it. An ad's clicks in an hour are far below 2**31.
        clicks[codes] = quarters.sum(axis=0)
        blocks[:, codes] = _capped(quarters)
        filtered, filtered_blocks = {}, {}
        for rollup in self.rollups:
            codes, values, quarters = load_hour(
                conns, rollup.table, rollup.dimensions, hour_ms, self.ads, self.values
            )
            total = quarters.sum(axis=0).astype(np.int32)
            filtered[rollup.table] = FilteredRows(codes, values, total)
            filtered_blocks[rollup.table] = _capped(quarters)
        return HourCounts(revision, clicks, blocks, filtered, filtered_blocks)


def load_hour(
    conns: Sequence[Connection],
    table: str,
    dimensions: Sequence[str],
    hour_ms: int,
    ads: Vocabulary,
    values: Vocabulary,
) -> tuple[Codes, tuple[Codes, ...], npt.NDArray[np.int64]]:
    """One hour of a per-minute rollup summed per key by the database: ad codes, value
    codes and clicks per quarter hour (BLOCKS x rows), rows sorted by the first
    dimension's code, then by ad code (as minute_loader sorts a minute)."""
    keys = sql.SQL(", ").join(sql.Identifier(k) for k in ("ad_id", *dimensions))
    statement = sql.SQL(load_sql("query/hour_blocks")).format(
        keys=keys, table=sql.Identifier(table)
    )
    names = ["ad_id", *(f"d{i}" for i in range(len(dimensions)))]
    quarter_names = [f"q{j}" for j in range(BLOCKS)]
    columns = {n: pa.string() for n in names} | {n: pa.int64() for n in quarter_names}
    data = copied(conns, statement, {"hour": from_ms(hour_ms)}, columns)  # every shard's
    codes = ads.encode(data.column("ad_id"))
    value_codes = tuple(values.encode(data.column(f"d{i}")) for i in range(len(dimensions)))
    quarters = np.stack(
        [np.asarray(data.column(n).to_numpy(), dtype=np.int64) for n in quarter_names]
    )
    if value_codes:
        order = np.lexsort((codes, value_codes[0]))  # as minute_loader orders a minute
        codes, quarters = codes[order], quarters[:, order]
        value_codes = tuple(v[order] for v in value_codes)
    return codes, value_codes, quarters


def _capped(quarters: npt.NDArray[np.int64]) -> Blocks:
    return np.minimum(quarters, BLOCK_CAP).astype(np.uint8)


_NONE: HourClicks = np.zeros(0, dtype=np.int32)
_NO_BLOCKS: Blocks = np.zeros((BLOCKS, 0), dtype=np.uint8)
