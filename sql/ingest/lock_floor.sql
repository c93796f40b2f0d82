-- The ingest floor in epoch ms, share-locked until the batch commits: maintenance cannot
-- raise it (and then tier a range) while this batch may still write into that range.
SELECT (extract(epoch FROM before) * 1000)::float8 FROM ingest_floor FOR SHARE;
