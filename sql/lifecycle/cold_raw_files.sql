-- The cold files of raw clicks overlapping [start, end) whose chunk is no longer hot
-- (a chunk exported but not yet dropped is read from the table instead).
SELECT f.url
FROM cold_files AS f
WHERE f.relation = 'raw_clicks'
  AND f.range_end > %(start)s AND f.range_start < %(end)s
  AND NOT EXISTS (SELECT FROM timescaledb_information.chunks AS c
                  WHERE c.hypertable_name = 'raw_clicks' AND c.range_start = f.range_start)
