"""The soak's readers: a bounded number of clients asking the frontend's operations
(graphql/operations/) in a loop, spread over the API processes, and one subscription
client that records every top list it receives."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

OPERATIONS = Path(__file__).resolve().parents[1] / "graphql" / "operations"


def operation(name: str) -> str:
    return (OPERATIONS / f"{name}.graphql").read_text()


@dataclass
class Sample:
    at_s: float
    operation: str
    ms: float
    ok: bool


@dataclass
class QueryLoad:
    """``clients`` threads sending ``rate`` requests/s in all, each to a random API.

    Each client keeps a schedule (one request every clients/rate seconds) rather than
    sending as fast as answers come: a closed loop on the soak's 2 cores measures how the
    queries starve ingest, not a production day. A client behind schedule sends at once,
    so a slow API is seen in the latencies, not hidden by fewer requests.
    """

    urls: list[str]
    token: str
    ads: list[str]
    clients: int
    rate: float
    started: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for i in range(self.clients):
            thread = threading.Thread(target=self._client, args=(i,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def since(self, at_s: float) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples if s.at_s >= at_s]

    def _client(self, seed: int) -> None:
        rng = random.Random(seed)
        top, ad_clicks = operation("TopAds"), operation("AdClicksLastHour")
        headers = {"Authorization": f"Bearer {self.token}"}
        interval = self.clients / self.rate
        due = time.monotonic() + rng.uniform(0, interval)
        with httpx.Client(headers=headers, timeout=30) as http:
            while not self._stop.wait(max(0.0, due - time.monotonic())):
                due = max(due + interval, time.monotonic() - interval)
                minutes = rng.choice([1, 5, 15, 60])
                requests: list[tuple[str, str, dict[str, Any]]] = [
                    (f"topAds {minutes} min", top, {"lastMinutes": minutes}),
                    (f"topAds {minutes} min US", top,
                     {"lastMinutes": minutes, "filter": {"country": ["US"]}}),
                    ("adClicks", ad_clicks, {"adId": rng.choice(self.ads)}),
                ]  # fmt: skip
                name, document, variables = rng.choice(requests)
                url = rng.choice(self.urls)
                started = time.perf_counter()
                try:
                    response = http.post(
                        f"{url}/graphql", json={"query": document, "variables": variables}
                    )
                    ok = response.status_code == 200 and not response.json().get("errors")
                except (httpx.HTTPError, ValueError):
                    ok = False
                ms = (time.perf_counter() - started) * 1000
                with self._lock:
                    self.samples.append(Sample(time.monotonic() - self.started, name, ms, ok))
                if not ok:
                    self._stop.wait(0.2)  # an API restarting: do not spin


@dataclass
class Subscriber:
    """Records every list of one (window, filter) the API pushes, in arrival order."""

    url: str
    token: str
    window_minutes: int
    received: list[tuple[str, int]] = field(default_factory=list)  # (window end, revision)
    errors: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        transport = WebsocketsTransport(
            url=self.url.replace("http://", "ws://") + "/graphql",
            init_payload={"Authorization": f"Bearer {self.token}"},
            subprotocols=["graphql-transport-ws"],
        )
        client = Client(transport=transport, fetch_schema_from_transport=False)
        request = GraphQLRequest(
            operation("TopAdsLive"), variable_values={"windowMinutes": self.window_minutes}
        )
        try:
            for result in client.subscribe(request):
                top = result["topAds"]
                self.received.append((top["windowEnd"], int(top["revision"])))
                if self._stop.is_set():
                    return
        except Exception as exc:  # the report says it; the soak goes on
            if not self._stop.is_set():  # not the API stopping at the end of the run
                self.errors.append(repr(exc))
