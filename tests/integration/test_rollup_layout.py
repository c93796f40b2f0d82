"""The rollups' layout (migration 0009): hour chunks for the per-minute rollups, clicks_1h
keyed hour first. An existing database converts in place and every count stays exact.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

from alembic import command

from adclick.db.migrate import alembic_config, upgrade
from adclick.loadgen.generator import LoadSpec
from adclick.loadgen.truth import Truth
from adclick.settings import Settings
from tests.helpers import (
    country_rollup_counts,
    hourly_counts,
    hours_from_minutes,
    ingest_until_idle,
    load,
    query,
    recent_spec,
    rollup_counts,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def merged(*truths: Truth) -> Truth:
    by_ad: Counter[tuple[str, int]] = Counter()
    by_country: Counter[tuple[str, int, str]] = Counter()
    for truth in truths:
        by_ad.update(truth.by_ad_minute)
        by_country.update(truth.by_ad_minute_country)
    return Truth(dict(by_ad), dict(by_country))


def chunk_intervals(settings: Settings, table: str) -> list[timedelta]:
    rows = query(
        settings,
        "SELECT range_end - range_start FROM timescaledb_information.chunks"
        " WHERE hypertable_name = %s ORDER BY range_start",
        table,
    )
    return [interval for (interval,) in rows]


def primary_key(settings: Settings, table: str) -> list[str]:
    rows = query(
        settings,
        "SELECT a.attname FROM pg_index AS i"
        " JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k (attnum, n) ON TRUE"
        " JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
        " WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.n",
        table,
    )
    return [name for (name,) in rows]


def per_minute_rollups(settings: Settings) -> list[str]:
    filtered = query(settings, "SELECT table_name FROM filtered_rollups ORDER BY 1")
    return ["clicks_1m", *(name for (name,) in filtered)]


def test_an_existing_database_converts_in_place_and_stays_exact(settings: Settings) -> None:
    command.downgrade(alembic_config(settings), "0008")
    assert primary_key(settings, "clicks_1h") == ["ad_id", "hour"]

    # Two days ago, ingested with the old layout: day chunks.
    old_start_ms = (int(time.time() * 1000) - 2 * 86_400_000) // 60_000 * 60_000
    old = load(settings, LoadSpec(events=2_000, start_ms=old_start_ms, seed=1, event_rate=0.5))
    assert ingest_until_idle(settings).inserted == old.total
    old_chunks = {table: chunk_intervals(settings, table) for table in per_minute_rollups(settings)}
    assert all(intervals and set(intervals) == {DAY} for intervals in old_chunks.values())

    upgrade(settings)  # as `adclick migrate` on an existing database
    assert primary_key(settings, "clicks_1h") == ["hour", "ad_id"]
    # Later clicks into the old range land in its day chunk; recent ones in hour chunks
    # (about 70 minutes of event time: two or three of them).
    late = load(settings, LoadSpec(events=500, start_ms=old_start_ms, seed=2, event_rate=0.5))
    recent = load(settings, recent_spec(2_000, seed=3, event_rate=0.5))
    assert ingest_until_idle(settings).inserted == late.total + recent.total

    for table, before in old_chunks.items():
        intervals = chunk_intervals(settings, table)
        assert intervals[: len(before)] == before, f"{table}: the old day chunks stay as they are"
        new = intervals[len(before) :]
        assert len(new) >= 2 and set(new) == {HOUR}, f"{table}: new chunks are hours"

    truth = merged(old, late, recent)
    assert rollup_counts(settings) == truth.by_ad_minute
    assert country_rollup_counts(settings) == truth.by_ad_minute_country
    assert hourly_counts(settings) == hours_from_minutes(truth.by_ad_minute)


def test_the_layout_goes_down_and_up_again_with_every_count(settings: Settings) -> None:
    truth = load(settings, recent_spec(1_000, seed=4, event_rate=1.0))
    assert ingest_until_idle(settings).inserted == truth.total
    command.downgrade(alembic_config(settings), "0008")
    assert primary_key(settings, "clicks_1h") == ["ad_id", "hour"]
    upgrade(settings)
    assert primary_key(settings, "clicks_1h") == ["hour", "ad_id"]
    assert rollup_counts(settings) == truth.by_ad_minute
    assert hourly_counts(settings) == hours_from_minutes(truth.by_ad_minute)
