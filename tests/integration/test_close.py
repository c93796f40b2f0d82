"""The minute closer: stored and published lists equal the truth, revisions included,
through late bursts, kill -9, two closers, and a subscriber that sees every list."""

from __future__ import annotations

import contextlib
import random
import signal
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql.transport.exceptions import TransportError

from adclick.close.closer import MinuteCloser
from adclick.loadgen.generator import LoadSpec
from adclick.loadgen.truth import Truth
from adclick.settings import Settings
from tests.api_client import ApiProcess, with_tokens
from tests.helpers import (
    adclick_process,
    execute,
    ingest_until_idle,
    load,
    query,
    read_topic,
    recent_spec,
    restart_database,
    send,
    wait_for,
)
from tests.truth_ranking import minute_s, truth_clicks

pytestmark = pytest.mark.slow(seconds=130)  # started first (tests/conftest.py)


US = {"country": ["US"]}
WINDOWS = [1, 5, 15, 60]


def closer_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "close_filters": [US],
            "close_interval_s": 0.2,
            "close_revision_interval": timedelta(0),  # each run revises what changed
        }
    )


def traffic_spec(seed: int, events: int = 12_000, **options: Any) -> LoadSpec:
    """About 25 minutes of clicks over 400 ads, with duplicates and late events."""
    return recent_spec(
        events,
        seed=seed,
        ads=400,
        event_rate=8.0,
        duplicate_fraction=0.05,
        late_fraction=0.05,
        max_lateness_s=240,
        **options,
    )


def traffic(settings: Settings, seed: int, events: int = 12_000) -> Truth:
    """``traffic_spec``'s clicks, sent and ingested."""
    truth = load(settings, traffic_spec(seed, events))
    ingest_until_idle(settings)
    return truth


def close_once(settings: Settings) -> None:
    MinuteCloser(settings).run(threading.Event(), once=True)


def current_lists(
    settings: Settings,
) -> dict[tuple[int, str, int], tuple[int, list[tuple[Any, ...]]]]:
    """(window, filter, end s) -> (revision, [(ad, clicks), ...]) of every current list."""
    heads = query(
        settings,
        "SELECT DISTINCT ON (window_minutes, filter_key, window_end) window_minutes, filter_key,"
        " extract(epoch FROM window_end)::bigint, revision FROM top_ad_lists"
        " ORDER BY window_minutes, filter_key, window_end, revision DESC",
    )
    ads = query(
        settings,
        "SELECT window_minutes, filter_key, extract(epoch FROM window_end)::bigint, revision,"
        " ad_id, clicks FROM top_ads"
        " ORDER BY window_minutes, filter_key, window_end, revision, rank",
    )
    by_list: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for minutes, key, end, revision, ad, clicks in ads:
        by_list.setdefault((minutes, key, end, revision), []).append((ad, clicks))
    return {
        (minutes, key, end): (revision, by_list.get((minutes, key, end, revision), []))
        for minutes, key, end, revision in heads
    }


def expected_list(truth: Truth, minutes: int, key: str, end_s: int) -> list[tuple[str, int]]:
    countries = ["US"] if key == "country=US" else None
    clicks = truth_clicks(truth, end_s - minutes * 60, end_s, countries)
    return sorted(clicks.items(), key=lambda item: (-item[1], item[0]))[:100]


def assert_lists_equal_truth(settings: Settings, truth: Truth) -> dict[tuple[int, str, int], Any]:
    lists = current_lists(settings)
    ends = sorted({end for _m, _k, end in lists})
    assert len(ends) >= 15, "too few closed minutes to prove anything"
    # No gap: every closed minute has every window and filter.
    assert ends == list(range(ends[0], ends[-1] + 60, 60))
    assert set(lists) == {(m, k, e) for m in WINDOWS for k in ("", "country=US") for e in ends}
    for (minutes, key, end), (_revision, ads) in lists.items():
        assert ads == expected_list(truth, minutes, key, end), (minutes, key, end)
    return lists


def published(settings: Settings, expected: int) -> list[tuple[bytes, dict[str, Any]]]:
    return read_topic(settings, settings.top_ads_topic, expected=expected, keyed=True)


def assert_published_once_each(settings: Settings) -> None:
    """Every stored list was published exactly once, and the topic agrees with the table."""
    stored = query(settings, "SELECT count(*), count(published_offset) FROM top_ad_lists")[0]
    assert stored[0] == stored[1], "a stored list was never confirmed by the broker"
    messages = published(settings, stored[0])
    seen = Counter((key, message["revision"]) for key, message in messages)
    assert len(messages) == stored[0] and max(seen.values()) == 1, "a list was published twice"
    lists = current_lists(settings)
    newest: dict[bytes, dict[str, Any]] = {}
    for key, message in messages:
        if key not in newest or message["revision"] > newest[key]["revision"]:
            newest[key] = message
    assert len(newest) == len(lists)
    for message in newest.values():
        end_s = minute_s(message["window_end"])
        filter_key = "country=US" if message["filter"] else ""
        revision, ads = lists[(message["window_minutes"], filter_key, end_s)]
        assert message["revision"] == revision
        assert [(a["ad_id"], a["clicks"]) for a in message["ads"]] == ads


def late_burst(settings: Settings, truth: Truth, ends: list[int], tag: str) -> None:
    """30 late clicks each for 20 ads in the minutes before ``ends``, added to the truth."""
    ads = [f"late-ad-{n:02d}" for n in range(20)]
    burst = [
        {"ad_id": ad, "timestamp": (end - 60) * 1000 + 500 + i, "user_id": f"u{i}",
         "ip": "198.51.100.7", "country": "US" if i % 2 else "FR",
         "click_id": f"late-{tag}-{ad}-{end}-{i}"}
        for ad in ads for end in ends for i in range(30)
    ]  # fmt: skip
    send(settings, burst)
    ingest_until_idle(settings)  # one batch, one transaction
    for click in burst:
        minute = click["timestamp"] // 60_000 * 60
        key = (click["ad_id"], minute)
        truth.by_ad_minute[key] = truth.by_ad_minute.get(key, 0) + 1
        by_country = (click["ad_id"], minute, click["country"])
        truth.by_ad_minute_country[by_country] = truth.by_ad_minute_country.get(by_country, 0) + 1


def test_closed_lists_equal_the_truth_and_late_bursts_revise_them(settings: Settings) -> None:
    settings = closer_settings(settings)
    truth = traffic(settings, seed=41)
    close_once(settings)
    before = assert_lists_equal_truth(settings, truth)
    assert {revision for revision, _ads in before.values()} == {1}
    assert_published_once_each(settings)

    # A late burst: 30 clicks each for 20 ads in 10 closed minutes, all in one batch.
    ends = sorted({end for _m, _k, end in before})
    late_burst(settings, truth, ends[-12:-2], "a")
    close_once(settings)
    after = assert_lists_equal_truth(settings, truth)
    revised = {key for key, (revision, _ads) in after.items() if revision > 1}
    assert revised, "the burst changed lists, so there must be revisions"
    # One re-ranking per changed list, however many late clicks changed it.
    assert {after[key][0] for key in revised} == {2}
    # Unchanged lists (their windows miss the late minutes) keep revision 1.
    untouched = {(m, k, e) for (m, k, e) in after if e - m * 60 >= ends[-3]}
    assert untouched and all(after[key][0] == 1 for key in untouched)
    assert_published_once_each(settings)


def test_a_list_is_revised_at_most_once_per_revision_interval(settings: Settings) -> None:
    """A steady trickle of late events must not publish a revision every pass."""
    settings = closer_settings(settings).model_copy(
        update={"close_revision_interval": timedelta(hours=1)}
    )
    truth = traffic(settings, seed=61)
    first = MinuteCloser(settings)
    first.run(threading.Event(), once=True)
    ends = sorted({end for _m, _k, end in current_lists(settings)})[-6:-2]
    late_burst(settings, truth, ends, "first")
    first.run(threading.Event(), once=True)  # the lists were ranked just now: they wait
    assert first.totals.revisions == 0
    second = MinuteCloser(settings)  # a restart: nothing ranked recently
    second.run(threading.Event(), once=True)
    assert_lists_equal_truth(settings, truth)
    assert second.totals.revisions > 0
    late_burst(settings, truth, ends, "second")
    second.run(threading.Event(), once=True)  # within the interval again: no revision
    lists = current_lists(settings)
    assert {revision for revision, _ads in lists.values()} == {1, 2}
    # The next interval (here: a third closer) catches up exactly.
    close_once(settings)
    final = assert_lists_equal_truth(settings, truth)
    assert max(revision for revision, _ads in final.values()) == 3
    assert_published_once_each(settings)


def stored_lists(settings: Settings) -> int:
    return int(query(settings, "SELECT count(*) FROM top_ad_lists")[0][0])


def test_killing_the_closer_loses_no_list_and_publishes_none_twice(settings: Settings) -> None:
    settings = closer_settings(settings)
    truth = traffic(settings, seed=43, events=24_000)
    rng = random.Random(1043)
    kills = 0
    while kills < 5:
        closer = adclick_process(settings, "close")
        target = stored_lists(settings) + rng.randint(1, 60)
        wait_for(
            lambda: stored_lists(settings) >= target or closer.poll() is not None,  # noqa: B023
            timeout_s=60,
            what="the closer to store lists",
        )
        time.sleep(rng.uniform(0, 0.03))  # sometimes mid-publish, sometimes between minutes
        closer.send_signal(signal.SIGKILL)
        closer.wait()
        kills += 1
    close_once(settings)  # a last closer finishes the job
    assert_lists_equal_truth(settings, truth)
    assert_published_once_each(settings)


def test_the_closer_rides_out_a_database_restart(settings: Settings) -> None:
    """PostgreSQL crashes and comes back while the closer runs: the same process connects
    again, catches up, and no list is lost or published twice (issue 14)."""
    settings = closer_settings(settings)
    truth = traffic(settings, seed=47, events=24_000)
    closer = adclick_process(settings, "close")
    try:
        wait_for(lambda: stored_lists(settings) > 0, timeout_s=60, what="the closer to start")
        restart_database(settings, down_s=3.0)
        # Quiet for longer than the closer's backoff after a few seconds' outage (4 s).
        wait_for(
            lambda: closer.poll() is not None or lists_settled(settings, 8.0),
            timeout_s=120,
            what="the closer to catch up after the restart",
        )
        assert closer.poll() is None, "the closer exited when the database went away"
    finally:
        closer.send_signal(signal.SIGTERM)
        _out, err = closer.communicate(timeout=30)
    assert closer.returncode == 0, err.decode()[-2000:]
    assert "connecting again" in err.decode()
    catch_up = MinuteCloser(settings)
    catch_up.run(threading.Event(), once=True)
    assert catch_up.totals.closed_minutes == 0, "the closer had not caught up by itself"
    assert_lists_equal_truth(settings, truth)
    assert_published_once_each(settings)


def lists_settled(settings: Settings, for_s: float) -> bool:
    """Whether no list was stored for ``for_s`` seconds (the closer idles at the watermark)."""
    before = stored_lists(settings)
    time.sleep(for_s)
    return stored_lists(settings) == before


def test_two_closers_make_one_list_per_minute(settings: Settings) -> None:
    settings = closer_settings(settings)
    truth = traffic(settings, seed=47)
    closers = [adclick_process(settings, "close", "--once") for _ in range(2)]
    assert [closer.wait(timeout=120) for closer in closers] == [0, 0]
    lists = assert_lists_equal_truth(settings, truth)
    assert {revision for revision, _ads in lists.values()} == {1}
    assert_published_once_each(settings)


def test_a_closer_whose_session_ended_leaves_its_lists_to_the_one_with_the_lock(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closer A stored lists and was about to publish them when its database session
    ended, and its lock with it; closer B took the lock and published them from
    recovery. A held the lock on a second connection it never used again: it published
    them again and went on beside B, which then failed on a list A stored first, restart
    after restart. A now finds its session gone before publishing and stands by."""
    settings = closer_settings(settings)
    truth = traffic(settings, seed=53)
    first, second = MinuteCloser(settings), MinuteCloser(settings)
    stored, resume = threading.Event(), threading.Event()
    publish = first._publish

    def publish_later(lists: list[Any]) -> None:
        if not stored.is_set():  # its first lists: stored, not yet published
            stored.set()
            resume.wait(60)
        publish(lists)

    monkeypatch.setattr(first, "_publish", publish_later)
    stop, failures = threading.Event(), []

    def run(closer: MinuteCloser) -> None:
        try:
            closer.run(stop)
        except BaseException as exc:  # a closer must ride this out, not fail
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(closer,)) for closer in (first, second)]
    threads[0].start()
    assert stored.wait(60)
    execute(settings, "SELECT pg_terminate_backend(%s)", first._require_conn().info.backend_pid)
    threads[1].start()
    wait_for(lambda: second.totals.lists > 0, timeout_s=60, what="the second closer to publish")
    resume.set()
    wait_for(lambda: lists_settled(settings, 3.0), timeout_s=120, what="the lists to settle")
    stop.set()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert_lists_equal_truth(settings, truth)
    assert_published_once_each(settings)


# The frontend's own subscription (graphql/operations/).
SUBSCRIBE = (
    Path(__file__).resolve().parents[2] / "graphql/operations/TopAdsLive.graphql"
).read_text()


def test_a_subscriber_receives_every_list_in_order(settings: Settings, tmp_path: Path) -> None:
    settings, tokens = with_tokens(closer_settings(settings))
    truth = traffic(settings, seed=53)
    api = ApiProcess(settings, tmp_path / "api.log")
    received: list[dict[str, Any]] = []
    try:
        client = api.client(tokens.reader, websocket=True)

        def listen() -> None:
            # Until the server goes away at the end of the test.
            with contextlib.suppress(TransportError):
                for result in client.subscribe(SUBSCRIBE, windowMinutes=5):
                    received.append(result["topAds"])

        threading.Thread(target=listen, daemon=True).start()
        wait_for(
            lambda: "adclick_api_subscriptions 1.0" in httpx.get(f"{api.url}/metrics").text,
            timeout_s=10,
            what="the subscription to open",
        )
        close_once(settings)
        expected = query(
            settings,
            "SELECT extract(epoch FROM window_end)::bigint, revision FROM top_ad_lists"
            " WHERE window_minutes = 5 AND filter_key = '' ORDER BY published_offset",
        )
        wait_for(lambda: len(received) >= len(expected), 10, "every list to arrive")
        assert [(minute_s(r["windowEnd"]), r["revision"]) for r in received] == expected
        lists = current_lists(settings)
        for message in received:
            assert message["filter"] == []
            assert minute_s(message["windowEnd"]) - minute_s(message["windowStart"]) == 300
            _revision, ads = lists[(5, "", minute_s(message["windowEnd"]))]
            assert [(a["adId"], a["clicks"]) for a in message["ads"]] == ads
        assert ads == expected_list(truth, 5, "", expected[-1][0])
    finally:
        assert api.stop() == 0


def test_sigterm_stops_the_closer_cleanly_and_the_next_one_continues(settings: Settings) -> None:
    settings = closer_settings(settings)
    truth = traffic(settings, seed=59)
    closer = adclick_process(settings, "close")
    wait_for(lambda: stored_lists(settings) > 0, timeout_s=60, what="the closer to start")
    closer.send_signal(signal.SIGTERM)
    assert closer.wait(timeout=15) == 0
    close_once(settings)
    assert_lists_equal_truth(settings, truth)
    assert_published_once_each(settings)
