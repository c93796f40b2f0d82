-- Per partition of the clicks topic: the ingest group's next offset and the event times.
SELECT coalesce(o.kafka_partition, w.kafka_partition) AS kafka_partition,
       o.next_offset, w.max_event_time, w.watermark
FROM (SELECT * FROM ingest_offsets WHERE consumer_group = %(group)s AND topic = %(topic)s) AS o
FULL JOIN (SELECT * FROM partition_watermarks WHERE topic = %(topic)s) AS w
       ON w.kafka_partition = o.kafka_partition
ORDER BY 1;
