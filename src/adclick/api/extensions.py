"""How our schema runs operations, around strawberry's own: errors coded and logged
once whatever the transport, parse errors reported like any other, subscriptions only
over WebSocket, and a budget and a share of the threads per operation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import strawberry
from strawberry.extensions import ParserCache, SchemaExtension
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from adclick.api.errors import add_code
from adclick.query.budget import RequestBudget
from adclick.settings import Settings
from graphql import GraphQLError


class AdclickSchema(strawberry.Schema):
    """strawberry's schema with our error handling, and subscriptions over WebSocket only."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Every error of every transport passes here once, before it is sent: code it,
        # log it by kind (strawberry's default logs each at ERROR with a traceback).
        for error in errors:
            add_code(error)

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        # strawberry would run a subscription sent as a plain HTTP request like a query,
        # and fail inside it; refused instead (OPERATION_NOT_ALLOWED).
        allowed = set(allowed_operation_types or DEFAULT_ALLOWED_OPERATION_TYPES)
        return await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed - {OperationType.SUBSCRIPTION},
            operation_extensions,
        )


# Fields of one operation that run at once, each in a thread and most with a pooled
# connection: a request of 20 aliases takes at most this many of either, so a few
# requests cannot hold them all, whatever their fields cost.
FIELDS_IN_PARALLEL = 2

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class _Operation:
    budget: RequestBudget
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(FIELDS_IN_PARALLEL))


# The operation running in this task (see RequestBudgets).
_OPERATION: ContextVar[_Operation | None] = ContextVar("adclick_operation", default=None)


class RequestBudgets(SchemaExtension):
    """Gives each operation its own RequestBudget and share of threads. A context
    variable rather than the Context: a WebSocket's Context is shared by all of the
    connection's operations."""

    def __init__(self, *, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def on_operation(self) -> Iterator[None]:
        token = _OPERATION.set(_Operation(RequestBudget.of(self.settings)))
        try:
            yield
        finally:
            with suppress(ValueError):  # a subscription may end in another context
                _OPERATION.reset(token)


def request_budget(settings: Settings) -> RequestBudget:
    """The running operation's budget (a fresh one outside any operation)."""
    operation = _OPERATION.get()
    return operation.budget if operation is not None else RequestBudget.of(settings)


async def in_thread(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``function`` in a thread, within the running operation's share of threads."""
    operation = _OPERATION.get()
    if operation is None:
        return await asyncio.to_thread(function, *args, **kwargs)
    async with operation.slots:
        return await asyncio.to_thread(function, *args, **kwargs)


class CachedParser(ParserCache):
    """strawberry's ParserCache, except that a document that does not parse is left to
    strawberry's own parse: raised from this hook, the syntax error escaped strawberry's
    error handling (no code over HTTP, an ERROR traceback and no answer over WebSocket)."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        with suppress(GraphQLError):  # strawberry parses it again, and reports it
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        yield
