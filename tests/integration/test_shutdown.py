"""SIGTERM and SIGINT stop the workers cleanly: exit 0 promptly, what is committed is exact."""

from __future__ import annotations

import signal
import time

import pytest

from adclick.settings import Settings
from tests.helpers import (
    committed_offsets,
    ingest_process,
    ingest_until_idle,
    load,
    query,
    recent_spec,
    rollup_counts,
    wait_for,
)

RAW_PER_MINUTE = """
    SELECT ad_id, extract(epoch FROM time_bucket('1 minute', ts))::bigint, count(*)
    FROM raw_clicks GROUP BY 1, 2
"""


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_run_stops_the_workers_cleanly(
    settings: Settings, stop_signal: signal.Signals
) -> None:
    spec = recent_spec(120_000, seed=17, ads=5_000, duplicate_fraction=0.02)
    truth = load(settings, spec)
    small = settings.model_copy(update={"ingest_batch_size": 2_000})
    worker = ingest_process(small, "--workers", "2")
    wait_for(lambda: committed_offsets(settings) > 0, 90, "the workers to commit")
    assert committed_offsets(settings) < spec.events, "nothing left to interrupt"
    signalled = time.monotonic()
    worker.send_signal(stop_signal)
    _out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err.decode()[-2000:]
    assert time.monotonic() - signalled < 30

    # What was committed is whole: every stored click is in the rollups exactly once.
    stored = {(ad, int(minute)): int(n) for ad, minute, n in query(settings, RAW_PER_MINUTE)}
    assert stored and rollup_counts(settings) == stored
    assert committed_offsets(settings) < spec.events

    # Reading the whole topic again (a new group starts at offset 0) adds exactly what was
    # missing: the clicks committed before the signal are not counted twice. A new group,
    # because the Tansu broker may never rebalance a group whose last members left during a
    # rebalance (docs/architecture.md); a real Kafka cluster has no such problem.
    replay = settings.model_copy(update={"consumer_group": settings.consumer_group + "-replay"})
    ingest_until_idle(replay)
    assert rollup_counts(settings) == truth.by_ad_minute
