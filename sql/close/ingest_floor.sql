-- The ingest floor in epoch ms (NULL while it is -infinity): below it maintenance may
-- have tiered the rollups a list would be ranked from.
SELECT CASE WHEN isfinite(before) THEN (extract(epoch FROM before) * 1000)::bigint END
FROM ingest_floor;
