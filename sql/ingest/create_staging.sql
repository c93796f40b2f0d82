-- Per-connection staging table of the ingest worker, for the batches that may hold
-- duplicates the worker could not rule out (see docs/architecture.md). Emptied at commit.
CREATE TEMP TABLE IF NOT EXISTS ingest_staging (
    ts timestamptz NOT NULL,
    click_id text NOT NULL,
    ad_id text NOT NULL,
    user_id text NOT NULL,
    ip inet NOT NULL,
    country text NOT NULL,
    attributes jsonb NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset bigint NOT NULL
) ON COMMIT DELETE ROWS;
