"""The GraphQL schema's types, and their making from the query service's answers.

No ``from __future__ import annotations`` here: strawberry reads these annotations at
runtime.
"""

from datetime import datetime, timedelta
from typing import NewType

import strawberry

from adclick.lifecycle.policies import Policy, iso_duration
from adclick.query import filters, service
from adclick.query.filters import Filter
from adclick.query.window import from_ms
from adclick.top_lists.wire import TopList

Long = NewType("Long", int)
LONG_SCALAR = strawberry.scalar(
    name="Long",
    description="A 64-bit integer (click counts), serialised as a JSON number.",
    serialize=int,
    parse_value=int,
)


# The domain's enums are GraphQL's (defined once, in query/): registered with strawberry.
strawberry.enum(filters.Source, description="Where an answer was read from.")
strawberry.enum(service.Granularity, description="Bucket size of an adClicks series.")
Source = filters.Source
Granularity = service.Granularity


@strawberry.input(
    description="Either lastMinutes (the M most recent complete minutes of stream time) "
    "or from and to (UTC, whole minutes, half-open [from, to))."
)
class WindowInput:
    last_minutes: int | None = None
    from_: datetime | None = strawberry.field(name="from", default=None)
    to: datetime | None = None


@strawberry.type(description="The window an answer covers.")
class Window:
    from_: datetime = strawberry.field(name="from")
    to: datetime
    minutes: int
    complete: bool = strawberry.field(
        description="True when the watermark has passed the window's end: later events "
        "can no longer change the answer."
    )
    watermark: datetime | None = strawberry.field(
        description="The global watermark (null before any event)."
    )
    stream_time: datetime = strawberry.field(
        description="The newest event time ingested when the answer was read."
    )


@strawberry.type(description="A filter condition as applied: any of the values.")
class FilterCondition:
    dimension: str
    values: list[str]


@strawberry.type
class ClickBucket:
    start: datetime
    clicks: Long


@strawberry.type(description="Clicks of one ad over a window.")
class AdClicks:
    ad_id: str
    clicks: Long
    granularity: Granularity
    series: list[ClickBucket] = strawberry.field(
        description="Every bucket of the window, zeros included. Hour buckets at the "
        "window's edges count only the minutes inside it."
    )
    window: Window
    filter: list[FilterCondition]
    source: Source


def _ad_series(root: "AdTotal") -> list[ClickBucket]:
    return [
        ClickBucket(start=s, clicks=Long(c))
        for s, c in zip(root.bucket_starts, root.bucket_clicks, strict=True)
    ]


@strawberry.type(description="Clicks of one ad in an adsClicks answer.")
class AdTotal:
    ad_id: str
    clicks: Long
    bucket_starts: strawberry.Private[list[datetime]]
    bucket_clicks: strawberry.Private[list[int]]
    series: list[ClickBucket] = strawberry.field(
        resolver=_ad_series,
        description="Every bucket of the window, zeros included (made only when asked for).",
    )


def _ads_of(root: "AdsClicks") -> list[AdTotal]:
    return [
        AdTotal(ad_id=a, clicks=Long(c), bucket_starts=root.bucket_starts, bucket_clicks=row)
        for a, c, row in zip(root.ad_ids, root.clicks, root.bucket_rows, strict=True)
    ]


@strawberry.type(description="Clicks of several ads over one window, in the order asked.")
class AdsClicks:
    ads: list[AdTotal] = strawberry.field(
        resolver=_ads_of, description="Each ad asked for, in order (made only when asked for)."
    )
    granularity: Granularity
    window: Window
    filter: list[FilterCondition]
    source: Source
    # Columns: GraphQL completes an object per ad of ``ads`` (about 17 us of the server's
    # CPU per ad, most of a 1,000-ad answer's); a list of scalars costs a fraction.
    ad_ids: list[str] = strawberry.field(
        description="The ads asked for, in order (repeats kept): ads' adId, as one list."
    )
    clicks: list[Long] = strawberry.field(
        description="Each ad's clicks over the window, in the order of adIds: ads' clicks "
        "as one list, far cheaper for the server to send for many ads."
    )
    bucket_starts: strawberry.Private[list[datetime]]
    bucket_rows: strawberry.Private[list[list[int]]]


@strawberry.type
class RankedAd:
    rank: int
    ad_id: str
    clicks: Long


@strawberry.type(description="Ads ranked by clicks over a window; equal counts by ad id.")
class TopAds:
    ads: list[RankedAd]
    window: Window
    filter: list[FilterCondition]
    source: Source


@strawberry.type(description="A top list the minute closer stored and published.")
class TopAdsList:
    window_minutes: int
    window_start: datetime
    window_end: datetime
    filter: list[FilterCondition]
    revision: int = strawberry.field(
        description="1 when the minute closed; each late change that alters the list adds one."
    )
    ads: list[RankedAd]


def top_list_of(top: TopList, limit: int) -> TopAdsList:
    return TopAdsList(
        window_minutes=top.window_minutes,
        window_start=from_ms(top.window.start_ms),
        window_end=from_ms(top.window_end_ms),
        filter=conditions_of(top.query_filter),
        revision=top.revision,
        ads=[RankedAd(rank=a.rank, ad_id=a.ad_id, clicks=Long(a.clicks)) for a in top.ads[:limit]],
    )


@strawberry.type(
    description="How long a relation stays hot (in the database), then cold (Parquet). "
    "Durations are ISO 8601 (P7D); null is forever; cold P0D means dropped, not exported."
)
class RetentionPolicy:
    relation: str
    hot: str | None
    cold: str | None
    updated_at: datetime | None
    updated_by: str


def policy_of(policy: Policy) -> RetentionPolicy:
    return RetentionPolicy(
        relation=policy.relation,
        hot=_iso_duration(policy.hot),
        cold=_iso_duration(policy.cold),
        updated_at=policy.updated_at,
        updated_by=policy.updated_by,
    )


def _iso_duration(value: timedelta | None) -> str | None:
    return None if value is None else iso_duration(value)


@strawberry.type(description="Ingest progress of one partition of the clicks topic.")
class PartitionStatus:
    partition: int
    next_offset: Long | None
    newest_event_time: datetime | None
    watermark: datetime | None


def window_of(answer: service.Answer) -> Window:
    clock = answer.clock
    return Window(
        from_=from_ms(answer.window.start_ms),
        to=from_ms(answer.window.end_ms),
        minutes=answer.window.minutes,
        complete=answer.complete,
        watermark=from_ms(clock.watermark_ms) if clock.watermark_ms is not None else None,
        stream_time=from_ms(clock.now_ms),
    )


def conditions_of(query_filter: Filter) -> list[FilterCondition]:
    return [FilterCondition(dimension=d, values=list(v)) for d, v in query_filter.conditions]
