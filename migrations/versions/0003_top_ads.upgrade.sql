-- The minute closer's lists (docs/top-ads.md). One list per (window length, filter, window
-- end, revision); the current list of a key is its highest revision. A list is never
-- changed once stored: a late event that changes it makes a new revision.
CREATE TABLE top_ad_lists (
    window_minutes integer NOT NULL,
    -- '' when unfiltered, else the canonical filter, e.g. 'country=CA|US;device=1'.
    filter_key text COLLATE "C" NOT NULL,
    window_end timestamptz NOT NULL,
    revision integer NOT NULL CHECK (revision >= 1),
    -- Sum of the revisions (rollup_changes) of the window's minutes the list was ranked
    -- from: when it moves, a late event may have changed the list.
    input_revision bigint NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    -- Offset of the list's message in the top-ads topic; NULL until the broker confirmed it.
    published_offset bigint,
    PRIMARY KEY (window_minutes, filter_key, window_end, revision)
);
CREATE INDEX top_ad_lists_unpublished ON top_ad_lists (window_end)
WHERE published_offset IS NULL;

CREATE TABLE top_ads (
    window_minutes integer NOT NULL,
    filter_key text COLLATE "C" NOT NULL,
    window_end timestamptz NOT NULL,
    revision integer NOT NULL,
    rank integer NOT NULL,
    ad_id text COLLATE "C" NOT NULL,
    clicks bigint NOT NULL,
    PRIMARY KEY (window_minutes, filter_key, window_end, revision, rank),
    FOREIGN KEY (window_minutes, filter_key, window_end, revision)
        REFERENCES top_ad_lists ON DELETE CASCADE
);
