"""Answers made from the indexes in memory, kept by the API until the indexes move.

Dashboards send the same documents again and again: the top ads of the standard windows,
an advertiser's ads over the last minutes, from every open page every few seconds. A
topAds of 100 ads costs the API about 4 ms of CPU to execute (strawberry building and
serialising the objects; the ranking itself is cached by the window index), while its
answer can change only when the window index takes a new snapshot (every
``api_refresh_interval_s``) or the hour index loads an hour. So an answer every field of
which was made from memory (``Cacheability.from_memory``) is kept under the request that
asked for it, with the indexes' state it was made in (``QueryService.memory_state``), and
sent again as it is while that state stays the same: the next snapshot makes every kept
answer stale at once, whatever it held.

The key is everything else an answer depends on: whether the caller may read (no answer
depends on which reader asks), the method, the query string, the body and its content
type. Only answers without errors are kept, and only if the state did not move while the
answer was made (``keep``): an answer is never kept under a state older than what it
shows. An answer is kept the second time its request is made in one state, not the
first: a dashboard's documents repeat within seconds, one random ad's read rarely does,
and keeping every answer made the API's random single-ad reads up to a third slower
(docs/benchmarks.md, "Answers kept by the API"), nearly none of them sent again.
Kept answers are bounded in bytes (least recently used go first).

In an API of several worker processes each keeps its own, checked against the state the
supervisor publishes for its indexes (api/shared_state.py: read without a call).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from cachetools import LRUCache
from prometheus_client import Counter
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Scope

from adclick.api.auth import Principal
from adclick.api.http_cache import Cacheability, answered

RequestKey = tuple[str, str, bytes, str, bytes]

ANSWERS_KEPT = Counter(
    "adclick_api_answers_kept_total",
    "Answers made from memory and kept by the API (kept), and requests answered with one "
    "of them without executing the operation (reused).",
    ["event"],
)
_KEPT, _REUSED = ANSWERS_KEPT.labels("kept"), ANSWERS_KEPT.labels("reused")
# Requests seen once (by their key's hash) in the state they were seen in: at most this
# many, forgotten all at once beyond it (a request forgotten is kept a request later).
_SEEN_AT_MOST = 65_536


@dataclass(frozen=True)
class KeptAnswer:
    """An answer's bytes and what is sent with them."""

    state: Hashable  # QueryService.memory_state() it was made in
    body: bytes
    content_type: str
    reusable: bool  # over complete windows (Cache-Control, api/http_cache.py)
    operation: str  # the request metrics' label
    size: int  # bytes held, key included


class ResponseCache:
    """Kept answers, at most ``max_bytes`` of them (0: none are kept)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._answers: LRUCache[RequestKey, KeptAnswer] = LRUCache(
            maxsize=max(max_bytes, 1), getsizeof=lambda kept: kept.size
        )
        self._seen: dict[int, Hashable] = {}

    def key(self, scope: Scope, body: bytes, principal: Principal) -> RequestKey | None:
        """What identifies an HTTP request's answer; None if it cannot be kept (a caller
        who may not read gets an error, which is never kept)."""
        if self.max_bytes == 0 or principal.role is None:
            return None
        return (
            principal.role.value,
            scope["method"],
            scope.get("query_string", b""),
            Headers(scope=scope).get("content-type", ""),
            body,
        )

    def get(self, key: RequestKey | None, state: Hashable | None) -> KeptAnswer | None:
        """The answer kept for ``key`` if it was made in ``state`` (the present one)."""
        if key is None or state is None:
            return None
        kept = self._answers.get(key)
        if kept is None or kept.state != state:
            return None
        _REUSED.inc()
        return kept

    def keep(
        self,
        key: RequestKey | None,
        states: tuple[Hashable | None, Hashable | None],
        response: Response,
        cacheability: Cacheability,
        operation: str | None,
    ) -> None:
        """Keep ``response`` if every field was answered from memory, without errors, the
        state was the same before (``states[0]``) and after (``states[1]``) it was made
        (then it was made in that state, and shows nothing newer or older), and the same
        request was made before in that state."""
        before, after = states
        body = getattr(response, "body", None)
        if (
            key is None
            or before is None
            or before != after
            or not cacheability.from_memory
            or operation is None
            or not isinstance(body, bytes)
            or not answered(response, body)
        ):
            return
        if self._seen.get(hash(key)) != before:
            if len(self._seen) >= _SEEN_AT_MOST:
                self._seen.clear()
            self._seen[hash(key)] = before
            return
        size = len(body) + sum(len(part) for part in key)
        if size > self.max_bytes:
            return
        self._answers[key] = KeptAnswer(
            before,
            body,
            response.headers.get("content-type", ""),
            bool(cacheability.reusable),
            operation,
            size,
        )
        _KEPT.inc()

    @property
    def bytes_held(self) -> int:
        return int(self._answers.currsize)

    def response(self, kept: KeptAnswer) -> tuple[Response, Cacheability]:
        """A kept answer as a new response, and what its fields had said of it."""
        response = Response(kept.body, status_code=200, headers={"content-type": kept.content_type})
        return response, Cacheability(reusable=kept.reusable, from_memory=True)
