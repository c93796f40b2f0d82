-- Back to 0006: the process roles lose every right in this database. The roles
-- themselves are cluster-wide and stay (other databases may use them); a superuser drops
-- them when no database does.
DROP FUNCTION adclick_drop_chunk(regclass);

DO $$
DECLARE
    t text;
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY[
        'adclick_ingest', 'adclick_closer', 'adclick_api', 'adclick_maintain'
    ] LOOP
        FOR t IN
            SELECT table_name FROM filtered_rollups
            WHERE to_regclass(format('%I', table_name)) IS NOT NULL
            UNION ALL
            SELECT unnest(ARRAY[
                'alembic_version', 'raw_clicks', 'clicks_1m', 'clicks_1h', 'ingest_offsets',
                'partition_watermarks', 'rollup_changes', 'filtered_rollups', 'top_ad_lists',
                'top_ads', 'retention_policies', 'cold_files', 'reconciliations'
            ])
        LOOP
            EXECUTE format('REVOKE ALL ON %I FROM %I', t, role_name);
        END LOOP;
        EXECUTE format('REVOKE ALL ON SEQUENCE reconciliations_id_seq FROM %I', role_name);
    END LOOP;
END
$$;
