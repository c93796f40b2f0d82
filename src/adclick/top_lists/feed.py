"""The API's feed of published lists: it follows the top-ads topic and hands each list
to the subscriptions that want it (topAdsLive).

What a subscription holds is bounded: it is given only the lists of its own series
(window and filter), at most ``api_subscription_backlog_lists`` of them not yet sent; a
client further behind has its subscription ended with SUBSCRIPTION_TOO_SLOW once it has
been sent what it was given (it resubscribes and reads the gap with topAdsHistory). The
subscriptions of one connection and of the process are capped, beyond which a new one
is refused with TOO_MANY_SUBSCRIPTIONS (docs/api.md, Request budget).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections import Counter as Tally
from collections.abc import AsyncIterator
from enum import StrEnum

from confluent_kafka import KafkaException
from prometheus_client import Counter

from adclick.errors import AdclickError
from adclick.kafka import make_consumer, the_only_partition
from adclick.query.filters import Filter
from adclick.settings import Settings
from adclick.top_lists.wire import BadList, ListFormatError, TopList, decode_list

log = logging.getLogger(__name__)

# The feed polls every 0.2 s: this long without a poll means its thread is stuck.
FEED_STALL_S = 30.0
UNEXPECTED = "unexpected"
BAD_MESSAGES = Counter(
    "adclick_api_feed_bad_messages_total",
    "Messages of the top-ads topic the API's feed skipped, by reason "
    "(adclick.top_lists.wire.BadList, or unexpected).",
    ["reason"],
)
for _reason in [*(r.value for r in BadList), UNEXPECTED]:
    BAD_MESSAGES.labels(_reason)  # every reason present from the start, at 0


class SubscriptionErrorCode(StrEnum):
    """Why the feed refused or ended a subscription (GraphQL ``extensions.code``)."""

    TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
    SUBSCRIPTION_TOO_SLOW = "SUBSCRIPTION_TOO_SLOW"


SUBSCRIPTION_REFUSALS = Counter(
    "adclick_api_subscription_refusals_total",
    "Subscriptions refused (TOO_MANY_SUBSCRIPTIONS) or ended because their client read "
    "too slowly (SUBSCRIPTION_TOO_SLOW).",
    ["code"],
)
for _code in SubscriptionErrorCode:
    SUBSCRIPTION_REFUSALS.labels(_code.value)


class SubscriptionError(AdclickError):
    """A subscription the feed refused or ended; the message says what to do."""

    def __init__(self, code: SubscriptionErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        # Counted where it is made: each is raised once, and none escapes the count.
        SUBSCRIPTION_REFUSALS.labels(code.value).inc()


SeriesKey = tuple[int, Filter]  # (window minutes, filter): the lists one subscription wants


class Subscription:
    """The lists of one series handed to one subscriber and not yet taken: at most
    ``backlog``. A list that finds them full is dropped and the subscription marked
    behind: the subscriber takes what it holds, then ``next`` raises."""

    def __init__(self, loop: asyncio.AbstractEventLoop, backlog: int) -> None:
        self.loop = loop
        self._lists: asyncio.Queue[TopList] = asyncio.Queue(maxsize=backlog)
        self._behind = False

    def offer(self, top: TopList) -> None:
        """Take ``top`` if there is room (called on the subscriber's loop)."""
        if self._behind:
            return
        try:
            self._lists.put_nowait(top)
        except asyncio.QueueFull:
            self._behind = True

    async def next(self) -> TopList:
        """The next list; SubscriptionError once the lists given are taken and the
        subscriber fell behind (a list was dropped after them)."""
        if self._lists.empty() and self._behind:
            raise SubscriptionError(
                SubscriptionErrorCode.SUBSCRIPTION_TOO_SLOW,
                f"the client fell more than {self._lists.maxsize} lists behind this "
                "subscription (ADCLICK_API_SUBSCRIPTION_BACKLOG_LISTS) and later ones were "
                "dropped; subscribe again, and read what was missed with topAdsHistory",
            )
        return await self._lists.get()


class TopListFeed:
    """Follows the top-ads topic and hands each list to the subscribers that want it.

    One consumer per API process, from the topic's end (subscribers get what is published
    from now on; history is a query). It commits nothing: each process reads everything.
    A message that is not a list the closer could have published (adclick.top_lists.wire.
    decode_list) is skipped, counted by reason and logged once per reason: no input ends a
    subscription or the feed. ``problem`` says why the feed is not following the topic
    (for /readyz).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._subscribers: dict[SeriesKey, set[Subscription]] = {}
        self._per_connection: Tally[int] = Tally()  # by id() of the connection's context
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="top-list-feed", daemon=True)
        # Set once the consumer knows its position: lists published after that reach
        # subscribers (readiness waits for it, so none published after "ready" is missed).
        self.positioned = threading.Event()
        self._last_poll = time.monotonic()
        self._failure = ""
        self._waiting = ""
        self._logged: set[str] = set()

    def start(self) -> None:
        self._last_poll = time.monotonic()
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    def problem(self) -> str | None:
        """Why the feed is not following the topic now, or None when it is."""
        if self._failure:
            return f"the feed stopped: {self._failure}"
        if self._thread.ident is not None and not self._thread.is_alive():
            return "the feed stopped"
        if not self.positioned.is_set():
            return f"not yet following the top-ads topic{self._waiting}"
        silent_s = time.monotonic() - self._last_poll
        if silent_s > FEED_STALL_S:
            return f"the feed has not polled the top-ads topic for {silent_s:.0f} s"
        return None

    @contextlib.asynccontextmanager
    async def subscribe(self, series: SeriesKey, connection: object) -> AsyncIterator[Subscription]:
        """A subscription to the lists of ``series`` while the block runs; refused with
        TOO_MANY_SUBSCRIPTIONS beyond the caps, ``connection`` (any object that lives as
        long as the client's connection) counting towards the per-connection one."""
        backlog = self.settings.api_subscription_backlog_lists
        subscription = Subscription(asyncio.get_running_loop(), backlog)
        with self._lock:
            self._check_room(id(connection))
            self._subscribers.setdefault(series, set()).add(subscription)
            self._per_connection[id(connection)] += 1
        try:
            yield subscription
        finally:
            with self._lock:
                self._subscribers[series].discard(subscription)
                if not self._subscribers[series]:
                    del self._subscribers[series]
                self._per_connection[id(connection)] -= 1
                if not self._per_connection[id(connection)]:
                    del self._per_connection[id(connection)]

    def _check_room(self, connection: int) -> None:
        """Refuse a subscription beyond the caps (the caller holds the lock)."""
        settings = self.settings
        if self._per_connection[connection] >= settings.api_max_subscriptions_per_connection:
            raise SubscriptionError(
                SubscriptionErrorCode.TOO_MANY_SUBSCRIPTIONS,
                f"a connection may hold {settings.api_max_subscriptions_per_connection} "
                "subscriptions (ADCLICK_API_MAX_SUBSCRIPTIONS_PER_CONNECTION); end one first",
            )
        if sum(self._per_connection.values()) >= settings.api_max_subscriptions:
            raise SubscriptionError(
                SubscriptionErrorCode.TOO_MANY_SUBSCRIPTIONS,
                f"the API process holds its most subscriptions ({settings.api_max_subscriptions},"
                " ADCLICK_API_MAX_SUBSCRIPTIONS); retry later",
            )

    def _run(self) -> None:
        try:
            self._follow()
        except Exception as exc:  # the consumer itself failed: /readyz says so
            self._failure = f"{type(exc).__name__}: {exc}"[:500]
            log.exception("the top-list feed stopped")

    def _follow(self) -> None:
        consumer = make_consumer(
            self.settings,
            **{
                "group.id": f"adclick-api-feed-{uuid.uuid4().hex[:12]}",
                "auto.offset.reset": "latest",
            },
        )
        try:
            # Start at an explicit offset, the end as of now: OFFSET_END would be resolved
            # lazily at the first fetch, and a list published before that would be missed.
            while True:  # the broker may come up after the API: wait for it
                try:
                    partition = the_only_partition(consumer, self.settings.top_ads_topic)
                    _low, end = consumer.get_watermark_offsets(partition, timeout=10)
                    break
                except KafkaException as exc:
                    self._waiting = f": {exc}"[:300]
                    if self._stop.wait(1.0):
                        return
            partition.offset = end
            consumer.assign([partition])
            self.positioned.set()
            while not self._stop.is_set():
                self._last_poll = time.monotonic()
                message = consumer.poll(0.2)
                if message is None or message.error():
                    continue
                self._handle(message.value())
        finally:
            consumer.close()

    def _handle(self, value: bytes | None) -> None:
        try:
            top = decode_list(value, self.settings)
        except ListFormatError as exc:
            self._skip(exc.reason.value, exc.detail)
            return
        except Exception as exc:  # a case the decoder did not foresee: still only skip it
            self._skip(UNEXPECTED, f"{type(exc).__name__}: {exc}"[:300])
            return
        with self._lock:  # only the subscribers of its series are given it
            subscribers = list(self._subscribers.get((top.window_minutes, top.query_filter), ()))
        for subscription in subscribers:
            # A subscriber whose loop has closed is leaving: it is dropped when it does.
            with contextlib.suppress(RuntimeError):
                subscription.loop.call_soon_threadsafe(subscription.offer, top)

    def _skip(self, reason: str, detail: str) -> None:
        BAD_MESSAGES.labels(reason).inc()
        if reason not in self._logged:  # once per reason: a flood must not flood the log
            self._logged.add(reason)
            log.warning(
                "skipping a message of %s that is not a top list (%s: %s); further ones "
                "of this kind are only counted (adclick_api_feed_bad_messages_total)",
                self.settings.top_ads_topic,
                reason,
                detail,
            )
