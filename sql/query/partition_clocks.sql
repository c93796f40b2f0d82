-- Each partition's clock as ingest committed it, for the stream clock
-- (adclick.query.window_index.stream_clock_of): its partition, newest event time, its
-- watermark, and when its last batch committed (wall clock). A partition that never had
-- data has no row.
SELECT kafka_partition AS partition,
       (extract(epoch FROM max_event_time) * 1000)::bigint AS newest_ms,
       (extract(epoch FROM watermark) * 1000)::bigint AS watermark_ms,
       (extract(epoch FROM updated_at) * 1000)::bigint AS updated_ms
FROM partition_watermarks
WHERE topic = %(topic)s;
