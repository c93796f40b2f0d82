-- Recalculated minutes changed under the API's window index: raise their revision (under
-- the pseudo-partition -1, which no consumer owns) so every API process reloads them.
INSERT INTO rollup_changes AS c (minute, kafka_partition)
SELECT m, -1
FROM generate_series(%(start)s::timestamptz,
                     %(end)s::timestamptz - INTERVAL '1 minute',
                     INTERVAL '1 minute') AS m
ON CONFLICT (minute, kafka_partition)
DO UPDATE SET revision = c.revision + 1, updated_at = now()
