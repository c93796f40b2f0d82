"""The buckets of event time, in epoch milliseconds: one definition for every package
(ingest rolls clicks up by them, queries and the closer window by them, the loadgen's
truth counts by them)."""

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
