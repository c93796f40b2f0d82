"""The API's own Prometheus metrics: requests by operation and outcome, and their latency.

The label is the operation's root fields (e.g. ``topAds``), which the schema bounds: a
field the schema does not have is ``unknown``, a document that does not parse
``invalid``. Client-chosen names (operation names, invented fields) would let any client,
even an anonymous one, grow the metric without limit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import cache

from prometheus_client import Counter, Gauge, Histogram
from strawberry.extensions import SchemaExtension

from adclick.api.context import Context
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)

UNKNOWN = "unknown"
INVALID = "invalid"
INTROSPECTION = "introspection"
_META_FIELDS = frozenset({"__typename", "__schema", "__type"})

REQUESTS = Counter(
    "adclick_api_requests_total",
    "GraphQL operations answered, by root fields and outcome (ok or error).",
    ["operation", "outcome"],
)
REQUEST_SECONDS = Histogram(
    "adclick_api_request_duration_seconds",
    "Time to answer a GraphQL operation, by root fields.",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

TOP_ADS_RANKED_BY = Counter(
    "adclick_api_top_ads_total",
    "topAds answers by what ranked them: window_index (recent minutes in memory), "
    "hour_index (longer unfiltered windows, hours in memory) or sql.",
    ["ranked_by"],
)
AD_READS = Counter(
    "adclick_api_ad_reads_total",
    "Ads read by adClicks and adsClicks, by what answered: window_index (recent minutes "
    "in memory) or sql.",
    ["answered_by"],
)
HOUR_INDEX_HOURS = Gauge(
    "adclick_api_hour_index_hours",
    "Hours before the window index held in memory, and how many are wanted.",
    ["state"],
    multiprocess_mode="liveall",
)

SUBSCRIPTIONS = Gauge(
    "adclick_api_subscriptions",
    "Open GraphQL subscriptions to published top lists.",
    multiprocess_mode="livesum",
)


class RequestMetrics(SchemaExtension):
    """Counts every operation and times it, errors before execution included."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:  # a syntax error leaves the operation by an exception
            context = self.execution_context
            operation = operation_label(
                context.schema._schema, context.graphql_document, context.operation_name
            )
            failed = bool(context.result and context.result.errors) or bool(
                context.pre_execution_errors
            )
            count_request(operation, failed=failed, started=started)
            if isinstance(context.context, Context):  # a kept answer is counted alike
                context.context.operation = operation


def count_request(operation: str, *, failed: bool, started: float) -> None:
    """Count one answered operation, begun at ``started`` (time.perf_counter())."""
    REQUESTS.labels(operation, "error" if failed else "ok").inc()
    REQUEST_SECONDS.labels(operation).observe(time.perf_counter() - started)


def operation_label(
    schema: GraphQLSchema, document: DocumentNode | None, operation_name: str | None
) -> str:
    """The root fields an operation selects, joined with '+', or a fixed word: a field the
    schema lacks makes it ``unknown``, no parsed document ``invalid``; fields such as
    ``__typename`` beside others are left out, alone they are ``introspection``."""
    if document is None:
        return INVALID
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    names: set[str] = set()
    for operation in operations:
        known = _root_fields(schema, operation.operation)
        selected = _field_names(operation.selection_set, fragments, set())
        if not selected <= known | _META_FIELDS:
            return UNKNOWN
        names |= selected
    if not names:
        return INVALID
    return "+".join(sorted(names - _META_FIELDS)) or INTROSPECTION


@cache
def _root_fields(schema: GraphQLSchema, kind: OperationType) -> frozenset[str]:
    root = schema.get_root_type(kind)
    return frozenset(root.fields) if root is not None else frozenset()


def _field_names(
    selections: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    seen: set[str],
) -> set[str]:
    """The field names of a selection set, through fragments (each followed once)."""
    names: set[str] = set()
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            names.add(selection.name.value)
        elif isinstance(selection, InlineFragmentNode):
            names |= _field_names(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name not in seen and name in fragments:
                seen.add(name)
                names |= _field_names(fragments[name].selection_set, fragments, seen)
            elif name not in fragments:
                names.add(UNKNOWN)  # an undefined fragment: refused by validation
    return names
