"""Machine-readable codes on every GraphQL error (``extensions.code``), HTTP and WebSocket."""

from __future__ import annotations

import logging
from enum import StrEnum

from adclick.lifecycle.policies import PolicyError
from adclick.query.errors import QueryError
from graphql import GraphQLError

log = logging.getLogger(__name__)


class ApiErrorCode(StrEnum):
    """Codes the API adds to those of the queries (adclick.query.errors.ErrorCode)."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    BAD_POLICY = "BAD_POLICY"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


class AuthError(GraphQLError):
    """Raised by permission checks, with its code already set."""

    def __init__(self, code: ApiErrorCode, message: str) -> None:
        super().__init__(message, extensions={"code": code.value})


# What strawberry's depth, alias and token limiters say; they carry no code of their own.
_COMPLEXITY_MESSAGES = ("exceeds maximum operation depth", "aliases found", "more than")


def add_code(error: GraphQLError) -> None:
    """Give ``error`` its code; hide the text of errors nobody raised on purpose."""
    extensions = dict(error.extensions or {})
    original = error.original_error
    if "code" in extensions:
        pass
    elif isinstance(original, QueryError):
        extensions["code"] = original.code.value
    elif isinstance(original, PolicyError):
        extensions["code"] = ApiErrorCode.BAD_POLICY.value
    elif original is None or isinstance(original, GraphQLError):
        # Parsing, validation and variable coercion: the request itself is wrong.
        complex_ = any(m in error.message for m in _COMPLEXITY_MESSAGES)
        extensions["code"] = (
            ApiErrorCode.QUERY_TOO_COMPLEX if complex_ else ApiErrorCode.GRAPHQL_VALIDATION_FAILED
        ).value
    else:
        # A bug or an outage: log it whole, tell the client only that it happened.
        log.error("query failed", exc_info=original)
        error.message = "internal error; the server log has the details"
        extensions["code"] = ApiErrorCode.INTERNAL_SERVER_ERROR.value
    error.extensions = extensions
