"""Recalculation restores corrupted rollups from raw clicks, hot and cold; reconciliation
finds every injected discrepancy and none on clean data."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from adclick.db.connect import connect
from adclick.ingest.batch import assemble_batch
from adclick.ingest.clock import PartitionClocks
from adclick.ingest.writer import BatchWriter
from adclick.lifecycle import recalculate as recalculation
from adclick.lifecycle.recalculate import recalculate
from adclick.lifecycle.recompute import RangeError
from adclick.lifecycle.reconcile import reconcile
from adclick.lifecycle.tiering import Maintainer
from adclick.settings import Settings
from tests.helpers import adclick_process, click_at, execute, ingest_until_idle, query
from tests.integration.test_lifecycle import (
    DAY,
    _send_to,
    lifecycle_settings,
    policy,
    raw_chunks,
    replay_sample,
    retention_now,
)
from tests.kafka_records import FakeRecord

ROLLUPS = {
    "clicks_1m": "SELECT minute, ad_id, '', clicks FROM clicks_1m",
    "clicks_1h": "SELECT hour, ad_id, '', clicks FROM clicks_1h",
    "clicks_1m_by_country": "SELECT minute, ad_id, country, clicks FROM clicks_1m_by_country",
}


def snapshot(settings: Settings) -> dict[str, set[tuple[Any, ...]]]:
    return {name: set(query(settings, statement)) for name, statement in ROLLUPS.items()}


def whole_range(settings: Settings) -> tuple[datetime, datetime]:
    first = query(settings, "SELECT min(minute) FROM clicks_1m")[0][0]
    last = query(settings, "SELECT max(minute) FROM clicks_1m")[0][0]
    return first, last + timedelta(minutes=1)


def corrupt(settings: Settings, rng: random.Random) -> set[tuple[str, datetime, str]]:
    """Change, delete and invent rollup rows; returns the (rollup, bucket, ad) touched."""
    injected: set[tuple[str, datetime, str]] = set()
    rows = sorted(query(settings, "SELECT minute, ad_id FROM clicks_1m"))
    for minute, ad in rng.sample(rows, 15):
        execute(settings, "UPDATE clicks_1m SET clicks = clicks + 2"
                " WHERE minute = %s AND ad_id = %s", minute, ad)  # fmt: skip
        injected.add(("clicks_1m", minute, ad))
    for minute, ad in rng.sample(rows, 5):
        if ("clicks_1m", minute, ad) in injected:
            continue
        execute(settings, "DELETE FROM clicks_1m WHERE minute = %s AND ad_id = %s", minute, ad)
        injected.add(("clicks_1m", minute, ad))
    minute = rows[len(rows) // 2][0]
    execute(settings, "INSERT INTO clicks_1m VALUES (%s, 'ad-never-clicked', 7)", minute)
    injected.add(("clicks_1m", minute, "ad-never-clicked"))
    hours = sorted(query(settings, "SELECT hour, ad_id FROM clicks_1h"))
    for hour, ad in rng.sample(hours, 5):
        execute(settings, "UPDATE clicks_1h SET clicks = clicks - 1"
                " WHERE hour = %s AND ad_id = %s", hour, ad)  # fmt: skip
        injected.add(("clicks_1h", hour, ad))
    by_country = sorted(query(settings, "SELECT minute, ad_id, country FROM clicks_1m_by_country"))
    for minute, ad, country in rng.sample(by_country, 5):
        execute(settings, "UPDATE clicks_1m_by_country SET clicks = clicks * 3 WHERE minute = %s"
                " AND ad_id = %s AND country = %s", minute, ad, country)  # fmt: skip
        injected.add(("clicks_1m_by_country", minute, ad))
    return injected


def test_reconciliation_finds_every_corruption_and_recalculation_repairs_it(
    settings: Settings, tmp_path: Path
) -> None:
    replay_sample(settings)
    settings = lifecycle_settings(settings, tmp_path)
    truth = snapshot(settings)  # ingest's rollups: exact (test_exactness.py proves it)
    start, end = whole_range(settings)
    # Old days go cold: recalculation and reconciliation must read them from Parquet.
    policy(settings, "raw_clicks", DAY, None)
    Maintainer(settings).run()
    assert raw_chunks(settings)[0][0] > start, "some raw clicks are only in cold files now"

    clean = reconcile(settings, start, end)
    assert clean.discrepancies == [] and clean.rows_checked > 0
    unchanged = recalculate(settings, start, end)
    assert unchanged.rows_changed == 0 and snapshot(settings) == truth

    injected = corrupt(settings, random.Random(3))
    found = reconcile(settings, start, end)
    assert {(d.rollup, d.bucket, d.ad_id) for d in found.discrepancies} == injected
    command = adclick_process(settings, "reconcile", "--from", start.isoformat(),
                              "--to", end.isoformat())  # fmt: skip
    assert command.wait(timeout=120) == 1  # non-zero on a mismatch

    repaired = recalculate(settings, start, end)
    assert repaired.rows_changed == len(injected)
    assert snapshot(settings) == truth
    assert reconcile(settings, start, end).discrepancies == []
    assert retention_now(settings) > start


def test_recalculating_one_rollup_leaves_the_others_alone(
    settings: Settings, tmp_path: Path
) -> None:
    replay_sample(settings)
    settings = lifecycle_settings(settings, tmp_path)
    truth = snapshot(settings)
    start, end = whole_range(settings)
    execute(settings, "UPDATE clicks_1h SET clicks = clicks + 1")
    execute(settings, "UPDATE clicks_1m_by_country SET clicks = clicks + 1")
    recalculate(settings, start, end, only="clicks_1h")
    after = snapshot(settings)
    assert after["clicks_1h"] == truth["clicks_1h"]
    assert after["clicks_1m_by_country"] != truth["clicks_1m_by_country"]


def test_clicks_ingested_while_a_rollup_is_recomputed_are_kept(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recalculation recomputes rows before it locks the rollup (ingest goes on
    meanwhile); a click ingested in between must not be lost when the repaired rows are
    written: the rows are recomputed under the lock when the minutes' revisions moved."""
    replay_sample(settings)
    settings = lifecycle_settings(settings, tmp_path)
    start, end = whole_range(settings)
    minute, ad, clicks = query(
        settings, "SELECT minute, ad_id, clicks FROM clicks_1m ORDER BY minute DESC, ad_id LIMIT 1"
    )[0]
    execute(settings, "UPDATE clicks_1m SET clicks = clicks + 5"
            " WHERE minute = %s AND ad_id = %s", minute, ad)  # fmt: skip
    late_click = orjson.dumps({
        "ad_id": ad, "timestamp": int(minute.timestamp() * 1000) + 30_000, "user_id": "u",
        "ip": "1.2.3.4", "country": "US", "click_id": "ingested-while-recalculating",
    })  # fmt: skip
    staged = recalculation.stage_expected
    ingested: list[int] = []

    def stage_then_ingest(conn: Any, *args: Any) -> None:
        staged(conn, *args)
        _settings, _rollup, step_start, step_end = args
        if step_start <= minute < step_end and not ingested:
            # Ingest commits a click of that minute and ad right after its day's rows were
            # recomputed, before the rollup is locked.
            now_ms = int(minute.timestamp() * 1000) + 60_000
            clocks = PartitionClocks(lateness_ms=60_000, horizon_ms=7 * 86_400_000)
            batch = assemble_batch([FakeRecord(0, 0, late_click)], "t", clocks, now_ms, 0)
            with connect(settings) as writer_conn:
                result = BatchWriter(writer_conn, settings).write(batch, clocks, lambda _: None)
            ingested.append(result.inserted)

    monkeypatch.setattr(recalculation, "stage_expected", stage_then_ingest)
    report = recalculate(settings, start, end, only="clicks_1m")
    assert ingested == [1]
    assert report.rows_changed == 1
    assert query(settings, "SELECT clicks FROM clicks_1m WHERE minute = %s AND ad_id = %s",
                 minute, ad) == [(clicks + 1,)]  # fmt: skip
    assert reconcile(settings, start, end).discrepancies == []


def test_a_range_in_any_offset_is_the_same_range_in_utc(settings: Settings) -> None:
    """Bounds in +05:30 used to be aligned to hours in +05:30: recalculate then wrote an
    hour's row from the half of its clicks inside the range. Any offset is now the same
    UTC range; bounds that are no whole UTC minute, or lie past any click's time, are
    refused with a clear error."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    clicks = [click_at("ad1", hour + timedelta(minutes=m), f"u{m}") for m in range(60)]
    _send_to(settings, 0, clicks)
    ingest_until_idle(settings)
    truth = snapshot(settings)
    india = timezone(timedelta(hours=5, minutes=30))
    start = (hour + timedelta(minutes=20)).astimezone(india)
    end = (hour + timedelta(minutes=50)).astimezone(india)
    assert reconcile(settings, start, end).discrepancies == []
    assert recalculate(settings, start, end).rows_changed == 0
    assert snapshot(settings) == truth  # clicks_1h of the hour: still its 60 clicks
    seconds_off = timezone(timedelta(minutes=5, seconds=30))
    for bad_start, bad_end, message in [
        (hour.replace(tzinfo=seconds_off), end, "whole minute in UTC"),  # 05:30 past the hour
        (datetime(9999, 12, 30, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC), "2000..2100"),
    ]:
        with pytest.raises(RangeError, match=message):
            recalculate(settings, bad_start, bad_end)
        with pytest.raises(RangeError, match=message):
            reconcile(settings, bad_start, bad_end)


def test_recalculation_and_maintenance_take_turns_and_cold_ranges_are_refused(
    settings: Settings, tmp_path: Path
) -> None:
    """A row repaired between maintain's export of its chunk and the drop was lost (the
    cold file kept the old count); rows rewritten in a range already in cold files
    brought its chunk back over the catalogued file, kept by maintain pass after pass.
    Now the two take turns on a database, and a rollup's cold range is refused."""
    settings = lifecycle_settings(settings, tmp_path)
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    old = now - 10 * DAY
    for partition in range(3):
        _send_to(settings, partition, [click_at(f"live{partition}", now, "u")])
    ingest_until_idle(settings)
    _send_to(
        settings, 3, [click_at("old", old, "u1"), click_at("old", old, "u2")]
    )  # a new partition
    ingest_until_idle(settings)
    policy(settings, "clicks_1m", 2 * DAY, None)  # per-minute rows go cold, kept for good

    busy: list[list[str]] = []

    def maintain_meanwhile(_rollup: object, _day: datetime) -> None:
        busy.append(Maintainer(settings).run().busy)

    last_hour = (now - timedelta(hours=1), now + timedelta(minutes=1))
    recalculate(settings, *last_hour, only="clicks_1m", on_step=maintain_meanwhile)
    assert busy == [[settings.describe_database()]]  # maintain left the database to it

    report = Maintainer(settings).run()
    assert report.exported >= 1 and report.conflicts == []
    assert query(settings, "SELECT count(*) FROM clicks_1m WHERE ad_id = 'old'") == [(0,)]
    with pytest.raises(RangeError, match=r"clicks_1m from .* is in cold storage"):
        recalculate(settings, old, old + timedelta(minutes=1), only="clicks_1m")
    assert Maintainer(settings).run().conflicts == []  # nothing came back over the file
