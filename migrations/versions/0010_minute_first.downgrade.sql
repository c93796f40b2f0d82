-- Back to migration 0001's keys (ad first) and 0002's minute BRIN indexes.
ALTER TABLE clicks_1m DROP CONSTRAINT clicks_1m_pkey;
ALTER TABLE clicks_1m ADD PRIMARY KEY (ad_id, minute);
CREATE INDEX IF NOT EXISTS clicks_1m_minute_brin ON clicks_1m USING brin (minute)
WITH (pages_per_range = 8);

DO $$
DECLARE
    t text;
    dims text[];
    key text;
BEGIN
    FOR t, dims IN SELECT table_name, dimensions FROM filtered_rollups LOOP
        SELECT string_agg(format('%I', d), ', ' ORDER BY n) INTO key
        FROM unnest(dims) WITH ORDINALITY AS u (d, n);
        EXECUTE format(
            'ALTER TABLE %I DROP CONSTRAINT %I', t,
            (SELECT conname FROM pg_constraint WHERE conrelid = format('%I', t)::regclass AND contype = 'p')
        );
        EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (ad_id, %s, minute)', t, key);
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS %I ON %I USING brin (minute) WITH (pages_per_range = 8)',
            t || '_minute_brin', t
        );
    END LOOP;
END $$;
