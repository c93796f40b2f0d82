"""The API as data changes under it (late events), and filters only raw clicks can answer."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from adclick.api.query_host import request_pool
from adclick.demo.talkingdata import DEFAULT_SAMPLE, read_sample, shift_to_now, to_event
from adclick.query.service import ClickQueries, RankedBy, WindowArgs
from adclick.query.window import HOUR_MS, MINUTE_MS
from adclick.settings import Settings
from tests.api_client import ApiProcess, with_tokens
from tests.helpers import ingest_until_idle, load, recent_spec, send, wait_for
from tests.integration.test_api import assert_top_equals_truth, metric_values, top_ads
from tests.truth_ranking import iso, minute_s, truth_top


@pytest.mark.parametrize("workers", [1, 2])
def test_late_events_reach_answers_already_given(
    settings: Settings, tmp_path: Path, workers: int
) -> None:
    """A late click changes a minute the window index holds; the next answer has it,
    though the API had kept the answer before (api/response_cache.py), also when its
    workers keep answers against the supervisor's indexes (api/shared_state.py)."""
    settings, tokens = with_tokens(settings, api_refresh_interval_s=1.0, api_workers=workers)
    spec = recent_spec(8_000, seed=31, ads=500, event_rate=10.0, duplicate_fraction=0.05)
    truth = load(settings, spec)
    ingest_until_idle(settings)
    api = ApiProcess(settings, tmp_path / "api.log")
    try:
        reader = api.client(tokens.reader)
        before = top_ads(reader, {"lastMinutes": 10}, 1000)
        assert_top_equals_truth(before, truth, 1000)
        # Asked again while the index stands still: kept the second time, sent the third.
        wait_for(
            lambda: (
                all(top_ads(reader, {"lastMinutes": 10}, 1000) == before for _ in range(3))
                and _reused(api) > 0
            ),
            timeout_s=10,
            what="the API to send a kept answer again",
        )
        # Late clicks for the tenth-ranked ad, two minutes into the window: enough to
        # make it the first.
        ad = before["ads"][9]["adId"]
        late_minute = minute_s(before["window"]["from"]) + 120
        extra = before["ads"][0]["clicks"] - before["ads"][9]["clicks"] + 5
        send(
            settings,
            [
                {
                    "ad_id": ad,
                    "timestamp": (late_minute + 7) * 1000,
                    "user_id": f"late-{i}",
                    "ip": "192.0.2.1",
                    "country": "US",
                    "click_id": f"late-{i}",
                }
                for i in range(extra)
            ],
        )
        ingest_until_idle(settings)  # one batch, one transaction
        truth.by_ad_minute[(ad, late_minute)] = truth.by_ad_minute.get((ad, late_minute), 0) + extra
        key = (ad, late_minute, "US")
        truth.by_ad_minute_country[key] = truth.by_ad_minute_country.get(key, 0) + extra

        def changed() -> bool:
            return top_ads(reader, {"lastMinutes": 10}, 1000)["ads"] != before["ads"]

        wait_for(changed, timeout_s=10, what="the window index to see the late clicks")
        after = top_ads(reader, {"lastMinutes": 10}, 1000)
        assert after["window"] == before["window"]
        assert after["ads"][0]["adId"] == ad
        assert_top_equals_truth(after, truth, 1000)
        assert_top_equals_truth(
            top_ads(reader, {"lastMinutes": 10}, 100, country=["US"]), truth, 100, ["US"]
        )
    finally:
        assert api.stop() == 0


def _reused(api: ApiProcess) -> float:
    return metric_values(api.url, "adclick_api_answers_kept_total").get("reused", 0.0)


def test_filters_no_rollup_covers_are_answered_from_raw_clicks(
    settings: Settings, tmp_path: Path
) -> None:
    """With no country rollup and the real TalkingData attributes, every filter is raw."""
    settings, tokens = with_tokens(
        settings, dimension_sets=[], dedup_horizon=timedelta(days=7), api_refresh_interval_s=0.2
    )
    rows = read_sample(DEFAULT_SAMPLE)
    shift = shift_to_now(rows, int(time.time() * 1000))
    events = [to_event(row, shift) for row in rows]
    send(settings, [event.to_json_dict() for event in events])
    ingest_until_idle(settings)
    api = ApiProcess(settings, tmp_path / "api.log")
    try:
        reader = api.client(tokens.reader)
        for minutes in (60, 24 * 60):
            for filter_ in ({"country": ["US"]}, {"device": ["1"], "os": ["13", "19"]}):
                answer = top_ads(reader, {"lastMinutes": minutes}, 100, **filter_)
                assert answer["source"] == "RAW"
                start_s = minute_s(answer["window"]["from"])
                end_s = minute_s(answer["window"]["to"])
                expected: Counter[str] = Counter(
                    event.ad_id
                    for event in events
                    if start_s * 1000 <= event.ts_ms < end_s * 1000
                    and all(
                        (event.country if dim == "country" else event.attributes.get(dim)) in values
                        for dim, values in filter_.items()
                    )
                )
                assert expected, "the window holds no matching clicks"
                assert answer["ads"] == truth_top(expected, 100)
        # Raw clicks are kept for the dedup horizon: an older window cannot be answered.
        old_start = minute_s(answer["window"]["to"]) - 8 * 24 * 3600
        codes = reader.error_codes(
            'query ($w: WindowInput!) { topAds(window: $w, filter: {device: ["1"]}) { source } }',
            w={"from": iso(old_start), "to": iso(old_start + 3600)},
        )
        assert codes == ["FILTER_NOT_ANSWERABLE"]
    finally:
        assert api.stop() == 0


def test_a_late_click_in_an_hour_held_in_memory_reaches_long_windows(settings: Settings) -> None:
    """A ranking of a long window is remembered for the hours it was made of; a late click
    in one of them (or a recalculation) makes the next answer SQL's until the hour index
    has the hour again, then the index's again: never the ranking from before."""
    settings = settings.model_copy(update={"api_cache_minutes": 30, "api_hour_cache_hours": 4})
    load(settings, recent_spec(6_000, seed=37, ads=300, event_rate=0.5))  # 3 h 20 min
    ingest_until_idle(settings)
    pool = request_pool(settings)
    pool.open()
    try:
        indexed = ClickQueries(settings, pool)
        by_sql = ClickQueries(settings.model_copy(update={"api_cache_minutes": 0}), pool)
        indexed.refresh()
        while indexed.refresh_hours():
            pass
        window = WindowArgs(last_minutes=180)
        before = indexed.top_ads(10, window, {})
        assert before.ranked_by is RankedBy.HOUR_INDEX
        assert indexed.top_ads(10, window, {}).ads == before.ads  # remembered
        # Late clicks for the tenth ad, two hours back: enough to make it the first.
        ad, first = before.ads[9], before.ads[0]
        late_ms = (before.window.end_ms - 2 * HOUR_MS) // MINUTE_MS * MINUTE_MS
        send(settings, [
            {"ad_id": ad.ad_id, "timestamp": late_ms + i, "user_id": f"late-{i}",
             "ip": "192.0.2.1", "country": "US"}
            for i in range(first.clicks - ad.clicks + 5)
        ])  # fmt: skip
        ingest_until_idle(settings)
        indexed.refresh()  # the window index moves on; the hour index has not looked yet
        expected = by_sql.top_ads(10, window, {})
        assert expected.ads[0].ad_id == ad.ad_id
        after = indexed.top_ads(10, window, {})
        assert (after.ads, after.window) == (expected.ads, expected.window)
        while indexed.refresh_hours():
            pass
        again = indexed.top_ads(10, window, {})
        assert again.ranked_by is RankedBy.HOUR_INDEX
        assert (again.ads, again.window) == (expected.ads, expected.window)
    finally:
        pool.close()
