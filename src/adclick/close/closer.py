"""The minute closer: when the global watermark passes the end of minute T, rank every
configured window and filter ending at T, store the lists and publish them; revise closed
lists that late events changed.

Exactly one current list per (window, filter, minute):

- one closer works at a time: it holds a PostgreSQL advisory lock for its whole life, on
  the connection it stores and marks lists with (a second closer stands by and takes
  over when the first one's session ends, and the first then fails before publishing);
- the lists of a minute are stored in one transaction, and published only after it
  commits; a list's ``published_offset`` records the broker's confirmation;
- after a crash, lists stored but unconfirmed are looked up in the topic (from the last
  confirmed offset on) and only the missing ones are published, so a restart neither
  loses a list nor publishes one twice;
- a list, once stored, is never changed: a late event that changes it makes revision
  r + 1, stored and published the same way. The primary key (window, filter, end,
  revision) refuses a second revision r whatever happens.

Revisions cost at most one re-ranking per changed list per ``close_revision_interval``,
however many late events arrive in between, and only lists younger than
``close_revision_horizon`` are revised.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from adclick.close import metrics
from adclick.db.connect import Connection, connect
from adclick.db.identity import check_databases
from adclick.db.rollups import filtered_rollups
from adclick.errors import ConfigurationError, DependencyUnavailableError
from adclick.kafka import make_consumer, make_producer, the_only_partition
from adclick.kafka.errors import KafkaClientError
from adclick.query.filters import Filter, Plan, Source, plan_filter
from adclick.query.ranking import RankedAd
from adclick.query.window import MINUTE_MS, Window, from_ms
from adclick.query.window_index import Snapshot, WindowIndex
from adclick.resources import load_sql
from adclick.settings import Settings
from adclick.top_lists.wire import (
    ListFormatError,
    TopList,
    decode_list,
    filter_key,
    parse_filter_key,
)

log = logging.getLogger(__name__)

# Minutes closed per cycle at most, so a closer catching up still revises and reports.
_MINUTES_PER_CYCLE = 30
# What ends a session but not the closer (see run), and the longest wait before the next.
# A list another closer stored first (it took the lock after this one's session ended)
# ends the session too: the next one waits for the lock.
_UNAVAILABLE = (
    psycopg.OperationalError,
    DependencyUnavailableError,
    psycopg.errors.UniqueViolation,
)
_RECONNECT_MAX_S = 30.0


@dataclass
class CloseTotals:
    closed_minutes: int = 0
    lists: int = 0
    revisions: int = 0


class MinuteCloser:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        rollups = filtered_rollups(settings)
        self.filters = [Filter()] + [
            Filter.of(given, settings.filter_dimensions) for given in settings.close_filters
        ]
        self.plans: dict[Filter, Plan] = {}
        for query_filter in self.filters:
            plan = plan_filter(query_filter, rollups)
            if plan.source is Source.RAW:
                raise ConfigurationError(
                    f"ADCLICK_CLOSE_FILTERS: no dimension set covers {filter_key(query_filter)}; "
                    "the closer ranks from rollups only (add it to ADCLICK_DIMENSION_SETS)"
                )
            self.plans[query_filter] = plan
        self.windows = settings.close_windows
        horizon_minutes = math.ceil(settings.close_revision_horizon.total_seconds() / 60)
        self.index = WindowIndex(
            rollups, max(self.windows) + horizon_minutes, max_limit=settings.close_top_n
        )
        self.totals = CloseTotals()
        # When each list was last re-ranked (monotonic seconds), to space revisions.
        self._checked: dict[tuple[int, str, int], float] = {}
        self._conn: Connection | None = None  # the home database: lists, the lock
        self._shard_conns: list[Connection] = []
        self._failures = 0  # consecutive sessions lost to an unavailable database or broker
        self._producer = make_producer(settings)

    # -- the loop ------------------------------------------------------------------

    def run(self, stop: threading.Event, once: bool = False) -> CloseTotals:
        """Close minutes until ``stop`` is set (or, with ``once``, until caught up).

        A database or broker that goes away ends a session, not the closer: it connects
        again with backoff (0.5 s doubling to 30 s, from the first failure after a
        healthy pass), takes the lock again and resumes as after a restart (``_recover``
        publishes what was stored but not confirmed), so no list is lost or repeated.
        """

        def sleep(seconds: float) -> None:
            stop.wait(seconds)  # a stop ends the wait

        retrying = Retrying(
            retry=retry_if_exception_type(_UNAVAILABLE),
            wait=lambda _state: min(_RECONNECT_MAX_S, 0.5 * 2 ** (self._failures - 1)),
            stop=lambda _state: stop.is_set(),
            sleep=sleep,
            before_sleep=self._unavailable,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._session(stop, once)
        except _UNAVAILABLE:
            if not stop.is_set():
                raise
        return self.totals

    def _session(self, stop: threading.Event, once: bool) -> None:
        """One connected session: the lock, recovery, then passes until stopped."""
        # Shards that are one database (or the home database spelled otherwise than its
        # shard) would count that database's minutes twice in every list.
        check_databases(self.settings, reads=False)
        with connect(self.settings) as conn, contextlib.ExitStack() as shards:
            self._conn = conn
            # Where the counts are: every shard (ADCLICK_SHARDS), else this database.
            self._shard_conns = (
                [shards.enter_context(connect(s)) for s in self.settings.shard_settings()]
                if self.settings.shards
                else [conn]
            )
            # On the connection that stores and marks the lists: if its session ends, so
            # does the lock, and the next statement fails instead of storing or
            # publishing beside the closer that took the lock (a lock held on a second
            # connection let two closers work at once).
            if not self._wait_for_lock(conn, stop):
                return
            # Lists spread over partitions would escape recovery and subscribers.
            the_only_partition(self._producer, self.settings.top_ads_topic)
            self._recover()
            while not stop.is_set():
                started = time.perf_counter()
                caught_up = self.cycle()
                self._failures = 0  # a healthy pass: the next outage backs off from 0.5 s
                metrics.CYCLE_SECONDS.observe(time.perf_counter() - started)
                if once and caught_up:
                    return
                if caught_up:
                    stop.wait(self.settings.close_interval_s)

    def _unavailable(self, state: RetryCallState) -> None:
        self._failures += 1
        metrics.RECONNECTS.inc()
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "database or broker unavailable (%s); connecting again in %.1f s",
            exc,
            state.upcoming_sleep,
        )

    def _wait_for_lock(self, conn: Connection, stop: threading.Event) -> bool:
        # One closer per clicks topic and database; the lock goes with the session.
        key = f"adclick-minute-closer:{self.settings.clicks_topic}"
        announced = False
        while not stop.is_set():
            row = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()
            conn.commit()  # a session lock: it outlives the transaction
            if row and row[0]:
                log.info("minute closer active")
                return True
            if not announced:
                log.info("another minute closer is active; standing by")
                announced = True
            stop.wait(self.settings.close_interval_s)
        return False

    def cycle(self) -> bool:
        """One pass: refresh, close what the watermark allows, revise. True when caught up."""
        self._require_conn()
        self.index.refresh(
            self._shard_conns, self.settings.clicks_topic, self.settings.idle_partition_timeout
        )
        snapshot = self.index.snapshot
        assert snapshot is not None
        caught_up = self._close_new_minutes(snapshot)
        self._revise(snapshot)
        return caught_up

    # -- closing -------------------------------------------------------------------

    def _close_new_minutes(self, snapshot: Snapshot) -> bool:
        watermark = snapshot.clock.watermark_ms
        if watermark is None:
            return True
        conn = self._require_conn()
        closable_end = watermark - watermark % MINUTE_MS
        row = conn.execute(load_sql("close/last_closed")).fetchone()
        conn.commit()
        last_end = row[0] if row else None
        # The earliest end whose longest window the index holds.
        earliest = snapshot.start_ms + max(self.windows) * MINUTE_MS
        if last_end is None:
            with_data = [m for m, counts in snapshot.minutes.items() if counts.revision]
            if not with_data:
                return True
            next_end = max(min(with_data) + MINUTE_MS, earliest)
        else:
            next_end = last_end + MINUTE_MS
            if next_end < earliest:
                log.warning(
                    "minutes ending %s to %s are older than the closer's horizon: not closed",
                    from_ms(next_end).isoformat(),
                    from_ms(earliest - MINUTE_MS).isoformat(),
                )
                next_end = earliest
        last = min(closable_end, next_end + (_MINUTES_PER_CYCLE - 1) * MINUTE_MS)
        for end in range(next_end, last + 1, MINUTE_MS):
            started = time.perf_counter()
            lists = [
                self._rank(snapshot, minutes, query_filter, end, revision=1)
                for minutes in self.windows
                for query_filter in self.filters
            ]
            self._store(lists)
            self._publish(lists)
            metrics.CLOSE_SECONDS.observe(time.perf_counter() - started)
            metrics.CLOSED_MINUTE.set(end / 1000)
            self.totals.closed_minutes += 1
            log.info(
                "closed the minute ending %s: %d lists in %.3f s",
                from_ms(end).isoformat(),
                len(lists),
                time.perf_counter() - started,
            )
        return last >= closable_end

    def _revise(self, snapshot: Snapshot) -> None:
        conn = self._require_conn()
        since_ms = max(
            snapshot.start_ms,
            snapshot.clock.now_ms
            - int(self.settings.close_revision_horizon.total_seconds() * 1000),
        )
        rows = conn.execute(
            load_sql("close/current_lists"), {"since": from_ms(since_ms)}
        ).fetchall()
        revised: list[TopList] = []
        now = time.monotonic()
        interval = self.settings.close_revision_interval.total_seconds()
        for minutes, key, end, revision, input_revision in rows:
            window = Window(end - minutes * MINUTE_MS, end)
            query_filter = parse_filter_key(key)
            if query_filter not in self.plans or not snapshot.covers(window):
                continue
            if sum(snapshot.revisions(window)) == input_revision:
                continue  # none of its minutes changed
            if now - self._checked.get((minutes, key, end), -math.inf) < interval:
                continue  # re-ranked recently: late events wait for the next interval
            self._checked[(minutes, key, end)] = now
            fresh = self._rank(snapshot, minutes, query_filter, end, revision + 1)
            stored = self._stored_ads(minutes, key, end, revision)
            if fresh.ads == stored:
                conn.execute(
                    load_sql("close/update_input_revision"),
                    {**_stored_list_id(fresh, revision), "input_revision": fresh.input_revision},
                )
            else:
                revised.append(fresh)
        conn.commit()
        if revised:
            self._store(revised)
            self._publish(revised)
            self.totals.revisions += len(revised)
            metrics.REVISIONS.inc(len(revised))
            log.info("published %d revised lists (late events changed them)", len(revised))

    def _rank(
        self, snapshot: Snapshot, minutes: int, query_filter: Filter, end: int, revision: int
    ) -> TopList:
        window = Window(end - minutes * MINUTE_MS, end)
        ads = self.index.top(
            snapshot, window, self.plans[query_filter], query_filter, self.settings.close_top_n
        )
        return TopList(
            minutes,
            query_filter,
            end,
            revision,
            ads,
            input_revision=sum(snapshot.revisions(window)),
        )

    # -- storing and publishing ------------------------------------------------------

    def _store(self, lists: list[TopList]) -> None:
        conn = self._require_conn()
        now = time.monotonic()
        for top in lists:  # a list just ranked waits a whole interval for its revision
            self._checked[(top.window_minutes, top.filter_key, top.window_end_ms)] = now
        with conn.transaction():
            for top in lists:
                key = _stored_list_id(top, top.revision)
                conn.execute(
                    load_sql("close/insert_list"), {**key, "input_revision": top.input_revision}
                )
                conn.execute(
                    load_sql("close/insert_ads"),
                    {
                        **key,
                        "ranks": [ad.rank for ad in top.ads],
                        "ads": [ad.ad_id for ad in top.ads],
                        "clicks": [ad.clicks for ad in top.ads],
                    },
                )
        conn.commit()

    def _publish(self, lists: list[TopList]) -> None:
        # Still this closer's turn: the lock's session is alive (a statement on it fails
        # otherwise, and the closer that took the lock publishes these from recovery).
        conn = self._require_conn()
        conn.execute("SELECT 1")
        conn.commit()
        offsets: dict[int, int] = {}
        failures: list[KafkaError] = []

        def delivered(position: int) -> Any:
            def report(error: KafkaError | None, message: Any) -> None:
                if error is not None:
                    failures.append(error)
                else:
                    offsets[position] = message.offset()

            return report

        for position, top in enumerate(lists):
            self._producer.produce(
                self.settings.top_ads_topic,
                key=top.message_key,
                value=top.to_message(),
                on_delivery=delivered(position),
            )
        self._producer.flush(30)
        if failures or len(offsets) < len(lists):
            # They stay unconfirmed in the database; the next start publishes them.
            raise KafkaClientError(
                f"could not publish top lists ({len(offsets)} of {len(lists)} delivered)", failures
            )
        self._mark_published((top, offsets[i]) for i, top in enumerate(lists))
        self.totals.lists += len(lists)
        metrics.LISTS_PUBLISHED.inc(len(lists))

    def _mark_published(self, published: Iterable[tuple[TopList, int]]) -> None:
        conn = self._require_conn()
        with conn.cursor() as cur:
            cur.executemany(
                load_sql("close/mark_published"),
                [
                    {**_stored_list_id(top, top.revision), "offset": offset}
                    for top, offset in published
                ],
            )
        conn.commit()

    def _recover(self) -> None:
        """Publish what a previous closer stored but the broker never confirmed."""
        conn = self._require_conn()
        rows = conn.execute(load_sql("close/unpublished")).fetchall()
        since = conn.execute(load_sql("close/published_since")).fetchone()
        conn.commit()
        if not rows:
            return
        pending = [
            TopList(m, parse_filter_key(k), end, rev, self._stored_ads(m, k, end, rev), input_rev)
            for m, k, end, rev, input_rev in rows
        ]
        start = since[0] + 1 if since and since[0] is not None else OFFSET_BEGINNING
        found = self._messages_since(start)
        already = [(top, found[(top.message_key, top.revision)])
                   for top in pending if (top.message_key, top.revision) in found]  # fmt: skip
        missing = [top for top in pending if (top.message_key, top.revision) not in found]
        self._mark_published(already)
        log.info(
            "recovered %d stored lists: %d were already published, %d published now",
            len(pending),
            len(already),
            len(missing),
        )
        if missing:
            self._publish(missing)

    def _messages_since(self, start: int) -> dict[tuple[bytes, int], int]:
        consumer = make_consumer(
            self.settings, **{"group.id": f"adclick-closer-recovery-{time.time_ns()}"}
        )
        found: dict[tuple[bytes, int], int] = {}
        try:
            consumer.assign([TopicPartition(self.settings.top_ads_topic, 0, start)])
            idle_since = time.monotonic()
            while time.monotonic() - idle_since < 3.0:
                message = consumer.poll(0.5)
                if message is None or message.error():
                    continue
                idle_since = time.monotonic()
                key, value, offset = message.key(), message.value(), message.offset()
                if key is None or value is None or offset is None:
                    continue  # not one of ours
                try:
                    revision = decode_list(value, self.settings).revision
                except ListFormatError:
                    continue  # not a list a closer published: no input stops the closer
                found[(key, revision)] = offset
        finally:
            consumer.close()
        return found

    def _stored_ads(self, minutes: int, key: str, end: int, revision: int) -> list[RankedAd]:
        conn = self._require_conn()
        rows = conn.execute(
            load_sql("close/list_ads"),
            {
                "window_minutes": minutes,
                "filter_key": key,
                "window_end": from_ms(end),
                "revision": revision,
            },
        ).fetchall()
        return [RankedAd(rank, ad, clicks) for rank, ad, clicks in rows]

    def _require_conn(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("the closer's connection is open only inside run()")
        return self._conn


def _stored_list_id(top: TopList, revision: int) -> dict[str, Any]:
    """The stored list's identity in top_ad_lists (and its ads' in top_ad_list_ads)."""
    return {
        "window_minutes": top.window_minutes,
        "filter_key": top.filter_key,
        "window_end": from_ms(top.window_end_ms),
        "revision": revision,
    }
