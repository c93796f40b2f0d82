-- The revisions of every minute of a range and partition (ingest raises a minute's
-- revision in the transaction that changes its rollups): equal twice, nothing was written
-- to those minutes in between.
SELECT minute, kafka_partition, revision
FROM rollup_changes
WHERE minute >= %(start)s AND minute < %(end)s
ORDER BY minute, kafka_partition;
