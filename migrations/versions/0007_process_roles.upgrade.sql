-- Least privilege (docs/operations.md, "Security"): the migrating role owns the schema;
-- each process kind runs as a member of its own group role, which may do only what that
-- process does. The roles cannot log in here: the deployment makes them (or members of
-- them) logins with its own passwords (`adclick migrate --logins`, the local stack).
--
-- Roles are cluster-wide: every database of the cluster (and each test database) shares
-- them, so each is made only when missing.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY[
        'adclick_ingest', 'adclick_closer', 'adclick_api', 'adclick_maintain'
    ] LOOP
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
            END IF;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL;  -- made meanwhile by a migration of another database
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'cannot create role %: %', role_name, SQLERRM
                    USING HINT = 'give the migrating role CREATEROLE, or have a superuser '
                                 'create the roles adclick_ingest, adclick_closer, '
                                 'adclick_api and adclick_maintain first';
        END;
    END LOOP;
END
$$;
COMMENT ON ROLE adclick_ingest IS
    'adclick ingest workers: insert raw clicks, add to the rollups, move their offsets';
COMMENT ON ROLE adclick_closer IS
    'adclick minute closer: read the rollups, store and mark its top lists';
COMMENT ON ROLE adclick_api IS
    'adclick GraphQL API: read rollups, lists and raw clicks without personal columns; '
    'change retention policies (admin tokens)';
COMMENT ON ROLE adclick_maintain IS
    'adclick maintain, reconcile, recalculate, retention: tier and drop chunks, '
    'rebuild rollups';

-- Nothing a process role may do comes from PUBLIC, except what PostgreSQL gives every
-- role: USAGE on schema public (functions such as time_bucket), TEMPORARY (ingest's
-- staging table, reconcile's expected rows), the system catalogs.

-- Every process checks the schema's revision (the API's /readyz, for one).
GRANT SELECT ON alembic_version TO adclick_ingest, adclick_closer, adclick_api, adclick_maintain;

-- Ingest: one transaction per batch inserts raw clicks (RETURNING on the careful path
-- reads them), upserts the rollups (ON CONFLICT ... SET clicks = r.clicks + ... reads
-- them), raises the revisions of changed minutes and moves offsets and watermarks.
GRANT SELECT, INSERT ON raw_clicks TO adclick_ingest;
GRANT SELECT, INSERT, UPDATE ON clicks_1m, clicks_1h TO adclick_ingest;
GRANT SELECT, INSERT, UPDATE ON ingest_offsets, partition_watermarks, rollup_changes
    TO adclick_ingest;
GRANT SELECT ON filtered_rollups TO adclick_ingest;

-- The minute closer: ranks from the rollups (through the query side's window index),
-- stores its lists and marks them published.
GRANT SELECT ON clicks_1m, clicks_1h, rollup_changes, partition_watermarks, filtered_rollups
    TO adclick_closer;
GRANT SELECT, INSERT ON top_ad_lists, top_ads TO adclick_closer;
GRANT UPDATE (input_revision, published_offset) ON top_ad_lists TO adclick_closer;

-- The API: reads the rollups, the lists, the ingest status and the newest
-- reconciliation. Of raw_clicks (filters no rollup covers) only the columns a filter or
-- a count needs: never click_id, user_id or ip. Admin tokens change retention policies.
GRANT SELECT ON clicks_1m, clicks_1h, rollup_changes, partition_watermarks, ingest_offsets,
    filtered_rollups, top_ad_lists, top_ads, reconciliations, retention_policies
    TO adclick_api;
GRANT SELECT (ts, ad_id, country, attributes) ON raw_clicks TO adclick_api;
GRANT UPDATE (hot, cold, updated_at, updated_by) ON retention_policies TO adclick_api;

-- Maintenance (maintain, reconcile, recalculate, retention set, cold query): reads
-- everything it tiers or checks, catalogues and expires cold files, expires top lists,
-- rebuilds rollups (recalculate: DELETE and INSERT under a lock), records reconciliations.
-- It drops chunks only through adclick_drop_chunk() below: no DROP on any table.
GRANT SELECT ON raw_clicks, partition_watermarks, filtered_rollups, top_ads TO adclick_maintain;
GRANT SELECT, INSERT, DELETE ON clicks_1m, clicks_1h TO adclick_maintain;
GRANT SELECT, INSERT, UPDATE ON rollup_changes TO adclick_maintain;
GRANT SELECT, INSERT, UPDATE, DELETE ON cold_files TO adclick_maintain;
GRANT SELECT, DELETE ON top_ad_lists TO adclick_maintain;
GRANT SELECT, UPDATE ON retention_policies TO adclick_maintain;
GRANT SELECT, INSERT ON reconciliations TO adclick_maintain;
GRANT USAGE ON SEQUENCE reconciliations_id_seq TO adclick_maintain;

-- Dropping a chunk needs the hypertable's owner (TimescaleDB's drop_chunks). This runs
-- it with the owner's rights for one chunk of a relation that has a retention policy,
-- and nothing else. The lock first: drop_chunks locks the chunk's indexes before the
-- chunk, the opposite order of every reader (see adclick.lifecycle.tiering).
CREATE FUNCTION adclick_drop_chunk(chunk regclass) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    target record;
BEGIN
    SELECT c.hypertable_name, c.range_start, c.range_end INTO target
    FROM timescaledb_information.chunks AS c
    JOIN retention_policies AS p ON p.relation = c.hypertable_name
    WHERE c.hypertable_schema = 'public'
        AND format('%I.%I', c.chunk_schema, c.chunk_name)::regclass = chunk;
    IF NOT FOUND THEN
        RAISE EXCEPTION '% is no chunk of a relation with a retention policy', chunk
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', chunk);
    PERFORM drop_chunks(
        format('%I', target.hypertable_name)::regclass,
        older_than => target.range_end,
        newer_than => target.range_start - INTERVAL '1 microsecond'
    );
    RETURN TRUE;
END
$$;
COMMENT ON FUNCTION adclick_drop_chunk(regclass) IS
    'Drop one chunk of a relation with a retention policy, as the owner (adclick maintain)';
REVOKE EXECUTE ON FUNCTION adclick_drop_chunk(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION adclick_drop_chunk(regclass) TO adclick_maintain;

-- The filtered rollups made so far; those made later get the same grants where they are
-- created (sql/schema/filtered_rollup.sql).
DO $$
DECLARE
    t text;
BEGIN
    FOR t IN SELECT table_name FROM filtered_rollups WHERE to_regclass(format('%I', table_name)) IS NOT NULL LOOP
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I TO adclick_ingest', t);
        EXECUTE format('GRANT SELECT ON %I TO adclick_closer, adclick_api', t);
        EXECUTE format('GRANT SELECT, INSERT, DELETE ON %I TO adclick_maintain', t);
    END LOOP;
END
$$;
