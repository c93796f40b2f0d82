"""The closer's stored lists, as the API reads them back (topAdsHistory)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from adclick.db.connect import Connection
from adclick.events.parse import EARLIEST_TS_MS, LATEST_TS_MS
from adclick.query.errors import ErrorCode, QueryError
from adclick.query.filters import Filter
from adclick.query.ranking import RankedAd
from adclick.query.window import MINUTE_MS, from_ms, to_ms
from adclick.resources import load_sql
from adclick.settings import Settings
from adclick.top_lists.wire import TopList, filter_key


@dataclass(frozen=True)
class ListSeries:
    """A series of lists the closer ranks every minute: a closed window length and a
    closed filter (what a client of topAdsHistory or topAdsLive names)."""

    window_minutes: int
    query_filter: Filter


def list_series(
    settings: Settings, window_minutes: int, filter_args: Mapping[str, Sequence[str] | None]
) -> ListSeries:
    """Validate that the closer ranks this window and filter."""
    if window_minutes not in settings.close_windows:
        raise QueryError(
            ErrorCode.BAD_WINDOW,
            f"the minute closer ranks windows of {settings.close_windows} minutes, "
            f"not {window_minutes}; use topAds for any window",
        )
    query_filter = Filter.of(filter_args, settings.filter_dimensions)
    closed = [Filter.of(f, settings.filter_dimensions) for f in settings.close_filters]
    if query_filter and query_filter not in closed:
        configured = ", ".join(filter_key(f) for f in closed) or "none"
        raise QueryError(
            ErrorCode.BAD_FILTER,
            f"the minute closer ranks no list for {filter_key(query_filter)} "
            f"(ADCLICK_CLOSE_FILTERS: {configured}); use topAds for any filter",
        )
    return ListSeries(window_minutes, query_filter)


def history_range(start: datetime, end: datetime, max_lists: int) -> tuple[int, int]:
    """[start, end) in epoch ms; QueryError unless it is a range of at most ``max_lists``
    minutes within the times a list can have (the years of clicks, 2000..2100)."""
    start_ms, end_ms = to_ms(start), to_ms(end)
    if end_ms <= start_ms:
        raise QueryError(ErrorCode.BAD_WINDOW, "to must be after from")
    if (end_ms - start_ms) // MINUTE_MS > max_lists:
        raise QueryError(
            ErrorCode.BAD_WINDOW, f"at most {max_lists:,} minutes of lists per request"
        )
    if not EARLIEST_TS_MS <= start_ms < end_ms <= LATEST_TS_MS:
        raise QueryError(
            ErrorCode.WINDOW_OUT_OF_RANGE,
            f"lists end in 2000..2100, as clicks happen: not in [{start.isoformat()}, "
            f"{end.isoformat()})",
        )
    return start_ms, end_ms


def history(
    conn: Connection,
    series: ListSeries,
    start: datetime,
    end: datetime,
    limit: int,
    all_revisions: bool,
    max_lists: int,
) -> list[TopList]:
    """Stored lists whose window ends in [start, end), oldest first."""
    start_ms, end_ms = history_range(start, end, max_lists)
    rows = conn.execute(
        load_sql("query/top_ads_history"),
        {
            "minutes": series.window_minutes,
            "filter_key": filter_key(series.query_filter),
            "start": from_ms(start_ms),
            "end": from_ms(end_ms),
            "limit": limit,
            "all_revisions": all_revisions,
        },
    ).fetchall()
    lists: dict[tuple[int, int], list[RankedAd]] = {}
    for end_ms_, revision, rank, ad_id, clicks in rows:
        ads = lists.setdefault((end_ms_, revision), [])
        if rank is not None:
            ads.append(RankedAd(rank, ad_id, clicks))
    return [
        TopList(series.window_minutes, series.query_filter, end_, revision, ads)
        for (end_, revision), ads in lists.items()
    ]
