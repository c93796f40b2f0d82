"""Prometheus metrics of the ingest workers (conventional names, base units).

``adclick ingest --metrics-port`` serves them; with several worker processes they are
aggregated through prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from adclick.settings import Settings

EVENTS_CONSUMED = Counter(
    "adclick_ingest_events_consumed_total", "Messages read from the clicks topic."
)
EVENTS_INSERTED = Counter(
    "adclick_ingest_events_inserted_total", "Clicks stored for the first time (counted)."
)
EVENTS_DUPLICATE = Counter(
    "adclick_ingest_events_duplicate_total", "Valid clicks already stored (not counted again)."
)
EVENTS_LATE = Counter(
    "adclick_ingest_events_late_total", "Valid clicks behind their partition's watermark."
)
EVENTS_DEAD_LETTERED = Counter(
    "adclick_ingest_events_dead_lettered_total",
    "Messages sent to the dead-letter topic, by reason.",
    ["reason"],
)
PARSER_FAILURES = Counter(
    "adclick_ingest_parser_failures_total",
    "Messages the parser failed on with an unexpected error (dead-lettered as "
    "parser_failed), by exception type: each is a bug to report.",
    ["kind"],
)
# The supervisor's own (the parent of the workers): served next to the workers' metrics,
# not through the multiprocess files, so it is in no default registry.
WORKER_RESTARTS = Counter(
    "adclick_ingest_worker_restarts_total",
    "Worker processes restarted by `adclick ingest --workers N` after they died.",
    registry=None,
)
BATCH_SECONDS = Histogram(
    "adclick_ingest_batch_duration_seconds",
    "Time to write and commit one batch.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
FRESHNESS_SECONDS = Histogram(
    "adclick_ingest_freshness_seconds",
    "Per batch, the age of its first message at commit (broker append to counted): about "
    "the longest a click of that batch waited.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0),
)
WATERMARK = Gauge(
    "adclick_ingest_watermark_timestamp_seconds",
    "Event time up to which a partition is complete (Unix time).",
    ["partition"],
    multiprocess_mode="max",
)

CONSUMER_LAG = Gauge(
    "adclick_ingest_consumer_lag_messages",
    "Messages of a partition not yet committed: its end (as of the last fetch) minus the "
    "next offset to read.",
    ["partition"],
    multiprocess_mode="max",
)


def record_batch(
    consumed: int, inserted: int, duplicates: int, late: int, dead_lettered: Mapping[str, int]
) -> None:
    """One committed batch's counts (dead letters by reason)."""
    EVENTS_CONSUMED.inc(consumed)
    EVENTS_INSERTED.inc(inserted)
    EVENTS_DUPLICATE.inc(duplicates)
    EVENTS_LATE.inc(late)
    for reason, count in dead_lettered.items():
        EVENTS_DEAD_LETTERED.labels(reason).inc(count)


def record_partition(partition: int, watermark_ms: int | None, lag: int | None) -> None:
    """A partition's watermark and consumer lag after a batch (None: not known yet)."""
    if watermark_ms is not None:
        WATERMARK.labels(str(partition)).set(watermark_ms / 1000)
    if lag is not None:
        CONSUMER_LAG.labels(str(partition)).set(lag)


def serve_metrics(settings: Settings, port: int, workers: int) -> None:
    """Serve /metrics on ADCLICK_METRICS_HOST:port for this process, or for all its workers.

    Worker processes (``--workers`` > 1) write their values to files in a directory the
    parent names before it starts them; the parent's server sums them up.
    """
    if workers == 1:
        start_http_server(port, addr=settings.metrics_host)
        return
    directory = settings.state_dir.resolve() / "metrics" / str(os.getpid())
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)  # inherited by the workers
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    registry.register(WORKER_RESTARTS)
    start_http_server(port, addr=settings.metrics_host, registry=registry)
