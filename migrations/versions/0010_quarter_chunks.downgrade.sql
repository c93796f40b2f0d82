-- Back to migration 0009's hour chunks; chunks made meanwhile keep their quarter hour.
SELECT set_chunk_time_interval('clicks_1m', INTERVAL '1 hour');

DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT table_name FROM filtered_rollups LOOP
        PERFORM set_chunk_time_interval(format('%I', t)::regclass, INTERVAL '1 hour');
    END LOOP;
END $$;
