-- The stream's clock: newest event time over the partitions, and the global watermark
-- (minimum of the partitions' watermarks; a partition that never had data has no row).
SELECT (extract(epoch FROM max(max_event_time)) * 1000)::bigint AS newest_ms,
       (extract(epoch FROM min(watermark)) * 1000)::bigint AS watermark_ms,
       (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS wall_ms
FROM partition_watermarks
WHERE topic = %(topic)s;
