"""WebSocket messages checked before strawberry handles them.

strawberry's protocol handlers index a message as the protocol says it is shaped: a
message that is not a JSON object, or a subscribe/start whose payload or query is not
what it should be, raised inside them (an ERROR traceback, the connection dropped, or an
operation left without an answer). Such a message now closes the connection with 4400
and the reason, as graphql-transport-ws prescribes for an invalid message; the client's
mistake is logged at DEBUG.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Any

from starlette.websockets import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from adclick.api.context import Context

log = logging.getLogger(__name__)

INVALID_MESSAGE = 4400
_OPERATION_TYPES = frozenset({"subscribe", "start"})  # graphql-transport-ws, graphql-ws
_ID_TYPES = frozenset({"complete", "stop"})


def message_problem(message: object) -> str | None:
    """Why ``message`` cannot be handled, in a few words (a close reason), or None."""
    if not isinstance(message, dict):
        return "a message must be a JSON object"
    kind = message.get("type")
    if not isinstance(kind, str):
        return "a message needs a string type"
    if kind in _OPERATION_TYPES | _ID_TYPES and not isinstance(message.get("id"), str):
        return f"a {kind} message needs a string id"
    if kind not in _OPERATION_TYPES:
        return None
    payload = message.get("payload")
    if not isinstance(payload, dict):
        return f"a {kind} payload must be an object"
    if not isinstance(payload.get("query"), str):
        return "the query must be a string"
    if not isinstance(payload.get("operationName"), str | None):
        return "operationName must be a string or null"
    for name in ("variables", "extensions"):
        if not isinstance(payload.get(name), dict | None):
            return f"{name} must be an object or null"
    return None


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws, with messages checked first."""

    async def handle_message(self, message: Any) -> None:
        problem = message_problem(message)
        if problem is None:
            await super().handle_message(message)
            return
        log.debug("WebSocket message refused: %s", problem)
        with suppress(WebSocketDisconnected):  # an operation's task closed it already
            await self.handle_invalid_message(problem)

    async def handle_task_exception(self, error: Exception) -> None:
        if isinstance(error, WebSocketDisconnected):  # the client or we closed it already
            log.debug("WebSocket operation ended by the closed connection")
            return
        await super().handle_task_exception(error)


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """The older graphql-ws (subscriptions-transport-ws), with messages checked first."""

    async def handle_message(self, message: Any) -> None:
        problem = message_problem(message)
        if problem is None:
            await super().handle_message(message)
            return
        log.debug("WebSocket message refused: %s", problem)
        with suppress(WebSocketDisconnected):  # closed already
            await self.websocket.close(code=INVALID_MESSAGE, reason=problem)
