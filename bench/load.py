"""``python -m bench load``: read load at the seeds' scale, against one API on the
design-scale dataset of ``python -m bench query``.

Dashboards fetch every ad's latest counts every minute: 2 million ads are over 30,000 ad
reads a second, besides the top lists. Here a bounded number of clients on loopback send
requests one after another (each the moment its previous answer arrived) for a fixed
time, phase by phase: single-ad adClicks, adsClicks batches, topAds over the standard
windows, topAds over ad-hoc windows, then all of them mixed while WebSocket subscribers
hold connections open. Per phase it reports requests/s, ad reads/s, p50/p99/max per
operation, failures, and the API's CPU per request (its process's CPU time over the
phase divided by the requests answered).

The clients are asyncio tasks of one process (aiohttp): on the 2-core machine they share
the cores with the API, as the issue's targets say.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from adclick.loadgen.generator import ad_id, ad_id_width
from adclick.query.window import MINUTE_MS
from adclick.settings import Settings
from bench.latency import percentiles
from bench.query import OPERATIONS_DIR, running_api
from bench.query_dataset import Dataset

Emit = Callable[[dict[str, Any]], None]
# (operation label, request body, ads read)
Request = tuple[str, dict[str, Any], int]

PHASES = ("adClicks", "adsClicks", "topAds_standard", "topAds_ad_hoc", "mixed")
STANDARD_WINDOWS = (1, 5, 15, 60)


@dataclass
class Requests:
    """Makes the requests of each phase: the frontend's operations, random ads."""

    dataset: Dataset
    batch_ads: int
    rng: random.Random = field(default_factory=lambda: random.Random(19))

    def __post_init__(self) -> None:
        self.documents = {p.stem: p.read_text() for p in OPERATIONS_DIR.glob("*.graphql")}
        self.width = ad_id_width(self.dataset.spec.ads)

    def _ad(self) -> str:
        return ad_id(self.rng.randint(1, self.dataset.spec.ads), self.width)

    def _body(self, operation: str, **variables: Any) -> dict[str, Any]:
        return {"query": self.documents[operation], "variables": variables}

    def ad_clicks(self) -> Request:
        # The latest complete minute of one ad: a dashboard's cell.
        body = {
            "query": "query ($adId: String!) { adClicks(adId: $adId, window: {lastMinutes: 1})"
            " { clicks window { to complete } } }",
            "variables": {"adId": self._ad()},
        }
        return "adClicks 1 min", body, 1

    def ads_clicks(self) -> Request:
        ads = [self._ad() for _ in range(self.batch_ads)]
        return (
            f"adsClicks {self.batch_ads} ads",
            self._body("AdsClicksLatest", adIds=ads, lastMinutes=1),
            self.batch_ads,
        )

    def top_standard(self) -> Request:
        minutes = self.rng.choice(STANDARD_WINDOWS)
        return f"topAds {minutes} min", self._body("TopAds", lastMinutes=minutes, limit=100), 0

    def top_ad_hoc(self) -> Request:
        # A window of 10 to 120 minutes ending at a random minute of the last hour.
        end_ms = self.dataset.end_ms - self.rng.randint(1, 60) * MINUTE_MS
        minutes = self.rng.randint(10, 120)
        body = self._body(
            "TopAdsInRange",
            **{"from": _iso(end_ms - minutes * MINUTE_MS), "to": _iso(end_ms), "limit": 100},
        )
        return "topAds ad-hoc", body, 0

    def of_phase(self, phase: str) -> Callable[[], Request]:
        makers: dict[str, Callable[[], Request]] = {
            "adClicks": self.ad_clicks,
            "adsClicks": self.ads_clicks,
            "topAds_standard": self.top_standard,
            "topAds_ad_hoc": self.top_ad_hoc,
        }
        if phase in makers:
            return makers[phase]
        # Mixed: mostly single ads and standard lists, some batches and ad-hoc windows.
        weighted = [self.ad_clicks] * 6 + [self.top_standard] * 2
        weighted += [self.ads_clicks, self.top_ad_hoc]
        return lambda: self.rng.choice(weighted)()


@dataclass
class Sample:
    operation: str
    ms: float
    ok: bool
    ads: int


async def _client(
    session: aiohttp.ClientSession, url: str, make: Callable[[], Request], stop_at: float,
    samples: list[Sample],
) -> None:  # fmt: skip
    while time.monotonic() < stop_at:
        operation, body, ads = make()
        started = time.perf_counter()
        try:
            async with session.post(url, json=body) as response:
                data = await response.read()
                ok = response.status == 200 and b'"errors":' not in data
        except aiohttp.ClientError:
            ok = False
        samples.append(Sample(operation, (time.perf_counter() - started) * 1000, ok, ads))


async def _subscriber(session: aiohttp.ClientSession, url: str, stop_at: float) -> int:
    """A WebSocket subscription to the 1-minute list, held open; returns lists received."""
    received = 0
    document = (OPERATIONS_DIR / "TopAdsLive.graphql").read_text()
    async with session.ws_connect(
        url.replace("http://", "ws://"), protocols=["graphql-transport-ws"]
    ) as ws:
        await ws.send_json({"type": "connection_init", "payload": {}})
        await ws.send_json(
            {"id": "1", "type": "subscribe",
             "payload": {"query": document, "variables": {"windowMinutes": 1}}}
        )  # fmt: skip
        while time.monotonic() < stop_at:
            try:
                message = await ws.receive_json(timeout=max(0.1, stop_at - time.monotonic()))
            except (TimeoutError, TypeError, ValueError):
                continue
            received += message.get("type") == "next"
    return received


async def _phase(
    url: str, make: Callable[[], Request], clients: int, seconds: float, subscribers: int
) -> tuple[list[Sample], int]:
    samples: list[Sample] = []
    stop_at = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=clients + subscribers + 4)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:
        tasks = [_client(session, url, make, stop_at, samples) for _ in range(clients)]
        listening = [_subscriber(session, url, stop_at) for _ in range(subscribers)]
        results = await asyncio.gather(*tasks, *listening, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise RuntimeError(f"a client failed: {failures[0]!r}")
    received = sum(r for r in results[clients:] if isinstance(r, int))
    return samples, received


def run_load(
    settings: Settings,
    dataset: Dataset,
    *,
    clients: int,
    seconds: float,
    batch_ads: int,
    subscribers: int,
    phases: list[str],
    log_path: Path,
    emit: Emit,
    workers: int = 1,
) -> None:
    """Start the API (``workers`` processes) on the dataset and emit one result per phase."""
    requests = Requests(dataset, batch_ads)
    with running_api(settings, log_path, workers) as (api, startup):
        emit({"run": "startup", "workers": workers, **startup})
        url = f"{api.url}/graphql"
        for phase in phases:
            make = requests.of_phase(phase)
            asyncio.run(_phase(url, make, clients, 3.0, 0))  # warm-up: caches, connections
            cpu_before = api.cpu_s()
            started = time.monotonic()
            samples, received = asyncio.run(
                _phase(url, make, clients, seconds, subscribers if phase == "mixed" else 0)
            )
            elapsed = time.monotonic() - started
            cpu_s = api.cpu_s() - cpu_before
            answered = [s for s in samples if s.ok]
            emit({
                "run": "load", "phase": phase, "workers": workers, "clients": clients,
                "seconds": round(elapsed, 1),
                "requests_per_s": round(len(answered) / elapsed, 1),
                "ad_reads_per_s": round(sum(s.ads for s in answered) / elapsed),
                "failed": len(samples) - len(answered),
                "server_cpu_ms_per_request": round(cpu_s * 1000 / max(1, len(answered)), 2),
                "server_cpu_cores": round(cpu_s / elapsed, 2),
                "subscribers": subscribers if phase == "mixed" else 0,
                "lists_received": received,
                "operations": percentiles(samples),
                **api.memory_mib(),
            })  # fmt: skip


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()
