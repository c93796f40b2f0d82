"""The API's feed of published lists: it follows the top-ads topic and hands each list
to the subscriptions that want it (topAdsLive)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator

from confluent_kafka import KafkaException
from prometheus_client import Counter

from adclick.kafka import make_consumer, the_only_partition
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
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[TopList]]] = set()
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
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[TopList]]:
        queue: asyncio.Queue[TopList] = asyncio.Queue()
        entry = (asyncio.get_running_loop(), queue)
        with self._lock:
            self._subscribers.add(entry)
        try:
            yield queue
        finally:
            with self._lock:
                self._subscribers.discard(entry)

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
        with self._lock:
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            # A subscriber whose loop has closed is leaving: it is dropped when it does.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, top)

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
