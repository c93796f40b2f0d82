-- "Now" for retention: the newest event time ingested (wall clock before any event), so
-- a replay of last month is tiered like live traffic.
SELECT coalesce(max(max_event_time), now()) FROM partition_watermarks WHERE topic = %(topic)s;
