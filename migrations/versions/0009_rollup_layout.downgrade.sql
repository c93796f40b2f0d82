-- Back to migration 0001/0002's layout; chunks made meanwhile keep their hour interval.
SELECT set_chunk_time_interval('clicks_1m', INTERVAL '1 day');

DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT table_name FROM filtered_rollups LOOP
        PERFORM set_chunk_time_interval(t::regclass, INTERVAL '1 day');
    END LOOP;
END $$;

ALTER TABLE clicks_1h DROP CONSTRAINT clicks_1h_pkey;
ALTER TABLE clicks_1h ADD PRIMARY KEY (ad_id, hour);
CREATE INDEX IF NOT EXISTS clicks_1h_hour_brin ON clicks_1h USING brin (hour)
WITH (pages_per_range = 8);
