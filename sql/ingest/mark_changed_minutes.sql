-- Raise the revision of every minute whose rollups the batch changed, per partition of the
-- batch (a superset of the true pairs, which only costs the query side a reload). In key
-- order, like the rollup upserts, so overlapping writers cannot deadlock.
INSERT INTO rollup_changes AS c (minute, kafka_partition)
SELECT 'epoch'::timestamptz + m * INTERVAL '1 millisecond', p
FROM unnest(%(minutes)s::bigint[]) AS m, unnest(%(partitions)s::integer[]) AS p
ORDER BY 1, 2
ON CONFLICT (minute, kafka_partition) DO UPDATE
SET revision = c.revision + 1, updated_at = now();
