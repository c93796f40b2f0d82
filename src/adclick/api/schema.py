"""The GraphQL schema: adClicks, topAds, topAdsHistory, the topAds subscription and the
admin's ingestStatus.

Built per configuration: the ClickFilter input has one field per filterable dimension
(``ADCLICK_QUERY_DIMENSIONS`` and the dimension sets). graphql/schema.graphql is this
schema with the default configuration; a test keeps the two equal.

No ``from __future__ import annotations`` here: strawberry reads the annotations of the
types built inside build_schema at runtime.
"""

import dataclasses
from collections.abc import AsyncGenerator
from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Any, NewType

import strawberry
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, ValidationCache
from strawberry.extensions.max_aliases import create_validator as aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as query_depth_rule
from strawberry.permission import BasePermission
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import create_type
from strawberry.types import Info

from adclick.api.context import Context
from adclick.api.errors import ApiErrorCode, AuthError, limit_rule
from adclick.api.extensions import (
    AdclickSchema,
    CachedParser,
    RequestBudgets,
    in_thread,
    request_budget,
)
from adclick.api.metrics import AD_READS, SUBSCRIPTIONS, TOP_ADS_RANKED_BY, RequestMetrics
from adclick.api.trusted_documents import TrustedDocuments
from adclick.lifecycle.policies import Policy, iso_duration
from adclick.query import filters, service
from adclick.query.filters import Filter
from adclick.query.window import from_ms
from adclick.resources import OPERATIONS_DIR
from adclick.settings import Role, Settings
from adclick.top_lists.history import list_series
from adclick.top_lists.wire import TopList
from graphql import ASTValidationRule

Long = NewType("Long", int)
_LONG = strawberry.scalar(
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


@strawberry.type(description="Clicks of several ads over one window, in the order asked.")
class AdsClicks:
    ads: list[AdTotal]
    granularity: Granularity
    window: Window
    filter: list[FilterCondition]
    source: Source


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


def _top_list(top: TopList, limit: int) -> TopAdsList:
    return TopAdsList(
        window_minutes=top.window_minutes,
        window_start=from_ms(top.window.start_ms),
        window_end=from_ms(top.window_end_ms),
        filter=_conditions(top.query_filter),
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


def _policy(policy: Policy) -> RetentionPolicy:
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


class CanRead(BasePermission):
    def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        principal = info.context.principal
        if not principal.may(Role.READER):
            raise AuthError(ApiErrorCode.UNAUTHENTICATED, principal.problem)
        return True


class IsAdmin(BasePermission):
    def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        principal = info.context.principal
        if principal.role is None:
            raise AuthError(ApiErrorCode.UNAUTHENTICATED, principal.problem)
        if not principal.may(Role.ADMIN):
            raise AuthError(ApiErrorCode.FORBIDDEN, "this needs the admin role")
        return True


def _window(answer: service.Answer) -> Window:
    clock = answer.clock
    return Window(
        from_=from_ms(answer.window.start_ms),
        to=from_ms(answer.window.end_ms),
        minutes=answer.window.minutes,
        complete=answer.complete,
        watermark=from_ms(clock.watermark_ms) if clock.watermark_ms is not None else None,
        stream_time=from_ms(clock.now_ms),
    )


def _conditions(query_filter: Filter) -> list[FilterCondition]:
    return [FilterCondition(dimension=d, values=list(v)) for d, v in query_filter.conditions]


def _answered_by(answer: service.AdClicks | service.AdsClicks) -> str:
    return "window_index" if answer.from_index else "sql"


def _window_args(window: WindowInput) -> service.WindowArgs:
    return service.WindowArgs(window.last_minutes, window.from_, window.to)


def _filter_args(click_filter: Any) -> dict[str, list[str] | None]:
    return {} if click_filter is None else dict(vars(click_filter))


def _filter_type(dimensions: list[str]) -> type:
    """The ClickFilter input: one optional list of values per filterable dimension."""
    fields = []
    for dimension in dimensions:
        field = strawberry.field(graphql_type=list[str] | None, default=None)
        field.python_name = dimension  # named as a Python attribute: camelCased in GraphQL
        fields.append(field)
    return create_type(
        "ClickFilter",
        fields,
        is_input=True,
        description="Clicks whose attribute is any of the listed values; conditions on "
        "several attributes must all hold.",
    )


def build_schema(settings: Settings) -> strawberry.Schema:
    """The schema for ``settings``."""
    ClickFilter = _filter_type(settings.filter_dimensions)

    async def ad_clicks(
        info: Info[Context, None],
        ad_id: str,
        window: WindowInput,
        filter: Annotated[Any, strawberry.argument(graphql_type=ClickFilter | None)] = None,
        granularity: Granularity = Granularity.MINUTE,
    ) -> AdClicks:
        answer = await in_thread(
            info.context.queries.ad_clicks,
            ad_id,
            _window_args(window),
            _filter_args(filter),
            granularity,
            request_budget(settings),
        )
        AD_READS.labels(_answered_by(answer)).inc()
        info.context.cacheability.note(answer.complete)
        return AdClicks(
            ad_id=answer.ad_id,
            clicks=Long(answer.clicks),
            granularity=granularity,
            series=[ClickBucket(start=from_ms(s), clicks=Long(c)) for s, c in answer.series],
            window=_window(answer),
            filter=_conditions(answer.query_filter),
            source=answer.source,
        )

    async def ads_clicks(
        info: Info[Context, None],
        ad_ids: list[str],
        window: WindowInput,
        filter: Annotated[Any, strawberry.argument(graphql_type=ClickFilter | None)] = None,
        granularity: Granularity = Granularity.MINUTE,
    ) -> AdsClicks:
        answer = await in_thread(
            info.context.queries.ads_clicks,
            ad_ids,
            _window_args(window),
            _filter_args(filter),
            granularity,
            request_budget(settings),
        )
        AD_READS.labels(_answered_by(answer)).inc(len(ad_ids))
        info.context.cacheability.note(answer.complete)
        starts = [from_ms(s) for s in answer.bucket_starts]
        return AdsClicks(
            ads=[
                AdTotal(ad_id=a, clicks=Long(c), bucket_starts=starts, bucket_clicks=row)
                for a, c, row in zip(
                    answer.ad_ids, answer.clicks.tolist(), answer.series.tolist(), strict=True
                )
            ],
            granularity=granularity,
            window=_window(answer),
            filter=_conditions(answer.query_filter),
            source=answer.source,
        )

    async def top_ads(
        info: Info[Context, None],
        window: WindowInput,
        limit: int = 100,
        filter: Annotated[Any, strawberry.argument(graphql_type=ClickFilter | None)] = None,
    ) -> TopAds:
        answer = await in_thread(
            info.context.queries.top_ads,
            limit,
            _window_args(window),
            _filter_args(filter),
            request_budget(settings),
        )
        TOP_ADS_RANKED_BY.labels(answer.ranked_by.value).inc()
        info.context.cacheability.note(answer.complete)
        return TopAds(
            ads=[RankedAd(rank=a.rank, ad_id=a.ad_id, clicks=Long(a.clicks)) for a in answer.ads],
            window=_window(answer),
            filter=_conditions(answer.query_filter),
            source=answer.source,
        )

    async def top_ads_history(
        info: Info[Context, None],
        window_minutes: int,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
        filter: Annotated[Any, strawberry.argument(graphql_type=ClickFilter | None)] = None,
        limit: int = 100,
        all_revisions: bool = False,
    ) -> list[TopAdsList]:
        info.context.cacheability.note(False)  # a stored list may get a new revision
        lists = await in_thread(
            info.context.queries.top_list_history,
            window_minutes,
            from_,
            to,
            _filter_args(filter),
            limit,
            all_revisions,
            request_budget(settings),
        )
        return [_top_list(top, limit) for top in lists]

    async def top_ads_feed(
        info: Info[Context, None],
        window_minutes: int,
        limit: int = 100,
        filter: Annotated[Any, strawberry.argument(graphql_type=ClickFilter | None)] = None,
    ) -> AsyncGenerator[TopAdsList, None]:
        request_budget(settings).charge_filter(_filter_args(filter))
        series = list_series(settings, window_minutes, _filter_args(filter))
        info.context.queries.check_list_limit(limit)
        async with info.context.feed.subscribe() as published:
            SUBSCRIPTIONS.inc()
            try:
                while True:
                    top = await published.get()
                    wanted = (series.window_minutes, series.query_filter)
                    if (top.window_minutes, top.query_filter) == wanted:
                        yield _top_list(top, limit)
            finally:
                SUBSCRIPTIONS.dec()

    async def retention_policies(info: Info[Context, None]) -> list[RetentionPolicy]:
        info.context.cacheability.note(False)
        policies = await in_thread(info.context.admin.policies)
        return [_policy(p) for p in policies]

    async def set_retention(
        info: Info[Context, None], relation: str, hot: str | None, cold: str | None
    ) -> RetentionPolicy:
        info.context.cacheability.note(False)
        policy = await in_thread(
            info.context.admin.set_retention, relation, hot, cold, info.context.principal.name
        )
        return _policy(policy)

    async def ingest_status(info: Info[Context, None]) -> list[PartitionStatus]:
        info.context.cacheability.note(False)
        rows = await in_thread(info.context.queries.ingest_status)
        return [PartitionStatus(**dict(zip(_STATUS_FIELDS, row, strict=True))) for row in rows]

    query = create_type(
        "Query",
        [
            strawberry.field(
                ad_clicks,
                permission_classes=[CanRead],
                description="Total clicks and the per-minute (or per-hour) series of one ad.",
            ),
            strawberry.field(
                ads_clicks,
                permission_classes=[CanRead],
                description=f"Total clicks and series of several ads over one window (at "
                f"most {settings.api_max_batch_ads:,} ads): a dashboard's latest counts of "
                "all its ads in one request, answered together.",
            ),
            strawberry.field(
                top_ads,
                permission_classes=[CanRead],
                description=f"The most-clicked ads of a window (limit at most "
                f"{settings.api_max_limit}).",
            ),
            strawberry.field(
                top_ads_history,
                permission_classes=[CanRead],
                description="The minute closer's stored lists whose window ends in "
                "[from, to): the current revision of each minute, or all revisions.",
            ),
            strawberry.field(
                retention_policies,
                permission_classes=[IsAdmin],
                description="Every relation's retention policy (admin).",
            ),
            strawberry.field(
                ingest_status,
                permission_classes=[IsAdmin],
                description="Ingest progress per partition (admin).",
            ),
        ],
    )
    mutation = create_type(
        "Mutation",
        [
            strawberry.mutation(
                set_retention,
                permission_classes=[IsAdmin],
                description="Change a relation's retention (admin); `adclick maintain` "
                "applies it. hot/cold: ISO-8601 durations, null for forever.",
            )
        ],
    )
    subscription = create_type(
        "Subscription",
        [
            strawberry.subscription(
                top_ads_feed,
                name="topAds",
                permission_classes=[CanRead],
                description="Each list the minute closer publishes for this window and "
                "filter, new minutes and revisions alike, as it is published.",
            )
        ],
    )
    limit_rules: list[type[ASTValidationRule]] = [
        limit_rule(query_depth_rule(settings.api_max_depth, should_ignore=None)),
        limit_rule(aliases_rule(settings.api_max_aliases)),
    ]
    if settings.api_trusted_documents_only:
        limit_rules.append(TrustedDocuments.load(OPERATIONS_DIR).rule())
    return AdclickSchema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        config=StrawberryConfig(scalar_map={Long: _LONG}),
        extensions=[
            # Frontends send the same few documents again and again: parse and validate
            # (depth, alias and token limits included) once per distinct document.
            partial(CachedParser, maxsize=1000),
            partial(ValidationCache, maxsize=1000),
            RequestMetrics,
            partial(RequestBudgets, settings=settings),
            # The limit rules are classes made once: QueryDepthLimiter and
            # MaxAliasesLimiter make a new class per request, which the validation
            # cache's key includes, so every request was validated again (half of an
            # adClicks request's time).
            partial(AddValidationRules, limit_rules),
            partial(MaxTokensLimiter, max_token_count=settings.api_max_tokens),
        ],
    )


_STATUS_FIELDS = [f.name for f in dataclasses.fields(PartitionStatus)]
