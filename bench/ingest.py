"""``python -m bench ingest``: sustained ingest throughput and end-to-end freshness.

Throughput: preload a topic with loadgen traffic (1% duplicates, 1% late), then run the
workers until the topic is drained; events/s = events / (last commit - first batch start),
so group joining and the idle wait at the end are not counted.

Freshness: start the workers first, then produce at a fixed rate with event time = now;
each message's freshness is its batch's commit time minus its Kafka produce timestamp.
"""

from __future__ import annotations

import multiprocessing
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.queues import Queue

from adclick.ingest.worker import IngestWorker, WorkerTotals
from adclick.kafka import make_producer
from adclick.loadgen.generator import LoadSpec, generate
from adclick.loadgen.send import send_blocks
from adclick.settings import Settings
from bench.environment import bench_run, this_machine

IDLE_EXIT_S = 3.0
# The freshness run starts its workers before producing; they must not exit meanwhile.
GROUP_SETTLE_S = 10.0


@dataclass(frozen=True)
class WorkerResult:
    totals: WorkerTotals
    freshness_s: list[float]


def _worker(settings: Settings, name: str, freshness: bool, results: Queue[WorkerResult]) -> None:
    worker = IngestWorker(settings, name, record_freshness=freshness)
    totals = worker.run(exit_when_idle_s=GROUP_SETTLE_S + IDLE_EXIT_S if freshness else IDLE_EXIT_S)
    results.put(WorkerResult(totals, worker.freshness_s or []))


def _run_workers(
    settings: Settings, count: int, freshness: bool
) -> tuple[list[multiprocessing.context.SpawnProcess], Queue[WorkerResult]]:
    context = multiprocessing.get_context("spawn")
    results: Queue[WorkerResult] = context.Queue()
    processes = [
        context.Process(target=_worker, args=(settings, f"bench-{i}", freshness, results))
        for i in range(count)
    ]
    for process in processes:
        process.start()
    return processes, results


def _collect(
    processes: Sequence[multiprocessing.process.BaseProcess], results: Queue[WorkerResult]
) -> list[WorkerResult]:
    collected = [results.get(timeout=3600) for _ in processes]
    for process in processes:
        process.join()
    return collected


def _spec(events: int, zipf: float, ads: int, event_rate: float, start_ms: int) -> LoadSpec:
    return LoadSpec(
        events=events,
        start_ms=start_ms,
        seed=7,
        ads=ads,
        zipf=zipf,
        duplicate_fraction=0.01,
        late_fraction=0.01,
        max_lateness_s=120,
        event_rate=event_rate,
    )


def throughput(
    base: Settings, events: int, workers: int, zipf: float, ads: int, partitions: int,
    shards: int = 1,
) -> dict[str, object]:  # fmt: skip
    """Events/s from a preloaded topic to committed rollups (in ``shards`` databases)."""
    with bench_run(base, partitions, shards) as settings:
        # Event time: 10,000 events per second of stream, ending a little before now.
        span_ms = events // 10
        start_ms = (int(time.time() * 1000) - span_ms - 600_000) // 60_000 * 60_000
        spec = _spec(events, zipf, ads, 10_000.0, start_ms)
        print(
            f"preloading {events:,} events ({'uniform' if zipf == 0 else f'Zipf {zipf}'} over "
            f"{ads:,} ads) into {settings.clicks_topic} ({partitions} partitions)"
        )
        report = send_blocks(generate(spec), make_producer(settings), settings.clicks_topic)
        print(f"preloaded: {report.summary()}")
        processes, queue = _run_workers(settings, workers, freshness=False)
        results = _collect(processes, queue)
        consumed = sum(r.totals.consumed for r in results)
        starts = [r.totals.first_batch_at for r in results if r.totals.first_batch_at]
        ends = [r.totals.last_commit_at for r in results if r.totals.last_commit_at]
        elapsed = max(ends) - min(starts)
        return {
            "events": consumed,
            "inserted": sum(r.totals.inserted for r in results),
            "duplicates": sum(r.totals.duplicates for r in results),
            "batches": sum(r.totals.batches for r in results),
            "elapsed_s": round(elapsed, 2),
            "events_per_s": round(consumed / elapsed),
        }


def freshness(
    base: Settings, rate: float, duration_s: float, workers: int, zipf: float, ads: int,
    partitions: int, shards: int = 1,
) -> dict[str, object]:  # fmt: skip
    """p50/p99 of produce-to-commit time at a fixed produce rate."""
    with bench_run(base, partitions, shards) as settings:
        processes, queue = _run_workers(settings, workers, freshness=True)
        time.sleep(GROUP_SETTLE_S)  # let the group form, so joining is not measured as latency
        events = int(rate * duration_s)
        spec = _spec(events, zipf, ads, rate, int(time.time() * 1000))
        print(f"producing {events:,} events at {rate:,.0f}/s for {duration_s:.0f} s")
        sender = threading.Thread(
            target=send_blocks,
            args=(generate(spec), make_producer(settings), settings.clicks_topic),
            kwargs={"rate": rate},
        )
        sender.start()
        sender.join()
        results = _collect(processes, queue)
        samples = sorted(s for r in results for s in r.freshness_s)
        quantiles = statistics.quantiles(samples, n=100)
        return {
            "events": len(samples),
            "rate": rate,
            "p50_s": round(quantiles[49], 3),
            "p99_s": round(quantiles[98], 3),
            "max_s": round(samples[-1], 3),
        }


def machine_line() -> str:
    """One line naming the machine, for the report."""
    return this_machine().describe()
