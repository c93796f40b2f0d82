"""Prometheus metrics of the minute closer."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CLOSE_SECONDS = Histogram(
    "adclick_close_minute_duration_seconds",
    "Time to rank, store and publish every list of one closed minute.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
CYCLE_SECONDS = Histogram(
    "adclick_close_cycle_duration_seconds",
    "Time of one closer pass (refresh, close, revise).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
CLOSED_MINUTE = Gauge(
    "adclick_close_last_closed_timestamp_seconds",
    "End of the newest closed minute (Unix time).",
    multiprocess_mode="max",
)
LISTS_PUBLISHED = Counter("adclick_close_lists_published_total", "Top lists published.")
REVISIONS = Counter(
    "adclick_close_revisions_total", "Revised top lists published after late events."
)
RECONNECTS = Counter(
    "adclick_close_reconnects_total",
    "Sessions the closer lost to an unavailable database or broker, and began again.",
)
SKIPPED_LISTS = Counter(
    "adclick_close_skipped_lists_total",
    "Top lists the closer could not make (their window starts below the ingest floor: its "
    "rollups may be tiered); each is recorded in the table skipped_top_lists.",
)
