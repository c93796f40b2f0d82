"""Per-batch rollup deltas, computed in the worker before the upsert (pure).

Aggregating here turns tens of thousands of inserted clicks into one row per
(minute, ad[, dimensions]) before anything reaches the database, so the upserts touch
each rollup row once per batch.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from adclick.db.rollups import FilteredRollup
from adclick.ingest.batch import StagingRow

MINUTE_MS = 60_000
HOUR_MS = 3_600_000


@dataclass
class RollupDeltas:
    """Clicks to add, per rollup row. Times are epoch ms of the bucket start."""

    per_minute: Counter[tuple[int, str]] = field(default_factory=Counter)
    per_hour: Counter[tuple[int, str]] = field(default_factory=Counter)
    # One Counter per filtered rollup, keyed (minute, ad, *dimension values).
    filtered: list[Counter[tuple[int | str, ...]]] = field(default_factory=list)


def aggregate(
    rows: list[StagingRow],
    attributes: list[dict[str, str]],
    rollups: list[FilteredRollup],
) -> RollupDeltas:
    """Sum ``rows`` (the clicks really inserted) into every rollup's deltas.

    ``attributes[i]`` are the further attributes of ``rows[i]``, where non-column
    dimensions are read ('' when absent, as in the SQL of the filtered rollups).
    """
    # Column by column, so that the counting runs inside Counter's C loop: this is per
    # click, and it was a tenth of the worker's time as a per-row Python loop.
    # Staging row columns: 0 event time (ms), 2 ad_id, 5 country.
    minutes = [row[0] - row[0] % MINUTE_MS for row in rows]
    ads = [row[2] for row in rows]
    deltas = RollupDeltas(
        per_minute=Counter(zip(minutes, ads, strict=True)),
        per_hour=Counter(zip([m - m % HOUR_MS for m in minutes], ads, strict=True)),
    )
    for rollup in rollups:
        columns = [
            [row[5] for row in rows]
            if dim == "country"
            else [attrs.get(dim, "") for attrs in attributes]
            for dim in rollup.dimensions
        ]
        deltas.filtered.append(Counter(zip(minutes, ads, *columns, strict=True)))
    return deltas
