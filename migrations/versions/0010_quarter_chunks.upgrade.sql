-- Quarter-hour chunks for the per-minute rollups (docs/architecture.md, "Rollup layout").
--
-- Keyed ad first, each minute's ~600,000 new rows at the design scale land all over the
-- index of the chunk being written. With hour chunks that index grew through the hour,
-- and with uniformly popular ads ingest ran at 0.65 times its hour-0 speed with 55
-- minutes in the chunk, with 1.39 times the WAL per click (`adclick bench day`). A
-- quarter-hour chunk keeps what ingest writes at a quarter of that.
--
-- Keying the rollups minute first instead (tried: ingest at 0.94) made every per-ad read
-- a probe per minute: the long topAds windows' edge reads went from 0.6 to 4 s. Ad first
-- in quarter-hour chunks, a per-ad read is one range scan per chunk, and the long
-- windows' edges, read outside their whole quarters only, lie in one chunk each.
--
-- Existing hour chunks keep their size (TimescaleDB changes the interval of new chunks
-- only) and leave with retention; nothing is rewritten.

SELECT set_chunk_time_interval('clicks_1m', INTERVAL '15 minutes');

DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT table_name FROM filtered_rollups LOOP
        PERFORM set_chunk_time_interval(format('%I', t)::regclass, INTERVAL '15 minutes');
    END LOOP;
END $$;
