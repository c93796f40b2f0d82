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
moves = st.sampled_from([False, False, False, True])  # the indexes moved while answering
states = st.sampled_from([(1, 0), (1, 0), (2, 1), None])


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
@given(st.data())
def test_an_answer_is_sent_again_only_for_its_request_in_its_state(data: st.DataObject) -> None:
    # Requests made again and again (dashboards): one, and others differing from it in
    # one part each (the caller's role, the body, ...), where a wrong key would mix them.
    base = data.draw(requests)
    distinct = [base]
    for part in data.draw(st.lists(st.integers(0, 4), max_size=4)):
        variant = list(base)
        variant[part] = data.draw(requests)[part]
        distinct.append(tuple(variant))  # type: ignore[arg-type]
    kept = data.draw(
        st.lists(
            st.tuples(st.sampled_from(distinct), states, moves, st.integers(0, 10**90)),
            min_size=1,
            max_size=30,
        )
    )
    cache = ResponseCache(max_bytes=2_000)
    # The newest answer kept per request (what the caller may do, not who the caller is):
    # one made the second time (or later) the request was made in a state.
    made: dict[tuple[object, ...], tuple[object, bytes]] = {}
    seen: dict[tuple[object, ...], object] = {}
    for number, (request, before, moved, size) in enumerate(kept):
        after = (before, "moved") if moved else before  # the indexes changed meanwhile
        response = _answer(f"{number}:{size}")  # every answer its own bytes
        cache.keep(_key(cache, request), (before, after), response, _made_from_memory(), "topAds")
        if request[4].role is not None and before is not None and before == after:
            if seen.get(_identity(request)) == before:
                made[_identity(request)] = (before, response.body)
            seen[_identity(request)] = before
        assert cache.bytes_held <= cache.max_bytes
    asked = data.draw(st.sampled_from(distinct))
    now = data.draw(st.sampled_from([state for _, state, *_ in kept]))
    found = cache.get(_key(cache, asked), now)
    if found is not None:  # evicted answers may be missing, never wrong
        assert made[_identity(asked)] == (now, found.body)


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
        for _ in range(2):  # a request made twice in a state is kept (unless...)
            cache.keep(key, (state, state), response, made, "topAds")
        assert cache.get(key, state) is None
    fresh = ResponseCache(max_bytes=1_000)
    fresh.keep(key, (state, state), _answer("[]"), _made_from_memory(), "topAds")
    assert fresh.get(key, state) is None  # kept the second time the request is made
    fresh.keep(key, (state, state), _answer("[]"), _made_from_memory(), "topAds")
    assert fresh.get(key, state) is not None
    assert fresh.get(key, (2, 0)) is None  # the indexes moved on
    assert ResponseCache(max_bytes=0).key(scope, b"{}", Principal(Role.READER)) is None


BASE = ("POST", b"", "application/json", b'{"query":"{a}"}', Principal(Role.READER))
OTHER = ("GET", b"documentId=TopAds", "", b'{"query":"{b}"}', Principal(Role.ADMIN, "ops"))


def test_requests_differing_in_any_part_get_their_own_answers() -> None:
    for part in range(len(BASE)):
        cache, state = ResponseCache(max_bytes=10_000), (1, 0)
        variant = tuple(OTHER[i] if i == part else BASE[i] for i in range(len(BASE)))
        for request, text in [(BASE, "base"), (variant, "variant")]:
            for _ in range(2):
                keep = _key(cache, request)  # type: ignore[arg-type]
                cache.keep(keep, (state, state), _answer(text), _made_from_memory(), "topAds")
        found = cache.get(_key(cache, BASE), state)
        assert found is not None and found.body == _answer("base").body, part
