"""``python -m bench query``: GraphQL latency of adClicks and topAds at design scale.

The dataset (bench/query_dataset.py) holds hours of per-minute rollups. The API runs as
its own process (``python -m adclick api``) on that database, exactly as deployed; the
benchmark waits for /readyz (the window index has loaded), reads the process's memory
from /proc, then sends the documented operations (graphql/operations/) over HTTP, one
request at a time from one client, and reports p50/p99 per query kind.

The API caches a window's ranking until a minute in it changes, and ranks the standard
windows ahead of queries. Ad-hoc windows are therefore measured three ways: the first
request of a window (cold), the same window again (cached), and a different window per
request (varied end minutes, none cached).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from prometheus_client.parser import text_string_to_metric_families

from adclick.loadgen.generator import ad_id, ad_id_width
from adclick.resources import REPO_ROOT
from adclick.settings import Settings
from bench.environment import free_port
from bench.query_dataset import MINUTE_MS, Dataset

OPERATIONS_DIR = REPO_ROOT / "graphql" / "operations"
READY_TIMEOUT_S = 3600.0
REQUEST_TIMEOUT_S = 900.0
# The ad-hoc window: 60 minutes, ending this many minutes before stream time's minute.
AD_HOC_MINUTES = 60
AD_HOC_END_BACK = 7
DAY_MINUTES = 24 * 60

Emit = Callable[[dict[str, Any]], None]


def _operations() -> dict[str, str]:
    """The documented operations by name, e.g. ``TopAds``."""
    return {path.stem: path.read_text() for path in sorted(OPERATIONS_DIR.glob("*.graphql"))}


@dataclass
class Api:
    """The API subprocess and where it listens."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def processes(self) -> list[psutil.Process]:
        """The API's process and its workers' (with ``api_workers`` above 1)."""
        server = psutil.Process(self.process.pid)
        return [server, *server.children(recursive=True)]

    def cpu_s(self) -> float:
        """User and system CPU seconds of the API's processes so far."""
        total = 0.0
        for process in self.processes():
            with suppress(psutil.Error):  # a worker that just went away
                total += sum(process.cpu_times()[:2])
        return total

    def memory_mib(self) -> dict[str, Any]:
        """Resident memory now, of the API's process (which holds the indexes) and of
        each worker, and its process's peak (VmRSS, VmHWM), MiB."""
        found = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = round(int(value.split()[0]) / 1024, 1)
        workers = [round(p.memory_info().rss / 2**20, 1) for p in self.processes()[1:]]
        return {"rss_mib": found["VmRSS"], "peak_rss_mib": found["VmHWM"],
                "worker_rss_mib": workers}  # fmt: skip

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def running_api(
    settings: Settings, log_path: Path, workers: int = 1
) -> Iterator[tuple[Api, dict[str, Any]]]:
    """Start the API on the dataset, wait until it is ready, and stop it at the end.

    Yields the API and its start-up figures: seconds until it served /healthz, until
    /readyz said ready (the window index loaded), and memory once ready.
    """
    port = free_port()
    environment = {
        **os.environ,
        **settings.as_environment(),
        "ADCLICK_API_ALLOW_ANONYMOUS": "true",
        "ADCLICK_API_HOST": "127.0.0.1",
        "ADCLICK_API_PORT": str(port),
        "ADCLICK_API_WORKERS": str(workers),
    }
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "adclick", "api"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    api = Api(process, f"http://127.0.0.1:{port}", log_path)
    try:
        print(f"API started (pid {process.pid}, log {log_path}); waiting for /readyz")
        serving_s = _wait_for(api, "/healthz", started)
        ready_s = _wait_for(api, "/readyz", started)
        hours_s = _wait_for_hour_index(api, started) if settings.api_hour_cache_hours else None
        startup: dict[str, Any] = {
            "serving_after_s": round(serving_s, 2),
            "ready_after_s": round(ready_s, 2),
            "hour_index_loaded_after_s": hours_s and round(hours_s, 2),
            **_index_load(api),
            **api.memory_mib(),
        }
        yield api, startup
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(f"API stopped (exit status {process.returncode})")


_TEXT_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ \S+ \S+: (.*)$")
_LOADED = re.compile(r"window index: loaded (\d+) minutes \((\d+) rows\)")


def _log_messages(text: str) -> Iterator[tuple[float, str]]:
    """(time, message) of every line of the API's log, in its JSON or its text format."""
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                record = json.loads(line)
                yield _log_time(record["time"]), str(record["message"])
            except (ValueError, KeyError):
                continue
        elif found := _TEXT_LINE.match(line):
            yield _log_time(found[1]), found[2]


def _index_load(api: Api) -> dict[str, Any]:
    """The first load of the window index, from the API's log: duration, minutes, rows.

    From "Application startup complete" to the first "window index: loaded" line, which
    comes once the standard windows are ranked too, a little after /readyz says ready.
    """
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        started = loaded = None
        for at, message in _log_messages(api.log_path.read_text(errors="replace")):
            if started is None and "Application startup complete" in message:
                started = at
            elif started is not None and (found := _LOADED.search(message)):
                loaded = (at, int(found[1]), int(found[2]))
                break
        if started is not None and loaded is not None:
            return {
                "index_load_s": round(loaded[0] - started, 2),
                "index_minutes": loaded[1],
                "index_rows": loaded[2],
            }
        time.sleep(0.2)
    return {"index_load_s": None, "index_minutes": None, "index_rows": None}


def _log_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _wait_for(api: Api, path: str, started: float) -> float:
    """Seconds from ``started`` until ``path`` answers 200."""
    deadline = started + READY_TIMEOUT_S
    with httpx.Client(base_url=api.url, timeout=5) as client:
        while time.perf_counter() < deadline:
            if api.process.poll() is not None:
                raise RuntimeError(f"the API exited ({api.process.returncode}):\n{api.log_tail()}")
            try:
                if client.get(path).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass  # not listening yet, or busy loading
            time.sleep(0.1)
    raise RuntimeError(f"{path} not ready after {READY_TIMEOUT_S:.0f} s:\n{api.log_tail()}")


def _wait_for_hour_index(api: Api, started: float) -> float:
    """Seconds from ``started`` until the hour index holds every hour it wants.

    /readyz does not wait for it (until then long windows are answered by SQL); the
    benchmark does, so that neither its loading nor the SQL fallback is measured.
    """
    deadline = started + READY_TIMEOUT_S
    with httpx.Client(base_url=api.url, timeout=5) as client:
        while time.perf_counter() < deadline:
            hours = {
                sample.labels["state"]: sample.value
                for family in text_string_to_metric_families(client.get("/metrics").text)
                for sample in family.samples
                if sample.name == "adclick_api_hour_index_hours"
            }
            if hours and hours["held"] >= hours["wanted"]:
                return time.perf_counter() - started
            time.sleep(0.5)
    raise RuntimeError(f"the hour index did not load in {READY_TIMEOUT_S:.0f} s")


class GraphQLClient:
    """Sends the documented operations and times each request (seconds)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S)
        self.documents = _operations()

    def close(self) -> None:
        self.http.close()

    def timed(self, operation: str, **variables: Any) -> tuple[float, dict[str, Any]]:
        body = {
            "query": self.documents[operation],
            "operationName": operation,
            "variables": variables,
        }
        started = time.perf_counter()
        response = self.http.post("/graphql", json=body)
        elapsed = time.perf_counter() - started
        answer = response.json()
        if response.status_code != 200 or answer.get("errors"):
            raise RuntimeError(f"{operation} {variables}: {response.status_code} {answer}")
        data: dict[str, Any] = answer["data"]
        return elapsed, data


@dataclass(frozen=True)
class Request:
    """One request of a query kind: an operation and its variables."""

    operation: str
    variables: dict[str, Any]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def _top_last(minutes: int, country: str | None = None, limit: int = 100) -> Request:
    variables: dict[str, Any] = {"lastMinutes": minutes, "limit": limit}
    if country is not None:
        variables["filter"] = {"country": [country]}
    return Request("TopAds", variables)


def _top_range(end_ms: int, minutes: int, country: str | None = None) -> Request:
    variables: dict[str, Any] = {
        "from": _iso(end_ms - minutes * MINUTE_MS),
        "to": _iso(end_ms),
        "limit": 100,
    }
    if country is not None:
        variables["filter"] = {"country": [country]}
    return Request("TopAdsInRange", variables)


def latency(
    settings: Settings,
    dataset: Dataset,
    *,
    repeat: int,
    slow_repeat: int,
    log_path: Path,
    emit: Emit,
    only: Sequence[str] = (),
) -> None:
    """Start the API on the dataset and emit one result per query kind.

    ``only``: measure just the kinds whose name contains one of these strings.
    """
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    spec = dataset.spec
    cache_minutes = settings.api_cache_minutes
    end_ms = dataset.end_ms  # the minute stream time is in: windows end here
    whole = spec.minutes
    width = ad_id_width(spec.ads)
    rng = random.Random(11)
    common = {"zipf": spec.zipf, "hours": spec.hours, "ads": spec.ads,
              "clicks_per_minute": spec.clicks_per_minute}  # fmt: skip

    with running_api(settings, log_path) as (api, startup):
        emit({"run": "startup", **common, **startup})
        client = GraphQLClient(api.url)
        try:

            def measure(kind: str, requests: list[Request], *, warmup: int = 0,
                        **extra: Any) -> None:  # fmt: skip
                if only and not any(part in kind for part in only):
                    return
                if len(requests) <= warmup:
                    print(f"skipped (the dataset is too short for it): {kind}")
                    return
                warmup_s = [client.timed(r.operation, **r.variables)[0] for r in requests[:warmup]]
                load = os.getloadavg()[0]
                samples: list[float] = []
                source = None
                before = _ranked_by(api)
                for request in requests[warmup:]:
                    elapsed, data = client.timed(request.operation, **request.variables)
                    samples.append(elapsed)
                    source = next(iter(data.values()))["source"]
                # What answered, as the API counted it (adClicks: always SQL).
                after = _ranked_by(api)
                ranked_by = {k: int(n - before.get(k, 0)) for k, n in after.items()
                             if n > before.get(k, 0)} or "SQL (adClicks)"  # fmt: skip
                emit({"run": "query", "kind": kind, "ranked_by": ranked_by, "source": source,
                      **_summary(samples), **extra,
                      **({"warmup_ms": [round(s * 1000, 1) for s in warmup_s]} if warmup else {}),
                      "loadavg_1m": round(load, 2), **common})  # fmt: skip

            # Warm up every code path on windows that are not measured later (30 minutes
            # long, another country), so none of the measured windows is cached by it.
            for i in range(20):
                client.timed("TopAdsInRange", **_top_range(end_ms - i * MINUTE_MS, 30).variables)
                client.timed(
                    "TopAdsInRange", **_top_range(end_ms - i * MINUTE_MS, 30, "IN").variables
                )
                for minutes in (1, 5, 15, 60):
                    client.timed("TopAds", **_top_last(minutes).variables)
            _elapsed, top = client.timed("TopAds", **_top_last(60, limit=1000).variables)
            popular = [ad["adId"] for ad in top["topAds"]["ads"]]
            rare = [ad_id(rng.randint(1, spec.ads), width) for _ in range(repeat + 20)]
            for ad in popular[:20] + rare[:20]:
                client.timed("AdClicksLastHour", adId=ad)

            # adClicks: one ad's last 60 minutes, always by SQL (the rollup's key).
            measure("adClicks lastMinutes 60, popular ads (top 1000)",
                    [Request("AdClicksLastHour", {"adId": rng.choice(popular)})
                     for _ in range(repeat)])  # fmt: skip
            measure("adClicks lastMinutes 60, random ads (mostly rare)",
                    [Request("AdClicksLastHour", {"adId": ad}) for ad in rare[20:]])  # fmt: skip

            # The standard windows, ranked by the API ahead of queries.
            for minutes in (1, 5, 15, 60):
                measure(f"topAds lastMinutes {minutes}", [_top_last(minutes)] * repeat)

            # A standard window with a filter: not ranked ahead, cached after its first.
            measure("topAds lastMinutes 60 country US, first request (cold)",
                    [_top_last(60, "US")])  # fmt: skip
            measure("topAds lastMinutes 60 country US, repeated (cached)",
                    [_top_last(60, "US")] * repeat)  # fmt: skip

            # Ad-hoc 60-minute windows, not aligned with the standard ones.
            ad_hoc_end = end_ms - AD_HOC_END_BACK * MINUTE_MS
            span = min(cache_minutes, whole) if cache_minutes else whole
            # Every other end minute whose 60-minute window lies inside the cached range
            # (and is not the standard window ending at stream time's minute).
            ends = [end_ms - back * MINUTE_MS for back in range(1, span - AD_HOC_MINUTES + 1)
                    if back != AD_HOC_END_BACK]  # fmt: skip
            rng.shuffle(ends)
            for country, label in ((None, ""), ("US", " country US")):
                name = f"topAds {AD_HOC_MINUTES}-minute from/to{label}"
                measure(f"{name}, first request (cold)",
                        [_top_range(ad_hoc_end, AD_HOC_MINUTES, country)],
                        window_end_minutes_before_stream_time=AD_HOC_END_BACK)  # fmt: skip
                measure(f"{name}, repeated (cached)",
                        [_top_range(ad_hoc_end, AD_HOC_MINUTES, country)] * repeat)  # fmt: skip
                measure(f"{name}, a different window each (uncached)",
                        [_top_range(e, AD_HOC_MINUTES, country) for e in ends[:repeat]],
                        windows=f"{AD_HOC_MINUTES} minutes, ending 1 to "
                        f"{span - AD_HOC_MINUTES} minutes before stream time's minute")  # fmt: skip

            # The longest windows: the whole dataset, and 24 hours (more than there is).
            # Each request a different window (ending 1 to slow_repeat minutes before
            # stream time's minute), so no answer comes from the ranking cache.
            longest = ((whole, "the whole dataset"),
                       (DAY_MINUTES, f"24 h; the data holds {spec.hours} h"))  # fmt: skip
            for (minutes, label), (country, named) in itertools.product(
                longest, ((None, ""), ("US", " country US"))
            ):
                measure(f"topAds {minutes}-minute from/to{named} ({label}), "
                        "a different window each",
                        [_top_range(end_ms - back * MINUTE_MS, minutes, country)
                         for back in range(1, slow_repeat + 1)])  # fmt: skip
            measure(f"topAds lastMinutes {DAY_MINUTES} (cached after the first)",
                    [_top_last(DAY_MINUTES)] * (slow_repeat + 1), warmup=1)  # fmt: skip
            filtered_repeat = max(2, slow_repeat // 4)
            measure(f"topAds lastMinutes {whole} country US (the whole dataset)",
                    [_top_last(whole, "US")] * (filtered_repeat + 1), warmup=1)  # fmt: skip
        finally:
            client.close()
        emit({"run": "after", **common, **api.memory_mib()})


def _ranked_by(api: Api) -> dict[str, float]:
    """The API's count of topAds answers by what ranked them."""
    return {
        sample.labels["ranked_by"]: sample.value
        for family in text_string_to_metric_families(httpx.get(f"{api.url}/metrics").text)
        for sample in family.samples
        if sample.name == "adclick_api_top_ads_total"
    }


def _summary(samples: list[float]) -> dict[str, Any]:
    ms = np.array(samples) * 1000
    p50, p99 = np.percentile(ms, [50, 99])
    return {
        "n": len(samples),
        "p50_ms": round(float(p50), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(float(ms.max()), 2),
        "mean_ms": round(float(ms.mean()), 2),
    }
