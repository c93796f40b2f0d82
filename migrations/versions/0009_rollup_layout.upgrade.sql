-- The rollups' layout for a design-scale day (docs/architecture.md, "Rollup layout").
--
-- Ingest upserts each minute's rows into the rollups' unique indexes. Keyed ad first, a
-- minute's rows land all over the index of the chunk being written, so every insert is a
-- random page access and, after each checkpoint, a full-page image: once that index
-- outgrows memory, ingest slows with the chunk (`adclick bench day`: a Zipf day-chunk with
-- 10 hours in it ran at 0.26 times its hour-0 speed).
--
-- 1. The per-minute rollups get hour chunks: the index being written is an hour's, the
--    same size at hour 23 as at hour 0. Per-ad windows stay one range scan per chunk.
--    Existing day chunks keep their size (TimescaleDB changes the interval of new chunks
--    only) and leave with retention; nothing is rewritten.
-- 2. clicks_1h is keyed hour first: every reader of it reads whole hours (the API's hour
--    index, long topAds windows, verify, recalculation), none reads one ad's hours, and
--    an hour's upserts then stay at the index's right edge, whatever the chunk holds.
--    The key replaces the hour BRIN index of migration 0002, which it makes redundant.
--    Rebuilding it reads the whole table once (minutes per billion rows).

SELECT set_chunk_time_interval('clicks_1m', INTERVAL '1 hour');

DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT table_name FROM filtered_rollups LOOP
        PERFORM set_chunk_time_interval(t::regclass, INTERVAL '1 hour');
    END LOOP;
END $$;

ALTER TABLE clicks_1h DROP CONSTRAINT clicks_1h_pkey;
ALTER TABLE clicks_1h ADD PRIMARY KEY (hour, ad_id);
DROP INDEX IF EXISTS clicks_1h_hour_brin;
