"""Machine-readable codes on every GraphQL error (``extensions.code``), HTTP and WebSocket,
and how each is logged: only errors nobody raised on purpose (bugs, outages) at ERROR with
a traceback; a client's mistake is the client's business, logged at DEBUG.
"""

from __future__ import annotations

import logging
from enum import StrEnum

import psycopg.errors
from psycopg_pool import PoolTimeout
from starlette.responses import JSONResponse
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from adclick.lifecycle.policies import PolicyError
from adclick.query.errors import QueryError
from graphql import GraphQLError, GraphQLSyntaxError

log = logging.getLogger(__name__)


class ApiErrorCode(StrEnum):
    """Codes the API adds to those of the queries (adclick.query.errors.ErrorCode)."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    BAD_POLICY = "BAD_POLICY"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    BAD_REQUEST = "BAD_REQUEST"
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    OPERATION_NOT_ALLOWED = "OPERATION_NOT_ALLOWED"
    DOCUMENT_NOT_TRUSTED = "DOCUMENT_NOT_TRUSTED"
    QUERY_TIMEOUT = "QUERY_TIMEOUT"
    SERVER_BUSY = "SERVER_BUSY"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


class AuthError(GraphQLError):
    """Raised by permission checks, with its code already set."""

    def __init__(self, code: ApiErrorCode, message: str) -> None:
        super().__init__(message, extensions={"code": code.value})


# What strawberry's depth, alias and token limiters say; they carry no code of their own.
_COMPLEXITY_MESSAGES = ("exceeds maximum operation depth", "aliases found", "more than")


def add_code(error: GraphQLError) -> None:
    """Give ``error`` its code and log it; hide the text of errors nobody raised on purpose."""
    extensions = dict(error.extensions or {})
    original = error.original_error
    if "code" in extensions:
        pass
    elif isinstance(original, QueryError):
        extensions["code"] = original.code.value
    elif isinstance(original, PolicyError):
        extensions["code"] = ApiErrorCode.BAD_POLICY.value
    elif isinstance(original, MissingQueryError | CannotGetOperationTypeError):
        # Over WebSocket these come as errors (over HTTP as 400 responses).
        extensions["code"] = ApiErrorCode.BAD_REQUEST.value
    elif isinstance(original, InvalidOperationTypeError):
        extensions["code"] = ApiErrorCode.OPERATION_NOT_ALLOWED.value
    elif isinstance(original, psycopg.errors.QueryCanceled):
        error.message = (
            "the query was cancelled: it ran longer than the API's statement timeout "
            "(ADCLICK_API_STATEMENT_TIMEOUT_S); ask for a shorter window or a filter a "
            "dimension set covers"
        )
        extensions["code"] = ApiErrorCode.QUERY_TIMEOUT.value
    elif isinstance(original, PoolTimeout):
        log.warning("no database connection free in time: %s", original)
        error.message = "the API is busy: no database connection became free; retry later"
        extensions["code"] = ApiErrorCode.SERVER_BUSY.value
    elif original is None or isinstance(original, GraphQLError):
        # Parsing, validation and variable coercion: the request itself is wrong.
        extensions["code"] = _request_error_code(error).value
    else:
        # A bug or an outage: log it whole, tell the client only that it happened.
        log.error("query failed", exc_info=original)
        error.message = "internal error; the server log has the details"
        extensions["code"] = ApiErrorCode.INTERNAL_SERVER_ERROR.value
    error.extensions = extensions
    if extensions["code"] != ApiErrorCode.INTERNAL_SERVER_ERROR.value:
        log.debug("refused (%s): %s", extensions["code"], error.message)


def _request_error_code(error: GraphQLError) -> ApiErrorCode:
    if any(m in error.message for m in _COMPLEXITY_MESSAGES):
        return ApiErrorCode.QUERY_TOO_COMPLEX
    if isinstance(error, GraphQLSyntaxError) or isinstance(
        error.original_error, GraphQLSyntaxError
    ):
        return ApiErrorCode.GRAPHQL_PARSE_FAILED
    return ApiErrorCode.GRAPHQL_VALIDATION_FAILED


def error_response(status_code: int, code: ApiErrorCode, message: str) -> JSONResponse:
    """A refusal before GraphQL execution, shaped like a GraphQL response with one error
    (a request error: no data entry, as the GraphQL specification says)."""
    log.debug("refused (%s, HTTP %d): %s", code.value, status_code, message)
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code.value}}]},
        status_code=status_code,
    )
