-- Analyst SQL (docs/sql.md): stable views in schema analyst, the group role
-- adclick_analyst that may read them and nothing else, and raw clicks with user_id, ip and
-- click_id replaced by keyed pseudonyms whose key analysts cannot read.
--
-- The views run with their owner's privileges on the tables they read (they are not
-- security_invoker), which is what lets analysts read them without access to those tables.

-- What analysts must never read: the pseudonym key (and pgcrypto's functions). Plain
-- CREATE SCHEMA: a schema of that name made by someone else could have other grants.
CREATE SCHEMA private;
REVOKE ALL ON SCHEMA private FROM PUBLIC;
COMMENT ON SCHEMA private IS 'adclick: objects analysts must not read (the pseudonym key)';

-- pgcrypto is a trusted extension: the database owner may create it. If it is installed
-- already (in another schema) that installation is used.
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA private;
-- So pgcrypto's functions are found below wherever they are; tables still resolve as in
-- every other migration. The setting ends with this migration's transaction.
SELECT set_config('search_path', current_setting('search_path') || ', private', TRUE);

-- One row: the HMAC-SHA256 key of every pseudonym. Only the owner (and superusers) can
-- read it; rotating it changes every pseudonym (docs/sql.md).
CREATE TABLE private.pseudonym_key (
    singleton boolean PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    key bytea NOT NULL CHECK (octet_length(key) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO private.pseudonym_key (key) VALUES (gen_random_bytes(32));

CREATE SCHEMA analyst;
COMMENT ON SCHEMA analyst IS 'adclick: stable views for analysts (docs/sql.md)';

CREATE VIEW analyst.clicks_per_minute AS
SELECT minute, ad_id, clicks FROM clicks_1m;
COMMENT ON VIEW analyst.clicks_per_minute IS
    'Clicks per ad and UTC minute (exact, every committed batch; late events included)';
COMMENT ON COLUMN analyst.clicks_per_minute.minute IS 'start of the UTC minute';

CREATE VIEW analyst.clicks_per_hour AS
SELECT hour, ad_id, clicks FROM clicks_1h;
COMMENT ON VIEW analyst.clicks_per_hour IS
    'Clicks per ad and UTC hour (exact, every committed batch; late events included)';
COMMENT ON COLUMN analyst.clicks_per_hour.hour IS 'start of the UTC hour';

-- Every revision of every list the minute closer stored (docs/top-ads.md).
CREATE VIEW analyst.top_ads_revisions AS
SELECT t.window_end, t.window_minutes, t.filter_key, t.rank, t.ad_id, t.clicks, t.revision,
       l.computed_at
FROM top_ads AS t
JOIN top_ad_lists AS l
    ON l.window_minutes = t.window_minutes AND l.filter_key = t.filter_key
    AND l.window_end = t.window_end AND l.revision = t.revision;
COMMENT ON VIEW analyst.top_ads_revisions IS
    'Every revision of the minute closer''s top lists; window [window_end - window_minutes, window_end)';

-- The current list of each (window, filter, end): its highest revision. NOT EXISTS rather
-- than max(): the planner can run it as an anti-join over a whole day of lists.
CREATE VIEW analyst.top_ads AS
SELECT t.window_end, t.window_minutes, t.filter_key, t.rank, t.ad_id, t.clicks, t.revision
FROM top_ads AS t
WHERE NOT EXISTS (
    SELECT FROM top_ad_lists AS newer
    WHERE newer.window_minutes = t.window_minutes AND newer.filter_key = t.filter_key
        AND newer.window_end = t.window_end AND newer.revision > t.revision
);
COMMENT ON VIEW analyst.top_ads IS
    'The current (highest) revision of each top list; window [window_end - window_minutes, window_end)';
COMMENT ON COLUMN analyst.top_ads.filter_key IS
    'the list''s filter: empty when unfiltered, else e.g. country=US or country=CA|US;device=1';

-- Raw clicks, pseudonymised. click_id is replaced too: a derived click_id is an unkeyed
-- hash of the event's fields, user_id and ip among them, so with the other columns of
-- the row it would let anyone confirm a guessed user_id or ip.
CREATE VIEW analyst.raw_clicks AS
SELECT r.ts,
       encode(hmac(convert_to(r.click_id, 'UTF8'), k.key, 'sha256'), 'hex') AS click_pseudonym,
       r.ad_id,
       r.country,
       r.attributes,
       encode(hmac(convert_to(r.user_id, 'UTF8'), k.key, 'sha256'), 'hex') AS user_pseudonym,
       encode(hmac(convert_to(host(r.ip), 'UTF8'), k.key, 'sha256'), 'hex') AS ip_pseudonym
FROM raw_clicks AS r
CROSS JOIN private.pseudonym_key AS k;
COMMENT ON VIEW analyst.raw_clicks IS
    'Raw clicks (hot range only) with click_id, user_id and ip as HMAC-SHA256 pseudonyms';
COMMENT ON COLUMN analyst.raw_clicks.user_pseudonym IS
    'hex HMAC-SHA256 of user_id (UTF-8) under the pseudonym key: stable per user';
COMMENT ON COLUMN analyst.raw_clicks.ip_pseudonym IS
    'hex HMAC-SHA256 of the address without mask (host(ip)) under the pseudonym key';
COMMENT ON COLUMN analyst.raw_clicks.click_pseudonym IS
    'hex HMAC-SHA256 of click_id under the pseudonym key: unique per click';

-- One view per filtered rollup (clicks_1m_by_<dims> -> analyst.clicks_per_minute_by_<dims>),
-- for those catalogued now and, through the trigger below, those catalogued later.
-- Existing views are left alone: CREATE OR REPLACE would wait for (and block) every
-- analyst query on them, and a rollup's columns never change.
CREATE FUNCTION analyst.refresh_views() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    rollup record;
    view_name text;
    created integer := 0;
BEGIN
    FOR rollup IN SELECT table_name, dimensions FROM filtered_rollups ORDER BY table_name LOOP
        view_name := 'clicks_per_minute_by_' || array_to_string(rollup.dimensions, '_');
        CONTINUE WHEN to_regclass(format('%I', rollup.table_name)) IS NULL
            OR to_regclass(format('analyst.%I', view_name)) IS NOT NULL;
        EXECUTE format(
            'CREATE VIEW analyst.%I AS SELECT minute, ad_id, %s, clicks FROM %I',
            view_name,
            (SELECT string_agg(format('%I', d), ', ' ORDER BY n)
             FROM unnest(rollup.dimensions) WITH ORDINALITY AS u (d, n)),
            rollup.table_name
        );
        EXECUTE format(
            'COMMENT ON VIEW analyst.%I IS %L', view_name,
            format('Clicks per ad, %s and UTC minute (exact, every committed batch)',
                   array_to_string(rollup.dimensions, ', '))
        );
        -- Default privileges cover views made by the migrating role; this covers any other.
        EXECUTE format('GRANT SELECT ON analyst.%I TO adclick_analyst', view_name);
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$;
COMMENT ON FUNCTION analyst.refresh_views() IS
    'Create the analyst view of every catalogued filtered rollup that has none; returns how many';
REVOKE EXECUTE ON FUNCTION analyst.refresh_views() FROM PUBLIC;

-- A filtered rollup gets its view in the transaction that catalogues it
-- (adclick.db.rollups.ensure_filtered_rollups). Counting comes first: if the view cannot
-- be made, the insert still succeeds with a warning.
CREATE FUNCTION private.filtered_rollup_catalogued() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM analyst.refresh_views();
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'analyst view of filtered rollup % not created: %', NEW.table_name, SQLERRM
        USING HINT = 'run SELECT analyst.refresh_views() as the owner of schema analyst';
    RETURN NULL;
END
$$;
CREATE TRIGGER analyst_views AFTER INSERT ON filtered_rollups
FOR EACH ROW EXECUTE FUNCTION private.filtered_rollup_catalogued();

-- The read-only group role. Roles are cluster-wide: every database of the cluster (and
-- each test database) shares it, so it is made only when missing.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'adclick_analyst') THEN
        CREATE ROLE adclick_analyst NOLOGIN;
        COMMENT ON ROLE adclick_analyst IS
            'adclick: read-only access to the views of schema analyst (docs/sql.md)';
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN
        NULL;  -- made meanwhile by a migration of another database
    WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'cannot create role adclick_analyst: %', SQLERRM
            USING HINT = 'give the migrating role CREATEROLE, or have a superuser run '
                         'CREATE ROLE adclick_analyst NOLOGIN first';
END
$$;

-- Schema analyst's views, and nothing else: no grant on public's tables, no CREATE.
GRANT USAGE ON SCHEMA analyst TO adclick_analyst;
GRANT SELECT ON ALL TABLES IN SCHEMA analyst TO adclick_analyst;
ALTER DEFAULT PRIVILEGES IN SCHEMA analyst GRANT SELECT ON TABLES TO adclick_analyst;
SELECT analyst.refresh_views();

-- PostgreSQL 15's default; a database restored from an older version may still let
-- everyone create objects in public.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
