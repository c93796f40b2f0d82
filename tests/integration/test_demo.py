"""`adclick demo`, the README's first command: it serves, and it stops what it started."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from adclick.settings import Settings
from tests.conftest import free_port, fresh_settings
from tests.helpers import adclick_process

TOP_ADS = "{ topAds(window: {lastMinutes: 5}, limit: 5) { ads { adId clicks } source } }"


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:  # the field after the state is the parent's pid
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_demo_serves_graphql_and_sigterm_stops_all_it_started(
    stack_settings: Settings,
) -> None:
    with fresh_settings(stack_settings) as base:
        settings = base.model_copy(update={"api_port": free_port()})
        demo = adclick_process(settings, "demo", "--no-sample", "--rate", "200")
        started = []
        try:
            url = f"http://127.0.0.1:{settings.api_port}"
            deadline = time.monotonic() + 120
            while True:
                assert demo.poll() is None, demo.stderr.read() if demo.stderr else ""
                assert time.monotonic() < deadline, "the demo's API never got ready"
                try:
                    if httpx.get(f"{url}/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass  # not listening yet
                time.sleep(0.5)
            # GraphiQL and anonymous reads are on: a browser's query needs no token.
            page = httpx.get(f"{url}/graphql", headers={"accept": "text/html"})
            assert "graphiql" in page.text.lower()
            answer = httpx.post(f"{url}/graphql", json={"query": TOP_ADS}).json()
            assert "errors" not in answer and answer["data"]["topAds"]["source"] == "ROLLUP"
            started = children(demo.pid)
            assert len(started) == 4  # ingest, api, close, loadgen
        finally:
            demo.send_signal(signal.SIGTERM)
            assert demo.wait(timeout=90) == 0
        assert [pid for pid in started if alive(pid)] == []
