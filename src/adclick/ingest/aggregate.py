"""Per-batch rollup deltas, computed in the worker before the upsert (pure).

Aggregating here turns tens of thousands of inserted clicks into one row per
(minute, ad, dimension values) before anything reaches the database. That is the finest
grain of every rollup: the upsert statement (sql/ingest/upsert_rollups.sql) sums it per
rollup on the server, so the worker counts and sends each batch once, not once per rollup.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from operator import itemgetter

from adclick.db.rollups import FilteredRollup
from adclick.ingest.batch import AD_ID, COUNTRY, TS_MS, StagingRow
from adclick.time_units import MINUTE_MS

DeltaKey = tuple[int | str, ...]  # (minute in epoch ms, ad_id, *dimension values)


@dataclass(frozen=True)
class DeltaColumns:
    """Rollup deltas as the upsert statement's arrays (element i of each is one delta)."""

    minutes: list[int]
    ads: list[str]
    dimensions: list[list[str]]  # in the order of RollupDeltas.dimensions
    clicks: list[int]


@dataclass(frozen=True)
class RollupDeltas:
    """Clicks to add per (minute, ad, *dimensions)."""

    dimensions: tuple[str, ...]
    clicks: Counter[DeltaKey]

    def columns(self) -> DeltaColumns:
        """The deltas column by column, in one order."""
        # One C-level map per column: 4x faster than transposing with zip(*keys).
        keys = list(self.clicks)
        minutes, ads, *dimensions = (
            list(map(itemgetter(i), keys)) for i in range(2 + len(self.dimensions))
        )
        return DeltaColumns(
            minutes=minutes,
            ads=ads,
            dimensions=dimensions,
            clicks=list(self.clicks.values()),
        )


def delta_dimensions(rollups: list[FilteredRollup]) -> tuple[str, ...]:
    """Every dimension of any filtered rollup, once, in the order first named."""
    return tuple(dict.fromkeys(d for rollup in rollups for d in rollup.dimensions))


def aggregate(
    rows: list[StagingRow],
    attributes: list[dict[str, str]],
    dimensions: tuple[str, ...],
) -> RollupDeltas:
    """Sum ``rows`` (the clicks really inserted) per (minute, ad, *dimensions).

    ``attributes[i]`` are the further attributes of ``rows[i]``, where non-column
    dimensions are read ('' when absent, as in the SQL of the filtered rollups).
    """
    # Column by column, so that the counting runs inside Counter's C loop: this is per
    # click, and it was a tenth of the worker's time as a per-row Python loop.
    minutes = [row[TS_MS] - row[TS_MS] % MINUTE_MS for row in rows]
    ads = [row[AD_ID] for row in rows]
    values = [
        [row[COUNTRY] for row in rows]
        if dimension == "country"
        else [attrs.get(dimension, "") for attrs in attributes]
        for dimension in dimensions
    ]
    return RollupDeltas(dimensions, Counter(zip(minutes, ads, *values, strict=True)))
