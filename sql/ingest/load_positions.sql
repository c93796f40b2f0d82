-- Where each partition resumes, and its newest event time, for an assignment.
SELECT p.p,
       o.next_offset,
       (extract(epoch FROM w.max_event_time) * 1000)::bigint AS newest_ms
FROM unnest(%(partitions)s::integer[]) AS p (p)
LEFT JOIN ingest_offsets AS o
       ON o.consumer_group = %(group)s AND o.topic = %(topic)s AND o.kafka_partition = p.p
LEFT JOIN partition_watermarks AS w
       ON w.topic = %(topic)s AND w.kafka_partition = p.p;
