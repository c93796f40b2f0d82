-- Per-connection staging table of the ingest worker; emptied at every commit.
-- ts_ms stays an integer on the wire (binary COPY of int8 is the cheapest form).
CREATE TEMP TABLE IF NOT EXISTS ingest_staging (
    ts_ms bigint NOT NULL,
    click_id text NOT NULL,
    ad_id text NOT NULL,
    user_id text NOT NULL,
    ip text NOT NULL,
    country text NOT NULL,
    attributes text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset bigint NOT NULL
) ON COMMIT DELETE ROWS;
