"""The GraphQL fields' resolvers, and who may call them.

Module-level functions: what a request needs comes from its context (the query service,
the settings, the principal). Their ``filter`` argument is typed per configuration: the
ClickFilter input has one field per filterable dimension, and api/schema.py gives each
resolver that type when it builds the schema (``ClickFilterArgument`` marks the argument).

No ``from __future__ import annotations`` here: strawberry reads these annotations at
runtime.
"""

import dataclasses
from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import strawberry
from strawberry.permission import BasePermission
from strawberry.types import Info

from adclick.api.admin import KEEP
from adclick.api.context import Context
from adclick.api.errors import ApiErrorCode, AuthError
from adclick.api.extensions import in_thread, request_budget
from adclick.api.metrics import AD_READS, SUBSCRIPTIONS, TOP_ADS_RANKED_BY
from adclick.api.types import (
    AdClicks,
    AdsClicks,
    ClickBucket,
    Granularity,
    Long,
    PartitionStatus,
    RankedAd,
    RetentionPolicy,
    TopAds,
    TopAdsList,
    WindowInput,
    conditions_of,
    policy_of,
    top_list_of,
    window_of,
)
from adclick.query import service
from adclick.query.window import from_ms
from adclick.settings import Role
from adclick.top_lists.history import list_series

AnswerT = TypeVar("AnswerT", service.AdClicks, service.AdsClicks)

# The filter argument of every resolver that has one; its GraphQL type is set per
# configuration (api/schema.py, ``typed_filter``).
ClickFilterArgument = Any


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


def _answered_by(answer: service.AdClicks | service.AdsClicks) -> str:
    return "window_index" if answer.from_index else "sql"


def _window_args(window: WindowInput) -> service.WindowArgs:
    return service.WindowArgs(window.last_minutes, window.from_, window.to)


def _filter_args(click_filter: Any) -> dict[str, list[str] | None]:
    return {} if click_filter is None else dict(vars(click_filter))


async def _read(
    info: Info[Context, None],
    in_memory: Callable[..., AnswerT | None],
    anywhere: Callable[..., AnswerT],
    *arguments: Any,
) -> AnswerT:
    """An ad read's answer: from memory on the event loop when the window index holds it
    (a thread per answer cost more than the answer), else in a thread (SQL)."""
    answer = in_memory(*arguments)
    if answer is None:
        answer = await in_thread(anywhere, *arguments)
    info.context.cacheability.note(answer.complete, from_memory=answer.from_index)
    return answer


async def ad_clicks(
    info: Info[Context, None],
    ad_id: str,
    window: WindowInput,
    filter: ClickFilterArgument = None,
    granularity: Granularity = Granularity.MINUTE,
) -> AdClicks:
    queries = info.context.queries
    arguments = (
        ad_id,
        _window_args(window),
        _filter_args(filter),
        granularity,
        request_budget(info.context.settings),
    )
    answer = await _read(info, queries.ad_clicks_in_memory, queries.ad_clicks, *arguments)
    AD_READS.labels(_answered_by(answer)).inc()
    return AdClicks(
        ad_id=answer.ad_id,
        clicks=Long(answer.clicks),
        granularity=granularity,
        series=[ClickBucket(start=from_ms(s), clicks=Long(c)) for s, c in answer.series],
        window=window_of(answer),
        filter=conditions_of(answer.query_filter),
        source=answer.source,
    )


async def ads_clicks(
    info: Info[Context, None],
    ad_ids: list[str],
    window: WindowInput,
    filter: ClickFilterArgument = None,
    granularity: Granularity = Granularity.MINUTE,
) -> AdsClicks:
    queries = info.context.queries
    arguments = (
        ad_ids,
        _window_args(window),
        _filter_args(filter),
        granularity,
        request_budget(info.context.settings),
    )
    answer = await _read(info, queries.ads_clicks_in_memory, queries.ads_clicks, *arguments)
    AD_READS.labels(_answered_by(answer)).inc(len(ad_ids))
    return AdsClicks(
        granularity=granularity,
        window=window_of(answer),
        filter=conditions_of(answer.query_filter),
        source=answer.source,
        ad_ids=answer.ad_ids,
        clicks=answer.clicks.tolist(),
        bucket_starts=[from_ms(s) for s in answer.bucket_starts],
        bucket_rows=answer.series.tolist(),
    )


async def top_ads(
    info: Info[Context, None],
    window: WindowInput,
    limit: int = 100,
    filter: ClickFilterArgument = None,
) -> TopAds:
    answer = await in_thread(
        info.context.queries.top_ads,
        limit,
        _window_args(window),
        _filter_args(filter),
        request_budget(info.context.settings),
    )
    TOP_ADS_RANKED_BY.labels(answer.ranked_by.value).inc()
    from_memory = answer.ranked_by is not service.RankedBy.SQL
    info.context.cacheability.note(answer.complete, from_memory=from_memory)
    return TopAds(
        ads=[RankedAd(rank=a.rank, ad_id=a.ad_id, clicks=Long(a.clicks)) for a in answer.ads],
        window=window_of(answer),
        filter=conditions_of(answer.query_filter),
        source=answer.source,
    )


async def top_ads_history(
    info: Info[Context, None],
    window_minutes: int,
    from_: Annotated[datetime, strawberry.argument(name="from")],
    to: datetime,
    filter: ClickFilterArgument = None,
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
        request_budget(info.context.settings),
    )
    return [top_list_of(top, limit) for top in lists]


async def top_ads_feed(
    info: Info[Context, None],
    window_minutes: int,
    limit: int = 100,
    filter: ClickFilterArgument = None,
) -> AsyncGenerator[TopAdsList, None]:
    request_budget(info.context.settings).charge_filter(_filter_args(filter))
    series = list_series(info.context.settings, window_minutes, _filter_args(filter))
    info.context.queries.check_list_limit(limit)
    wanted = (series.window_minutes, series.query_filter)
    # The context lives as long as the WebSocket connection: the per-connection cap's key.
    async with info.context.feed.subscribe(wanted, connection=info.context) as subscription:
        SUBSCRIPTIONS.inc()
        try:
            while True:
                yield top_list_of(await subscription.next(), limit)
        finally:
            SUBSCRIPTIONS.dec()


async def retention_policies(info: Info[Context, None]) -> list[RetentionPolicy]:
    info.context.cacheability.note(False)
    policies = await in_thread(info.context.admin.policies)
    return [policy_of(p) for p in policies]


async def set_retention(
    info: Info[Context, None],
    relation: str,
    hot: str | None = strawberry.UNSET,
    cold: str | None = strawberry.UNSET,
) -> RetentionPolicy:
    info.context.cacheability.note(False)
    policy = await in_thread(
        info.context.admin.set_retention,
        relation,
        KEEP if hot is strawberry.UNSET else hot,
        KEEP if cold is strawberry.UNSET else cold,
        info.context.principal.name,
    )
    return policy_of(policy)


async def ingest_status(info: Info[Context, None]) -> list[PartitionStatus]:
    info.context.cacheability.note(False)
    rows = await in_thread(info.context.queries.ingest_status)
    return [PartitionStatus(**dict(zip(_STATUS_FIELDS, row, strict=True))) for row in rows]


_STATUS_FIELDS = [f.name for f in dataclasses.fields(PartitionStatus)]
