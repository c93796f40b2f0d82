"""What answers the API's queries: the query service with its database pools and the
threads that keep its window and hour indexes current.

One per host: inside the single ``adclick api`` process, or, with ``api_workers`` above 1,
in the supervising process, which serves it to the workers (api/index_server.py) so the
indexes are held once whatever the number of workers.

Queries use a pool whose connections have a statement timeout; the indexes' loads have a
pool of their own without one, so neither can starve or cancel the other.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from psycopg_pool import ConnectionPool

from adclick.api.metrics import HOUR_INDEX_HOURS
from adclick.db.connect import Connection, connection_options
from adclick.query.service import ClickQueries, ShardPools
from adclick.settings import Settings

log = logging.getLogger(__name__)


class Refresher:
    """Keeps the window index current from a background thread, and the hour index from
    another (an hour of a filtered rollup takes seconds to load at the design scale; the
    minutes must not wait for it)."""

    def __init__(self, queries: ClickQueries, interval_s: float) -> None:
        self.queries = queries
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run_minutes, name="window-index", daemon=True),
            threading.Thread(target=self._run_hours, name="hour-index", daemon=True),
        ]
        self.last_error = ""
        # Called after every refresh of either index (the supervisor shares the
        # indexes' state with its workers: api/shared_state.py).
        self.on_refreshed: Callable[[], None] = lambda: None

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout_s)

    def _run_minutes(self) -> None:
        while not self._stop.is_set():
            try:
                report = self.queries.refresh()
                self.last_error = ""
                if report is not None and report.minutes_loaded:
                    _freeze_loaded()
                    log.info(
                        "window index: loaded %d minutes (%d rows)",
                        report.minutes_loaded,
                        report.rows_loaded,
                    )
            except Exception as exc:  # the database may be away; keep serving, retry
                self.last_error = str(exc)
                log.warning("window index refresh failed: %s", exc)
            self.on_refreshed()
            self._stop.wait(self.interval_s)

    def _run_hours(self) -> None:
        hours = self.queries.hours
        if hours is None:
            return
        while not self._stop.is_set():
            loaded = 0
            try:
                loaded = self.queries.refresh_hours()
                if loaded:
                    _freeze_loaded()
                    if hours.complete:
                        log.info("hour index: complete, %d hours", hours.held)
            except Exception as exc:  # as above
                log.warning("hour index refresh failed: %s", exc)
            self.on_refreshed()
            if hours.refreshed:  # before, what it wants is not known yet
                HOUR_INDEX_HOURS.labels("held").set(hours.held)
                HOUR_INDEX_HOURS.labels("wanted").set(hours.wanted)
            if not loaded:  # more to load: go on at once
                self._stop.wait(self.interval_s)


def _freeze_loaded() -> None:
    """The indexes' vocabulary holds millions of objects that live for good: out of the
    collector's reach, they no longer make full collections (pauses of every request in
    flight) slower as it grows."""
    gc.freeze()


def request_pool(settings: Settings, max_size: int = 8) -> ConnectionPool[Connection]:
    """The pool requests use: every statement is cancelled after the statement timeout,
    and a request waits for a free connection at most twice as long (then SERVER_BUSY)."""
    timeout_ms = max(1, int(settings.api_statement_timeout_s * 1000))

    def configure(conn: Connection) -> None:
        # A bound parameter: SET cannot take one, set_config can (session-wide).
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{timeout_ms}ms",))

    return ConnectionPool(
        settings.database_url,
        min_size=1,
        max_size=max_size,
        open=False,
        timeout=2 * settings.api_statement_timeout_s,
        configure=configure,
        # A connection is checked (an empty query) before it is lent: after a database
        # restart a stale one is replaced instead of failing a request.
        check=ConnectionPool.check_connection,
        kwargs={
            "application_name": "adclick-api",
            "autocommit": True,
            **connection_options(settings),
        },
    )


def background_pool(settings: Settings) -> ConnectionPool[Connection]:
    """The refresher's two threads and the scrape-time reconciliation metrics."""
    return ConnectionPool(
        settings.database_url,
        min_size=1,
        max_size=3,
        open=False,
        check=ConnectionPool.check_connection,
        kwargs={
            "application_name": "adclick-api-index",
            "autocommit": True,
            **connection_options(settings),
        },
    )


def write_pool(
    settings: Settings, reads: ConnectionPool[Connection], max_size: int
) -> ConnectionPool[Connection]:
    """Where retention changes go: the primary. That is the read pool itself unless the
    API reads a replica (ADCLICK_DATABASE_READ_URL), then a small pool of its own."""
    if settings.database_read_url is None:
        return reads
    return request_pool(settings, max_size=max_size)


def primary_pool(shard: Settings) -> ConnectionPool[Connection] | None:
    """A small pool on a shard's primary when the shard is read from a standby."""
    if shard.database_read_url is None:
        return None
    return request_pool(shard, max_size=2)


def distinct(*pools: ConnectionPool[Connection]) -> list[ConnectionPool[Connection]]:
    """Each pool once (a pool may serve several purposes), to open or close them."""
    return list({id(pool): pool for pool in pools}.values())


class QueryHost:
    """The query service, its pools and its refresher, started and stopped together."""

    def __init__(self, settings: Settings) -> None:
        # Reads (queries, the indexes' loads) go to the read replica when there is one;
        # the few writes (retention changes) to the primary.
        reads = settings.for_reads()
        self.pool = request_pool(reads)
        self.background = background_pool(reads)
        self.writes = write_pool(settings, self.pool, max_size=2)
        # With ADCLICK_SHARDS the counts are read from every shard (its standby if it
        # names one); the pools above then serve the home database's top lists.
        # A standby's lag must never make partitions look idle: the stream clock judges
        # idleness on the primary's clocks (window_index.read_stream_clock).
        self.shards = [
            ShardPools(
                request_pool(shard.for_reads()),
                background_pool(shard.for_reads()),
                primary_pool(shard),
            )
            for shard in settings.shard_settings()
            if settings.shards
        ] or (
            [ShardPools(self.pool, self.background, self.writes)]
            if settings.database_read_url is not None
            else []
        )
        self.queries = ClickQueries(settings, self.pool, self.background, self.shards)
        self.refresher = Refresher(self.queries, settings.api_refresh_interval_s)

    def start(self) -> None:
        for pool in self._pools():
            pool.open(wait=False)
        self.refresher.start()

    def stop(self, timeout_s: float) -> None:
        """At most ``timeout_s`` for each part: the refresher's threads are daemons, so
        one still loading an hour of the index does not hold the exit."""
        self.refresher.stop(timeout_s=timeout_s)
        for pool in self._pools():
            pool.close(timeout=timeout_s)

    def _pools(self) -> list[ConnectionPool[Connection]]:
        shard_pools = [
            pool
            for shard in self.shards
            for pool in (shard.requests, shard.background, shard.primary)
            if pool is not None
        ]
        return distinct(self.pool, self.background, self.writes, *shard_pools)

    def index_metrics(self) -> bytes:
        """Nothing: the host's metrics are this process's own (see ``exposition``)."""
        return b""

    def exposition(self) -> bytes:
        """The host's metrics, for workers whose /metrics cannot see this process's."""
        registry = CollectorRegistry()
        registry.register(HOUR_INDEX_HOURS)
        return generate_latest(registry)

    def index_problem(self) -> str | None:
        """Why topAds cannot use the window index yet (None: it can, or needs none)."""
        if self.queries.ready:
            return None
        return self.refresher.last_error or "first load not finished"
