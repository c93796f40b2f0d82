-- Lists the minute closer could not make (docs/top-ads.md, "Minutes it cannot close"):
-- a window that reaches below the ingest floor may read rollups that maintenance has
-- tiered, so its list would be short. The closer records it here, counts it in
-- adclick_close_skipped_lists_total and goes on; operators and the API read it here.
CREATE TABLE skipped_top_lists (
    window_minutes integer NOT NULL,
    filter_key text COLLATE "C" NOT NULL,
    window_end timestamptz NOT NULL,
    reason text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (window_minutes, filter_key, window_end)
);

GRANT SELECT, INSERT ON skipped_top_lists TO adclick_closer;
GRANT SELECT ON skipped_top_lists TO adclick_api;
