"""HTTP caching of answers: an ETag on every answer, and Cache-Control that lets a
browser or gateway reuse an answer over complete windows.

An answer over windows the watermark has passed changes only when a click arrives later
than the watermark (rare: a revision of the minute), so it may be reused for
``api_cache_max_age_s``; any other answer must be revalidated (``no-cache``): its ETag
makes a revalidation a 304 without a body when nothing changed. The ETag is the answer's
own digest, so it moves exactly when the answer does, whichever source answered it.

Reuse is ``private`` (the browser of whoever asked) unless anonymous reads are on: a
shared cache in front of an API with tokens would hand answers to clients without one.
"""

from __future__ import annotations

import hashlib

from starlette.datastructures import Headers
from starlette.responses import Response

from adclick.settings import Settings


class Cacheability:
    """What the fields of one request said about reusing its answer (all must agree):
    whether it is over complete windows (``reusable``: HTTP caches may keep it), and
    whether it was made from the indexes in memory alone (``from_memory``: the API may
    keep it itself, api/response_cache.py). None: no field said anything."""

    def __init__(self, reusable: bool | None = None, from_memory: bool | None = None) -> None:
        self.reusable = reusable
        self.from_memory = from_memory

    def note(self, reusable: bool, *, from_memory: bool = False) -> None:
        self.reusable = reusable if self.reusable is None else self.reusable and reusable
        self.from_memory = (
            from_memory if self.from_memory is None else self.from_memory and from_memory
        )


def with_cache_headers(
    response: Response, request_headers: Headers, cacheability: Cacheability, settings: Settings
) -> Response:
    """``response`` with ETag and Cache-Control (a 200 without errors only), or a 304 when
    the client's If-None-Match already names it."""
    body = getattr(response, "body", None)  # a streamed response has none: left as is
    if not isinstance(body, bytes):
        return response
    if not answered(response, body):
        response.headers["Cache-Control"] = "no-store"
        return response
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    if cacheability.reusable:
        scope = "public" if settings.api_allow_anonymous else "private"
        control = f"{scope}, max-age={settings.api_cache_max_age_s}"
    else:
        control = "no-cache"
    headers = {"ETag": etag, "Cache-Control": control, "Vary": "Authorization"}
    if etag in _etags(request_headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return response


def answered(response: Response, body: bytes) -> bool:
    """Whether ``response`` (with ``body``) is an answer: a 200 without errors, which HTTP
    caches and the API itself may keep (api/response_cache.py); refusals and errors never."""
    # The body is compact JSON: an "errors": key is the response's own (no field of the
    # schema has that name, and a string cannot hold an unescaped quote).
    return response.status_code == 200 and b'"errors":' not in body


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
