"""Ingest against the real TimescaleDB and broker: dedup, lateness, dead letters, offsets."""

from __future__ import annotations

import hashlib
import time

import orjson
import pytest

from adclick.errors import ConfigurationError
from adclick.settings import Settings
from tests.helpers import (
    country_rollup_counts,
    create_filtered_rollups,
    duplicate_click_ids,
    execute,
    hourly_counts,
    ingest_until_idle,
    query,
    read_topic,
    rollup_counts,
    send,
)

MINUTE_S = 60
NOW_S = int(time.time()) // 60 * 60
T0_S = NOW_S - 3600  # an hour ago: every test event is in the past, none in the future


def click(ad: str, at_s: float, country: str = "US", **extra: object) -> dict[str, object]:
    return {
        "ad_id": ad,
        "timestamp": int(at_s * 1000),
        "user_id": "user-1",
        "ip": "207.148.22.22",
        "country": country,
        **extra,
    }


def widest(seed: int) -> str:
    """128 characters of 4 UTF-8 bytes each, scattered so they do not compress."""
    return "".join(chr(0x10000 + (seed * 131 + j * 7919) % 0xF0000) for j in range(128))


def test_the_design_sample_event_is_counted(settings: Settings) -> None:
    send(
        settings,
        [
            {
                "ad_id": "ad001",
                "timestamp": "2024-07-09 00:00:01",
                "user_id": "user-1",
                "ip": "207.148.22.22",
                "country": "USA",
            }
        ],
    )
    totals = ingest_until_idle(settings)
    assert totals.inserted == 1
    minute = 1720483200  # 2024-07-09 00:00 UTC
    assert rollup_counts(settings) == {("ad001", minute): 1}
    assert hourly_counts(settings) == {("ad001", minute): 1}
    assert country_rollup_counts(settings) == {("ad001", minute, "USA"): 1}


def test_duplicates_count_once_within_and_across_batches(settings: Settings) -> None:
    first = click("ad1", T0_S + 5)
    with_id = click("ad2", T0_S + 6, click_id="retry-me")
    send(settings, [first, first, with_id, first])
    ingest_until_idle(settings)
    send(settings, [first, with_id])  # a producer retry, much later
    totals = ingest_until_idle(settings)
    assert totals.duplicates == 2 and totals.inserted == 0
    assert rollup_counts(settings) == {("ad1", T0_S): 1, ("ad2", T0_S): 1}
    assert query(settings, "SELECT count(*) FROM raw_clicks") == [(2,)]
    assert duplicate_click_ids(settings) == 0


def test_identical_clicks_with_distinct_click_ids_are_distinct_clicks(settings: Settings) -> None:
    send(settings, [click("ad1", T0_S, click_id=f"c{i}") for i in range(3)])
    ingest_until_idle(settings)
    assert rollup_counts(settings) == {("ad1", T0_S): 3}


def test_late_events_are_counted(settings: Settings) -> None:
    # All on one ad, so one partition: the second batch is 30 minutes behind the first.
    send(settings, [click("ad1", T0_S + 40 * MINUTE_S + s) for s in range(5)])
    ingest_until_idle(settings)
    send(settings, [click("ad1", T0_S + 10 * MINUTE_S + s) for s in range(3)])
    totals = ingest_until_idle(settings)
    assert totals.late == 3 and totals.inserted == 3
    assert rollup_counts(settings) == {
        ("ad1", T0_S + 40 * MINUTE_S): 5,
        ("ad1", T0_S + 10 * MINUTE_S): 3,
    }
    (watermark,) = query(
        settings,
        "SELECT extract(epoch FROM max_event_time)::bigint,"
        " extract(epoch FROM watermark)::bigint FROM partition_watermarks",
    )
    assert watermark == (T0_S + 40 * MINUTE_S + 4, T0_S + 39 * MINUTE_S + 4)


def test_every_kind_of_bad_input_is_dead_lettered_and_the_rest_of_the_batch_stored(
    settings: Settings,
) -> None:
    good = [click(f"ad{i}", T0_S + i) for i in range(1, 6)]
    bad: list[tuple[bytes | dict[str, object], str]] = [
        (b"{not json", "malformed"),
        (b"[1,2,3]", "malformed"),
        ({k: v for k, v in good[0].items() if k != "ip"}, "missing_field"),
        ({**good[0], "ip": "300.1.1.1"}, "invalid_field"),
        ({**good[0], "country": "12"}, "invalid_field"),
        ({**good[0], "timestamp": "soon"}, "invalid_field"),
        ({**good[0], "user_id": {"nested": 1}}, "invalid_field"),
        (click("ad1", NOW_S + 86_400), "too_far_in_future"),
        (click("ad1", T0_S - 8 * 86_400), "beyond_dedup_horizon"),
    ]
    # Good and bad interleaved, all on one key so they share a partition and a batch.
    payloads: list[bytes | dict[str, object]] = []
    for index, (payload, _reason) in enumerate(bad):
        payloads.append(payload)
        if index < len(good):
            payloads.append(good[index])
    send(settings, payloads, key=b"same")

    totals = ingest_until_idle(settings)
    assert totals.inserted == len(good)
    assert totals.dead_lettered == len(bad)
    assert rollup_counts(settings) == {(f"ad{i}", T0_S): 1 for i in range(1, 6)}
    letters = read_topic(settings, settings.dlq_topic, expected=len(bad))
    assert sorted(letter["reason"] for letter in letters) == sorted(r for _p, r in bad)
    assert all(letter["source"] == "ingest" for letter in letters)
    assert all(letter["topic"] == settings.clicks_topic for letter in letters)
    assert {letter["payload"] for letter in letters} >= {"{not json", "[1,2,3]"}


# What the database may refuse that validation knows nothing of, and how a click provokes it.
REFUSALS = {
    # An operator's constraint on raw clicks (SQLSTATE 23, refused by the raw insert).
    "check_on_raw_clicks": (
        "ALTER TABLE raw_clicks ADD CONSTRAINT no_bots CHECK (user_id <> 'bot')",
        {"user_id": "bot"},
    ),
    # An operator's constraint on a rollup (23, refused by the rollup upsert, after the
    # click's raw insert went through: the whole write of a row must go or stay).
    "check_on_a_rollup": (
        "ALTER TABLE clicks_1m_by_country ADD CONSTRAINT no_zz CHECK (country <> 'ZZ')",
        {"country": "ZZ"},
    ),
    # An index entry over the B-tree's 2,704 bytes (54000, program limit exceeded, which
    # psycopg makes an OperationalError: it was taken for "database down" and the batch
    # was read again forever, its partition blocked).
    "index_entry_too_large": (
        "CREATE INDEX raw_clicks_attributes ON raw_clicks ((attributes::text))",
        {f"a{i}": widest(i) for i in range(8)},
    ),
}


@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_rows_the_database_refuses_are_dead_lettered_and_the_batch_commits(
    settings: Settings, refusal: str
) -> None:
    statement, changes = REFUSALS[refusal]
    execute(settings, statement)
    events = [click(f"ad{i}", T0_S + i) for i in range(10)]
    events[3].update(changes)
    events[7].update(changes)
    send(settings, events, key=b"one-partition")
    totals = ingest_until_idle(settings)
    assert totals.inserted == 8 and totals.dead_lettered == 2
    assert rollup_counts(settings) == {(f"ad{i}", T0_S): 1 for i in range(10) if i not in (3, 7)}
    letters = read_topic(settings, settings.dlq_topic, expected=2)
    assert [letter["reason"] for letter in letters] == ["rejected_by_database"] * 2
    assert query(settings, "SELECT count(*) FROM raw_clicks") == [(8,)]


def test_offsets_move_with_the_data_and_a_restart_reads_nothing_twice(settings: Settings) -> None:
    send(settings, [click(f"ad{i % 7}", T0_S + i) for i in range(500)])
    first = ingest_until_idle(settings)
    assert first.consumed == 500
    stored = query(
        settings,
        "SELECT sum(next_offset) FROM ingest_offsets WHERE consumer_group = %s",
        settings.consumer_group,
    )
    assert stored == [(500,)]
    again = ingest_until_idle(settings)
    assert again.consumed == 0
    assert sum(rollup_counts(settings).values()) == 500


@pytest.mark.parametrize("dimension_sets", [[["country"], ["country", "device"], ["device"]]])
def test_filtered_rollups_follow_the_configured_dimension_sets(
    settings: Settings, dimension_sets: list[list[str]]
) -> None:
    configured = settings.model_copy(update={"dimension_sets": dimension_sets})
    # The worker runs as adclick_ingest, which may not create tables: a new dimension set
    # needs `adclick migrate` (the owner) first, and the worker says so until then.
    with pytest.raises(ConfigurationError, match="adclick migrate"):
        ingest_until_idle(configured)
    create_filtered_rollups(configured)
    send(
        configured,
        [
            click("ad1", T0_S, "US", device="ios"),
            click("ad1", T0_S + 1, "US", device="android"),
            click("ad1", T0_S + 2, "DE", device="ios"),
            click("ad1", T0_S + 3, "DE"),  # no device: counted under ''
        ],
    )
    ingest_until_idle(configured)
    by_device = query(configured, "SELECT device, clicks FROM clicks_1m_by_device ORDER BY device")
    assert by_device == [("", 1), ("android", 1), ("ios", 2)]
    by_both = query(
        configured,
        "SELECT country, device, clicks FROM clicks_1m_by_country_device ORDER BY 1, 2",
    )
    assert by_both == [("DE", "", 1), ("DE", "ios", 1), ("US", "android", 1), ("US", "ios", 1)]
    catalog = query(configured, "SELECT table_name FROM filtered_rollups ORDER BY 1")
    assert catalog == [
        ("clicks_1m_by_country",),
        ("clicks_1m_by_country_device",),
        ("clicks_1m_by_device",),
    ]


@pytest.mark.parametrize(
    "dimension_sets", [[["a", "b", "c", "d"]], [["a", "b", "c", "country", "d"]]]
)
def test_the_widest_click_the_settings_allow_is_counted(
    settings: Settings, dimension_sets: list[list[str]]
) -> None:
    """Settings refuse dimension sets whose rollup key could outgrow an index entry: for
    the widest sets they accept, clicks with every value at its longest are counted."""
    configured = settings.model_copy(update={"dimension_sets": dimension_sets})
    create_filtered_rollups(configured)
    wide = {name: widest(i) for i, name in enumerate("abcd")}
    send(configured, [click(widest(9), T0_S, "USA", **wide), click("ad1", T0_S, "US")])
    totals = ingest_until_idle(configured)
    assert totals.inserted == 2 and totals.dead_lettered == 0
    table = "clicks_1m_by_" + "_".join(sorted(dimension_sets[0]))
    stored = query(configured, f"SELECT ad_id, a, clicks FROM {table}")  # noqa: S608 (ours)
    assert sorted(stored) == sorted([(widest(9), wide["a"], 1), ("ad1", "", 1)])


def test_a_dimension_may_share_a_name_with_a_rollup_of_time(settings: Settings) -> None:
    # The rollup statement computes clicks_1h's hour itself; an attribute named "hour"
    # (an hour of day, say) is a dimension like any other.
    configured = settings.model_copy(update={"dimension_sets": [["hour"]]})
    create_filtered_rollups(configured)
    hour = int(T0_S) - int(T0_S) % 3600  # whole hours in the past: no event straddles one
    send(
        configured,
        [
            click("ad1", hour - 3600 + 10, "US", hour="13"),
            click("ad1", hour - 3600 + 11, "US", hour="13"),
            click("ad1", hour + 10, "US", hour="14"),
        ],
    )
    ingest_until_idle(configured)
    by_hour_attribute = query(configured, "SELECT hour, clicks FROM clicks_1m_by_hour ORDER BY 1")
    assert by_hour_attribute == [("13", 2), ("14", 1)]
    per_hour = query(
        configured, "SELECT extract(epoch FROM hour)::bigint, clicks FROM clicks_1h ORDER BY 1"
    )
    assert per_hour == [(hour - 3600, 2), (hour, 1)]


def test_hostile_messages_are_dead_lettered_without_stopping_the_worker(
    settings: Settings,
) -> None:
    """Invalid UTF-8 in a known field once stopped every worker in turn (issue 13, 1);
    a 0.9 MB message of control characters made a dead letter too large to send (2)."""
    good = [click(f"ad{i}", T0_S + i) for i in range(1, 4)]
    template = orjson.dumps(click("adX", T0_S))
    hostile = [
        template.replace(b'"adX"', b'"a\xff"'),
        orjson.dumps({**click("adX", T0_S), "timestamp": "2025"}).replace(b"2025", b"2025\xfe"),
        b'{"ad_id": "' + b"\x01" * 900_000 + b'"}',
        b"\xff" * 700_000,
        orjson.dumps(click("\x1b[2Jad", T0_S)),
        orjson.dumps(click("\u3000", T0_S)),
    ]
    send(settings, [hostile[0], good[0], *hostile[1:4], good[1], *hostile[4:], good[2]], key=b"k")

    totals = ingest_until_idle(settings)
    assert totals.inserted == len(good)
    assert totals.dead_lettered == len(hostile)
    assert rollup_counts(settings) == {(f"ad{i}", T0_S): 1 for i in range(1, 4)}
    letters = read_topic(settings, settings.dlq_topic, expected=len(hostile))
    assert sorted(letter["payload_bytes"] for letter in letters) == sorted(map(len, hostile))
    assert {letter["reason"] for letter in letters} <= {"malformed", "invalid_field"}
    big = [letter for letter in letters if letter["payload_bytes"] >= 700_000]
    assert len(big) == 2 and all(letter["payload_truncated"] for letter in big)
    assert hashlib.sha256(hostile[3]).hexdigest() in {letter["payload_sha256"] for letter in big}
