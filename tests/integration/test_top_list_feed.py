"""The API's feed of published top lists against hostile messages on the top-ads topic:
a live subscription goes on receiving the next valid list, the bad ones are counted and
logged once per reason, and /readyz reports the feed's liveness."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from confluent_kafka.admin import AdminClient, NewTopic
from gql.transport.exceptions import TransportError
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from adclick.api.app import create_app
from adclick.close.closer import MinuteCloser
from adclick.errors import ConfigurationError
from adclick.kafka import make_producer
from adclick.query.filters import Filter
from adclick.query.ranking import RankedAd
from adclick.settings import Settings
from adclick.top_lists.wire import TopList
from tests.api_client import ApiProcess, with_tokens
from tests.helpers import execute, ingest_until_idle, query, send, wait_for
from tests.truth_ranking import minute_s

SUBSCRIBE = (
    Path(__file__).resolve().parents[2] / "graphql/operations/TopAdsLive.graphql"
).read_text()
END_S = 1_795_000_020  # 2026-11-18, a whole minute


def valid(end_s: int, revision: int = 1) -> bytes:
    ads = [RankedAd(1, "ad-9", 30), RankedAd(2, "ad-1", 12), RankedAd(3, "ad-2", 12)]
    return TopList(5, Filter(), end_s * 1000, revision, ads).to_message()


def changed(**fields: Any) -> bytes:
    return orjson.dumps(orjson.loads(valid(END_S)) | fields)


AD = {"rank": 1, "ad_id": "ad-9", "clicks": 30}
# One of each kind; the first ones ended the feed's thread, the last ones were handed to
# subscribers and failed there.
GARBAGE = [
    (changed(filter=[]), "bad_shape"),
    (b"", "empty"),
    (b"not json at all", "not_json"),
    (b'{"window_minutes": 5, "ads": "\xff"}', "not_json"),
    (b" " * 300_000, "too_large"),
    (changed(window_minutes=7), "unknown_window"),
    (changed(filter={"country": ["FR"]}), "unknown_filter"),
    (changed(window_start="2026-11-18T00:00:00+00:00"), "inconsistent"),
    (changed(ads=[{**AD, "rank": -1}]), "bad_shape"),
    (changed(ads=[{**AD, "rank": "first"}]), "bad_shape"),
    (changed(revision=2**31), "bad_shape"),
]


def publish(settings: Settings, values: list[bytes]) -> None:
    """Any Kafka client may write to the topic (until ACLs say otherwise): one is this."""
    producer = make_producer(settings)
    for value in values:
        producer.produce(settings.top_ads_topic, value=value, key=b"forged")
    assert producer.flush(30) == 0


def bad_message_counts(api: ApiProcess) -> dict[str, float]:
    text = httpx.get(f"{api.url}/metrics").text
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "adclick_api_feed_bad_messages"
        for sample in family.samples
        if sample.name.endswith("_total")
    }


def test_malformed_lists_end_no_subscription_and_are_counted(
    settings: Settings, tmp_path: Path
) -> None:
    settings, tokens = with_tokens(settings)
    log_path = tmp_path / "api.log"
    api = ApiProcess(settings, log_path)
    received: list[dict[str, Any]] = []
    try:
        client = api.client(tokens.reader, websocket=True)

        def listen() -> None:
            with contextlib.suppress(TransportError):  # the server goes away at the end
                for result in client.subscribe(SUBSCRIBE, windowMinutes=5):
                    received.append(result["topAds"])

        threading.Thread(target=listen, daemon=True).start()
        wait_for(
            lambda: "adclick_api_subscriptions 1.0" in httpx.get(f"{api.url}/metrics").text,
            timeout_s=10,
            what="the subscription to open",
        )
        for round_, end_s in enumerate([END_S, END_S + 60], start=1):
            publish(settings, [value for value, _reason in GARBAGE] + [valid(end_s)])
            wait_for(lambda n=round_: len(received) >= n, 15, f"valid list {round_}")  # type: ignore[misc]
            ready = httpx.get(f"{api.url}/readyz")
            assert ready.status_code == 200, ready.text
        assert [(minute_s(r["windowEnd"]), r["revision"]) for r in received] == [
            (END_S, 1),
            (END_S + 60, 1),
        ]
        assert received[0]["ads"] == [
            {"rank": 1, "adId": "ad-9", "clicks": 30},
            {"rank": 2, "adId": "ad-1", "clicks": 12},
            {"rank": 3, "adId": "ad-2", "clicks": 12},
        ]
        expected: dict[str, float] = {}
        for _value, reason in GARBAGE:
            expected[reason] = expected.get(reason, 0) + 2
        counts = bad_message_counts(api)
        assert {r: n for r, n in counts.items() if n} == expected
        assert counts["unexpected"] == 0
    finally:
        assert api.stop() == 0
    skipped = [line for line in log_path.read_text().splitlines() if "not a top list" in line]
    assert len(skipped) == len(expected), "one log line per kind of bad message"


def test_readiness_fails_when_the_feed_stops(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"api_refresh_interval_s": 0.2}))
    with TestClient(app) as http:
        wait_for(lambda: http.get("/readyz").status_code == 200, 30, "the API to be ready")
        app.state.served.feed.stop()  # as if its thread had died
        answer = http.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["problems"] == {"top_list_feed": "the feed stopped"}


def test_a_restarted_closer_skips_what_is_not_a_list_on_the_topic(settings: Settings) -> None:
    now_ms = int(time.time() * 1000)
    send(settings, [
        {"ad_id": f"ad-{n % 3}", "timestamp": now_ms - (n % 10) * 60_000, "user_id": f"u{n}",
         "ip": "198.51.100.7", "country": "US"}
        for n in range(60)
    ])  # fmt: skip
    ingest_until_idle(settings)
    MinuteCloser(settings).run(threading.Event(), once=True)
    # The newest minute's lists were published, but the closer died before recording it;
    # then someone wrote garbage to the topic.
    execute(settings, "UPDATE top_ad_lists SET published_offset = NULL"
            " WHERE window_end = (SELECT max(window_end) FROM top_ad_lists)")  # fmt: skip
    publish(settings, [value for value, _reason in GARBAGE])

    MinuteCloser(settings).run(threading.Event(), once=True)  # recovers first

    lists, confirmed, offsets, newest = query(
        settings,
        "SELECT count(*), count(published_offset), count(DISTINCT published_offset),"
        " max(published_offset) FROM top_ad_lists",
    )[0]
    assert lists >= 8 and confirmed == offsets == lists
    # Found where they were, before the garbage: none published twice.
    assert newest == lists - 1


def test_a_top_lists_topic_of_several_partitions_is_refused_by_closer_and_api(
    settings: Settings,
) -> None:
    """Lists spread over partitions would be missed by recovery and by subscribers, which
    read one order: the closer refuses to start and /readyz says why (issue 18)."""
    topic = f"{settings.top_ads_topic}-spread"
    admin = AdminClient(settings.kafka_client_config())
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result()
    spread = settings.model_copy(update={"top_ads_topic": topic, "api_refresh_interval_s": 0.2})
    with pytest.raises(ConfigurationError, match="3 partitions"):
        MinuteCloser(spread).run(threading.Event(), once=True)
    app = create_app(spread)
    with TestClient(app) as http:
        wait_for(
            lambda: (
                "3 partitions" in http.get("/readyz").json()["problems"].get("top_list_feed", "")
            ),
            timeout_s=30,
            what="/readyz to name the topic's partitions",
        )
        assert http.get("/readyz").status_code == 503


def _subscription_count(api: ApiProcess) -> float:
    text = httpx.get(f"{api.url}/metrics").text
    return next(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "adclick_api_subscriptions"
        for sample in family.samples
    )


class LiveClient:
    """A graphql-transport-ws connection that reads only when told to: websockets stops
    reading the socket once it holds ``max_queue`` messages, and the small receive buffer
    makes the server's sends wait soon after, as for a client that stopped reading."""

    def __init__(self, api: ApiProcess, token: str) -> None:
        self.url = api.url.replace("http://", "ws://") + "/graphql"
        self.token = token

    async def __aenter__(self) -> LiveClient:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", int(self.url.rsplit(":", 1)[1].split("/")[0])))
        sock.setblocking(False)
        self.ws = await websockets.connect(
            self.url, sock=sock, subprotocols=["graphql-transport-ws"], max_queue=1
        )
        init = {"Authorization": f"Bearer {self.token}"}
        await self.ws.send(json.dumps({"type": "connection_init", "payload": init}))
        assert json.loads(await self.ws.recv())["type"] == "connection_ack"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.ws.close()

    async def subscribe(self, id_: str, window_minutes: int, limit: int = 100) -> None:
        variables = {"windowMinutes": window_minutes, "limit": limit}
        payload = {"query": SUBSCRIBE, "variables": variables}
        await self.ws.send(json.dumps({"type": "subscribe", "id": id_, "payload": payload}))

    async def message(self, timeout_s: float = 15) -> dict[str, Any]:
        received: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout_s))
        return received


def _code(message: dict[str, Any]) -> str:
    """The code of an operation's error ("error", or a "next" carrying errors)."""
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    code: str = errors[0]["extensions"]["code"]
    return code


def test_subscriptions_beyond_the_caps_are_refused_with_a_code(settings: Settings) -> None:
    settings, tokens = with_tokens(
        settings, api_max_subscriptions_per_connection=2, api_max_subscriptions=3
    )
    api = ApiProcess(settings, Path(os.devnull))

    async def run() -> None:
        async with (
            LiveClient(api, tokens.reader) as first,
            LiveClient(api, tokens.reader) as second,
        ):
            await first.subscribe("1", 5)
            await first.subscribe("2", 15)
            await wait_async(lambda: _subscription_count(api) == 2, "two subscriptions")
            await first.subscribe("3", 5)
            refused = await first.message()
            assert (refused["id"], _code(refused)) == ("3", "TOO_MANY_SUBSCRIPTIONS")
            await second.subscribe("1", 5)
            await wait_async(lambda: _subscription_count(api) == 3, "three subscriptions")
            await second.subscribe("2", 5)
            refused = await second.message()
            assert (refused["id"], _code(refused)) == ("2", "TOO_MANY_SUBSCRIPTIONS")
            # Ending one makes room again.
            await first.ws.send(json.dumps({"type": "complete", "id": "1"}))
            await wait_async(lambda: _subscription_count(api) == 2, "one subscription ended")
            await second.subscribe("3", 5)
            await wait_async(lambda: _subscription_count(api) == 3, "the new one to open")

    try:
        asyncio.run(run())
    finally:
        assert api.stop() == 0


BACKLOG = 4
SLOW_LISTS = 200  # of about 15 kB each: far more than the socket buffers hold


def big_list(window_minutes: int, end_s: int) -> bytes:
    """A list of 100 ads (the closer's length) with long ids, to fill buffers soon."""
    ads = [RankedAd(n + 1, f"ad-{n:05d}-" + "x" * 110, 100_000 - n) for n in range(100)]
    return TopList(window_minutes, Filter(), end_s * 1000, 1, ads).to_message()


def test_a_client_that_stops_reading_is_ended_with_a_code_not_held_without_bound(
    settings: Settings,
) -> None:
    settings, tokens = with_tokens(settings, api_subscription_backlog_lists=BACKLOG)
    api = ApiProcess(settings, Path(os.devnull))
    marker = TopList(15, Filter(), END_S * 1000, 1, [RankedAd(1, "ad-1", 1)]).to_message()

    async def run() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        async with LiveClient(api, tokens.reader) as slow, LiveClient(api, tokens.reader) as ok:
            await slow.subscribe("slow", 5)
            await ok.subscribe("ok", 15)
            await wait_async(lambda: _subscription_count(api) == 2, "both subscriptions")
            # Many lists of the slow client's series, each among lists of another series
            # it did not ask for; then a marker the reading client gets once the feed
            # has handed out everything before it.
            values = []
            for minute in range(SLOW_LISTS):
                values += [big_list(5, END_S + 60 * minute), big_list(1, END_S + 60 * minute)]
            await asyncio.to_thread(publish, settings, [*values, marker])
            assert (await ok.message())["id"] == "ok"
            received = []
            while (message := await slow.message())["type"] == "next" and "errors" not in message[
                "payload"
            ]:
                received.append(message["payload"]["data"]["topAds"])
            # Ended and let go; the reading client's goes on.
            await wait_async(lambda: _subscription_count(api) == 1, "the slow one to end")
            return received, message

    try:
        received, ending = asyncio.run(run())
        assert _code(ending) == "SUBSCRIPTION_TOO_SLOW"
        # What it was sent came in order, from the first, and far fewer than published.
        ends = [minute_s(r["windowEnd"]) for r in received]
        assert ends == [END_S + 60 * n for n in range(len(ends))]
        assert BACKLOG <= len(ends) < SLOW_LISTS / 2
    finally:
        assert api.stop() == 0


async def wait_async(condition: Any, what: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
