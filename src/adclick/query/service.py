"""ClickQueries: the one place that answers adClicks and topAds, whatever the transport."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from psycopg_pool import ConnectionPool

from adclick.db.connect import Connection
from adclick.db.replica import read_with_retry
from adclick.db.rollups import filtered_rollups
from adclick.db.shards import connections, snapshots
from adclick.db.shards import read_with_retry as read_shards_with_retry
from adclick.kafka.partitioners import owning_shards
from adclick.query import ad_reads, sql_source
from adclick.query.arguments import check_value
from adclick.query.budget import RequestBudget
from adclick.query.errors import ErrorCode, QueryError
from adclick.query.filters import Filter, Plan, Source, plan_filter
from adclick.query.hour_index import HourIndex
from adclick.query.long_windows import hour_revision_key, hours_unchanged, rank_long_window
from adclick.query.ranking import RankedAd
from adclick.query.window import (
    HOUR_MS,
    MINUTE_MS,
    StreamClock,
    Window,
    resolve_window,
)
from adclick.query.window_index import (
    RefreshReport,
    Snapshot,
    WindowIndex,
    read_stream_clock,
)
from adclick.resources import load_sql
from adclick.settings import Settings
from adclick.top_lists.history import history as top_list_history
from adclick.top_lists.history import list_series
from adclick.top_lists.wire import TopList

log = logging.getLogger(__name__)


class Granularity(StrEnum):
    MINUTE = "MINUTE"
    HOUR = "HOUR"


_BUCKET_MS = {Granularity.MINUTE: MINUTE_MS, Granularity.HOUR: HOUR_MS}


@dataclass(frozen=True)
class WindowArgs:
    """A window as a client gives it: ``last_minutes``, or ``start`` and ``end``."""

    last_minutes: int | None = None
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class Answer:
    """What every answer says besides its numbers."""

    window: Window
    clock: StreamClock
    source: Source
    query_filter: Filter

    @property
    def complete(self) -> bool:
        return self.window.complete(self.clock)


@dataclass(frozen=True)
class AdClicks(Answer):
    ad_id: str
    clicks: int
    granularity: Granularity
    series: list[tuple[int, int]]  # (bucket start ms, clicks), every bucket of the window
    from_index: bool  # answered from the window index (a metric label)


@dataclass(frozen=True)
class AdsClicks(Answer):
    """Clicks of several ads: ``series[i]`` is ``ad_ids[i]``'s clicks per bucket."""

    ad_ids: list[str]
    bucket_starts: list[int]  # epoch ms, every bucket of the window
    series: npt.NDArray[np.int64]  # (ads, buckets)
    from_index: bool  # answered from the window index (a metric label)

    @property
    def clicks(self) -> npt.NDArray[np.int64]:
        return np.asarray(self.series.sum(axis=1), dtype=np.int64)


def _bucketed(
    minutes: npt.NDArray[np.int64], window: Window, buckets: range
) -> npt.NDArray[np.int64]:
    """Per-minute columns (the window's minutes) summed into the buckets' columns."""
    if buckets.step == MINUTE_MS:
        return minutes
    column_bucket = (np.array(window.minute_starts()) - buckets.start) // buckets.step
    out = np.zeros((minutes.shape[0], len(buckets)), dtype=np.int64)
    np.add.at(out.T, column_bucket, minutes.T)
    return out


class RankedBy(StrEnum):
    """What ranked a topAds answer (a metric label: operators see which path serves)."""

    WINDOW_INDEX = "window_index"
    HOUR_INDEX = "hour_index"
    SQL = "sql"


@dataclass(frozen=True)
class TopAds(Answer):
    ads: list[RankedAd]
    ranked_by: RankedBy


def check_limit(limit: int, maximum: int, what: str) -> None:
    """A limit of 1 to ``maximum`` (``what`` names the maximum in the error)."""
    if limit < 1:
        raise QueryError(ErrorCode.BAD_LIMIT, "limit must be at least 1")
    if limit > maximum:
        raise QueryError(
            ErrorCode.LIMIT_TOO_LARGE, f"limit {limit:,} is above {what} ({maximum:,})"
        )


def check_list_limit(limit: int, settings: Settings) -> None:
    """Stored lists hold close_top_n ads: a limit of 1 to that."""
    check_limit(limit, settings.close_top_n, "what stored lists hold")


class QueryService(Protocol):
    """What the API's resolvers ask: ClickQueries in the same process, or the one of the
    supervising process when the API runs several workers (api/index_server.py)."""

    def ad_clicks(
        self,
        ad_id: str,
        window_args: WindowArgs,
        filter_args: Mapping[str, Sequence[str] | None],
        granularity: Granularity = ...,
        budget: RequestBudget | None = ...,
    ) -> AdClicks: ...

    def ads_clicks(
        self,
        ad_ids: Sequence[str],
        window_args: WindowArgs,
        filter_args: Mapping[str, Sequence[str] | None],
        granularity: Granularity = ...,
        budget: RequestBudget | None = ...,
    ) -> AdsClicks: ...

    def ad_clicks_in_memory(
        self,
        ad_id: str,
        window_args: WindowArgs,
        filter_args: Mapping[str, Sequence[str] | None],
        granularity: Granularity = ...,
        budget: RequestBudget | None = ...,
    ) -> AdClicks | None:
        """``ad_clicks`` when the window index holds the answer, else None (and nothing
        charged): it never waits on I/O, so the API's event loop may call it directly."""

    def ads_clicks_in_memory(
        self,
        ad_ids: Sequence[str],
        window_args: WindowArgs,
        filter_args: Mapping[str, Sequence[str] | None],
        granularity: Granularity = ...,
        budget: RequestBudget | None = ...,
    ) -> AdsClicks | None:
        """``ads_clicks`` when the window index holds the answer, else None (see above)."""

    def top_ads(
        self,
        limit: int,
        window_args: WindowArgs,
        filter_args: Mapping[str, Sequence[str] | None],
        budget: RequestBudget | None = ...,
    ) -> TopAds: ...

    def top_list_history(
        self,
        window_minutes: int,
        start: datetime,
        end: datetime,
        filter_args: Mapping[str, Sequence[str] | None],
        limit: int,
        all_revisions: bool,
        budget: RequestBudget | None = ...,
    ) -> list[TopList]: ...

    def check_list_limit(self, limit: int) -> None: ...

    def ingest_status(self) -> list[tuple[Any, ...]]: ...

    def memory_state(self) -> Hashable | None:
        """What answers from memory are made of now (see ClickQueries), or None when
        there is nothing to name."""


@dataclass(frozen=True)
class ShardPools:
    """One shard's pools: queries', and the indexes' loads'."""

    requests: ConnectionPool[Connection]
    background: ConnectionPool[Connection]
    # When the two read a standby: its primary's, where the stream clock's idle
    # partitions are judged (window_index.read_stream_clock).
    primary: ConnectionPool[Connection] | None = None


class ClickQueries:
    """Validates queries, picks the source that can answer each, and answers it."""

    def __init__(
        self,
        settings: Settings,
        pool: ConnectionPool[Connection],
        background_pool: ConnectionPool[Connection] | None = None,
        shards: Sequence[ShardPools] | None = None,
    ) -> None:
        """``pool`` serves queries; ``background_pool`` (default: ``pool``) the indexes'
        loads, which must neither wait behind queries nor obey their statement timeout.
        ``shards`` (ADCLICK_SHARDS): the same two pools of each shard, where the counts
        are; ``pool`` then reads the home database's top lists."""
        self.settings = settings
        self.pool = pool
        self.background_pool = background_pool or pool
        shards = shards or [ShardPools(self.pool, self.background_pool)]
        self.shard_pools = [shard.requests for shard in shards]
        self.shard_backgrounds = [shard.background for shard in shards]
        self.shard_primaries = [shard.primary for shard in shards if shard.primary is not None]
        self.rollups = filtered_rollups(settings)
        self.index = (
            WindowIndex(self.rollups, settings.api_cache_minutes, settings.api_max_limit)
            if settings.api_cache_minutes > 0
            else None
        )
        self.hours = (
            HourIndex(
                settings.api_hour_cache_hours, self.rollups, self.index.ads, self.index.values
            )
            if self.index is not None and settings.api_hour_cache_hours > 0
            else None
        )

    # -- the window index ----------------------------------------------------------

    def refresh(self) -> RefreshReport | None:
        """Bring the window index up to date and rank the standard windows ahead of time."""
        if self.index is None:
            return None
        with (
            connections(self.shard_backgrounds) as conns,
            connections(self.shard_primaries) as primaries,
        ):
            report = self.index.refresh(
                conns, self.settings.clicks_topic, self.settings.idle_partition_timeout, primaries
            )
        snapshot = self.index.snapshot
        assert snapshot is not None
        for minutes in self.settings.api_standard_windows:
            window = Window(snapshot.end_ms - minutes * MINUTE_MS, snapshot.end_ms)
            if snapshot.covers(window):
                self.index.top(snapshot, window, Plan(Source.ROLLUP), Filter(), 1)
        return report

    def refresh_hours(self) -> int:
        """Load the newest changed or missing hour of the hour index (0 or 1 loaded)."""
        snapshot = self.index.snapshot if self.index is not None else None
        if self.hours is None or snapshot is None:
            return 0
        with connections(self.shard_backgrounds) as conns:
            return self.hours.refresh(conns, snapshot.start_ms, snapshot.end_ms)

    def memory_state(self) -> tuple[int, int] | None:
        """What answers from memory are made of now: the window and hour indexes'
        generations (None before the window index's first load, or without one).

        Each moves after what it names is in place, so an answer made from memory while
        this stayed the same is at least as new as what it names, and is the answer for
        as long as it stays the same (api/response_cache.py)."""
        if self.index is None or self.index.snapshot is None:
            return None
        return self.index.generation, self.hours.generation if self.hours is not None else 0

    @property
    def ready(self) -> bool:
        """Whether topAds can use the window index (it has loaded once), or needs none."""
        return self.index is None or self.index.snapshot is not None

    # -- queries -------------------------------------------------------------------

    def ad_clicks(
        self,
        ad_id: str,
        window_args: WindowArgs,
        filter_args: Mapping[str, Sequence[str] | None],
        granularity: Granularity = Granularity.MINUTE,
        budget: RequestBudget | None = None,
    ) -> AdClicks:
        """Clicks of ``ad_id``; ``budget`` (one request's) is charged before any SQL."""
        check_value(ad_id, "adId", ErrorCode.BAD_AD_ID)
        batch = self.ads_clicks([ad_id], window_args, filter_args, granularity, budget)
        return _one_ad(batch, ad_id, granularity)

    def ad_clicks_in_memory(
        self,
        ad_id: str,
        window_args: WindowArgs,
        filter_args: Mapping[str, Sequence[str] | None],
        granularity: Granularity = Granularity.MINUTE,
        budget: RequestBudget | None = None,
    ) -> AdClicks | None:
        """``ad_clicks`` from the window index, or None when the answer needs SQL."""
        check_value(ad_id, "adId", ErrorCode.BAD_AD_ID)
        batch = self.ads_clicks_in_memory([ad_id], window_args, filter_args, granularity, budget)
        return None if batch is None else _one_ad(batch, ad_id, granularity)

    def ads_clicks_in_memory(
        self,
        ad_ids: Sequence[str],
        window_args: WindowArgs,
        filter_args: Mapping[str, Sequence[str] | None],
        granularity: Granularity = Granularity.MINUTE,
        budget: RequestBudget | None = None,
    ) -> AdsClicks | None:
        """``ads_clicks`` from the window index, or None (nothing charged) when the index
        does not hold the window or cannot find the filter's rows: no I/O, no waiting, so
        the API answers these on its event loop (`python -m bench load`: a thread per
        answer cost 0.4 ms of the 1.4 ms of CPU an adClicks request took)."""
        _check_ads(ad_ids, self.settings.api_max_batch_ads)
        snapshot = self.index.snapshot if self.index is not None else None
        if snapshot is None:
            return None
        assert self.index is not None
        # "The last M minutes" as topAds resolves them: minutes the snapshot holds.
        window = self._window(snapshot.clock, window_args)
        query_filter, plan = self._plan(filter_args, window, snapshot.clock)
        if not (snapshot.covers(window) and ad_reads.answerable(plan, query_filter)):
            return None
        buckets = self._buckets(window, granularity)
        if budget is not None:
            budget.charge_filter(filter_args)
            budget.charge("adClicks", window, plan.source, len(ad_ids))
        codes = ad_reads.ad_codes(self.index.ads, ad_ids)
        minutes = ad_reads.minute_counts(
            snapshot, window, plan, query_filter, codes, self.index.values
        )
        return AdsClicks(
            window, snapshot.clock, plan.source, query_filter, ad_ids=list(ad_ids),
            bucket_starts=list(buckets), series=_bucketed(minutes, window, buckets),
            from_index=True,
        )  # fmt: skip

    def ads_clicks(
        self,
        ad_ids: Sequence[str],
        window_args: WindowArgs,
        filter_args: Mapping[str, Sequence[str] | None],
        granularity: Granularity = Granularity.MINUTE,
        budget: RequestBudget | None = None,
    ) -> AdsClicks:
        """Clicks of each of ``ad_ids`` (at most api_max_batch_ads, repeats allowed), from
        the window index when it holds the window, else by one SQL statement."""
        in_memory = self.ads_clicks_in_memory(ad_ids, window_args, filter_args, granularity, budget)
        if in_memory is not None:
            return in_memory
        if budget is not None:
            budget.charge_filter(filter_args)
        charged = False

        def read(
            conns: list[Connection],
        ) -> tuple[StreamClock, Window, Plan, Filter, range, dict[tuple[str, int], int]]:
            nonlocal charged
            with snapshots(conns):  # the clock and the counts of one snapshot (per shard)
                clock = self._clock(conns)
                window = self._window(clock, window_args)
                query_filter, plan = self._plan(filter_args, window, clock)
                buckets = self._buckets(window, granularity)
                if budget is not None and not charged:
                    budget.charge("adClicks", window, plan.source, len(ad_ids))
                    charged = True
                # The counts from the shards owning the ads (ADCLICK_SHARD_PARTITIONER),
                # the clock from all: the window and its completeness are the service's.
                owners = [conns[i] for i in owning_shards(self.settings, ad_ids)]
                counts = sql_source.ads_series(
                    owners, sorted(set(ad_ids)), window, plan, query_filter, buckets.step
                )
            return clock, window, plan, query_filter, buckets, counts

        clock, window, plan, query_filter, buckets, counts = read_shards_with_retry(
            self.shard_pools, read
        )
        series = np.array(
            [[counts.get((ad, start), 0) for start in buckets] for ad in ad_ids], dtype=np.int64
        ).reshape(len(ad_ids), len(buckets))
        return AdsClicks(
            window, clock, plan.source, query_filter, ad_ids=list(ad_ids),
            bucket_starts=list(buckets), series=series, from_index=False,
        )  # fmt: skip

    def top_ads(
        self,
        limit: int,
        window_args: WindowArgs,
        filter_args: Mapping[str, Sequence[str] | None],
        budget: RequestBudget | None = None,
    ) -> TopAds:
        """The window's top ``limit``; ``budget`` (one request's) is charged before any SQL."""
        check_limit(limit, self.settings.api_max_limit, "the maximum")
        if budget is not None:
            budget.charge_filter(filter_args)
        charged = False
        snapshot = self.index.snapshot if self.index is not None else None
        if snapshot is not None:
            # Resolved against the snapshot's clock, so "the last M minutes" are minutes
            # the snapshot holds.
            window = self._window(snapshot.clock, window_args)
            query_filter, plan = self._plan(filter_args, window, snapshot.clock)
            if budget is not None:
                budget.charge("topAds", window, plan.source)
                charged = True
            if snapshot.covers(window) and plan.source is not Source.RAW:
                assert self.index is not None
                ads = self.index.top(snapshot, window, plan, query_filter, limit)
                return TopAds(window, snapshot.clock, plan.source, query_filter, ads=ads,
                              ranked_by=RankedBy.WINDOW_INDEX)  # fmt: skip
            if plan.source is not Source.RAW:
                ranking = self._long_window_ranking(snapshot, window, plan, query_filter)
                if ranking is not None:
                    return TopAds(window, snapshot.clock, plan.source, query_filter,
                                  ads=ranking[:limit], ranked_by=RankedBy.HOUR_INDEX)  # fmt: skip

        def read(conns: list[Connection]) -> TopAds:
            nonlocal charged
            with snapshots(conns):  # the clock and the counts of one snapshot (per shard)
                clock = self._clock(conns)
                window = self._window(clock, window_args)
                query_filter, plan = self._plan(filter_args, window, clock)
                if budget is not None and not charged:
                    budget.charge("topAds", window, plan.source)
                    charged = True
                ads = sql_source.top_ads(conns, window, plan, query_filter, limit)
            return TopAds(window, clock, plan.source, query_filter, ads=ads,
                          ranked_by=RankedBy.SQL)  # fmt: skip

        return read_shards_with_retry(self.shard_pools, read)

    def top_list_history(
        self,
        window_minutes: int,
        start: datetime,
        end: datetime,
        filter_args: Mapping[str, Sequence[str] | None],
        limit: int,
        all_revisions: bool,
        budget: RequestBudget | None = None,
    ) -> list[TopList]:
        """The closer's stored lists whose window ends in [start, end)."""
        if budget is not None:
            budget.charge_filter(filter_args)
        series = list_series(self.settings, window_minutes, filter_args)
        self.check_list_limit(limit)
        return read_with_retry(
            self.pool,
            lambda conn: top_list_history(
                conn, series, start, end, limit, all_revisions, self.settings.api_max_history_lists
            ),
        )

    def check_list_limit(self, limit: int) -> None:
        check_list_limit(limit, self.settings)

    def ingest_status(self) -> list[tuple[Any, ...]]:
        """Per partition: next offset of the ingest group, newest event time, watermark."""
        params = {"group": self.settings.consumer_group, "topic": self.settings.clicks_topic}
        statement = load_sql("query/ingest_status")
        rows = read_shards_with_retry(
            self.shard_pools,
            lambda conns: [row for conn in conns for row in conn.execute(statement, params)],
        )
        return sorted(rows, key=lambda row: row[0])  # by partition, of every shard

    def clock(self) -> StreamClock:
        """The stream's clock as committed now."""
        return read_shards_with_retry(self.shard_pools, self._clock)

    # -- helpers -------------------------------------------------------------------

    def _long_window_ranking(
        self, snapshot: Snapshot, window: Window, plan: Plan, query_filter: Filter
    ) -> list[RankedAd] | None:
        """A window reaching back before the index, from the hour index; None when SQL
        must answer (beyond the hours kept, or an hour not loaded yet)."""
        if self.index is None or self.hours is None or window.end_ms > snapshot.end_ms:
            return None
        hours = self.hours.hours_for(window.start_ms, min(window.end_ms, snapshot.start_ms))
        if hours is None:
            return None
        key = (window.start_ms, window.end_ms, query_filter)
        inner = Window(min(max(window.start_ms, snapshot.start_ms), window.end_ms), window.end_ms)
        revisions = snapshot.revisions(inner) + hour_revision_key(hours)
        ranking = self.index.cached_ranking(key, revisions)
        if ranking is not None:
            # Remembered for the hours as loaded; an hour may have changed since (the
            # hour index reloads it later): then, as when ranking afresh, SQL answers.
            hours_held = hours
            if not read_shards_with_retry(
                self.shard_pools, lambda conns: hours_unchanged(conns, hours_held)
            ):
                return None
        else:
            index = self.index
            ranking = read_shards_with_retry(
                self.shard_pools,
                lambda conns: rank_long_window(
                    conns, index, snapshot, hours, window, plan, query_filter
                ),
            )
            if ranking is not None:
                self.index.remember_ranking(key, revisions, ranking)
        return ranking

    def _buckets(self, window: Window, granularity: Granularity) -> range:
        """The series' bucket starts: every bucket the window touches."""
        bucket_ms = _BUCKET_MS[granularity]
        buckets = range(window.start_ms - window.start_ms % bucket_ms, window.end_ms, bucket_ms)
        if len(buckets) > self.settings.api_max_series_points:
            raise QueryError(
                ErrorCode.BAD_WINDOW,
                f"the series would have {len(buckets):,} points, more than "
                f"{self.settings.api_max_series_points:,}: ask for granularity HOUR "
                "or a shorter window",
            )
        return buckets

    def _clock(self, conns: Sequence[Connection]) -> StreamClock:
        with connections(self.shard_primaries) as primaries:
            return read_stream_clock(
                conns, self.settings.clicks_topic, self.settings.idle_partition_timeout, primaries
            )

    def _window(self, clock: StreamClock, args: WindowArgs) -> Window:
        return resolve_window(
            clock,
            last_minutes=args.last_minutes,
            start=args.start,
            end=args.end,
            retention=self.settings.minute_rollup_retention,
        )

    def _plan(
        self, filter_args: Mapping[str, Sequence[str] | None], window: Window, clock: StreamClock
    ) -> tuple[Filter, Plan]:
        query_filter = Filter.of(filter_args, self.settings.filter_dimensions)
        plan = plan_filter(query_filter, self.rollups)
        if plan.source is Source.RAW:
            hot_start_ms = clock.now_ms - int(self.settings.dedup_horizon.total_seconds() * 1000)
            if window.start_ms < hot_start_ms:
                dims = ", ".join(sorted(query_filter.dimensions))
                raise QueryError(
                    ErrorCode.FILTER_NOT_ANSWERABLE,
                    f"no filtered rollup covers {dims}, so this filter is answered from raw "
                    f"clicks, which are kept for {self.settings.dedup_horizon.days} days; "
                    "the window starts earlier. Add a dimension set for it "
                    "(ADCLICK_DIMENSION_SETS) or shorten the window.",
                )
        return query_filter, plan


def _check_ads(ad_ids: Sequence[str], most: int) -> None:
    if not ad_ids:
        raise QueryError(ErrorCode.BAD_AD_ID, "adIds must list at least one ad")
    if len(ad_ids) > most:
        raise QueryError(
            ErrorCode.TOO_MANY_ADS,
            f"{len(ad_ids):,} ads in one request, more than {most:,} (ADCLICK_API_MAX_BATCH_ADS)",
        )
    for ad_id in ad_ids:
        check_value(ad_id, "adIds", ErrorCode.BAD_AD_ID)


def _one_ad(batch: AdsClicks, ad_id: str, granularity: Granularity) -> AdClicks:
    """The answer of a batch of one ad, as adClicks gives it."""
    return AdClicks(
        batch.window, batch.clock, batch.source, batch.query_filter,
        ad_id=ad_id, clicks=int(batch.clicks[0]), granularity=granularity,
        series=list(zip(batch.bucket_starts, batch.series[0].tolist(), strict=True)),
        from_index=batch.from_index,
    )  # fmt: skip
