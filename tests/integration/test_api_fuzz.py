"""Property-based fuzzing of the live API: operations generated from its own schema
(hypothesis-graphql), and arbitrary values in the window, filter and id arguments, sent
over HTTP to an ``adclick api`` process on a real database with ingested clicks.

What must hold for every request: no 5xx, and every error carries a code that is not
INTERNAL_SERVER_ERROR. Bounded and reproducible: a fixed number of examples, derandomized,
no deadline (the server is on a shared machine); the whole module takes well under a minute.
"""

from __future__ import annotations

import asyncio
import json
import string
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, mutations, nodes, queries

import graphql
from adclick.cli.api import schema_sdl
from adclick.settings import Settings
from tests.api_client import ApiProcess, Tokens, with_tokens
from tests.conftest import fresh_settings
from tests.helpers import ingest_until_idle, load, recent_spec

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NOW = datetime.now(UTC).replace(second=0, microsecond=0)


class Live:
    def __init__(self, settings: Settings, api: ApiProcess, tokens: Tokens) -> None:
        self.settings = settings
        self.api = api
        self.tokens = tokens
        self.client = httpx.Client(base_url=api.url, timeout=30)

    def token(self, who: str) -> str | None:
        return {"anonymous": None, "reader": self.tokens.reader, "admin": self.tokens.admin}[who]

    def check(self, body: dict[str, Any], who: str) -> dict[str, Any]:
        """Send ``body`` as ``who``; fail on a 5xx or an error without a client code."""
        headers = {"Content-Type": "application/json"}
        token = self.token(who)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = self.client.post("/graphql", content=json.dumps(body), headers=headers)
        assert response.status_code < 500, response.text
        answer: dict[str, Any] = response.json()
        codes = [(e.get("extensions") or {}).get("code") for e in answer.get("errors") or []]
        assert None not in codes, answer
        assert "INTERNAL_SERVER_ERROR" not in codes, answer
        return answer


@pytest.fixture(scope="module")
def live(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with fresh_settings(stack_settings) as base:
        configured, tokens = with_tokens(base, api_allow_anonymous=True, api_refresh_interval_s=0.5)
        load(configured, recent_spec(2_000, seed=43, ads=200, event_rate=20.0))
        ingest_until_idle(configured)
        api = ApiProcess(configured, tmp_path_factory.mktemp("api") / "api.log")
        live = Live(configured, api, tokens)
        try:
            yield live
        finally:
            live.client.close()
            assert api.stop() == 0


def _iso(moment: datetime) -> str:
    return moment.isoformat()


# Recent whole minutes (windows that are answered), any moment at any offset, and text.
_OFFSETS = st.timedeltas(min_value=timedelta(hours=-23, minutes=-59),
                         max_value=timedelta(hours=23, minutes=59)).map(timezone)  # fmt: skip
_DATETIME_TEXT = st.one_of(
    st.integers(-3 * 24 * 60, 24 * 60).map(lambda m: _iso(NOW + timedelta(minutes=m))),
    st.datetimes(timezones=_OFFSETS).map(_iso),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:00Z")
    ),
    st.text(max_size=40),
)
CUSTOM_SCALARS = {
    "DateTime": _DATETIME_TEXT.map(nodes.String),
    "Long": st.integers(-(2**70), 2**70).map(nodes.Int),
}


def _schema(live: Live) -> graphql.GraphQLSchema:
    return graphql.build_schema(schema_sdl(live.settings))


@FUZZ
@given(data=st.data(), who=st.sampled_from(["anonymous", "reader", "admin"]))
def test_generated_queries_get_answers_or_client_errors(
    live: Live, data: st.DataObject, who: str
) -> None:
    query = data.draw(queries(_schema(live), custom_scalars=CUSTOM_SCALARS))
    live.check({"query": query}, who)


@FUZZ
@given(data=st.data(), who=st.sampled_from(["anonymous", "reader"]))
def test_generated_mutations_are_refused_to_readers(
    live: Live, data: st.DataObject, who: str
) -> None:
    mutation = data.draw(mutations(_schema(live), custom_scalars=CUSTOM_SCALARS))
    answer = live.check({"query": mutation}, who)
    codes = {e["extensions"]["code"] for e in answer["errors"]}
    assert codes <= {"FORBIDDEN", "UNAUTHENTICATED", "GRAPHQL_VALIDATION_FAILED"}


@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_generated_mutations_of_an_admin_get_answers_or_client_errors(
    live: Live, data: st.DataObject
) -> None:
    """An admin is trusted with the service, not with its input: any mutation is applied
    or refused with a code (P999999999D once made maintenance fail for good)."""
    mutation = data.draw(mutations(_schema(live), custom_scalars=CUSTOM_SCALARS))
    live.check({"query": mutation}, "admin")


_DURATIONS = st.one_of(
    st.none(),
    st.from_regex(r"\A-?P(\d{1,12}[YMWD])?(T\d{1,12}[HMS])?\Z"),
    st.sampled_from(["forever", "P999999999D", "P100Y", "PT0S", "P0D", "P7D", "P90D"]),
    st.text(max_size=30),
)
_RELATIONS = st.sampled_from(
    ["raw_clicks", "clicks_1m", "clicks_1h", "clicks_1m_by_country", "top_ads", "nope", ""]
)


@settings(FUZZ, max_examples=150)
@given(relation=_RELATIONS, hot=_DURATIONS, cold=_DURATIONS)
def test_any_retention_an_admin_sets_is_applied_or_bad_policy(
    live: Live, relation: str, hot: str | None, cold: str | None
) -> None:
    answer = live.check(
        {
            "query": "mutation($r: String!, $h: String, $c: String) "
            "{ setRetention(relation: $r, hot: $h, cold: $c) { relation hot cold } }",
            "variables": {"r": relation, "h": hot, "c": cold},
        },
        "admin",
    )
    codes = {e["extensions"]["code"] for e in answer.get("errors") or []}
    assert codes <= {"BAD_POLICY"}, answer


@settings(FUZZ, max_examples=100)
@given(data=st.data(), who=st.sampled_from(["anonymous", "reader", "admin"]))
def test_operations_that_break_the_schema_get_client_errors(
    live: Live, data: st.DataObject, who: str
) -> None:
    document = data.draw(
        from_schema(_schema(live), custom_scalars=CUSTOM_SCALARS, mode=Mode.NEGATIVE)
    )
    answer = live.check({"query": document}, who)
    assert answer.get("errors")


WINDOW_AND_FILTER = """
query ($adId: String!, $window: WindowInput!, $filter: ClickFilter, $limit: Int!,
       $granularity: Granularity!) {
  adClicks(adId: $adId, window: $window, filter: $filter, granularity: $granularity) {
    clicks series { start clicks } window { from to minutes complete } source }
  topAds(window: $window, limit: $limit, filter: $filter) {
    ads { rank adId clicks } window { from to } source }
}"""

# Text with control characters, lone surrogates, the odd long value, and real values.
_TEXT = st.one_of(
    st.text(alphabet=st.characters(codec=None), max_size=20),
    st.text(alphabet=string.printable, min_size=120, max_size=140),
    st.sampled_from(["", " ", "\u3000", "US", "DE", "1", "ad00001", "a\x00", "\ud800"]),
)
_INT32 = st.integers(-(2**31), 2**31 - 1)
_MINUTE = st.integers(-200_000, 3 * 24 * 60).map(
    lambda m: _iso(NOW + timedelta(minutes=m))
)  # fmt: skip
_WINDOWS = st.one_of(
    st.fixed_dictionaries({"lastMinutes": st.integers(1, 200_000) | _INT32}),
    st.fixed_dictionaries({"from": _MINUTE, "to": _MINUTE}),
    st.fixed_dictionaries({"from": _DATETIME_TEXT, "to": _DATETIME_TEXT}),
    st.fixed_dictionaries(
        {}, optional={"lastMinutes": _INT32, "from": _DATETIME_TEXT, "to": _DATETIME_TEXT}
    ),
)
_FILTERS = st.none() | st.dictionaries(
    st.sampled_from(["app", "country", "device", "os"]),
    st.none() | st.lists(_TEXT, max_size=4),
    max_size=4,
)


@FUZZ
@given(
    ad_id=_TEXT,
    window=_WINDOWS,
    filter_=_FILTERS,
    limit=st.integers(1, 1000) | _INT32,
    granularity=st.sampled_from(["MINUTE", "HOUR"]),
)
def test_arbitrary_window_filter_and_id_values_get_answers_or_client_errors(
    live: Live, ad_id: str, window: Any, filter_: Any, limit: int, granularity: str
) -> None:
    variables = {
        "adId": ad_id,
        "window": window,
        "filter": filter_,
        "limit": limit,
        "granularity": granularity,
    }
    live.check({"query": WINDOW_AND_FILTER, "variables": variables}, "reader")


# Any JSON value where a variable goes: the server must coerce it or refuse it.
_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)


@settings(FUZZ, max_examples=100)
@given(variables=st.dictionaries(
    st.sampled_from(["adId", "window", "filter", "limit", "granularity"]) | _TEXT, _ANY_JSON
))  # fmt: skip
def test_variables_of_any_json_get_answers_or_client_errors(
    live: Live, variables: dict[str, Any]
) -> None:
    live.check({"query": WINDOW_AND_FILTER, "variables": variables}, "reader")


_WS_MESSAGES = st.one_of(
    _ANY_JSON,
    st.fixed_dictionaries(
        {"type": st.sampled_from(["subscribe", "complete", "ping", "pong", "connection_init"])},
        optional={"id": _TEXT | _ANY_JSON, "payload": _ANY_JSON},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("subscribe"),
            "id": _TEXT,
            "payload": st.fixed_dictionaries(
                {"query": st.sampled_from([WINDOW_AND_FILTER, "{ __typename }", "{ topAds("])},
                optional={"variables": _ANY_JSON, "operationName": _TEXT | _ANY_JSON},
            ),
        }
    ),
)


@settings(FUZZ, max_examples=60)
@given(messages=st.lists(_WS_MESSAGES, min_size=1, max_size=3))
def test_any_websocket_messages_get_answers_or_a_protocol_close(
    live: Live, messages: list[Any]
) -> None:
    """graphql-transport-ws: the server answers, or closes with a protocol code (4xxx, or
    1009 for a message too large); it never drops the connection or answers 5xx-like."""
    url = live.api.url.replace("http://", "ws://") + "/graphql"

    async def session() -> None:
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            try:
                for message in messages:
                    await ws.send(json.dumps(message))
                while True:  # until the server has said all it will
                    answer = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                    for error in (answer.get("payload") or {}).get("errors") or []:
                        assert error["extensions"]["code"] != "INTERNAL_SERVER_ERROR", answer
            except TimeoutError:
                return
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None, "the server dropped the connection"
                assert 4000 <= closed.rcvd.code < 5000 or closed.rcvd.code in (1000, 1009)

    asyncio.run(session())


def test_the_fuzzed_server_logged_no_internal_error(live: Live) -> None:
    """Runs last in the module: the server's own view of everything sent above."""
    lines = live.api.log_path.read_text().splitlines()
    records = [json.loads(line) for line in lines if line]
    assert [r for r in records if r.get("level") in ("ERROR", "CRITICAL")] == []
