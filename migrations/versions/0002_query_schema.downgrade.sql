DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT table_name FROM filtered_rollups LOOP
        EXECUTE format('DROP INDEX IF EXISTS %I', t || '_minute_brin');
    END LOOP;
END $$;
DROP INDEX IF EXISTS clicks_1h_hour_brin, clicks_1m_minute_brin;
DROP TABLE IF EXISTS rollup_changes;
