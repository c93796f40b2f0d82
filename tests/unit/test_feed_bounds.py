"""What a subscription to the feed of published lists may hold (top_lists/feed.py): only
the lists of its own series, at most the backlog not yet taken, then SUBSCRIPTION_TOO_SLOW;
and how many subscriptions a connection and a process may hold. Over a real WebSocket:
tests/integration/test_top_list_feed.py."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adclick.query.filters import Filter
from adclick.query.ranking import RankedAd
from adclick.settings import Settings
from adclick.top_lists.feed import SubscriptionError, SubscriptionErrorCode, TopListFeed
from adclick.top_lists.wire import TopList

END_MS = 1_795_000_020_000
WANTED = (5, Filter())


def published(window_minutes: int, minute: int) -> bytes:
    ads = [RankedAd(1, "ad-9", 30), RankedAd(2, "ad-1", 12)]
    return TopList(window_minutes, Filter(), END_MS + minute * 60_000, 1, ads).to_message()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from([1, 5, 15, 60]), max_size=40), st.integers(1, 8))
def test_a_subscriber_is_given_its_own_series_up_to_the_backlog(
    windows: list[int], backlog: int
) -> None:
    feed = TopListFeed(Settings(api_subscription_backlog_lists=backlog))
    mine = [minute for minute, window in enumerate(windows) if window == WANTED[0]]

    async def taken() -> tuple[list[int], bool]:
        async with feed.subscribe(WANTED, connection=object()) as subscription:
            for minute, window in enumerate(windows):
                feed._handle(published(window, minute))
            await asyncio.sleep(0)  # the lists are handed over on the subscriber's loop
            lists = [await subscription.next() for _ in mine[:backlog]]
            try:
                await asyncio.wait_for(subscription.next(), 0.001)
            except SubscriptionError as exc:
                assert exc.code is SubscriptionErrorCode.SUBSCRIPTION_TOO_SLOW
                return [(t.window_end_ms - END_MS) // 60_000 for t in lists], True
            except TimeoutError:
                return [(t.window_end_ms - END_MS) // 60_000 for t in lists], False
            raise AssertionError("a list beyond those published of its series")

    minutes, ended = asyncio.run(taken())
    assert minutes == mine[:backlog]  # its own, in order, the oldest kept
    assert ended == (len(mine) > backlog)


def test_subscriptions_are_capped_per_connection_and_per_process() -> None:
    feed = TopListFeed(Settings(api_max_subscriptions_per_connection=2, api_max_subscriptions=3))
    first, second = object(), object()

    async def run() -> None:
        async with feed.subscribe(WANTED, first), feed.subscribe(WANTED, first):
            with pytest.raises(SubscriptionError) as per_connection:
                async with feed.subscribe((1, Filter()), first):
                    pass
            async with feed.subscribe(WANTED, second):
                with pytest.raises(SubscriptionError) as per_process:
                    async with feed.subscribe(WANTED, second):
                        pass
            for refused in (per_connection.value, per_process.value):
                assert refused.code is SubscriptionErrorCode.TOO_MANY_SUBSCRIPTIONS
        # All ended: the room is back, for either connection.
        async with (
            feed.subscribe(WANTED, second),
            feed.subscribe(WANTED, second),
            feed.subscribe(WANTED, first),
        ):
            pass

    asyncio.run(run())
