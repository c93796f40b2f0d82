"""Counts equal the truth exactly: loadgen truth, real clicks, crashes, rebalances."""

from __future__ import annotations

import csv
import random
import signal
import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from adclick.demo.talkingdata import DEFAULT_SAMPLE, sample_events
from adclick.kafka import make_producer
from adclick.loadgen.truth import Truth
from adclick.settings import Settings
from tests.helpers import (
    WorkerThread,
    committed_offsets,
    country_rollup_counts,
    duplicate_click_ids,
    hourly_counts,
    hours_from_minutes,
    ingest_process,
    ingest_until_idle,
    load,
    read_topic,
    recent_spec,
    rollup_counts,
    wait_for,
)


def assert_counts_equal_truth(settings: Settings, truth: Truth) -> None:
    assert rollup_counts(settings) == truth.by_ad_minute
    assert country_rollup_counts(settings) == truth.by_ad_minute_country
    assert hourly_counts(settings) == hours_from_minutes(truth.by_ad_minute)
    assert duplicate_click_ids(settings) == 0


def test_counts_equal_the_loadgen_truth(settings: Settings) -> None:
    spec = recent_spec(
        60_000,
        seed=11,
        ads=20_000,
        duplicate_fraction=0.05,
        late_fraction=0.05,
        max_lateness_s=600,
        invalid_fraction=0.02,
    )
    truth = load(settings, spec)
    totals = ingest_until_idle(settings)
    assert_counts_equal_truth(settings, truth)
    assert totals.consumed == 60_000
    assert totals.inserted == truth.total
    assert totals.late > 0  # max lateness 10 min is beyond the allowed 1 min
    invalid = totals.consumed - totals.inserted - totals.duplicates
    assert totals.dead_lettered == invalid
    assert len(read_topic(settings, settings.dlq_topic, expected=invalid)) == invalid


def test_real_clicks_of_the_talkingdata_sample_count_exactly(settings: Settings) -> None:
    producer = make_producer(settings)
    for event in sample_events():
        producer.produce(settings.clicks_topic, value=event.to_json(), key=event.ad_id.encode())
        producer.poll(0)
    assert producer.flush(60) == 0
    totals = ingest_until_idle(settings)

    # The expectation straight from the CSV, independent of the event mapping's code.
    expected: Counter[tuple[str, int]] = Counter()
    with DEFAULT_SAMPLE.open(newline="") as handle:
        for row in csv.DictReader(handle):
            minute = datetime.strptime(row["click_time"], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
            expected[(f"ch{row['channel']}", int(minute.timestamp()))] += 1
    assert sum(expected.values()) == 100_000
    assert rollup_counts(settings) == dict(expected)
    assert totals.inserted == 100_000 and totals.dead_lettered == 0
    # The sample is in file order, not time order, like merged real logs: most is late.
    assert totals.late > 50_000


@pytest.mark.slow(seconds=100)
def test_kill_9_at_random_moments_loses_nothing_and_counts_nothing_twice(
    settings: Settings,
) -> None:
    spec = recent_spec(
        240_000,
        seed=5,
        ads=50_000,
        duplicate_fraction=0.05,
        late_fraction=0.05,
        max_lateness_s=600,
        invalid_fraction=0.01,
    )
    truth = load(settings, spec)
    # Small batches: many transactions, so a kill lands at every stage of one.
    crashing = settings.model_copy(update={"ingest_batch_size": 2_000})
    rng = random.Random(2026)
    kills = 0
    while kills < 5:
        worker = ingest_process(crashing)
        progress = committed_offsets(settings)
        wait_for(
            lambda before=progress: committed_offsets(settings) > before,  # type: ignore[misc]
            90,
            "the worker to commit",
        )
        # A random moment once it is busy: between batches, mid-COPY, mid-commit.
        time.sleep(rng.uniform(0.0, 0.4))
        assert committed_offsets(settings) < spec.events, "ran out of work before 5 kills"
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        kills += 1
    final = ingest_process(crashing, "--exit-when-idle", "3")
    _out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err.decode()[-2000:]
    assert kills == 5
    assert committed_offsets(settings) == spec.events
    assert_counts_equal_truth(settings, truth)


def test_two_workers_in_one_group_count_exactly(settings: Settings) -> None:
    truth = load(settings, recent_spec(80_000, seed=21, ads=10_000, duplicate_fraction=0.05))
    small = settings.model_copy(update={"ingest_batch_size": 2_000})
    workers = [WorkerThread(small, f"w{i}", idle_s=3) for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    totals = [w.totals for w in workers]
    assert all(t is not None and t.consumed > 0 for t in totals), totals
    assert sum(t.consumed for t in totals if t) == 80_000
    assert_counts_equal_truth(settings, truth)


def test_a_worker_joining_and_one_leaving_mid_run_keep_counts_exact(settings: Settings) -> None:
    spec = recent_spec(150_000, seed=31, ads=10_000, duplicate_fraction=0.05, late_fraction=0.05)
    truth = load(settings, spec)
    small = settings.model_copy(update={"ingest_batch_size": 1_000})
    first = WorkerThread(small, "first")
    first.start()
    wait_for(lambda: committed_offsets(settings) > 0, 60, "the first worker to commit")
    second = WorkerThread(small, "second", idle_s=3)
    second.start()
    wait_for(lambda: bool(second.worker.totals.batches), 60, "the second worker to take over")
    assert committed_offsets(settings) < spec.events, "the run ended before the join"
    first.worker.stop()  # leaves the group; the second takes its partitions
    first.join(timeout=60)
    assert not first.is_alive()
    assert committed_offsets(settings) < spec.events, "the run ended before the leave"
    second.join(timeout=300)
    assert first.totals is not None and second.totals is not None
    assert first.totals.consumed + second.totals.consumed >= spec.events
    assert_counts_equal_truth(settings, truth)
