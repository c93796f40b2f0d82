-- The per-minute rollups keyed minute first (docs/architecture.md, "Rollup layout").
--
-- Keyed (ad, minute), each minute's ~600,000 new rows at the design scale landed all over
-- the index of the hour being written: every insert a descent to a random leaf, a page
-- split anywhere, a full-page image per leaf after each checkpoint. Ingest slowed with the
-- hour (`adclick bench day`, uniform popularity: 0.57 times its hour-0 speed with 55
-- minutes in the chunk). Keyed (minute, ad), a minute's rows, which the worker sends in
-- key order, go to the index's right edge, the same few pages whatever the chunk holds.
--
-- Every reader already reads whole minutes (the closer, the API's window index, verify,
-- reconcile, recalculation, tiering) or names the minutes it wants of given ads
-- (adclick.query.sql_source: one probe per minute and ad). The minute BRIN indexes of
-- migration 0002 served the whole-minute reads; the key now does, so they go.
--
-- Rebuilding a key reads its table once (minutes per billion rows), under a lock that
-- stops ingest meanwhile; nothing is lost, ingest resumes from its stored offsets.

ALTER TABLE clicks_1m DROP CONSTRAINT clicks_1m_pkey;
ALTER TABLE clicks_1m ADD PRIMARY KEY (minute, ad_id);
DROP INDEX IF EXISTS clicks_1m_minute_brin;

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
        EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (minute, ad_id, %s)', t, key);
        EXECUTE format('DROP INDEX IF EXISTS %I', t || '_minute_brin');
    END LOOP;
END $$;
