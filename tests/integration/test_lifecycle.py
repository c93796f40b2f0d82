"""Retention and tiering on real clicks: chunks move to verified Parquet files, totals stay
identical hot plus cold, kill -9 loses nothing, and retention deletes exactly its share."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from adclick.db.connect import connect
from adclick.demo.talkingdata import DEFAULT_SAMPLE, read_sample, shift_to_now, to_event
from adclick.kafka.clients import make_producer
from adclick.lifecycle.cold import query_cold
from adclick.lifecycle.policies import set_policy
from adclick.lifecycle.reconcile import reconcile
from adclick.lifecycle.tiering import Chunk, Maintainer, MaintenanceReport, tiering_time
from adclick.settings import Settings
from tests.helpers import (
    adclick_process,
    click_at,
    execute,
    ingest_until_idle,
    load,
    query,
    read_topic,
    recent_spec,
    rollup_counts,
    send,
    wait_for,
)

pytestmark = pytest.mark.slow(seconds=140)  # started first (tests/conftest.py)


DAY = timedelta(days=1)


def replay_sample(settings: Settings) -> None:
    """Real TalkingData clicks (a third of the sample: still four days of them), ending now."""
    rows = read_sample(DEFAULT_SAMPLE)[:35_000]  # the file is in random time order
    shift = shift_to_now(rows, int(time.time() * 1000))
    send(settings, [to_event(row, shift).to_json_dict() for row in rows])
    ingest_until_idle(settings)


def lifecycle_settings(settings: Settings, tmp_path: Path) -> Settings:
    # Raw clicks may stay hot for as short as the dedup horizon: one day here; per-minute
    # rollups as short as the API's longest window back: two days.
    return settings.model_copy(
        update={
            "dedup_horizon": DAY,
            "minute_rollup_retention": 2 * DAY,
            "cold_storage_url": str(tmp_path / "cold"),
        }
    )


def policy(
    settings: Settings, relation: str, hot: timedelta | None, cold: timedelta | None
) -> None:
    with connect(settings) as conn:
        set_policy(conn, settings, relation, hot, cold, "test")


def hot_raw_per_ad(settings: Settings) -> Counter[str]:
    return Counter(dict(query(settings, "SELECT ad_id, count(*) FROM raw_clicks GROUP BY 1")))


def cold_raw_per_ad(settings: Settings) -> Counter[str]:
    with connect(settings) as conn:
        _columns, rows = query_cold(
            conn, settings, "SELECT ad_id, count(*) FROM raw_clicks GROUP BY 1"
        )
    return Counter(dict(rows))


def raw_chunks(settings: Settings) -> list[tuple[datetime, datetime]]:
    return [
        (start, end)
        for start, end in query(
            settings,
            "SELECT range_start, range_end FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'raw_clicks' ORDER BY range_start",
        )
    ]


def cold_files(settings: Settings) -> dict[datetime, tuple[str, int]]:
    return {
        start: (url, rows)
        for start, url, rows in query(
            settings, "SELECT range_start, url, rows FROM cold_files WHERE relation = 'raw_clicks'"
        )
    }


def retention_now(settings: Settings) -> datetime:
    """The time the maintainer counts policies back from: the slowest partition's newest
    click (`tiering_time`), not the fastest's; a chunk boundary can fall between them."""
    with connect(settings) as conn:
        return tiering_time(conn, settings)


def test_tiering_moves_old_chunks_to_verified_parquet_and_keeps_everyclick_at(
    settings: Settings, tmp_path: Path
) -> None:
    replay_sample(settings)
    settings = lifecycle_settings(settings, tmp_path)
    before = hot_raw_per_ad(settings)
    chunks = raw_chunks(settings)
    assert len(chunks) >= 3, "the sample spans several days"
    policy(settings, "raw_clicks", DAY, None)

    report = Maintainer(settings).run()

    cutoff = retention_now(settings) - DAY
    old = [(s, e) for s, e in chunks if e <= cutoff]
    assert old and report.exported == len(old) and report.dropped_chunks == len(old)
    assert raw_chunks(settings) == [(s, e) for s, e in chunks if e > cutoff]
    files = cold_files(settings)
    assert sorted(files) == [s for s, _e in old]
    for url, rows in files.values():
        table = pq.read_table(url)
        assert table.num_rows == rows
        assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
        assert b"personal data" in table.schema.field("user_id").metadata[b"description"]
        assert pq.ParquetFile(url).metadata.row_group(0).column(0).compression == "ZSTD"
    # Every click, hot or cold, exactly once.
    assert hot_raw_per_ad(settings) + cold_raw_per_ad(settings) == before
    # A second run finds nothing to do.
    again = Maintainer(settings).run()
    assert (again.exported, again.dropped_chunks) == (0, 0)


def test_a_crash_mid_export_leaves_nothing_the_next_run_refuses(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A maintain killed while writing a file left it unfinished at its URL, where it
    could not say which database wrote it: every later run refused to write over it and
    kept the chunk hot for good. Files are written under a name of their own and moved
    into place once verified; what a crash leaves, the next run writes over."""
    replay_sample(settings)
    settings = lifecycle_settings(settings, tmp_path)
    before = hot_raw_per_ad(settings)
    chunks = raw_chunks(settings)
    policy(settings, "raw_clicks", DAY, None)
    export = Maintainer._export

    def crash_after_writing(self: Maintainer, conn: Any, chunk: Any, url: str) -> Any:
        export(self, conn, chunk, url)
        with open(url.removeprefix("file://"), "r+b") as written:
            written.truncate(100)  # what a kill in the middle of the write leaves
        raise KeyboardInterrupt  # the process dies here

    monkeypatch.setattr(Maintainer, "_export", crash_after_writing)
    with pytest.raises(KeyboardInterrupt):
        Maintainer(settings).run()
    monkeypatch.setattr(Maintainer, "_export", export)
    report = Maintainer(settings).run()
    assert report.conflicts == []
    cutoff = retention_now(settings) - DAY
    assert sorted(cold_files(settings)) == [s for s, e in chunks if e <= cutoff]
    assert hot_raw_per_ad(settings) + cold_raw_per_ad(settings) == before


def test_kill_9_during_tiering_loses_nothing(settings: Settings, tmp_path: Path) -> None:
    replay_sample(settings)
    settings = lifecycle_settings(settings, tmp_path)
    before = hot_raw_per_ad(settings)
    chunks = raw_chunks(settings)
    policy(settings, "raw_clicks", DAY, None)
    rng = random.Random(7)
    for _ in range(4):
        process = adclick_process(settings, "maintain")
        time.sleep(rng.uniform(0.5, 2.5))  # imports take about a second, a chunk a fraction
        process.send_signal(signal.SIGKILL)
        process.wait()
        # Each day of clicks is in its chunk or in a catalogued file at every moment.
        present = {s for s, _e in raw_chunks(settings)} | set(cold_files(settings))
        assert present >= {s for s, _e in chunks}
    Maintainer(settings).run()  # the rerun completes the job
    cutoff = retention_now(settings) - DAY
    assert sorted(cold_files(settings)) == [s for s, e in chunks if e <= cutoff]
    assert hot_raw_per_ad(settings) + cold_raw_per_ad(settings) == before


def test_retention_deletes_exactly_what_the_policies_say(
    settings: Settings, tmp_path: Path
) -> None:
    replay_sample(settings)
    settings = lifecycle_settings(settings, tmp_path)
    policy(settings, "raw_clicks", DAY, DAY)  # one day hot, one more day cold
    policy(settings, "clicks_1m", 2 * DAY, timedelta(0))  # two days, then gone
    minutes_before = query(settings, "SELECT minute, count(*) FROM clicks_1m GROUP BY 1")
    chunks_before = query(
        settings,
        "SELECT range_start, range_end FROM timescaledb_information.chunks"
        " WHERE hypertable_name = 'clicks_1m'",
    )
    Maintainer(settings).run()
    now = retention_now(settings)
    # Cold files only for chunks that ended between two days and one day ago.
    for start, (url, _rows) in cold_files(settings).items():
        assert now - 2 * DAY < start + DAY <= now - DAY, start
        assert Path(url).exists()
    assert not [
        p
        for p in (tmp_path / "cold" / "raw_clicks").iterdir()
        if str(p) not in {u for u, _r in cold_files(settings).values()}
    ], "files past their cold time are deleted"
    # clicks_1m keeps exactly the chunks (hours) that end after now - 2 days.
    chunk_ends = [
        e
        for (e,) in query(
            settings,
            "SELECT range_end FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'clicks_1m'",
        )
    ]
    assert chunk_ends and all(end > now - 2 * DAY for end in chunk_ends)
    kept = {m for (m,) in query(settings, "SELECT DISTINCT minute FROM clicks_1m")}
    expected = {m for m, _n in minutes_before if _chunk_end(chunks_before, m) > now - 2 * DAY}
    assert kept == expected
    # clicks_1h is kept forever by default.
    assert query(settings, "SELECT count(*) FROM clicks_1h")[0][0] > 0


def _chunk_end(chunks: list[tuple[datetime, datetime]], moment: datetime) -> datetime:
    [end] = [end for start, end in chunks if start <= moment < end]
    return end


def test_a_replayed_month_ends_with_a_hot_week_and_verified_cold_files(
    settings: Settings, tmp_path: Path
) -> None:
    """The issue's "done": default policies on a month of clicks, totals equal to the truth."""
    settings = settings.model_copy(update={"cold_storage_url": str(tmp_path / "cold")})
    events = 60_000
    spec = recent_spec(
        events, seed=71, ads=5_000, event_rate=events / (30 * 86_400), duplicate_fraction=0.02
    )
    truth = load(settings, spec)
    ingest_until_idle(settings)
    Maintainer(settings).run()  # the default policies: raw clicks hot for 7 days

    now = retention_now(settings)
    assert all(end > now - 7 * DAY for _start, end in raw_chunks(settings))
    files = cold_files(settings)
    assert len(files) >= 20, "three weeks and more of raw clicks are cold"
    # Every click is hot or cold, once: per ad and minute, equal to the truth.
    hot = Counter(
        {(ad, int(m.timestamp())): n for ad, m, n in query(
            settings, "SELECT ad_id, date_trunc('minute', ts, 'UTC'), count(*)"
            " FROM raw_clicks GROUP BY 1, 2")}
    )  # fmt: skip
    with connect(settings) as conn:
        _columns, rows = query_cold(
            conn, settings,
            "SELECT ad_id, epoch(date_trunc('minute', ts)), count(*) FROM raw_clicks GROUP BY ALL",
        )  # fmt: skip
    cold = Counter({(ad, int(minute)): n for ad, minute, n in rows})
    assert hot + cold == Counter(truth.by_ad_minute)
    # The rollups were not touched (minute rollups stay 90 days) and reconcile clean.
    assert rollup_counts(settings) == truth.by_ad_minute
    first = min(minute for _ad, minute in truth.by_ad_minute)
    report = reconcile(settings, datetime.fromtimestamp(first, UTC), now.replace(
        second=0, microsecond=0) + timedelta(minutes=1))  # fmt: skip
    assert report.discrepancies == [] and report.rows_checked > 0


def lock_waits(settings: Settings, relation: str) -> int:
    """Lock requests on a relation that are waiting."""
    return int(
        query(
            settings,
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass",
            relation,
        )[0][0]
    )


def test_dropping_a_chunk_waits_for_a_reader_instead_of_deadlocking(
    settings: Settings, tmp_path: Path
) -> None:
    """A reader (or autovacuum's ANALYZE) holding the oldest chunk when its drop starts.

    Readers lock a table, then its indexes; drop_chunks alone locks indexes first. A
    reader that touches the chunk's index while the drop waits must not deadlock either.
    """
    events = 3_000
    load(settings, recent_spec(events, seed=5, ads=100, event_rate=events / (4 * 86_400)))
    ingest_until_idle(settings)
    settings = lifecycle_settings(settings, tmp_path)
    policy(settings, "raw_clicks", DAY, timedelta(0))  # dropped without export
    ((schema, oldest, oldest_start),) = query(
        settings,
        "SELECT chunk_schema, chunk_name, range_start FROM timescaledb_information.chunks"
        " WHERE hypertable_name = 'raw_clicks' ORDER BY range_start LIMIT 1",
    )
    chunk = sql.Identifier(schema, oldest)
    outcome: dict[str, object] = {}

    def maintain() -> None:
        try:
            outcome["report"] = Maintainer(settings).run()
        except Exception as exc:  # the test asserts on it below
            outcome["error"] = exc

    with connect(settings) as reader:
        # What ANALYZE holds on a table while it reads (and what blocks the drop).
        reader.execute(sql.SQL("LOCK TABLE {} IN SHARE UPDATE EXCLUSIVE MODE").format(chunk))
        maintainer = threading.Thread(target=maintain)
        maintainer.start()
        wait_for(lambda: lock_waits(settings, f"{schema}.{oldest}") > 0, 30, "the drop to wait")
        # Planning a query on the chunk opens its index: this deadlocked before.
        count = reader.execute(sql.SQL("SELECT count(*) FROM {}").format(chunk)).fetchone()
        reader.commit()
    maintainer.join(60)

    assert not maintainer.is_alive() and "error" not in outcome, outcome
    assert count is not None and count[0] > 0
    report = outcome["report"]
    assert isinstance(report, MaintenanceReport) and report.dropped_chunks >= 1
    assert oldest_start not in {start for start, _end in raw_chunks(settings)}


def test_sigterm_stops_maintenance_between_chunks(settings: Settings, tmp_path: Path) -> None:
    replay_sample(settings)
    settings = lifecycle_settings(settings, tmp_path)
    before = hot_raw_per_ad(settings)
    policy(settings, "raw_clicks", DAY, None)
    process = adclick_process(settings, "maintain", "--every", "3600")
    wait_for(lambda: len(cold_files(settings)) >= 1, timeout_s=60, what="a first exported chunk")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert hot_raw_per_ad(settings) + cold_raw_per_ad(settings) == before


def _send_to(settings: Settings, partition: int, events: list[dict[str, object]]) -> None:
    producer = make_producer(settings)
    for event in events:
        producer.produce(
            settings.clicks_topic, value=orjson.dumps(event), key=b"k", partition=partition
        )
    assert producer.flush(30) == 0


def test_a_lagging_partition_never_counts_twice_nor_overwrites_cold_data(
    settings: Settings, tmp_path: Path
) -> None:
    """Issue 13, item 3: clicks 12 days old on a fresh partition were accepted, tiered with
    their day, then the same click replayed was counted again, and the day's chunk came
    back and was exported over the verified cold file. Default policies (raw hot 7 days)."""
    settings = settings.model_copy(update={"cold_storage_url": str(tmp_path / "cold")})
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    for partition in range(3):
        _send_to(settings, partition, [click_at(f"live{partition}", now, "u")])
    ingest_until_idle(settings)
    old = now - 12 * DAY
    old_clicks = [click_at("old", old + timedelta(seconds=i), f"u{i}") for i in range(3)]
    _send_to(settings, 3, old_clicks)  # a partition without events until now
    assert ingest_until_idle(settings).inserted == 3

    first = Maintainer(settings).run()
    assert first.exported == 1 and not first.conflicts
    [(url, rows)] = cold_files(settings).values()
    assert rows == 3
    exported = Path(url).read_bytes()

    # The replayed click and a new click of the tiered day: both refused, neither counted.
    _send_to(settings, 3, [old_clicks[0], click_at("old", old + timedelta(minutes=5), "new")])
    totals = ingest_until_idle(settings)
    assert (totals.inserted, totals.dead_lettered) == (0, 2)
    letters = read_topic(settings, settings.dlq_topic, expected=2)
    assert [letter["reason"] for letter in letters] == ["already_tiered"] * 2

    again = Maintainer(settings).run()
    assert (again.exported, again.dropped_chunks, again.conflicts) == (0, 0, [])
    assert Path(url).read_bytes() == exported
    assert hot_raw_per_ad(settings) + cold_raw_per_ad(settings) == Counter(
        {"live0": 1, "live1": 1, "live2": 1, "old": 3}
    )
    assert sum(n for (ad, _m), n in rollup_counts(settings).items() if ad == "old") == 3
    report = reconcile(settings, old - DAY, now + timedelta(minutes=1))
    assert report.discrepancies == []


def test_a_catalogued_cold_file_is_never_replaced(settings: Settings, tmp_path: Path) -> None:
    """Rows written into a tiered range by hand bring its chunk back: maintenance keeps
    that chunk and the verified file, says so, and goes on."""
    settings = settings.model_copy(update={"cold_storage_url": str(tmp_path / "cold")})
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    old = now - 10 * DAY
    _send_to(settings, 0, [click_at("a", old, "u"), click_at("a", now, "u")])
    ingest_until_idle(settings)
    assert Maintainer(settings).run().exported == 1
    [(url, _rows)] = cold_files(settings).values()
    exported = Path(url).read_bytes()
    query(
        settings,
        "INSERT INTO raw_clicks (ts, click_id, ad_id, user_id, ip, country, attributes,"
        " kafka_partition, kafka_offset) VALUES (%s, 'by-hand', 'a', 'u', '10.0.0.1', 'DE',"
        " '{}', 0, 0) RETURNING 1",
        old + timedelta(seconds=1),
    )

    report = Maintainer(settings).run()
    assert len(report.conflicts) == 1 and "never" not in report.conflicts[0]
    assert "catalogued" in report.conflicts[0]
    assert Path(url).read_bytes() == exported
    assert len(raw_chunks(settings)) == 2  # the hand-made chunk is kept for the operator


def test_cold_files_are_named_apart_whatever_the_session_time_zone(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two quarter-hour chunks an hour apart around the end of daylight-saving time in
    Berlin (02:00-03:00 local happens twice): named in local time, both went to one file,
    the second written over the first and both catalogued as it. Whatever zone the
    server, the database or the client (PGTZ) asks for, adclick's sessions are UTC."""
    settings = settings.model_copy(update={"cold_storage_url": str(tmp_path / "cold")})
    database = query(settings, "SELECT current_database()")[0][0]
    alter = sql.SQL("ALTER DATABASE {} SET timezone = 'America/Sao_Paulo'")
    execute(settings, alter.format(sql.Identifier(database)).as_string())
    monkeypatch.setenv("PGTZ", "Europe/Berlin")
    with connect(settings) as conn:
        assert conn.execute("SHOW timezone").fetchone() == ("UTC",)
    first, second = (
        datetime(2024, 10, 27, 0, 5, tzinfo=UTC),
        datetime(2024, 10, 27, 1, 5, tzinfo=UTC),
    )
    for minute, ad, clicks in [(first, "adA", 3), (second, "adB", 5)]:
        execute(settings, "INSERT INTO clicks_1m (minute, ad_id, clicks) VALUES (%s, %s, %s)",
                minute, ad, clicks)  # fmt: skip
    policy(settings, "clicks_1m", settings.minute_rollup_retention, None)  # cold forever

    report = Maintainer(settings).run()
    assert (report.exported, report.dropped_chunks, report.conflicts) == (2, 2, [])
    files = query(settings, "SELECT range_start, url FROM cold_files WHERE relation = 'clicks_1m'")
    assert len({url for _start, url in files}) == 2
    for start, url in files:
        assert url.endswith(f"clicks_1m_{start.astimezone(UTC):%Y%m%dT%H%M%S}Z.parquet")
    found = {
        row["ad_id"]: row["clicks"]
        for _start, url in files
        for row in pq.read_table(url).to_pylist()
    }
    assert found == {"adA": 3, "adB": 5}


def test_two_maintains_at_once_leave_each_database_to_one(
    settings: Settings, tmp_path: Path
) -> None:
    """A second maintain started while one works leaves the database to it, and a chunk
    dropped under a pass after it was listed is skipped: neither process fails, every
    click is hot or in a verified cold file."""
    settings = settings.model_copy(update={"cold_storage_url": str(tmp_path / "cold")})
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    old = now - 10 * DAY
    _send_to(
        settings,
        0,
        [click_at("a", old, "u1"), click_at("a", old + DAY, "u2"), click_at("a", now, "u")],
    )
    ingest_until_idle(settings)
    second: list[MaintenanceReport] = []
    dropped_by_hand: list[str] = []

    def meanwhile(chunk: Chunk) -> None:
        if not second:  # while the first pass holds the database
            second.append(Maintainer(settings).run())
        elif chunk.relation == "raw_clicks" and not dropped_by_hand:
            # Exported and dropped elsewhere (an operator's drop_chunks) after the listing.
            execute(settings, sql.SQL("DROP TABLE {}").format(chunk.table).as_string())
            dropped_by_hand.append(chunk.name)

    first = Maintainer(settings).run(on_chunk=meanwhile)
    assert second[0].busy == [settings.describe_database()] and second[0].exported == 0
    assert first.busy == [] and first.conflicts == []
    assert dropped_by_hand and first.exported >= 1
    again = Maintainer(settings).run()  # the lock went with the first pass's session
    assert again.busy == [] and again.conflicts == []
