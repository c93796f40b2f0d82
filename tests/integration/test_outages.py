"""Long-running processes ride out a database crash without an operator (issue 14):
PostgreSQL is stopped with ``pg_ctl stop -m immediate`` (every session cut off, no
shutdown checkpoint) and started again; the same processes carry on. The closer's case
is in test_close.py, ingest workers' in test_supervisor.py and test_exactness.py."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from adclick.close.closer import MinuteCloser
from adclick.settings import Settings
from adclick.stack.broker import TansuBroker
from adclick.stack.lifecycle import local_targets
from adclick.stack.timescaledb import TimescaleCluster
from tests.api_client import ApiProcess, with_tokens
from tests.helpers import (
    adclick_process,
    committed_offsets,
    ingest_process,
    ingest_until_idle,
    load,
    recent_spec,
    rollup_counts,
    wait_for,
)
from tests.integration.test_close import (
    assert_lists_equal_truth,
    assert_published_once_each,
    closer_settings,
    lists_settled,
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


def test_ingest_and_the_closer_ride_out_a_frozen_broker(settings: Settings) -> None:
    """The broker stops answering for longer than the consumers' session timeout (SIGSTOP,
    then SIGCONT): the same ingest and closer processes carry on, and every click is
    counted once and every list published once."""
    settings = closer_settings(settings).model_copy(update={"ingest_batch_size": 500})
    spec = recent_spec(30_000, seed=71, ads=300, event_rate=12.0, duplicate_fraction=0.02)
    truth = load(settings, spec)
    ingest = ingest_process(settings, "--workers", "1")
    closer = adclick_process(settings, "close")
    try:
        wait_for(lambda: committed_offsets(settings) > 0, 60, "ingest to commit")
        broker = TansuBroker(settings.state_dir, local_targets(settings).kafka_port).pid()
        assert broker is not None
        os.kill(broker, signal.SIGSTOP)
        try:
            time.sleep(10.0)  # the consumers' session timeout is 6 s
        finally:
            os.kill(broker, signal.SIGCONT)
        wait_for(lambda: committed_offsets(settings) == spec.events, 120, "ingest to finish")
        wait_for(lambda: lists_settled(settings, 8.0), 120, "the closer to catch up")
        assert ingest.poll() is None and closer.poll() is None, "a process exited"
    finally:
        for process in (ingest, closer):
            process.send_signal(signal.SIGTERM)
        logs = [process.communicate(timeout=60)[1].decode() for process in (ingest, closer)]
    assert [ingest.returncode, closer.returncode] == [0, 0], [log[-2000:] for log in logs]
    assert rollup_counts(settings) == truth.by_ad_minute
    catch_up = MinuteCloser(settings)
    catch_up.run(threading.Event(), once=True)
    assert catch_up.totals.closed_minutes == 0, "the closer had not caught up by itself"
    assert_lists_equal_truth(settings, truth)
    assert_published_once_each(settings)
