"""Long-running processes ride out a database crash without an operator (issue 14):
PostgreSQL is stopped with ``pg_ctl stop -m immediate`` (every session cut off, no
shutdown checkpoint) and started again; the same processes carry on. The closer's case
is in test_close.py; ingest during a crash, a frozen broker, and every process at once
in test_soak.py."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx

from adclick.settings import Settings
from adclick.stack.lifecycle import local_targets
from adclick.stack.timescaledb import TimescaleCluster
from tests.api_client import ApiProcess, with_tokens
from tests.helpers import (
    adclick_process,
    ingest_until_idle,
    load,
    recent_spec,
    wait_for,
)

TOP_AND_CLICKS = """
query ($ad: String!) {
  topAds(window: {lastMinutes: 60}, limit: 20) { ads { adId clicks } }
  adClicks(adId: $ad, window: {lastMinutes: 60}, granularity: MINUTE) { clicks }
}"""


def cluster(settings: Settings) -> TimescaleCluster:
    return TimescaleCluster(settings.state_dir, local_targets(settings).db_port)


def readiness(url: str) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{url}/readyz", timeout=5)
    return response.status_code, response.json()


def test_the_api_says_unready_while_the_database_is_down_and_answers_after(
    settings: Settings, tmp_path: Path
) -> None:
    settings, tokens = with_tokens(settings, api_refresh_interval_s=0.2)
    truth = load(settings, recent_spec(3_000, seed=61, ads=200, event_rate=20.0))
    ingest_until_idle(settings)
    ad = max(truth.by_ad_minute, key=lambda key: truth.by_ad_minute[key])[0]
    api = ApiProcess(settings, tmp_path / "api.log")
    try:
        reader = api.client(tokens.reader)
        before = reader.run(TOP_AND_CLICKS, ad=ad)
        database = cluster(settings)
        database.stop(immediate=True)
        try:
            status, body = readiness(api.url)
            assert status == 503 and "database" in body["problems"]
            assert api.process.poll() is None
        finally:
            database.start()
        wait_for(lambda: readiness(api.url)[0] == 200, 30, "/readyz after the restart")
        # Every pooled connection died with the server: none of them may fail a request.
        for _ in range(10):
            assert reader.run(TOP_AND_CLICKS, ad=ad) == before
    finally:
        assert api.stop() == 0


def test_maintain_every_carries_on_after_a_database_restart(settings: Settings) -> None:
    maintain = adclick_process(settings, "maintain", "--every", "0.5")
    try:
        time.sleep(2.0)  # a pass or two
        database = cluster(settings)
        database.stop(immediate=True)
        time.sleep(2.0)
        database.start()
        time.sleep(5.0)  # with --every 0.5 a failed pass is retried after 0.5 s
        assert maintain.poll() is None, "maintain --every exited when the database went away"
    finally:
        maintain.send_signal(signal.SIGTERM)
        _out, err = maintain.communicate(timeout=60)
    log = err.decode()
    assert maintain.returncode == 0, log[-2000:]
    assert "database unavailable" in log
    # Passes ran again after the restart.
    restarted_at = log.index("database unavailable")
    assert "exported 0 chunks" in log[restarted_at:], log[-2000:]
