-- What the query side needs (docs/api.md).

-- A revision per (minute, Kafka partition), raised by the ingest transaction that changes
-- that minute's rollups. The API's in-memory window index compares these to reload
-- exactly the minutes that changed, late events included. Keyed by partition so that
-- two workers never wait on each other's row; -1 marks changes from outside ingest
-- (this migration's backfill, recalculation).
CREATE TABLE rollup_changes (
    minute timestamptz NOT NULL,
    kafka_partition integer NOT NULL,
    revision bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (minute, kafka_partition)
);

INSERT INTO rollup_changes (minute, kafka_partition)
SELECT DISTINCT minute, -1 FROM clicks_1m;

-- Reading one minute of a rollup (the window index loads minute by minute) must not
-- scan its whole day-chunk. Rows arrive roughly in minute order, so a BRIN index finds
-- them for almost no cost on insert, unlike a second B-tree.
CREATE INDEX clicks_1m_minute_brin ON clicks_1m USING brin (minute) WITH (pages_per_range = 8);
-- And long windows sum whole hours from clicks_1h (30-day chunks).
CREATE INDEX clicks_1h_hour_brin ON clicks_1h USING brin (hour) WITH (pages_per_range = 8);

DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT table_name FROM filtered_rollups LOOP
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS %I ON %I USING brin (minute) WITH (pages_per_range = 8)',
            t || '_minute_brin', t
        );
    END LOOP;
END $$;
