-- Table, index and total bytes of each rollup's chunk holding the instant `at` (bench day).
SELECT c.hypertable_name, c.chunk_name,
       pg_relation_size(format('%%I.%%I', c.chunk_schema, c.chunk_name)),
       pg_indexes_size(format('%%I.%%I', c.chunk_schema, c.chunk_name)),
       pg_total_relation_size(format('%%I.%%I', c.chunk_schema, c.chunk_name))
FROM timescaledb_information.chunks c
WHERE c.hypertable_name = ANY(%(tables)s)
  AND c.range_start <= %(at)s AND c.range_end > %(at)s
ORDER BY c.hypertable_name
