-- Newest event time per partition and its watermark (newest minus allowed lateness).
INSERT INTO partition_watermarks AS w (topic, kafka_partition, max_event_time, watermark)
SELECT
    %(topic)s, p,
    'epoch'::timestamptz + newest_ms * INTERVAL '1 millisecond',
    'epoch'::timestamptz + newest_ms * INTERVAL '1 millisecond' - %(lateness)s::interval
FROM unnest(%(partitions)s::integer[], %(newest_ms)s::bigint[]) AS t (p, newest_ms)
ON CONFLICT (topic, kafka_partition) DO UPDATE
SET max_event_time = GREATEST(w.max_event_time, excluded.max_event_time),
    watermark = GREATEST(w.watermark, excluded.watermark),
    updated_at = now();
