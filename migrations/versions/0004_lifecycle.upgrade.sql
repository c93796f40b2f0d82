-- The data lifecycle (docs/lifecycle.md): how long each relation stays hot in the database
-- and, after that, in cold storage; and the catalog of the cold files.

-- One policy per relation. hot: how long data stays in TimescaleDB, measured back from
-- stream time (the newest event time), so a replay of last month is tiered like live
-- data. cold: how long it then stays in cold storage; 0 means it is not exported at all,
-- NULL keeps it forever (hot NULL: never leaves the database).
CREATE TABLE retention_policies (
    relation text PRIMARY KEY,
    hot interval CHECK (hot IS NULL OR hot > INTERVAL '0'),
    cold interval CHECK (cold IS NULL OR cold >= INTERVAL '0'),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT current_user
);

INSERT INTO retention_policies (relation, hot, cold, updated_by) VALUES
    ('raw_clicks', INTERVAL '7 days', INTERVAL '365 days', 'default'),
    ('clicks_1m', INTERVAL '90 days', INTERVAL '0', 'default'),
    ('clicks_1h', NULL, NULL, 'default'),
    ('top_ads', INTERVAL '90 days', INTERVAL '0', 'default');

-- Every exported chunk: written, read back and verified (rows and checksum equal to the
-- chunk's) before it is catalogued, and catalogued before the chunk is dropped.
CREATE TABLE cold_files (
    relation text NOT NULL,
    range_start timestamptz NOT NULL,
    range_end timestamptz NOT NULL,
    url text NOT NULL,
    rows bigint NOT NULL,
    checksum numeric NOT NULL,
    bytes bigint NOT NULL,
    hot_bytes bigint NOT NULL,
    exported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (relation, range_start)
);
