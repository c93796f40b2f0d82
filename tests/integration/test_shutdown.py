"""SIGTERM and SIGINT stop a worker cleanly: it exits 0 promptly and counts stay exact."""

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
    recent_spec,
    rollup_counts,
    wait_for,
)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_run_stops_the_worker_cleanly(
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
    # Whatever was committed stays; a restart finishes the rest exactly.
    ingest_until_idle(settings)
    assert committed_offsets(settings) == spec.events
    assert rollup_counts(settings) == truth.by_ad_minute
