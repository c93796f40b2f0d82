"""The GraphQL schema: adClicks, adsClicks, topAds, topAdsHistory, the topAds subscription
and the admin's retention and ingestStatus fields.

Built per configuration: the ClickFilter input has one field per filterable dimension
(``ADCLICK_QUERY_DIMENSIONS`` and the dimension sets). graphql/schema.graphql is this
schema with the default configuration; a test keeps the two equal. The types are in
api/types.py, the resolvers in api/resolvers.py.
"""

import types
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, TypeVar

import strawberry
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, ValidationCache
from strawberry.extensions.max_aliases import create_validator as aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as query_depth_rule
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import create_type

from adclick.api import resolvers
from adclick.api.errors import limit_rule
from adclick.api.extensions import AdclickSchema, CachedParser, RequestBudgets
from adclick.api.metrics import RequestMetrics
from adclick.api.trusted_documents import TrustedDocuments
from adclick.api.types import LONG_SCALAR, Long
from adclick.resources import OPERATIONS_DIR
from adclick.settings import Settings
from graphql import ASTValidationRule

Resolver = TypeVar("Resolver", bound=Callable[..., Any])


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


def typed_filter(resolver: Resolver, click_filter: type) -> Resolver:
    """``resolver`` with its ``filter`` argument typed as this configuration's ClickFilter.

    Strawberry reads an argument's GraphQL type from the resolver's annotations, and the
    ClickFilter type exists only once the configuration is known: the field gets a copy of
    the function (same code, defaults and module) whose annotations name it.
    """
    typed = types.FunctionType(
        resolver.__code__,
        resolver.__globals__,
        resolver.__name__,
        resolver.__defaults__,
        resolver.__closure__,
    )
    typed.__kwdefaults__ = resolver.__kwdefaults__
    typed.__doc__ = resolver.__doc__
    typed.__annotations__ = {
        **resolver.__annotations__,
        "filter": Annotated[Any, strawberry.argument(graphql_type=click_filter | None)],
    }
    return typed  # type: ignore[return-value]


def build_schema(settings: Settings) -> strawberry.Schema:
    """The schema for ``settings``."""
    click_filter = _filter_type(settings.filter_dimensions)
    return AdclickSchema(
        query=_query_type(settings, click_filter),
        mutation=_mutation_type(),
        subscription=_subscription_type(click_filter),
        config=StrawberryConfig(scalar_map={Long: LONG_SCALAR}),
        extensions=_extensions(settings),
    )


def _query_type(settings: Settings, click_filter: type) -> type:
    return create_type(
        "Query",
        [
            strawberry.field(
                typed_filter(resolvers.ad_clicks, click_filter),
                permission_classes=[resolvers.CanRead],
                description="Total clicks and the per-minute (or per-hour) series of one ad.",
            ),
            strawberry.field(
                typed_filter(resolvers.ads_clicks, click_filter),
                permission_classes=[resolvers.CanRead],
                description=f"Total clicks and series of several ads over one window (at "
                f"most {settings.api_max_batch_ads:,} ads): a dashboard's latest counts of "
                "all its ads in one request, answered together.",
            ),
            strawberry.field(
                typed_filter(resolvers.top_ads, click_filter),
                permission_classes=[resolvers.CanRead],
                description=f"The most-clicked ads of a window (limit at most "
                f"{settings.api_max_limit}).",
            ),
            strawberry.field(
                typed_filter(resolvers.top_ads_history, click_filter),
                permission_classes=[resolvers.CanRead],
                description="The minute closer's stored lists whose window ends in "
                "[from, to): the current revision of each minute, or all revisions.",
            ),
            strawberry.field(
                resolvers.retention_policies,
                permission_classes=[resolvers.IsAdmin],
                description="Every relation's retention policy (admin).",
            ),
            strawberry.field(
                resolvers.ingest_status,
                permission_classes=[resolvers.IsAdmin],
                description="Ingest progress per partition (admin).",
            ),
        ],
    )


def _mutation_type() -> type:
    return create_type(
        "Mutation",
        [
            strawberry.mutation(
                resolvers.set_retention,
                permission_classes=[resolvers.IsAdmin],
                description="Change a relation's retention (admin); `adclick maintain` "
                "applies it. hot/cold: ISO-8601 durations, null for forever; one left out "
                "stays as it is.",
            )
        ],
    )


def _subscription_type(click_filter: type) -> type:
    return create_type(
        "Subscription",
        [
            strawberry.subscription(
                typed_filter(resolvers.top_ads_feed, click_filter),
                name="topAds",
                permission_classes=[resolvers.CanRead],
                description="Each list the minute closer publishes for this window and "
                "filter, new minutes and revisions alike, as it is published.",
            )
        ],
    )


def _extensions(settings: Settings) -> list[Any]:
    """Strawberry's extensions for every operation, configured by ``settings``."""
    limit_rules: list[type[ASTValidationRule]] = [
        limit_rule(query_depth_rule(settings.api_max_depth, should_ignore=None)),
        limit_rule(aliases_rule(settings.api_max_aliases)),
    ]
    if settings.api_trusted_documents_only:
        limit_rules.append(TrustedDocuments.load(OPERATIONS_DIR).rule())
    return [
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
    ]
