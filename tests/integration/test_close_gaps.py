"""The minute closer leaves no minute without lists: not while one partition lags hours
behind the others, not after the closer was down for hours. A list it cannot make (its
window reaches below the ingest floor) is recorded and counted, never skipped silently."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from adclick.close.closer import MinuteCloser
from adclick.kafka import make_producer
from adclick.settings import Settings
from tests.helpers import execute, ingest_until_idle, query

pytestmark = pytest.mark.slow(seconds=60)

MINUTE_MS = 60_000
WINDOWS = [1, 60]
FILTERS = ("", "country=US")


class Clicks:
    """Clicks sent to chosen partitions, and the truth they make: clicks per (ad, minute,
    country)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.truth: Counter[tuple[str, int, str]] = Counter()
        self.sent = 0

    def send(self, clicks: list[tuple[int, str, int, str]]) -> None:
        """(partition, ad, event time ms, country) each."""
        producer = make_producer(self.settings)
        for partition, ad, ts, country in clicks:
            self.sent += 1
            payload = {"ad_id": ad, "timestamp": ts, "user_id": f"u{self.sent}",
                       "ip": "192.0.2.1", "country": country}  # fmt: skip
            producer.produce(
                self.settings.clicks_topic,
                key=ad.encode(),
                value=orjson.dumps(payload),
                partition=partition,
            )
            self.truth[(ad, ts - ts % MINUTE_MS, country)] += 1
        assert producer.flush(30) == 0
        ingest_until_idle(self.settings)

    def minutes(self, partitions: range, first: int, last: int) -> list[tuple[int, str, int, str]]:
        """A few clicks in every minute [first, last) on each partition; which ad leads
        changes from minute to minute, so every window has its own ranking."""
        return [
            (p, f"ad{p}-{(m + k) % 5}", m * MINUTE_MS + 1_000 + k, ("US", "FR")[(m + k) % 2])
            for p in partitions
            for m in range(first, last)
            for k in range(1 + (m + p) % 3)
        ]

    def expected(self, window_minutes: int, key: str, end_ms: int) -> list[tuple[str, int]]:
        start_ms = end_ms - window_minutes * MINUTE_MS
        clicks: Counter[str] = Counter()
        for (ad, minute, country), n in self.truth.items():
            if start_ms <= minute < end_ms and (key == "" or country == "US"):
                clicks[ad] += n
        ranked = sorted(clicks.items(), key=lambda item: (-item[1], item[0]))
        return ranked[: self.settings.close_top_n]


def closer_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "close_windows": WINDOWS,
            "close_filters": [{"country": ["US"]}],
            "close_revision_interval": timedelta(0),  # each run revises what changed
            # Hours of event time between the partitions are no reason to refuse a click.
            "dedup_horizon": timedelta(hours=8),
        }
    )


def close_once(settings: Settings) -> None:
    MinuteCloser(settings).run(threading.Event(), once=True)


def current_lists(settings: Settings) -> dict[tuple[int, str, int], list[tuple[str, int]]]:
    """(window, filter, end ms) -> [(ad, clicks), ...] of the newest revision of each list."""
    rows = query(
        settings,
        "SELECT l.window_minutes, l.filter_key, (extract(epoch FROM l.window_end) * 1000)::bigint,"
        " a.ad_id, a.clicks FROM top_ad_lists AS l"
        " LEFT JOIN top_ads AS a USING (window_minutes, filter_key, window_end, revision)"
        " WHERE l.revision = (SELECT max(n.revision) FROM top_ad_lists AS n"
        "  WHERE (n.window_minutes, n.filter_key, n.window_end)"
        "      = (l.window_minutes, l.filter_key, l.window_end))"
        " ORDER BY 1, 2, 3, a.rank",
    )
    lists: dict[tuple[int, str, int], list[tuple[str, int]]] = {}
    for minutes, key, end, ad, clicks in rows:
        ads = lists.setdefault((minutes, key, end), [])
        if ad is not None:
            ads.append((ad, clicks))
    return lists


def skipped_lists(settings: Settings) -> set[tuple[int, str, int]]:
    rows = query(
        settings,
        "SELECT window_minutes, filter_key, (extract(epoch FROM window_end) * 1000)::bigint,"
        " reason FROM skipped_top_lists",
    )
    assert {reason for *_key, reason in rows} <= {"below_ingest_floor"}
    return {(minutes, key, end) for minutes, key, end, _reason in rows}


def watermark_ms(settings: Settings) -> int:
    rows = query(
        settings,
        "SELECT (extract(epoch FROM min(watermark)) * 1000)::bigint FROM partition_watermarks",
    )
    return int(rows[0][0])


def assert_every_minute_closed(
    settings: Settings, clicks: Clicks, first_end: int, skipped: Any = frozenset()
) -> int:
    """Every list of every minute from ``first_end`` to the watermark is the truth's, or
    recorded as skipped; returns the last minute closed."""
    closable = watermark_ms(settings) // MINUTE_MS * MINUTE_MS
    lists = current_lists(settings)
    expected_keys = {
        (minutes, key, end)
        for minutes in WINDOWS
        for key in FILTERS
        for end in range(first_end, closable + 1, MINUTE_MS)
    }
    assert set(lists) | set(skipped) == expected_keys, "a minute was left without its lists"
    assert not set(lists) & set(skipped)
    wrong = [k for k, ads in lists.items() if ads != clicks.expected(*k)]
    assert not wrong, f"{len(wrong)} lists differ from the truth, first {min(wrong)}"
    return closable


def test_a_partition_hours_behind_the_others_leaves_no_minute_unclosed(settings: Settings) -> None:
    settings = closer_settings(settings)
    clicks = Clicks(settings)
    now_minute = int(time.time()) // 60
    t0 = now_minute - 5 * 60  # minutes
    clicks.send(clicks.minutes(range(4), t0, t0 + 6))
    close_once(settings)
    first_end = (t0 + 1) * MINUTE_MS
    assert_every_minute_closed(settings, clicks, first_end)

    # Partitions 0-2 run ahead to 20 minutes ago; partition 3 reaches only t0 + 60 min:
    # the watermark is 3 h 40 min behind stream time, further than the index reaches.
    clicks.send(
        clicks.minutes(range(3), t0 + 6, now_minute - 20)
        + clicks.minutes(range(3, 4), t0 + 6, t0 + 60)
    )
    close_once(settings)
    closed = assert_every_minute_closed(settings, clicks, first_end)
    assert closed >= (t0 + 58) * MINUTE_MS

    # Late clicks on the lagging partition change lists closed minutes ago: hours behind
    # stream time, but within the revision horizon of the watermark, so they are revised.
    late = [(3, "late-ad", (t0 + 50) * MINUTE_MS + 5_000 + i, "US") for i in range(40)]
    clicks.send(late)
    close_once(settings)
    assert_every_minute_closed(settings, clicks, first_end)
    assert current_lists(settings)[(1, "country=US", (t0 + 51) * MINUTE_MS)][0] == ("late-ad", 40)

    # Partition 3 catches up: every minute up to the new watermark gets its lists.
    clicks.send(clicks.minutes(range(3, 4), t0 + 60, now_minute - 20))
    close_once(settings)
    closed = assert_every_minute_closed(settings, clicks, first_end)
    assert closed >= (now_minute - 22) * MINUTE_MS
    assert skipped_lists(settings) == set()


def skipped_metric() -> float:
    return REGISTRY.get_sample_value("adclick_close_skipped_lists_total") or 0.0


def test_a_closer_down_for_hours_closes_every_minute_and_records_what_it_cannot(
    settings: Settings,
) -> None:
    settings = closer_settings(settings)
    clicks = Clicks(settings)
    now_minute = int(time.time()) // 60
    t0 = now_minute - 4 * 60
    clicks.send(clicks.minutes(range(4), t0, t0 + 6))
    close_once(settings)
    first_end = (t0 + 1) * MINUTE_MS
    next_end = assert_every_minute_closed(settings, clicks, first_end) + MINUTE_MS

    # The closer is down while four hours of clicks arrive; meanwhile maintenance tiers
    # something ending at t0 + 30 min (it raised the ingest floor there).
    clicks.send(clicks.minutes(range(4), t0 + 6, now_minute - 20))
    floor_minute = t0 + 30
    execute(settings, "UPDATE ingest_floor SET before = to_timestamp(%s)", floor_minute * 60)
    counted_before = skipped_metric()
    close_once(settings)

    # Lists whose window starts below the floor cannot be trusted to be whole: exactly
    # those of the minutes the closer had not closed yet are recorded, and counted.
    below_floor = {
        (minutes, key, end)
        for minutes in WINDOWS
        for key in FILTERS
        for end in range(next_end, (floor_minute + minutes) * MINUTE_MS, MINUTE_MS)
    }
    assert skipped_lists(settings) == below_floor
    assert skipped_metric() - counted_before == len(below_floor)
    closed = assert_every_minute_closed(settings, clicks, first_end, below_floor)
    assert closed >= (now_minute - 22) * MINUTE_MS

    # A second run records nothing twice and leaves nothing out.
    close_once(settings)
    assert skipped_lists(settings) == below_floor
    assert skipped_metric() - counted_before == len(below_floor)
