-- The ingest schema. Every table that holds event data is a hypertable on event time.
-- Performance notes (measured in docs/benchmarks.md): ids use the "C" collation, so index
-- comparisons are memcmp, not locale-aware; hypertables get no default time index, because
-- each already has a key that serves; rollups leave 30% of each page free, so the
-- clicks = clicks + n updates can stay on their page (HOT) without touching the index.
CREATE EXTENSION IF NOT EXISTS timescaledb;

-- Every accepted click, once. (ts, click_id) is the idempotency key: time first, because
-- the index then grows at its right edge and inserts stay fast (see docs/architecture.md).
CREATE TABLE raw_clicks (
    ts timestamptz NOT NULL,
    click_id text COLLATE "C" NOT NULL,
    ad_id text COLLATE "C" NOT NULL,
    user_id text NOT NULL,
    ip inet NOT NULL,
    country text NOT NULL,
    attributes jsonb NOT NULL DEFAULT '{}',
    kafka_partition integer NOT NULL,
    kafka_offset bigint NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (ts, click_id)
);
SELECT create_hypertable('raw_clicks', by_range('ts', INTERVAL '1 day'), create_default_indexes => FALSE);

-- Clicks per ad and minute / hour. Ad first: a per-ad window is one index range scan.
CREATE TABLE clicks_1m (
    minute timestamptz NOT NULL,
    ad_id text COLLATE "C" NOT NULL,
    clicks bigint NOT NULL,
    PRIMARY KEY (ad_id, minute)
) WITH (fillfactor = 70);
SELECT create_hypertable('clicks_1m', by_range('minute', INTERVAL '1 day'), create_default_indexes => FALSE);

CREATE TABLE clicks_1h (
    hour timestamptz NOT NULL,
    ad_id text COLLATE "C" NOT NULL,
    clicks bigint NOT NULL,
    PRIMARY KEY (ad_id, hour)
) WITH (fillfactor = 70);
SELECT create_hypertable('clicks_1h', by_range('hour', INTERVAL '30 days'), create_default_indexes => FALSE);

-- The filtered rollups that exist; their tables are made from configuration
-- (sql/schema/filtered_rollup.sql).
CREATE TABLE filtered_rollups (
    table_name text PRIMARY KEY,
    dimensions text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The next Kafka offset to read, per consumer group and partition. Written in the same
-- transaction as the batch it follows, which is what makes ingest exactly-once.
CREATE TABLE ingest_offsets (
    consumer_group text NOT NULL,
    topic text NOT NULL,
    kafka_partition integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, kafka_partition)
);

-- The newest event time seen per partition. watermark = max_event_time - allowed lateness;
-- the global watermark is the minimum over partitions (see the minute closer).
CREATE TABLE partition_watermarks (
    topic text NOT NULL,
    kafka_partition integer NOT NULL,
    max_event_time timestamptz NOT NULL,
    watermark timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition)
);
