"""The API's kept answers (api/response_cache.py): sent again only to the same request in
the same state of the indexes, never kept when made across a change or with errors, and
never more bytes than configured, whatever the requests."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.responses import Response

from adclick.api.auth import Principal
from adclick.api.http_cache import Cacheability
from adclick.api.response_cache import RequestKey, ResponseCache
from adclick.settings import Role

principals = st.sampled_from(
    [Principal(Role.READER), Principal(Role.ADMIN, "ops"), Principal(None, problem="no token")]
)
# Requests that often differ in one part only (a few values each), and any bytes.
requests = st.tuples(
    st.sampled_from(["GET", "POST"]),
    st.one_of(st.sampled_from([b"", b"documentId=TopAds"]), st.binary(max_size=40)),
    st.sampled_from(["application/json", "application/graphql", ""]),
    st.one_of(st.sampled_from([b"", b'{"query":"{a}"}', b'{"query":"{b}"}']), st.binary()),
    principals,
)
states = st.sampled_from([(1, 0), (2, 0), (2, 1), None])


def _key(
    cache: ResponseCache, request: tuple[str, bytes, str, bytes, Principal]
) -> RequestKey | None:
    method, query_string, content_type, body, principal = request
    scope = {
        "type": "http",
        "method": method,
        "query_string": query_string,
        "headers": [(b"content-type", content_type.encode())] if content_type else [],
    }
    return cache.key(scope, body, principal)


def _answer(text: str) -> Response:
    return Response(b'{"data":{"topAds":' + text.encode() + b"}}", media_type="application/json")


def _made_from_memory() -> Cacheability:
    made = Cacheability()
    made.note(True, from_memory=True)
    return made


@settings(max_examples=300)
@given(st.lists(st.tuples(requests, states, st.booleans(), st.text(max_size=300)), min_size=1,
                max_size=30), st.data())  # fmt: skip
def test_an_answer_is_sent_again_only_for_its_request_in_its_state(
    kept: list[tuple[tuple[str, bytes, str, bytes, Principal], object, bool, str]],
    data: st.DataObject,
) -> None:
    cache = ResponseCache(max_bytes=2_000)
    # The newest answer kept per request: what the caller may do, not who the caller is.
    made: dict[tuple[object, ...], tuple[object, bytes]] = {}
    for request, before, moved, text in kept:
        after = (before, "moved") if moved else before  # the indexes changed meanwhile
        response = _answer(text)
        cache.keep(_key(cache, request), (before, after), response, _made_from_memory(), "topAds")
        if request[4].role is not None and before is not None and before == after:
            made[_identity(request)] = (before, response.body)
        assert cache.bytes_held <= cache.max_bytes
    # A request that was answered, as it was or with one part changed, in a state.
    asked = list(data.draw(st.sampled_from([request for request, *_ in kept])))
    part = data.draw(st.sampled_from([None, 0, 1, 2, 3, 4]))
    if part is not None:
        asked[part] = data.draw(requests)[part]
    now = data.draw(st.sampled_from([state for _, state, *_ in kept]))
    found = cache.get(_key(cache, tuple(asked)), now)  # type: ignore[arg-type]
    if found is not None:  # evicted answers may be missing, never wrong
        assert made[_identity(tuple(asked))] == (now, found.body)  # type: ignore[arg-type]


def _identity(request: tuple[str, bytes, str, bytes, Principal]) -> tuple[object, ...]:
    *what, principal = request
    return (*what, principal.role)


def test_answers_with_errors_sql_or_no_room_are_not_kept() -> None:
    cache = ResponseCache(max_bytes=1_000)
    scope = {"type": "http", "method": "POST", "query_string": b"", "headers": []}
    key = cache.key(scope, b"{}", Principal(Role.READER))
    state = (1, 0)
    sql = Cacheability()
    sql.note(True, from_memory=True)
    sql.note(True, from_memory=False)  # one field of two answered by SQL
    error = Response(b'{"data":null,"errors":[{"message":"no"}]}', media_type="application/json")
    for response, made in [
        (error, _made_from_memory()),
        (_answer("[]"), sql),
        (_answer("x" * 2_000), _made_from_memory()),  # larger than the whole cache
        (Response(b"{}", status_code=400), _made_from_memory()),
    ]:
        cache.keep(key, (state, state), response, made, "topAds")
        assert cache.get(key, state) is None
    cache.keep(key, (state, state), _answer("[]"), _made_from_memory(), "topAds")
    assert cache.get(key, state) is not None
    assert cache.get(key, (2, 0)) is None  # the indexes moved on
    assert ResponseCache(max_bytes=0).key(scope, b"{}", Principal(Role.READER)) is None
