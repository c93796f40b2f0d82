"""The API's feed of published top lists against hostile messages on the top-ads topic:
a live subscription goes on receiving the next valid list, the bad ones are counted and
logged once per reason, and /readyz reports the feed's liveness."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
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
