-- One filtered per-minute rollup: clicks per (minute, ad, dimension values).
-- Placeholders are filled by adclick.db.rollups with quoted identifiers and literals.
CREATE TABLE IF NOT EXISTS {table} (
    minute timestamptz NOT NULL,
    ad_id text COLLATE "C" NOT NULL,
    {dimension_columns},
    clicks bigint NOT NULL,
    -- ad first: a per-ad lookup over a window is an index range scan.
    PRIMARY KEY (ad_id, {dimension_key}, minute)
) WITH (fillfactor = 70);

-- Quarter-hour chunks: the index ingest writes is a quarter's (migration 0010 explains).
SELECT create_hypertable(
    {table_name}, by_range('minute', INTERVAL '15 minutes'), if_not_exists => TRUE,
    create_default_indexes => FALSE
);

-- The query side reads one minute at a time (see migration 0002).
CREATE INDEX IF NOT EXISTS {brin_index} ON {table} USING brin (minute)
WITH (pages_per_range = 8);

INSERT INTO filtered_rollups (table_name, dimensions)
VALUES ({table_name}, {dimensions})
ON CONFLICT (table_name) DO NOTHING;

-- Kept like clicks_1m unless an operator sets otherwise (adclick retention set).
INSERT INTO retention_policies (relation, hot, cold, updated_by)
SELECT {table_name}, hot, cold, 'default' FROM retention_policies WHERE relation = 'clicks_1m'
ON CONFLICT (relation) DO NOTHING;

-- The process roles' rights on it, as migration 0007 gives them on clicks_1m.
GRANT SELECT, INSERT, UPDATE ON {table} TO adclick_ingest;
GRANT SELECT ON {table} TO adclick_closer, adclick_api;
GRANT SELECT, INSERT, DELETE ON {table} TO adclick_maintain;
