"""The response's media type, as the GraphQL-over-HTTP specification asks.

A client that accepts ``application/graphql-response+json`` (and prefers it at least as
much as ``application/json``) gets that media type, and with it status codes that say
what happened: a request error -- a document that does not parse or validate, variables
that do not coerce, a request refused before GraphQL runs -- is a 4xx without a ``data``
entry; an answer GraphQL executed is a 200 even when some of its fields failed. Clients
that accept only ``application/json`` (or say nothing) get it as before: 200 for any
GraphQL result.
"""

from __future__ import annotations

from typing import Any

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


def prefers_graphql_response(accept: str | None) -> bool:
    """Whether an Accept header asks for application/graphql-response+json first."""
    if not accept:
        return False
    quality = {GRAPHQL_RESPONSE: 0.0, JSON: 0.0}
    for part in accept.split(","):
        media_type, *parameters = (p.strip() for p in part.split(";"))
        if media_type.lower() not in quality:
            continue
        q = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[media_type.lower()] = max(quality[media_type.lower()], q)
    return quality[GRAPHQL_RESPONSE] > 0 and quality[GRAPHQL_RESPONSE] >= quality[JSON]


def is_request_error(response: dict[str, Any]) -> bool:
    """Whether a GraphQL response reports a request error: no data, and no error at a
    path (a field that failed while executing has one)."""
    errors = response.get("errors") or []
    return response.get("data") is None and bool(errors) and all("path" not in e for e in errors)
