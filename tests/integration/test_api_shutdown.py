"""SIGTERM stops the API within the 10 s docs/api.md promises, whatever is in flight:
open subscriptions, requests arriving all the time, SQL and index loads stuck behind a
lock."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from gql.transport.exceptions import TransportError

from adclick.db.connect import connect
from tests.api_client import ApiProcess, free_port
from tests.helpers import wait_for
from tests.integration.conftest import ApiData

SUBSCRIBE = (
    Path(__file__).resolve().parents[2] / "graphql/operations/TopAdsLive.graphql"
).read_text()
REQUESTS = [
    "{ topAds(window: {lastMinutes: 60}, limit: 100) { ads { adId clicks } } }",
    '{ adClicks(adId: "ad0001", window: {lastMinutes: 60}) { clicks series { clicks } } }',
    # Older than the index: read by SQL, holding a pooled connection.
    '{ adClicks(adId: "ad0002", window: {lastMinutes: 1440}, granularity: HOUR) { clicks } }',
]


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_stops_the_api_within_10_s_under_load(
    api_data: ApiData, tmp_path: Path, workers: int
) -> None:
    # An API of its own on the API tests' data: this one is stopped.
    settings = api_data.settings.model_copy(
        update={"api_port": free_port(), "api_workers": workers}
    )
    tokens = api_data.tokens
    api = ApiProcess(settings, tmp_path / "api.log")
    stop = threading.Event()
    answered = [0]

    def ask() -> None:
        headers = {"Authorization": f"Bearer {tokens.reader}"}
        with httpx.Client(base_url=api.url, headers=headers, timeout=30) as http:
            while not stop.is_set():
                for document in REQUESTS:
                    with contextlib.suppress(httpx.HTTPError):  # the server going away
                        if http.post("/graphql", json={"query": document}).status_code == 200:
                            answered[0] += 1

    def listen() -> None:
        client = api.client(tokens.reader, websocket=True)
        with contextlib.suppress(TransportError, OSError):
            for _ in client.subscribe(SUBSCRIBE, windowMinutes=1):
                pass

    threads = [threading.Thread(target=ask, daemon=True) for _ in range(8)]
    threads += [threading.Thread(target=listen, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: answered[0] >= 50, timeout_s=60, what="requests to be answered")
        wait_for(
            lambda: "adclick_api_subscriptions 3.0" in httpx.get(f"{api.url}/metrics").text,
            timeout_s=20,
            what="the subscriptions to open",
        )
        with connect(api_data.settings) as blocker:
            # The index's next refresh and every SQL answer now wait on these locks (the
            # index's connections have no statement timeout).
            blocker.execute("LOCK TABLE rollup_changes, clicks_1m IN ACCESS EXCLUSIVE MODE")
            time.sleep(1.5)
            started = time.monotonic()
            api.process.send_signal(signal.SIGTERM)
            code = api.process.wait(timeout=60)
            took = time.monotonic() - started
    finally:
        stop.set()
        if api.process.poll() is None:
            api.process.kill()
    assert code == 0
    assert took < 10, f"SIGTERM to exit took {took:.1f} s"
