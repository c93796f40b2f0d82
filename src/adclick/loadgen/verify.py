"""Comparing the stored rollups with a loadgen truth file, row by row.

The comparison covers the truth's minutes (and the hours they fall in): every rollup row
there must equal the truth, and every truth row must be stored. Run it against a database
that holds only the load the truth describes, or other clicks in that range show up as
discrepancies.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from adclick.db.connect import connect
from adclick.loadgen.truth import Truth
from adclick.resources import load_sql
from adclick.settings import Settings

RowKey = tuple[str, str, int, str]  # (rollup, ad_id, bucket epoch s, country or '')


@dataclass(frozen=True)
class Discrepancy:
    """One rollup row that differs from the truth."""

    rollup: str
    ad_id: str
    bucket: datetime
    country: str
    expected: int
    stored: int


def expected_rows(truth: Truth) -> dict[RowKey, int]:
    """The truth as rollup rows: per minute, per minute and country, per hour."""
    rows: dict[RowKey, int] = {}
    hours: Counter[RowKey] = Counter()
    for (ad, minute), clicks in truth.by_ad_minute.items():
        rows[("clicks_1m", ad, minute, "")] = clicks
        hours[("clicks_1h", ad, minute - minute % 3600, "")] += clicks
    for (ad, minute, country), clicks in truth.by_ad_minute_country.items():
        rows[("clicks_1m_by_country", ad, minute, country)] = clicks
    rows.update(hours)
    return rows


def compare(settings: Settings, truth: Truth) -> list[Discrepancy]:
    """Every difference between the stored rollups and ``truth`` (empty when exact)."""
    expected = expected_rows(truth)
    if not expected:
        return []
    minutes = [minute for _ad, minute in truth.by_ad_minute]
    first = datetime.fromtimestamp(min(minutes), UTC)
    last = datetime.fromtimestamp(max(minutes), UTC)
    # Every shard's rows (each holds its partitions' ads; a row in two shards adds up
    # and shows as a difference).
    stored: Counter[tuple[str, str, int, str]] = Counter()
    for shard in settings.shard_settings():
        with connect(shard) as conn:
            for rollup, ad, bucket, country, clicks in conn.execute(
                load_sql("verify/rollups_in_range"), {"first": first, "last": last}
            ):
                stored[(str(rollup), str(ad), int(bucket), str(country))] += int(clicks)
    return [
        Discrepancy(
            key[0],
            key[1],
            datetime.fromtimestamp(key[2], UTC),
            key[3],
            expected.get(key, 0),
            stored.get(key, 0),
        )
        for key in sorted(expected.keys() | stored.keys())
        if expected.get(key, 0) != stored.get(key, 0)
    ]
