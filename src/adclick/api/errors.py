"""Machine-readable codes on every GraphQL error (``extensions.code``), HTTP and WebSocket,
and how each is logged: only errors nobody raised on purpose (bugs, outages) at ERROR with
a traceback; a client's mistake is the client's business, logged at DEBUG.
"""

from __future__ import annotations

import logging
import re
from enum import StrEnum
from typing import Any

import psycopg.errors
from psycopg_pool import PoolTimeout
from starlette.responses import JSONResponse
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from adclick.lifecycle.policies import PolicyError
from adclick.query.errors import QueryError
from adclick.top_lists.feed import SubscriptionError
from graphql import ASTValidationRule, GraphQLError, GraphQLSyntaxError, ValidationContext

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


# The parser's token limit (MaxTokensLimiter) raises a syntax error: graphql-core's own
# words for it tell it from any other (the depth and alias rules code their errors
# themselves: limit_rule below).
_TOKEN_LIMIT = re.compile(r"Syntax Error: Document contains more than \d+ tokens\.")


class _CodingContext:
    """A validation context whose reported errors get QUERY_TOO_COMPLEX."""

    def __init__(self, context: ValidationContext) -> None:
        self._context = context

    def report_error(self, error: GraphQLError) -> None:
        code = {"code": ApiErrorCode.QUERY_TOO_COMPLEX.value}
        error.extensions = {**(error.extensions or {}), **code}
        self._context.report_error(error)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def limit_rule(rule: type[ASTValidationRule]) -> type[ASTValidationRule]:
    """``rule`` (a query limit: depth, aliases) with QUERY_TOO_COMPLEX on what it reports,
    so the code comes from where the error was made, never from its wording."""

    class CodedLimit(rule):  # type: ignore[valid-type, misc]
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(_CodingContext(context))

    CodedLimit.__name__ = CodedLimit.__qualname__ = f"Coded{rule.__name__}"
    return CodedLimit


def add_code(error: GraphQLError) -> None:
    """Give ``error`` its code and log it; hide the text of errors nobody raised on purpose."""
    extensions = dict(error.extensions or {})
    original = error.original_error
    if "code" in extensions:
        pass
    elif isinstance(original, QueryError | SubscriptionError):
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
    syntax = next(
        (e for e in (error, error.original_error) if isinstance(e, GraphQLSyntaxError)), None
    )
    if syntax is None:
        return ApiErrorCode.GRAPHQL_VALIDATION_FAILED
    if _TOKEN_LIMIT.match(syntax.message):
        return ApiErrorCode.QUERY_TOO_COMPLEX
    return ApiErrorCode.GRAPHQL_PARSE_FAILED


def error_response(status_code: int, code: ApiErrorCode, message: str) -> JSONResponse:
    """A refusal before GraphQL execution, shaped like a GraphQL response with one error
    (a request error: no data entry, as the GraphQL specification says)."""
    log.debug("refused (%s, HTTP %d): %s", code.value, status_code, message)
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code.value}}]},
        status_code=status_code,
    )
