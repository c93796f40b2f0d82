DROP TABLE IF EXISTS partition_watermarks, ingest_offsets, clicks_1h, clicks_1m, raw_clicks;
DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT table_name FROM filtered_rollups LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I', t);
    END LOOP;
END $$;
DROP TABLE IF EXISTS filtered_rollups;
