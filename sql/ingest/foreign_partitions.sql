-- Partitions of the topic whose ingest state this database holds although the worker's
-- shard map gives them to another shard: their offsets or clocks were written here (by
-- a worker with another map), so ingesting them elsewhere would count them twice.
-- docs/operations.md, Moving partitions between shards: a move takes both along.
SELECT kafka_partition FROM ingest_offsets
WHERE topic = %(topic)s AND NOT kafka_partition = ANY (%(owned)s)
UNION
SELECT kafka_partition FROM partition_watermarks
WHERE topic = %(topic)s AND NOT kafka_partition = ANY (%(owned)s)
ORDER BY 1;
