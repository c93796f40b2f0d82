-- Shared-buffer hits and reads of the rollups' chunks (bench day), cumulative.
SELECT coalesce(sum(s.heap_blks_hit), 0)::int8, coalesce(sum(s.heap_blks_read), 0)::int8,
       coalesce(sum(s.idx_blks_hit), 0)::int8, coalesce(sum(s.idx_blks_read), 0)::int8
FROM pg_statio_user_tables s
JOIN timescaledb_information.chunks c
  ON s.schemaname = c.chunk_schema AND s.relname = c.chunk_name
WHERE c.hypertable_name = ANY(%(tables)s)
