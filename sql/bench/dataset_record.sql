-- What the query benchmark's dataset holds (one row, written once the dataset is
-- complete): a later run reuses the dataset only when its parameters are equal.
CREATE TABLE IF NOT EXISTS bench_dataset (
    parameters jsonb NOT NULL,
    start_minute timestamptz NOT NULL,
    end_minute timestamptz NOT NULL,
    newest_event_time timestamptz NOT NULL,
    row_counts jsonb NOT NULL,
    build_seconds double precision NOT NULL,
    built_at timestamptz NOT NULL DEFAULT now()
);
