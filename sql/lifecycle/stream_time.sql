-- "Now" for retention: the newest event time ingested (wall clock before any event), so
-- a replay of last month is tiered like live traffic; and the tiering time, the newest
-- event time of the slowest partition still within the dedup horizon of the fastest.
-- Cutting at the slowest partition keeps its late clicks hot until it catches up; one
-- further behind than the horizon is not waited for (its older clicks are refused anyway).
WITH partitions AS (
    SELECT max_event_time FROM partition_watermarks WHERE topic = %(topic)s
)
SELECT coalesce(max(max_event_time), now()),
       coalesce(
           min(max_event_time) FILTER (
               WHERE max_event_time >= (SELECT max(max_event_time) FROM partitions)
                                       - %(horizon)s::interval
           ),
           now()
       )
FROM partitions;
