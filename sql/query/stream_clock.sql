-- The stream's clock: the newest event time over the partitions, and the global watermark:
-- the minimum of the partitions' watermarks, over the partitions that are not idle. A
-- partition is idle when its last batch is older (wall clock) than the newest batch of
-- any partition by more than the idle timeout; it then no longer holds the watermark
-- back (a partition that never had data has no row at all).
WITH partitions AS (
    SELECT max_event_time, watermark, updated_at,
           max(updated_at) OVER () AS newest_batch
    FROM partition_watermarks
    WHERE topic = %(topic)s
)
SELECT (extract(epoch FROM max(max_event_time)) * 1000)::bigint AS newest_ms,
       (extract(epoch FROM min(watermark) FILTER (
           WHERE updated_at >= newest_batch - %(idle_timeout)s::interval
       )) * 1000)::bigint AS watermark_ms,
       (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS wall_ms
FROM partitions;
