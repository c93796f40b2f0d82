"""Assembling a batch: every message lands in exactly one place, in offset order."""

from __future__ import annotations

import orjson

from adclick.events.dead_letter import DeadLetterReason
from adclick.ingest.batch import CLICK_ID, OFFSET, TS_MS, assemble_batch
from adclick.ingest.clock import PartitionClocks, Timeliness
from adclick.ingest.recent import RecentClicks
from tests.kafka_records import FakeRecord

T0 = 1_720_483_200_000  # 2024-07-09 00:00:00 UTC
MINUTE = 60_000
DAY = 86_400_000


def click(ts_ms: int, ad: str = "ad1", click_id: str | None = None) -> bytes:
    event = {"ad_id": ad, "timestamp": ts_ms, "user_id": "u", "ip": "1.2.3.4", "country": "US"}
    if click_id:
        event["click_id"] = click_id
    return orjson.dumps(event)


def clocks() -> PartitionClocks:
    return PartitionClocks(lateness_ms=MINUTE, horizon_ms=7 * DAY)


def assemble(records: list[FakeRecord], state: PartitionClocks | None = None, now: int = T0):
    return assemble_batch(records, "t", state or clocks(), now_ms=now, max_skew_ms=5 * MINUTE)


def test_good_and_bad_messages_are_split_and_nothing_is_lost() -> None:
    records = [
        FakeRecord(0, 10, click(T0)),
        FakeRecord(0, 11, b"{broken"),
        FakeRecord(1, 5, click(T0, ad="ad2")),
        FakeRecord(1, 6, None),
        FakeRecord(0, 12, click(T0 + 1000)),
    ]
    batch = assemble(records)
    assert [row[OFFSET] for row in batch.rows] == [10, 5, 12]
    assert [(d.partition, d.offset, d.reason) for d in batch.dead_letters] == [
        (0, 11, "malformed"),
        (1, 6, "malformed"),
    ]
    assert len(batch.rows) + len(batch.dead_letters) == batch.consumed == 5
    assert batch.next_offsets == {0: 13, 1: 7}


def test_staging_row_carries_the_event_and_its_source() -> None:
    (row,) = assemble([FakeRecord(3, 7, click(T0, click_id="c1"))]).rows
    assert row == (T0, "c1", "ad1", "u", "1.2.3.4", "US", "{}", 3, 7)


def test_late_events_are_kept_and_counted_as_late() -> None:
    batch = assemble(
        [
            FakeRecord(0, 0, click(T0 + 10 * MINUTE)),
            FakeRecord(0, 1, click(T0, click_id="a")),
            FakeRecord(0, 2, click(T0, click_id="b")),
        ],
        now=T0 + 10 * MINUTE,
    )
    assert len(batch.rows) == 3
    assert batch.late == 2


def test_lateness_is_per_partition() -> None:
    batch = assemble(
        [FakeRecord(0, 0, click(T0 + 10 * MINUTE)), FakeRecord(1, 0, click(T0))],
        now=T0 + 10 * MINUTE,
    )
    assert batch.late == 0


def test_events_beyond_the_dedup_horizon_are_dead_lettered() -> None:
    batch = assemble([FakeRecord(0, 0, click(T0)), FakeRecord(0, 1, click(T0 - 8 * DAY))])
    assert len(batch.rows) == 1
    assert [d.reason for d in batch.dead_letters] == [DeadLetterReason.BEYOND_DEDUP_HORIZON]


def test_horizon_is_measured_on_stream_time_not_the_wall_clock() -> None:
    # Replaying last month's logs: the wall clock is far ahead, the events are fine.
    batch = assemble(
        [FakeRecord(0, 0, click(T0)), FakeRecord(0, 1, click(T0 + 1))], now=T0 + 30 * DAY
    )
    assert len(batch.rows) == 2 and not batch.dead_letters


def test_too_far_future_events_are_dead_lettered_and_do_not_move_the_clock() -> None:
    state = clocks()
    batch = assemble(
        [
            FakeRecord(0, 0, click(T0)),
            FakeRecord(0, 1, click(T0 + DAY)),
            FakeRecord(0, 2, click(T0 - 1000)),
        ],
        state,
    )
    assert [d.reason for d in batch.dead_letters] == [DeadLetterReason.TOO_FAR_IN_FUTURE]
    assert batch.late == 0  # the skewed event did not make T0 - 1 s look late
    assert state.newest_ms == {0: T0}


def test_clock_classifies_by_newest_event_time() -> None:
    state = clocks()
    assert state.observe(0, T0) is Timeliness.ON_TIME
    assert state.observe(0, T0 - MINUTE + 1) is Timeliness.ON_TIME
    assert state.observe(0, T0 - MINUTE - 1) is Timeliness.LATE
    assert state.observe(0, T0 - 8 * DAY) is Timeliness.BEYOND_HORIZON
    assert state.watermark_ms(0) == T0 - MINUTE
    assert state.watermark_ms(1) is None


def test_dead_letter_keeps_the_original_payload() -> None:
    batch = assemble([FakeRecord(2, 9, b"\xff\xfe not utf-8", k=b"key")])
    letter = orjson.loads(batch.dead_letters[0].to_json())
    assert letter["source"] == "ingest"
    assert (letter["topic"], letter["partition"], letter["offset"]) == ("t", 2, 9)
    assert letter["payload"] is None
    assert letter["payload_base64"] == "//4gbm90IHV0Zi04"
    assert letter["reason"] == "malformed"


def test_repeats_within_a_batch_and_recent_clicks_are_dropped_as_duplicates() -> None:
    recent = RecentClicks(generation_size=10)
    first = assemble_batch(
        [FakeRecord(0, 0, click(T0, click_id="a")), FakeRecord(0, 1, click(T0, click_id="a"))],
        "t",
        clocks(),
        now_ms=T0,
        max_skew_ms=MINUTE,
        recent=recent,
    )
    assert [row[CLICK_ID] for row in first.rows] == ["a"] and first.known_duplicates == 1
    recent.add_all(first.keys)
    second = assemble_batch(
        [FakeRecord(0, 2, click(T0, click_id="a")), FakeRecord(0, 3, click(T0 + 1, click_id="a"))],
        "t",
        clocks(),
        now_ms=T0,
        max_skew_ms=MINUTE,
        recent=recent,
    )
    # Same click_id at another time is another click: the key is (time, click_id).
    assert [row[TS_MS] for row in second.rows] == [T0 + 1] and second.known_duplicates == 1
    assert second.next_offsets == {0: 4}


def test_recent_clicks_memory_is_bounded_and_keeps_the_newest() -> None:
    recent = RecentClicks(generation_size=3)
    for i in range(10):
        recent.add_all([(i, "c")])
    assert len(recent) <= 6
    assert (9, "c") in recent and (0, "c") not in recent
    recent.clear()
    assert (9, "c") not in recent
