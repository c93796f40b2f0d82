"""The API's own Prometheus metrics: requests by operation and outcome, and their latency.

The label is the operation's root fields (e.g. ``topAds``), which the schema bounds;
client-chosen operation names would let any client grow the metric without limit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import Counter, Gauge, Histogram
from strawberry.extensions import SchemaExtension

from graphql import FieldNode, OperationDefinitionNode

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
    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        fields: list[str] = []
        document = context.graphql_document
        for definition in document.definitions if document else ():
            if isinstance(definition, OperationDefinitionNode):
                selections = definition.selection_set.selections
                fields += [s.name.value for s in selections if isinstance(s, FieldNode)]
        operation = "+".join(sorted(set(fields))) or "invalid"
        failed = bool(context.result and context.result.errors) or bool(
            context.pre_execution_errors
        )
        REQUESTS.labels(operation, "error" if failed else "ok").inc()
        REQUEST_SECONDS.labels(operation).observe(time.perf_counter() - started)
