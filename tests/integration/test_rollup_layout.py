"""The rollups' layout: hour chunks for the per-minute rollups and clicks_1h keyed hour
first (migration 0009), then quarter-hour chunks (migration 0010). An existing database
converts in place, both ways, and every count stays exact.
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
    create_filtered_rollups,
    hourly_counts,
    hours_from_minutes,
    ingest_until_idle,
    load,
    query,
    recent_spec,
    rollup_counts,
)

QUARTER = timedelta(minutes=15)
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
    # Later clicks into the old range land in its day chunk; recent ones in quarter-hour
    # chunks (migration 0010; about 70 minutes of event time: five or six of them).
    late = load(settings, LoadSpec(events=500, start_ms=old_start_ms, seed=2, event_rate=0.5))
    recent = load(settings, recent_spec(2_000, seed=3, event_rate=0.5))
    assert ingest_until_idle(settings).inserted == late.total + recent.total

    for table, before in old_chunks.items():
        intervals = chunk_intervals(settings, table)
        assert intervals[: len(before)] == before, f"{table}: the old day chunks stay as they are"
        new = intervals[len(before) :]
        assert len(new) >= 4 and set(new) == {QUARTER}, f"{table}: new chunks are quarters"

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


def test_quarter_hour_chunks_both_ways(settings: Settings) -> None:
    # A filtered rollup of two dimensions besides the country one gets them as well.
    settings = settings.model_copy(update={"dimension_sets": [["country"], ["os", "device"]]})
    create_filtered_rollups(settings)
    tables = per_minute_rollups(settings)
    assert "clicks_1m_by_os_device" in tables
    first = load(settings, recent_spec(1_000, seed=5, event_rate=1.0))  # ~17 minutes
    assert ingest_until_idle(settings).inserted == first.total
    for table in tables:
        assert set(chunk_intervals(settings, table)) == {QUARTER}, table

    command.downgrade(alembic_config(settings), "0009")
    # Two days ago: new chunks are hours again; the quarter-hour ones stay.
    old_start_ms = (int(time.time() * 1000) - 2 * 86_400_000) // 3_600_000 * 3_600_000
    old = load(settings, LoadSpec(events=500, start_ms=old_start_ms, seed=6, event_rate=0.5))
    assert ingest_until_idle(settings).inserted == old.total
    for table in tables:
        intervals = chunk_intervals(settings, table)
        assert intervals[0] == HOUR and set(intervals[1:]) == {QUARTER}, table

    upgrade(settings)
    second = load(settings, recent_spec(1_000, seed=7, event_rate=1.0))
    assert ingest_until_idle(settings).inserted == second.total
    truth = merged(first, old, second)
    assert rollup_counts(settings) == truth.by_ad_minute
    assert country_rollup_counts(settings) == truth.by_ad_minute_country
    assert hourly_counts(settings) == hours_from_minutes(truth.by_ad_minute)
