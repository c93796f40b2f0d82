"""What the API reads of an HTTP request before strawberry sees it: at most
``api_max_body_bytes``, whatever the client declares or sends."""

from __future__ import annotations

# strawberry raises its HTTP refusals as cross_web's HTTPException (its dependency).
from cross_web import HTTPException
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope
from strawberry.schema.exceptions import InvalidOperationTypeError

from adclick.api.errors import ApiErrorCode
from adclick.api.trusted_documents import UnknownDocument


class RequestTooLarge(Exception):
    """A request beyond ``api_max_body_bytes``."""


def http_error_code(exc: HTTPException) -> ApiErrorCode:
    """The code of one of strawberry's HTTP refusals."""
    if isinstance(exc.__cause__, InvalidOperationTypeError):
        return ApiErrorCode.OPERATION_NOT_ALLOWED
    if isinstance(exc, UnknownDocument):
        return ApiErrorCode.DOCUMENT_NOT_TRUSTED
    return ApiErrorCode.BAD_REQUEST


async def read_body(scope: Scope, receive: Receive, limit: int) -> tuple[bytes, Receive]:
    """Read an HTTP request's body, at most ``limit`` bytes (else RequestTooLarge, before
    more is read); returns it and a ``receive`` that replays it. A declared Content-Length over
    the limit is refused without reading anything; a chunked body is counted as it comes.
    """
    if len(scope.get("query_string", b"")) > limit:
        raise RequestTooLarge(f"the query string is over {limit:,} bytes")
    declared = Headers(scope=scope).get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"the body ({int(declared):,} bytes) is over {limit:,} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"the body is over {limit:,} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    whole = b"".join(chunks)
    body: Message | None = {"type": "http.request", "body": whole, "more_body": False}

    async def replay() -> Message:
        nonlocal body
        if body is not None:
            message, body = body, None
            return message
        return await receive()

    return whole, replay
