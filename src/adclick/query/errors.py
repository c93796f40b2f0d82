"""Errors of a click query, each with a stable, machine-readable code."""

from __future__ import annotations

from enum import StrEnum

from adclick.errors import AdclickError


class ErrorCode(StrEnum):
    """The codes clients branch on; docs/api.md lists them."""

    BAD_WINDOW = "BAD_WINDOW"
    WINDOW_OUT_OF_RANGE = "WINDOW_OUT_OF_RANGE"
    BAD_LIMIT = "BAD_LIMIT"
    LIMIT_TOO_LARGE = "LIMIT_TOO_LARGE"
    BAD_FILTER = "BAD_FILTER"
    FILTER_NOT_ANSWERABLE = "FILTER_NOT_ANSWERABLE"
    BAD_AD_ID = "BAD_AD_ID"
    ARGUMENT_TOO_LONG = "ARGUMENT_TOO_LONG"
    TOO_MANY_FILTER_VALUES = "TOO_MANY_FILTER_VALUES"
    TOO_MANY_ADS = "TOO_MANY_ADS"
    QUERY_TOO_EXPENSIVE = "QUERY_TOO_EXPENSIVE"


class QueryError(AdclickError):
    """A query that cannot be answered as asked; the message says what to change."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[type[QueryError], tuple[ErrorCode, str]]:
        # API workers get it from the index process (api/index_server.py), pickled.
        return (type(self), (self.code, str(self)))
