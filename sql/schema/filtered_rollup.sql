-- One filtered per-minute rollup: clicks per (minute, ad, dimension values).
-- Placeholders are filled by adclick.db.rollups with quoted identifiers and literals.
CREATE TABLE IF NOT EXISTS {table} (
    minute timestamptz NOT NULL,
    ad_id text COLLATE "C" NOT NULL,
    {dimension_columns},
    clicks bigint NOT NULL,
    -- minute first: ingest appends each minute's rows (migration 0010 explains).
    PRIMARY KEY (minute, ad_id, {dimension_key})
) WITH (fillfactor = 70);

-- Hour chunks: the index ingest writes is an hour's (migration 0009 explains).
SELECT create_hypertable(
    {table_name}, by_range('minute', INTERVAL '1 hour'), if_not_exists => TRUE,
    create_default_indexes => FALSE
);

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
