"""`adclick api` with several workers (ADCLICK_API_WORKERS): a worker that dies is replaced
while the others answer, and /metrics counts the requests of every worker. (That a
worker's answers are the supervisor's is test_ad_reads.py's; every test of the shared
API data goes through two workers.)"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import psutil

from tests.api_client import ApiProcess, free_port
from tests.helpers import wait_for
from tests.integration.conftest import ApiData

TOP = "{ topAds(window: {lastMinutes: 60}, limit: 20) { ads { adId clicks } } }"


def _workers(supervisor: int) -> list[psutil.Process]:
    """The supervisor's live uvicorn workers (multiprocessing's spawned children)."""
    workers = []
    for child in psutil.Process(supervisor).children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                workers.append(child)
        except psutil.ZombieProcess:  # dead, not yet reaped
            pass
    return workers


def test_a_killed_worker_is_replaced_and_answers_go_on(api_data: ApiData, tmp_path: Path) -> None:
    settings = api_data.settings.model_copy(update={"api_port": free_port(), "api_workers": 2})
    api = ApiProcess(settings, tmp_path / "api.log")
    try:
        reader = api.client(api_data.tokens.reader)
        expected = reader.run(TOP)
        assert expected["topAds"]["ads"], "no clicks: the comparison proves nothing"
        workers = _workers(api.process.pid)
        assert len(workers) == 2
        victim = workers[0].pid
        workers[0].kill()

        def replaced() -> bool:
            pids = {w.pid for w in _workers(api.process.pid)}
            return len(pids) == 2 and victim not in pids

        wait_for(replaced, timeout_s=60, what="a new worker in place of the killed one")
        wait_for(
            lambda: httpx.get(f"{api.url}/readyz").status_code == 200,
            timeout_s=30,
            what="the API to be ready",
        )
        for _ in range(20):  # whichever worker takes it
            assert reader.run(TOP) == expected
    finally:
        assert api.stop() == 0


def _requests(url: str) -> float:
    """adclick_api_requests_total over every operation and outcome, as /metrics says."""
    text = httpx.get(f"{url}/metrics").text
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^adclick_api_requests_total\{[^}]*\} (\S+)$", text, re.MULTILINE)
    )


def test_metrics_count_the_requests_of_every_worker(api_data: ApiData) -> None:
    reader = api_data.reader
    before = _requests(api_data.api.url)
    for _ in range(30):  # the kernel spreads them over the workers' shared socket
        reader.run(TOP)
    assert _requests(api_data.api.url) - before == 30
    text = httpx.get(f"{api_data.api.url}/metrics").text
    assert 'adclick_api_hour_index_hours{state="held"}' in text  # the supervisor's gauge
