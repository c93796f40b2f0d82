-- Chunks of a hypertable that end before a time, oldest first.
SELECT chunk_schema, chunk_name, range_start, range_end
FROM timescaledb_information.chunks
WHERE hypertable_schema = 'public' AND hypertable_name = %(relation)s
  AND range_end <= %(before)s
ORDER BY range_start;
