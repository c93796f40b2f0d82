-- The next offset to read per partition, moved in the batch's own transaction.
-- GREATEST: a worker that lost its partitions mid-batch (a zombie) must not move
-- them back; its rows were deduplicated anyway.
INSERT INTO ingest_offsets AS o (consumer_group, topic, kafka_partition, next_offset)
SELECT %(group)s, %(topic)s, p, n
FROM unnest(%(partitions)s::integer[], %(offsets)s::bigint[]) AS t (p, n)
ON CONFLICT (consumer_group, topic, kafka_partition) DO UPDATE
SET next_offset = GREATEST(o.next_offset, excluded.next_offset), updated_at = now();
