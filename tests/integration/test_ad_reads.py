"""adClicks and adsClicks: the window index's answers and SQL's equal the truth of the
real TalkingData clicks, for every window, filter and granularity a dashboard asks; and
an API worker asking its supervisor gets the answers the supervisor gives itself."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing import AuthenticationError
from typing import Any

import numpy as np
import pytest

from adclick.api.index_server import Address, RemoteQueries, serving
from adclick.api.query_host import QueryHost, request_pool
from adclick.demo.talkingdata import DEFAULT_SAMPLE, read_sample, shift_to_now, to_event
from adclick.events.parse import ClickEvent
from adclick.query.budget import RequestBudget
from adclick.query.errors import ErrorCode, QueryError
from adclick.query.service import ClickQueries, Granularity, QueryService, WindowArgs
from adclick.query.window import HOUR_MS, MINUTE_MS, from_ms
from adclick.settings import Settings
from tests.conftest import fresh_settings
from tests.helpers import create_filtered_rollups, ingest_until_idle, send, wait_for

# A country rollup and one of two attributes: a filter on device (its first dimension)
# is found in the index by binary search; one on os alone is left to SQL.
DIMENSION_SETS = [["country"], ["device", "os"]]
HOURS_KEPT_MS = 32 * HOUR_MS
FILTERS: list[dict[str, list[str]]] = [
    {},
    {"country": ["US", "IN"]},
    {"device": ["1"]},
    {"device": ["1", "2", "no-such-device"], "os": ["13", "19"]},
    {"os": ["19"]},
]


@dataclass
class Data:
    settings: Settings
    events: list[ClickEvent]
    indexed: ClickQueries
    unindexed: ClickQueries

    def truth(
        self, ad_ids: list[str], start_ms: int, end_ms: int, filter_: dict[str, list[str]],
        bucket_ms: int,
    ) -> list[list[int]]:  # fmt: skip
        counts: Counter[tuple[str, int]] = Counter(
            (e.ad_id, e.ts_ms - e.ts_ms % bucket_ms)
            for e in self.events
            if start_ms <= e.ts_ms < end_ms
            and all(_attribute(e, dim) in values for dim, values in filter_.items())
        )
        buckets = range(start_ms - start_ms % bucket_ms, end_ms, bucket_ms)
        return [[counts[(ad, b)] for b in buckets] for ad in ad_ids]


def _attribute(event: ClickEvent, dim: str) -> str | None:
    return event.country if dim == "country" else event.attributes.get(dim)


@pytest.fixture(scope="module")
def data(stack_settings: Settings) -> Iterator[Data]:
    """The TalkingData sample ending now, ingested; queries with and without the index."""
    with fresh_settings(stack_settings) as fresh:
        settings = fresh.model_copy(
            update={"dimension_sets": DIMENSION_SETS, "dedup_horizon": timedelta(days=7)}
        )
        create_filtered_rollups(settings)
        rows = read_sample(DEFAULT_SAMPLE)
        now_ms = int(time.time() * 1000)
        shift = shift_to_now(rows, now_ms)
        # The last 32 hours of the sample (about 40% of it): every window asked below.
        events = [
            e for e in (to_event(row, shift) for row in rows) if e.ts_ms > now_ms - HOURS_KEPT_MS
        ]
        send(settings, [event.to_json_dict() for event in events])
        ingest_until_idle(settings)
        pools = [request_pool(settings), request_pool(settings)]
        for pool in pools:
            pool.open()
        try:
            indexed = ClickQueries(settings, pools[0])
            indexed.refresh()
            unindexed = ClickQueries(settings.model_copy(update={"api_cache_minutes": 0}), pools[1])
            yield Data(settings, events, indexed, unindexed)
        finally:
            for pool in pools:
                pool.close()


def _ads(data: Data) -> list[str]:
    """The most clicked ads, a rare one, one never clicked, and a repeat."""
    ranked = [ad for ad, _ in Counter(e.ad_id for e in data.events).most_common()]
    return [*ranked[:30], ranked[-1], "ad-never-clicked", ranked[0]]


@pytest.mark.parametrize("filter_", FILTERS, ids=lambda f: ",".join(f) or "unfiltered")
@pytest.mark.parametrize("minutes", [1, 7, 60, 180])
def test_recent_windows_are_read_from_the_index_and_equal_the_truth(
    data: Data, filter_: dict[str, list[str]], minutes: int
) -> None:
    ads = _ads(data)
    for granularity, bucket_ms in ((Granularity.MINUTE, MINUTE_MS), (Granularity.HOUR, HOUR_MS)):
        window = WindowArgs(last_minutes=minutes)
        answers = [
            queries.ads_clicks(ads, window, dict(filter_), granularity)
            for queries in (data.indexed, data.unindexed)
        ]
        from_index, from_sql = answers
        # Only a filter that leaves the rollup's first dimension free needs SQL.
        assert from_index.from_index is (list(filter_) != ["os"])
        assert not from_sql.from_index
        for answer in answers:
            start, end = answer.window.start_ms, answer.window.end_ms
            expected = data.truth(ads, start, end, filter_, bucket_ms)
            if minutes == 180 and not filter_:
                assert sum(map(sum, expected)) > 0, "no clicks: the comparison proves nothing"
            assert answer.series.tolist() == expected
            assert answer.clicks.tolist() == [sum(row) for row in expected]
            assert answer.bucket_starts == list(range(start - start % bucket_ms, end, bucket_ms))


@pytest.mark.parametrize("filter_", FILTERS[:3], ids=lambda f: ",".join(f) or "unfiltered")
@pytest.mark.parametrize(
    ("start_offset_min", "end_offset_min"), [(30 * 60 + 17, 2 * 60 + 43), (26 * 60, 60), (200, 0)]
)
def test_older_windows_are_read_by_sql_and_equal_the_truth(
    data: Data, filter_: dict[str, list[str]], start_offset_min: int, end_offset_min: int
) -> None:
    """Windows reaching before the index: by hour, whole hours come from clicks_1h."""
    ads = _ads(data)
    snapshot = data.indexed.index.snapshot if data.indexed.index else None
    assert snapshot is not None
    now_ms = snapshot.end_ms
    window = WindowArgs(
        start=from_ms(now_ms - start_offset_min * MINUTE_MS),
        end=from_ms(now_ms - end_offset_min * MINUTE_MS),
    )
    for granularity, bucket_ms in ((Granularity.MINUTE, MINUTE_MS), (Granularity.HOUR, HOUR_MS)):
        answer = data.indexed.ads_clicks(ads, window, dict(filter_), granularity)
        assert not answer.from_index
        start, end = answer.window.start_ms, answer.window.end_ms
        expected = data.truth(ads, start, end, filter_, bucket_ms)
        assert sum(map(sum, expected)) > 0, "no clicks: the comparison proves nothing"
        assert answer.series.tolist() == expected


def test_one_ad_reads_like_a_batch_of_one(data: Data) -> None:
    ad = _ads(data)[0]
    single = data.indexed.ad_clicks(ad, WindowArgs(last_minutes=60), {"country": ["US"]})
    batch = data.indexed.ads_clicks([ad], WindowArgs(last_minutes=60), {"country": ["US"]})
    assert single.from_index and batch.from_index
    assert [c for _, c in single.series] == batch.series[0].tolist()
    assert single.clicks == int(batch.clicks[0])


@pytest.mark.parametrize(
    ("filter_", "window"),
    [
        ({}, WindowArgs(last_minutes=60)),
        ({"country": ["US"]}, WindowArgs(last_minutes=7)),
        ({"os": ["13"]}, WindowArgs(last_minutes=7)),  # the first dimension free: SQL
        ({}, WindowArgs(last_minutes=30 * 60)),  # before the index: SQL
    ],
)
def test_the_api_answers_on_its_event_loop_only_what_the_index_holds(
    data: Data, filter_: dict[str, list[str]], window: WindowArgs
) -> None:
    # The resolvers ask *_in_memory on the event loop and go to a thread only on None:
    # an answer there must be the index's own, and a None must have charged nothing.
    ads = _ads(data)
    budgets = [RequestBudget.of(data.settings) for _ in range(3)]
    full = data.indexed.ads_clicks(ads, window, dict(filter_), budget=budgets[0])
    batch = data.indexed.ads_clicks_in_memory(ads, window, dict(filter_), budget=budgets[1])
    single = data.indexed.ad_clicks_in_memory(ads[0], window, dict(filter_), budget=budgets[2])
    if full.from_index:
        assert batch is not None and batch.series.tolist() == full.series.tolist()
        assert (budgets[1].cost, budgets[1].filter_values) == (
            budgets[0].cost,
            budgets[0].filter_values,
        )
        assert single is not None and single.clicks == int(full.clicks[0])
    else:
        assert batch is None and single is None
        assert (budgets[1].cost, budgets[1].filter_values) == (0, 0)
        assert (budgets[2].cost, budgets[2].filter_values) == (0, 0)


@pytest.mark.parametrize(
    ("ad_ids", "code"),
    [
        ([], ErrorCode.BAD_AD_ID),
        (["ch1"] * 1001, ErrorCode.TOO_MANY_ADS),
        (["ch1", "ch\x00"], ErrorCode.BAD_AD_ID),
        (["ch1", "x" * 10_000], ErrorCode.ARGUMENT_TOO_LONG),
    ],
)
def test_bad_batches_are_refused_with_their_code(
    data: Data, ad_ids: list[str], code: ErrorCode
) -> None:
    with pytest.raises(QueryError) as refused:
        data.indexed.ads_clicks(ad_ids, WindowArgs(last_minutes=5), {})
    assert refused.value.code is code


def test_pooled_connections_come_back_as_they_were_lent(data: Data) -> None:
    """The index's snapshot transactions leave no isolation level behind: the pool lends
    the same connection to every later user."""
    pool = request_pool(data.settings)
    pool.open()
    try:
        queries = ClickQueries(data.settings.model_copy(update={"api_hour_cache_hours": 3}), pool)
        queries.refresh()
        queries.refresh_hours()
        ads = _ads(data)
        queries.top_ads(10, WindowArgs(last_minutes=240), {})  # the hour index's long window
        queries.ads_clicks(ads, WindowArgs(last_minutes=60), {})
        for _ in range(pool.get_stats().get("pool_size", 1)):
            with pool.connection() as conn:
                assert conn.isolation_level is None
    finally:
        pool.close()


@pytest.fixture(scope="module")
def served(data: Data) -> Iterator[tuple[QueryHost, RemoteQueries]]:
    """A query host served as `adclick api --workers N` serves it, and a worker's link."""
    host = QueryHost(data.settings)
    host.start()
    try:
        wait_for(lambda: host.index_problem() is None, timeout_s=60, what="the window index")
        with serving(host, metrics_shared=False) as address:
            yield host, RemoteQueries(data.settings, address)
    finally:
        host.stop(timeout_s=5)


@pytest.mark.parametrize("filter_", FILTERS, ids=lambda f: ",".join(f) or "unfiltered")
def test_a_worker_gets_the_answers_the_host_gives(
    data: Data, served: tuple[QueryHost, RemoteQueries], filter_: dict[str, list[str]]
) -> None:
    host, remote = served
    ads = _ads(data)
    asks: list[Callable[[QueryService], Any]] = [
        lambda q: q.ads_clicks(ads, WindowArgs(last_minutes=60), dict(filter_)),
        lambda q: q.ads_clicks(
            ads[:3], WindowArgs(last_minutes=600), dict(filter_), Granularity.HOUR
        ),
        lambda q: q.ad_clicks(ads[0], WindowArgs(last_minutes=15), dict(filter_)),
        lambda q: q.top_ads(20, WindowArgs(last_minutes=5), dict(filter_)),
        lambda q: q.top_ads(20, WindowArgs(last_minutes=300), dict(filter_)),
    ]
    for ask in asks:
        for _ in range(3):  # again if a minute closed between the two
            own, worker = ask(host.queries), ask(remote)
            if own.window == worker.window:
                break
        assert _comparable(worker) == _comparable(own)


def _comparable(answer: Any) -> Any:
    """The answer's fields but its clock's wall time (each index refresh reads it anew)."""
    fields = dataclasses.asdict(answer)
    fields["clock"].pop("wall_ms")
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in fields.items()}


def test_a_worker_charges_the_request_budget_as_the_host_does(
    data: Data, served: tuple[QueryHost, RemoteQueries]
) -> None:
    host, remote = served
    ads = _ads(data)[:2]
    own, worker = (RequestBudget(max_cost=150, raw_filter_cost=10, max_filter_values=5)
                   for _ in range(2))  # fmt: skip
    for queries, budget in ((host.queries, own), (remote, worker)):
        queries.ads_clicks(ads, WindowArgs(last_minutes=60), {"country": ["US", "IN"]},
                           budget=budget)  # fmt: skip
        assert (budget.cost, budget.filter_values) == (120, 2)  # 2 ads x 60 minutes
        with pytest.raises(QueryError) as refused:  # 60 minutes more: over 150
            queries.top_ads(10, WindowArgs(last_minutes=60), {}, budget=budget)
        assert refused.value.code is ErrorCode.QUERY_TOO_EXPENSIVE
        queries.top_ads(10, WindowArgs(last_minutes=30), {}, budget=budget)
    assert worker.cost == own.cost == 150


def test_a_worker_gets_refusals_with_their_codes_and_the_hosts_metrics(
    served: tuple[QueryHost, RemoteQueries],
) -> None:
    _, remote = served
    with pytest.raises(QueryError) as refused:
        remote.ads_clicks([], WindowArgs(last_minutes=5), {})
    assert refused.value.code is ErrorCode.BAD_AD_ID
    assert remote.index_problem() is None
    wait_for(
        lambda: b'adclick_api_hour_index_hours{state="held"}' in remote.index_metrics(),
        timeout_s=60,
        what="the hour index's gauge in the worker's view of the host's metrics",
    )


def test_only_holders_of_the_key_are_answered(
    data: Data, served: tuple[QueryHost, RemoteQueries]
) -> None:
    _, remote = served
    stranger = RemoteQueries(
        data.settings, Address(remote.address.socket, b"\x00" * 32, remote.address.state)
    )
    with pytest.raises(AuthenticationError):
        stranger.top_ads(10, WindowArgs(last_minutes=5), {})
