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

Every minute up to the watermark gets its lists, however far behind stream time it is
(a partition that lags hours, a closer that was down): windows the in-memory index holds
are ranked from it, older ones by SQL over the same rollups (close/outside_index.py). A
list whose window starts below the ingest floor (its rollups may be tiered) is not made
but recorded in ``skipped_top_lists`` and counted; nothing is skipped silently.

Revisions cost at most one re-ranking per changed list per ``close_revision_interval``,
however many late events arrive in between, and only lists ending within
``close_revision_horizon`` of the watermark (or of stream time, when that is earlier)
are revised.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from adclick.close import metrics
from adclick.close.outside_index import (
    first_minute_with_data,
    input_revision,
    minute_revisions,
    rank_by_sql,
)
from adclick.db.connect import Connection, connect
from adclick.db.identity import check_databases
from adclick.db.rollups import filtered_rollups
from adclick.db.shards import snapshots
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


# Why a list was recorded in skipped_top_lists instead of made.
BELOW_INGEST_FLOOR = "below_ingest_floor"


@dataclass(frozen=True)
class ListKey:
    """One list to rank: the window of ``window_minutes`` ending at ``end_ms``, filtered."""

    window_minutes: int
    query_filter: Filter
    end_ms: int
    revision: int

    @property
    def window(self) -> Window:
        return Window(self.end_ms - self.window_minutes * MINUTE_MS, self.end_ms)

    @property
    def list_id(self) -> tuple[int, str, int]:
        """Which list it is, whatever the revision (the key of MinuteCloser._checked)."""
        return (self.window_minutes, filter_key(self.query_filter), self.end_ms)

    def top_list(self, ads: list[RankedAd], input_revision: int) -> TopList:
        return TopList(
            self.window_minutes,
            self.query_filter,
            self.end_ms,
            self.revision,
            ads,
            input_revision=input_revision,
        )


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
        # The lists revised end within the revision horizon of the watermark, which is
        # the allowed lateness (and a part minute) behind stream time when no partition
        # lags: the index holds their windows then, and only a lag reads them by SQL.
        behind = settings.close_revision_horizon + settings.allowed_lateness
        self.index = WindowIndex(
            rollups,
            max(self.windows) + math.ceil(behind.total_seconds() / 60) + 1,
            max_limit=settings.close_top_n,
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
        closable_end = watermark - watermark % MINUTE_MS
        next_end = self._next_end(closable_end)
        if next_end is None:
            return True
        last = min(closable_end, next_end + (_MINUTES_PER_CYCLE - 1) * MINUTE_MS)
        for end in range(next_end, last + 1, MINUTE_MS):
            self._close_minute(snapshot, end)
        return last >= closable_end

    def _next_end(self, closable_end: int) -> int | None:
        """The end of the next minute to close, None while there is nothing to close.

        After the last closed minute comes the next one, however far back it is (a
        partition that lags, a closer that was down for hours): every minute gets its
        lists. A first start begins at the first minute with data within the span the
        closer revises, counted back from the watermark, not from stream time (which a
        single fast partition sets).
        """
        conn = self._require_conn()
        row = conn.execute(load_sql("close/last_closed")).fetchone()
        conn.commit()
        if row and row[0] is not None:
            return int(row[0]) + MINUTE_MS
        since = closable_end - self.index.cache_minutes * MINUTE_MS
        first = first_minute_with_data(self._shard_conns, since)
        return None if first is None else first + MINUTE_MS

    def _close_minute(self, snapshot: Snapshot, end: int) -> None:
        started = time.perf_counter()
        keys = [
            ListKey(minutes, query_filter, end, revision=1)
            for minutes in self.windows
            for query_filter in self.filters
        ]
        lists, below_floor = self._rank_lists(snapshot, keys)
        self._store(lists, below_floor)
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

    def _revise(self, snapshot: Snapshot) -> None:
        conn = self._require_conn()
        rows = conn.execute(
            load_sql("close/current_lists"), {"since": from_ms(self._revision_since(snapshot))}
        ).fetchall()
        conn.commit()
        stored = [
            (ListKey(minutes, parse_filter_key(key), end, revision), ranked_from)
            for minutes, key, end, revision, ranked_from in rows
            if parse_filter_key(key) in self.plans
        ]
        current = self._input_revisions(snapshot, [key.window for key, _input in stored])
        now = time.monotonic()
        interval = self.settings.close_revision_interval.total_seconds()
        due: list[ListKey] = []
        for (key, ranked_from), current_revision in zip(stored, current, strict=True):
            if current_revision == ranked_from:
                continue  # none of its minutes changed
            if now - self._checked.get(key.list_id, -math.inf) < interval:
                continue  # re-ranked recently: late events wait for the next interval
            self._checked[key.list_id] = now
            due.append(dataclasses.replace(key, revision=key.revision + 1))
        # A list whose window now reaches below the ingest floor stays as published.
        fresh_lists, _below_floor = self._rank_lists(snapshot, due)
        revised: list[TopList] = []
        for fresh in fresh_lists:
            previous = fresh.revision - 1
            if fresh.ads == self._stored_ads(
                fresh.window_minutes, fresh.filter_key, fresh.window_end_ms, previous
            ):
                conn.execute(
                    load_sql("close/update_input_revision"),
                    {**_stored_list_id(fresh, previous), "input_revision": fresh.input_revision},
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

    def _revision_since(self, snapshot: Snapshot) -> int:
        """The oldest window end still revised: the horizon counts back from the watermark
        when it is behind stream time. Lists closed behind a lagging partition are as
        young as the minutes being closed, and its late events must revise them (counted
        from stream time, they were past the horizon the moment they were closed)."""
        clock = snapshot.clock
        reference = clock.now_ms
        if clock.watermark_ms is not None:
            reference = min(reference, clock.watermark_ms)
        return reference - int(self.settings.close_revision_horizon.total_seconds() * 1000)

    def _input_revisions(self, snapshot: Snapshot, windows: list[Window]) -> list[int]:
        """The sum of the minutes' revisions of each window, from the index when it holds
        the window, else read from the database."""
        outside = [window for window in windows if not snapshot.covers(window)]
        revisions: dict[int, int] = {}
        if outside:
            with snapshots(self._shard_conns):
                revisions = minute_revisions(
                    self._shard_conns,
                    min(window.start_ms for window in outside),
                    max(window.end_ms for window in outside),
                )
        return [
            sum(snapshot.revisions(window))
            if snapshot.covers(window)
            else input_revision(revisions, window)
            for window in windows
        ]

    def _rank_lists(
        self, snapshot: Snapshot, keys: list[ListKey]
    ) -> tuple[list[TopList], list[ListKey]]:
        """The lists of ``keys``, and the keys it could not rank.

        A window the index holds is ranked from memory; any other by SQL over the rollups
        (exact, the same numbers), unless it starts below the ingest floor: its rollups
        may be tiered, so it is returned unranked for the caller to record.
        """
        outside = [key for key in keys if not snapshot.covers(key.window)]
        by_sql = rank_by_sql(
            self._shard_conns,
            [(key.window, self.plans[key.query_filter], key.query_filter) for key in outside],
            self.settings.close_top_n,
        )
        ranked_outside = dict(zip(outside, by_sql, strict=True))
        lists: list[TopList] = []
        below_floor: list[ListKey] = []
        for key in keys:
            if key not in ranked_outside:
                lists.append(self._rank(snapshot, key))
            elif (ranked := ranked_outside[key]) is None:
                below_floor.append(key)
            else:
                lists.append(key.top_list(ranked.ads, ranked.input_revision))
        return lists, below_floor

    def _rank(self, snapshot: Snapshot, key: ListKey) -> TopList:
        ads = self.index.top(
            snapshot,
            key.window,
            self.plans[key.query_filter],
            key.query_filter,
            self.settings.close_top_n,
        )
        return key.top_list(ads, sum(snapshot.revisions(key.window)))

    # -- storing and publishing ------------------------------------------------------

    def _store(self, lists: list[TopList], below_floor: Sequence[ListKey] = ()) -> None:
        """Store the lists, and record those below the ingest floor as skipped, in one
        transaction: the minute counts as closed only with both."""
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
            for skipped in below_floor:
                conn.execute(
                    load_sql("close/insert_skipped"),
                    {
                        "window_minutes": skipped.window_minutes,
                        "filter_key": filter_key(skipped.query_filter),
                        "window_end": from_ms(skipped.end_ms),
                        "reason": BELOW_INGEST_FLOOR,
                    },
                )
        conn.commit()
        if below_floor:
            metrics.SKIPPED_LISTS.inc(len(below_floor))
            log.warning(
                "%d lists of the minute ending %s not made: their windows start below the "
                "ingest floor (their rollups may be tiered); recorded in skipped_top_lists",
                len(below_floor),
                from_ms(below_floor[0].end_ms).isoformat(),
            )

    def _publish(self, lists: list[TopList]) -> None:
        # Still this closer's turn: the lock's session is alive (a statement on it fails
        # otherwise, and the closer that took the lock publishes these from recovery).
        if not lists:
            return
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
