"""The API under hostile and careless requests: every one gets a client error code (never
INTERNAL_SERVER_ERROR), a request budget bounds what one request may cost, and neither
invented field names nor huge documents grow /metrics.

One API process serves the whole module (anonymous reads on, a short statement timeout)
over a few minutes of ingested clicks.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from adclick.settings import Settings
from tests.api_client import ApiProcess, Tokens, with_tokens
from tests.conftest import fresh_settings
from tests.helpers import ingest_until_idle, load, recent_spec

STATEMENT_TIMEOUT_S = 1.0

TOP_ADS = """
query ($window: WindowInput!, $filter: ClickFilter, $limit: Int! = 10) {
  topAds(window: $window, limit: $limit, filter: $filter) { ads { adId clicks } source }
}"""

AD_CLICKS = """
query ($adId: String!, $window: WindowInput!, $filter: ClickFilter) {
  adClicks(adId: $adId, window: $window, filter: $filter) { clicks source }
}"""

HISTORY = """query ($from: DateTime!, $to: DateTime!, $filter: ClickFilter) {
  topAdsHistory(windowMinutes: 5, from: $from, to: $to, filter: $filter) { windowEnd } }"""
YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:00Z")
TODAY = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:00Z")


class Hostile:
    def __init__(self, settings: Settings, api: ApiProcess, tokens: Tokens, log: Path) -> None:
        self.settings = settings
        self.api = api
        self.tokens = tokens
        self.log = log

    def post(self, body: Any, token: str | None = None) -> httpx.Response:
        """POST ``body``: a dict as JSON (lone surrogates escaped), anything else as is."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        content = json.dumps(body) if isinstance(body, dict) else body
        return httpx.post(f"{self.api.url}/graphql", content=content, headers=headers, timeout=30)

    def codes(self, query: str, token: str | None = None, **variables: Any) -> list[str]:
        """The error codes of a request (an empty list when it succeeded)."""
        response = self.post({"query": query, "variables": variables}, token)
        assert response.status_code < 500, response.text
        errors = response.json().get("errors") or []
        return [(e.get("extensions") or {}).get("code") for e in errors]


@pytest.fixture(scope="module")
def hostile(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hostile]:
    with fresh_settings(stack_settings) as base:
        settings, tokens = with_tokens(
            base,
            api_allow_anonymous=True,
            api_refresh_interval_s=0.5,
            api_statement_timeout_s=STATEMENT_TIMEOUT_S,
            api_max_body_bytes=32_768,  # half the default: a GET over it fits in a URL
        )
        load(settings, recent_spec(2_000, seed=41, ads=200, event_rate=20.0))
        ingest_until_idle(settings)
        log = tmp_path_factory.mktemp("api") / "api.log"
        api = ApiProcess(settings, log)
        try:
            yield Hostile(settings, api, tokens, log)
        finally:
            assert api.stop() == 0


def series(base_url: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """Every (sample name, labels) /metrics exposes for the API's request metrics."""
    text = httpx.get(f"{base_url}/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(text)
        if family.name.startswith("adclick_api_request")
        for sample in family.samples
    }


def test_invented_root_fields_add_no_metric_series(hostile: Hostile) -> None:
    base = hostile.api.url
    hostile.post({"query": "{ warmUp }"})  # the first invented field may add "unknown"
    hostile.post({"query": "{ topAds("})  # and the first syntax error "invalid"
    before = series(base)
    size_before = len(httpx.get(f"{base}/metrics").content)
    for i in range(300):
        token = hostile.tokens.reader if i % 2 else None
        assert hostile.post({"query": f"{{ invented{i} }}"}, token).status_code < 500
    # A document just under the body cap, with one huge invented name.
    huge = "x" * (hostile.settings.api_max_body_bytes - 100)
    assert hostile.post({"query": f"{{ {huge} }}"}).status_code < 500
    hostile.post({"query": "{ a" + "y" * 100_000 + " }"})  # over the cap: refused
    hostile.post({"query": "{ topAds(window: {lastMinutes: 5}) { source } invented }"})
    assert series(base) == before
    # Counters move and the reconciliation gauge may appear; nothing grows with the names.
    assert len(httpx.get(f"{base}/metrics").content) < size_before + 2_000


def test_a_body_over_the_cap_is_refused_before_it_is_parsed(hostile: Hostile) -> None:
    cap = hostile.settings.api_max_body_bytes
    body = json.dumps({"query": "{ __typename }", "variables": {"pad": "x" * cap}})
    response = hostile.post(body)
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap counts what arrives
        yield b'{"query": "{ __typename }", "variables": {"pad": "'
        for _ in range(10 * cap // 1000):
            yield b"x" * 1000
        yield b'"}}'

    response = hostile.post(chunks())
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"
    # A GET request's query string is capped alike.
    query = "{ __typename " + "x" * cap + "}"
    response = httpx.get(f"{hostile.api.url}/graphql", params={"query": query}, timeout=30)
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"
    # Under the cap, the same request is answered.
    small = json.dumps({"query": "{ __typename }", "variables": {"pad": "x" * 1000}})
    assert hostile.post(small).json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        (AD_CLICKS, {"adId": "a" * 129, "window": {"lastMinutes": 5}}, "ARGUMENT_TOO_LONG"),
        (AD_CLICKS, {"adId": "a" * 1_000, "window": {"lastMinutes": 5},
                     "filter": {"country": ["US"]}}, "ARGUMENT_TOO_LONG"),
        (TOP_ADS, {"window": {"lastMinutes": 5}, "filter": {"country": ["U" * 129]}},
         "ARGUMENT_TOO_LONG"),
        (TOP_ADS, {"window": {"lastMinutes": 5}, "filter": {"os": ["1", "O" * 129]}},
         "ARGUMENT_TOO_LONG"),
        (TOP_ADS, {"window": {"lastMinutes": 5},
                   "filter": {"country": [f"C{i}" for i in range(600)],
                              "os": [f"{i}" for i in range(600)]}},
         "TOO_MANY_FILTER_VALUES"),
        (HISTORY, {"from": YESTERDAY, "to": TODAY,
                   "filter": {"country": [f"C{i}" for i in range(1001)]}},
         "TOO_MANY_FILTER_VALUES"),
        (HISTORY, {"from": YESTERDAY, "to": TODAY, "filter": {"country": ["U\x00"]}},
         "BAD_FILTER"),
        (AD_CLICKS, {"adId": "a\x00b", "window": {"lastMinutes": 5}}, "BAD_AD_ID"),
        (AD_CLICKS, {"adId": "a\x1b[31mb", "window": {"lastMinutes": 5}}, "BAD_AD_ID"),
        (AD_CLICKS, {"adId": "a\ud800", "window": {"lastMinutes": 5}}, "BAD_AD_ID"),
        (TOP_ADS, {"window": {"lastMinutes": 5}, "filter": {"os": ["1\x00"]}}, "BAD_FILTER"),
        (TOP_ADS, {"window": {"lastMinutes": 5}, "filter": {"country": ["U\x07S"]}},
         "BAD_FILTER"),
        (AD_CLICKS, {"adId": "a", "window": {"lastMinutes": 5}, "filter": {"os": ["\x00"]}},
         "BAD_FILTER"),
    ],
)  # fmt: skip
def test_arguments_are_capped_and_checked(
    hostile: Hostile, query: str, variables: dict[str, Any], code: str
) -> None:
    assert hostile.codes(query, hostile.tokens.reader, **variables) == [code]


def test_the_longest_ids_and_most_filter_values_allowed_are_answered(hostile: Hostile) -> None:
    reader = hostile.tokens.reader
    assert hostile.codes(AD_CLICKS, reader, adId="a" * 128, window={"lastMinutes": 5}) == []
    values = [f"{i}" for i in range(hostile.settings.api_max_filter_values - 2)]
    values += ["a" * 128, "b" * 128]
    assert hostile.codes(TOP_ADS, reader, window={"lastMinutes": 5}, filter={"os": values}) == []


def test_a_statement_over_the_timeout_is_cancelled_with_its_own_code(hostile: Hostile) -> None:
    """A lock held elsewhere makes a raw-filtered query wait: the statement timeout ends it."""
    with psycopg.connect(hostile.settings.database_url) as conn:
        conn.execute("LOCK TABLE raw_clicks IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        codes = hostile.codes(
            TOP_ADS, hostile.tokens.reader, window={"lastMinutes": 5}, filter={"os": ["1"]}
        )
        waited = time.monotonic() - started
        conn.rollback()
    assert codes == ["QUERY_TIMEOUT"]
    assert STATEMENT_TIMEOUT_S <= waited < STATEMENT_TIMEOUT_S + 5
    # The connection it used is healthy again.
    assert hostile.codes(TOP_ADS, hostile.tokens.reader, window={"lastMinutes": 5},
                         filter={"os": ["1"]}) == []  # fmt: skip


def test_requests_stuck_on_the_database_leave_room_for_others(hostile: Hostile) -> None:
    """Four requests of 20 raw-filtered fields each, stuck behind a lock: each holds at
    most two threads and connections, so topAds from the window index is answered at once.
    """
    stuck = (
        "{ "
        + " ".join(
            f'a{i}: topAds(window: {{lastMinutes: 5}}, filter: {{os: ["{i}"]}}) {{ source }}'
            for i in range(20)
        )
        + " }"
    )
    cheap = {"query": "{ topAds(window: {lastMinutes: 5}) { source } }"}
    reader = hostile.tokens.reader
    with (
        psycopg.connect(hostile.settings.database_url) as conn,
        ThreadPoolExecutor(4) as clients,
    ):
        conn.execute("LOCK TABLE raw_clicks IN ACCESS EXCLUSIVE MODE")
        waiting = [clients.submit(hostile.post, {"query": stuck}, reader) for _ in range(4)]
        time.sleep(0.5)  # every one of them is waiting for the lock or a thread now
        started = time.monotonic()
        answer = hostile.post(cheap, reader).json()
        elapsed = time.monotonic() - started
        conn.rollback()  # the lock goes: the stuck fields finish
        for response in waiting:
            assert response.result().status_code == 200
            errors = response.result().json().get("errors") or []
            assert {e["extensions"]["code"] for e in errors} <= {"QUERY_TIMEOUT"}
    assert answer == {"data": {"topAds": {"source": "ROLLUP"}}}
    assert elapsed < 0.5


def test_a_request_over_its_cost_budget_is_refused(hostile: Hostile) -> None:
    week = 7 * 24 * 60 - 10
    raw = (
        "{ "
        + " ".join(
            f'a{i}: topAds(window: {{lastMinutes: {week}}}, filter: {{os: ["{i}"]}}) {{ source }}'
            for i in range(20)
        )
        + " }"
    )
    response = hostile.post({"query": raw}, hostile.tokens.reader)
    errors = response.json()["errors"]
    assert {e["extensions"]["code"] for e in errors} == {"QUERY_TOO_EXPENSIVE"}
    assert "cost" in errors[0]["message"]
    # One such window is within the budget, and so is every alias over a short window.
    one = f'{{ topAds(window: {{lastMinutes: {week}}}, filter: {{os: ["1"]}}) {{ source }} }}'
    assert "errors" not in hostile.post({"query": one}, hostile.tokens.reader).json()
    short = raw.replace(f"lastMinutes: {week}", "lastMinutes: 60")
    assert "errors" not in hostile.post({"query": short}, hostile.tokens.reader).json()


WINDOW_MISTAKES = [
    ({"lastMinutes": 2147483647}, "WINDOW_OUT_OF_RANGE"),
    ({"lastMinutes": -2147483648}, "BAD_WINDOW"),
    ({"from": "0001-01-01T00:00:00Z", "to": "0001-01-01T01:00:00Z"}, "WINDOW_OUT_OF_RANGE"),
    ({"from": "0001-01-01T00:00:00+01:00", "to": "0001-01-01T01:00:00+01:00"},
     "WINDOW_OUT_OF_RANGE"),
    ({"from": "0001-01-01T00:00:00-14:00", "to": "9999-12-31T23:59:00+14:00"},
     "WINDOW_OUT_OF_RANGE"),
    ({"from": "9999-12-31T22:00:00Z", "to": "9999-12-31T23:00:00Z"}, "WINDOW_OUT_OF_RANGE"),
    ({"from": "9999-12-31T22:00:00-01:00", "to": "9999-12-31T23:00:00-01:00"},
     "WINDOW_OUT_OF_RANGE"),
    ({"from": "9999-12-31T23:59:00+14:00", "to": "9999-12-31T23:59:00-14:00"},
     "WINDOW_OUT_OF_RANGE"),
    ({"from": YESTERDAY, "to": "9999-12-31T23:00:00Z"}, "WINDOW_OUT_OF_RANGE"),
    ({"from": YESTERDAY, "to": "9999-12-31T23:59:00-14:00"}, "WINDOW_OUT_OF_RANGE"),
    ({"from": "nonsense", "to": "2026-01-01T00:00:00Z"}, "GRAPHQL_VALIDATION_FAILED"),
    ({"lastMinutes": 2147483648}, "GRAPHQL_VALIDATION_FAILED"),
]  # fmt: skip


@pytest.mark.parametrize(("window", "code"), WINDOW_MISTAKES)
@pytest.mark.parametrize("query", [TOP_ADS, AD_CLICKS])
def test_windows_out_of_any_range_are_client_errors(
    hostile: Hostile, query: str, window: dict[str, Any], code: str
) -> None:
    assert hostile.codes(query, hostile.tokens.reader, adId="a", window=window) == [code]


def test_a_window_ending_in_year_9999_is_refused_in_history_too(hostile: Hostile) -> None:
    history = """query ($from: DateTime!, $to: DateTime!) {
      topAdsHistory(windowMinutes: 5, from: $from, to: $to) { windowEnd } }"""
    for start, end in [
        ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:00-01:00"),
        ("9999-12-31T23:59:00+14:00", "9999-12-31T23:59:00-14:00"),
    ]:
        codes = hostile.codes(history, hostile.tokens.reader, **{"from": start, "to": end})
        assert "INTERNAL_SERVER_ERROR" not in codes


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"query": "{ topAds(window: {lastMinutes: 5}) { source "}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "{ topAds(window: {lastMinutes: 5}) { source } } }"}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "{ " + "__typename " * 2100 + "}"}, "QUERY_TOO_COMPLEX"),
        ({"query": "{ topAds(window: {lastMinutes: 5}) { source } }", "variables": [1]},
         "BAD_REQUEST"),
        ({"query": "{ topAds(window: {lastMinutes: 5}) { source } }", "variables": "x"},
         "BAD_REQUEST"),
        ({"query": 5}, "BAD_REQUEST"),
        ({"queryy": "{ __typename }"}, "BAD_REQUEST"),
        ({"query": "subscription { topAds(windowMinutes: 5) { revision } }"},
         "OPERATION_NOT_ALLOWED"),
        ({"query": TOP_ADS, "variables": {"window": {"lastMinutes": "5"}}},
         "GRAPHQL_VALIDATION_FAILED"),
        ({"query": TOP_ADS, "variables": {"window": {"lastMinutes": 5}, "filter": 1}},
         "GRAPHQL_VALIDATION_FAILED"),
        ({"query": TOP_ADS, "operationName": "nope", "variables": {}}, "BAD_REQUEST"),
    ],
)  # fmt: skip
def test_malformed_requests_get_client_codes(
    hostile: Hostile, body: dict[str, Any], code: str
) -> None:
    response = hostile.post(body, hostile.tokens.reader)
    assert response.status_code < 500, response.text
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == [code]


def test_bodies_that_are_not_json_objects_get_client_codes(hostile: Hostile) -> None:
    for body in [b"", b"{", b"[]", b"null", b"\xff\xfe", b'"query"', b"[" * 10_000]:
        response = hostile.post(body, hostile.tokens.reader)
        assert 400 <= response.status_code < 500, (body[:20], response.text)
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_websocket_clients_get_the_same_refusals(hostile: Hostile) -> None:
    """A syntax error closes the socket with 4400 (graphql-transport-ws), a bad window is
    a coded error, and a message over the body cap closes it with 1009."""
    url = hostile.api.url.replace("http://", "ws://") + "/graphql"

    async def session(*payloads: dict[str, Any]) -> list[Any]:
        received: list[Any] = []
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            received.append(json.loads(await ws.recv())["type"])
            for i, payload in enumerate(payloads):
                await ws.send(json.dumps({"type": "subscribe", "id": str(i), "payload": payload}))
                try:  # the operation's first message; its "complete" follows
                    received.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
                    complete = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    assert complete["type"] == "complete"
                except websockets.ConnectionClosed as closed:
                    received.append(closed.rcvd.code if closed.rcvd else None)
        return received

    window = {"query": TOP_ADS, "variables": {"window": {"lastMinutes": 2147483647}}}
    answers = asyncio.run(session(window, {"query": "{ topAds("}))
    assert answers[0] == "connection_ack"
    assert answers[1]["payload"]["errors"][0]["extensions"]["code"] == "WINDOW_OUT_OF_RANGE"
    assert answers[2] == 4400  # the protocol's answer to a document that does not parse
    too_large = {"query": "{ a" + "x" * hostile.settings.api_max_body_bytes + " }"}
    assert asyncio.run(session(too_large))[1] == 1009


def _bad_operations(kind: str) -> list[Any]:
    query = "{ __typename }"
    return [
        {"type": kind},
        {"type": kind, "id": 1, "payload": {"query": query}},
        {"type": kind, "id": "1", "payload": "x"},
        {"type": kind, "id": "1", "payload": {"query": None}},
        {"type": kind, "id": "1", "payload": {"query": 5}},
        {"type": kind, "id": "1", "payload": {"query": query, "variables": [1]}},
        {"type": kind, "id": "1", "payload": {"query": query, "operationName": 5}},
        {"type": kind, "id": "1", "payload": {"query": query, "extensions": "x"}},
    ]


async def _close_code(url: str, protocol: str, text: str) -> int | None:
    """The code the server closes with after ``text`` (None: it stayed open for 5 s)."""
    async with websockets.connect(url, subprotocols=[protocol]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(text)
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        except TimeoutError:
            return None


@pytest.mark.parametrize(
    ("protocol", "operation"), [("graphql-transport-ws", "subscribe"), ("graphql-ws", "start")]
)
def test_malformed_websocket_messages_close_the_connection_with_4400(
    hostile: Hostile, protocol: str, operation: str
) -> None:
    """Messages strawberry indexed as the protocol says they are shaped: each raised
    inside it (an ERROR traceback, a dropped connection or no answer at all)."""
    url = hostile.api.url.replace("http://", "ws://") + "/graphql"
    messages = ["x", [1], {"type": 5}, {"type": "complete", "id": 5}, *_bad_operations(operation)]
    texts = [json.dumps(m) for m in messages]
    if protocol == "graphql-transport-ws":  # the older protocol skips what does not parse
        texts += ["{", "[" * 10_000]
    for text in texts:
        assert asyncio.run(_close_code(url, protocol, text)) == 4400, text[:80]


def test_client_errors_are_not_logged_as_errors_and_internal_ones_are(hostile: Hostile) -> None:
    """Runs last in the module: every refusal above is in the log too, none as an error."""
    hostile.post({"query": "{ topAds(window: {lastMinutes: 5}) { source } }"})  # ok
    hostile.post({"query": "{ ingestStatus { partition } }"})  # FORBIDDEN (anonymous)
    hostile.post({"query": "{ ingestStatus { partition } }"}, "bad-token")  # UNAUTHENTICATED
    hostile.post({"query": "{ nope }"})  # validation
    hostile.post({"query": "{ nope "})  # syntax
    hostile.post({"query": TOP_ADS, "variables": {"window": {"lastMinutes": 0}}})
    # An internal error: a table gone from under the API (put back at once).
    raw_filtered = {"query": TOP_ADS, "variables": {"window": {"lastMinutes": 5},
                                                    "filter": {"os": ["1"]}}}  # fmt: skip
    with psycopg.connect(hostile.settings.database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE raw_clicks RENAME TO raw_clicks_away")
        try:
            internal = hostile.post(raw_filtered, hostile.tokens.reader).json()["errors"]
        finally:
            conn.execute("ALTER TABLE raw_clicks_away RENAME TO raw_clicks")
    assert [e["extensions"]["code"] for e in internal] == ["INTERNAL_SERVER_ERROR"]
    assert "raw_clicks" not in internal[0]["message"]  # the details are for the log only
    time.sleep(0.5)  # the log is written by another process
    records = [json.loads(line) for line in hostile.log.read_text().splitlines() if line]
    errors = [r for r in records if r.get("level") in ("ERROR", "CRITICAL") or "exc_info" in r]
    assert len(errors) == 1, errors
    assert errors[0]["level"] == "ERROR"
    assert "UndefinedTable" in errors[0]["exc_info"]
